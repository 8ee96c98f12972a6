//! Two clusters in one account, one named like the other plus a prefix:
//! `dev.example.com` and `b.dev.example.com`. Names that end alike must not
//! make one cluster's resources look like the other's: each plans clean
//! after both are applied, and destroying one leaves every resource and
//! every state-store object of the other in place, whichever target (the
//! direct one or Terraform) made it.

use std::collections::BTreeSet;

use clusterctl::cloud::Cloud;
use clusterctl::cloud::aws::AwsCloud;
use clusterctl::resource::Kind;
use clusterctl::spec::Spec;

use crate::moto::Moto;
use crate::support::EditedSpec;

const REGION: &str = "us-east-1";

/// dev.yaml renamed to `b.dev.example.com`, in a network of its own.
fn neighbour() -> EditedSpec {
    EditedSpec::new("dev", |t| {
        t.replace("name: dev.example.com", "name: b.dev.example.com")
            .replace("networkCIDR: 10.10.0.0/16", "networkCIDR: 10.20.0.0/16")
    })
}

fn run_ok(moto: &Moto, args: &[&str]) -> String {
    let out = moto.clusterctl(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `plan --detailed-exitcode` of a spec must say "No changes" (exit 0).
fn plans_clean(moto: &Moto, file: &str) {
    let out = moto
        .clusterctl(&["plan", "-f", file, "--detailed-exitcode"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "plan of {file}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("No changes."), "{text}");
}

/// What exists of a cluster: every resource its discovery finds as owned
/// (kind, address, id and attributes), every object under its state-store
/// prefix (pki/ and secrets/ included), and, listed independently of
/// clusterctl's discovery, the IAM roles and instance profiles named for it.
#[derive(Debug, PartialEq)]
struct Inventory {
    resources: BTreeSet<String>,
    kinds: BTreeSet<Kind>,
    objects: BTreeSet<String>,
    iam: BTreeSet<String>,
}

async fn inventory(moto: &Moto, spec_file: &str) -> Inventory {
    let spec = Spec::load(std::path::Path::new(spec_file)).unwrap();
    let model = clusterctl::model::build(&spec).unwrap();
    let cluster = model.cluster_name.clone();
    let config = moto.sdk_config(REGION).await;
    let clients = clusterctl::cloud::Clients::from_sdk(&config, true);
    let prefix = format!("clusters/{cluster}");
    let cloud = AwsCloud::new(&clients, &cluster, "example-clusterctl-state", &prefix);
    let found = cloud.discover(&model).await.unwrap();
    let owned: Vec<_> = found.actual.iter().filter(|a| a.owned).collect();
    let resources = owned
        .iter()
        .map(|a| format!("{} {} {:?}", a.address, a.id, a.attrs))
        .collect();
    let kinds = owned.iter().map(|a| a.kind).collect();
    let objects = clients
        .s3
        .list_objects_v2()
        .bucket("example-clusterctl-state")
        .prefix(format!("{prefix}/"))
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| Some(format!("{} {}", o.key()?, o.e_tag()?)))
        .collect();
    // `<role>.<cluster>`: a single label before the cluster's name (a bare
    // suffix test would take b.dev.example.com's for dev.example.com's).
    let named_for = |n: &str| {
        n.strip_suffix(&format!(".{cluster}"))
            .is_some_and(|head| !head.contains('.'))
    };
    let mut iam: BTreeSet<String> = clients
        .iam
        .list_roles()
        .send()
        .await
        .unwrap()
        .roles()
        .iter()
        .filter(|r| named_for(r.role_name()))
        .map(|r| format!("role {}", r.role_name()))
        .collect();
    iam.extend(
        clients
            .iam
            .list_instance_profiles()
            .send()
            .await
            .unwrap()
            .instance_profiles()
            .iter()
            .filter(|p| named_for(p.instance_profile_name()))
            .map(|p| format!("profile {}", p.instance_profile_name())),
    );
    Inventory {
        resources,
        kinds,
        objects,
        iam,
    }
}

/// Destroys `dev.example.com` and checks that `b.dev.example.com` is
/// untouched: every resource type of its model still there, as it was, and
/// still planning clean.
async fn destroy_dev_keeps_b(moto: &Moto, b: &EditedSpec) {
    let model_b = clusterctl::model::build(&Spec::load(&b.path).unwrap()).unwrap();
    let before = inventory(moto, b.file()).await;
    let every_kind: BTreeSet<Kind> = model_b.resources.iter().map(|r| r.id.kind).collect();
    assert_eq!(before.kinds, every_kind, "b.dev.example.com is not whole");
    assert!(
        before.objects.iter().any(|o| o.contains("/pki/")),
        "{:?}",
        before.objects
    );
    assert!(before.iam.len() >= 4, "{:?}", before.iam);

    let out = run_ok(moto, &["destroy", "-f", "examples/dev.yaml", "--yes"]);
    assert!(out.contains("Destroy complete!"), "{out}");
    let dev = inventory(moto, "examples/dev.yaml").await;
    assert!(dev.resources.is_empty(), "{:?}", dev.resources);
    // Only the serial stays, as a destroyed Terraform state keeps its own.
    assert!(
        dev.objects
            .iter()
            .all(|o| o.starts_with("clusters/dev.example.com/serial ")),
        "{:?}",
        dev.objects
    );
    assert!(dev.iam.is_empty(), "{:?}", dev.iam);

    let after = inventory(moto, b.file()).await;
    assert_eq!(before, after);
    plans_clean(moto, b.file());
}

#[tokio::test]
async fn neighbouring_clusters_plan_clean_and_survive_each_others_destroy() {
    let Some(moto) = Moto::start() else { return };
    crate::direct::account(&moto, REGION).await;
    let b = neighbour();
    run_ok(&moto, &["apply", "-f", "examples/dev.yaml", "--yes"]);
    run_ok(&moto, &["apply", "-f", b.file(), "--yes"]);
    plans_clean(&moto, "examples/dev.yaml");
    plans_clean(&moto, b.file());
    destroy_dev_keeps_b(&moto, &b).await;
}

/// The same when Terraform applied the neighbour: its profiles and roles
/// carry Terraform's tags, not a clusterctl run's.
#[tokio::test]
async fn a_neighbour_terraform_made_survives_the_others_destroy() {
    let Some(moto) = Moto::start() else { return };
    let Some(terraform) = crate::terraform::Terraform::new("neighbours via terraform") else {
        return;
    };
    crate::direct::account(&moto, REGION).await;
    let b = neighbour();
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        &moto,
        &["render", "-f", b.file(), "-o", dir.path().to_str().unwrap()],
    );
    let applied = terraform.apply_to_moto(&moto, REGION, &dir.path().join("terraform"));
    assert!(applied.contains("Apply complete!"), "{applied}");
    // The first apply writes the secrets Terraform does not make.
    run_ok(&moto, &["apply", "-f", b.file(), "--yes"]);
    run_ok(&moto, &["apply", "-f", "examples/dev.yaml", "--yes"]);
    plans_clean(&moto, "examples/dev.yaml");
    plans_clean(&moto, b.file());
    destroy_dev_keeps_b(&moto, &b).await;
}
