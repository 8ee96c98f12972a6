//! `clusterctl secrets create|delete`, the Terraform path's secrets: create
//! then `terraform apply` gives the instances every object they fetch at
//! boot; delete is refused while the cluster's resources remain, and after
//! `terraform destroy` leaves nothing of the cluster in the state store.

use std::collections::BTreeSet;

use crate::moto::Moto;
use crate::support::render_example;

const REGION: &str = "us-east-1";
const PREFIX: &str = "clusters/dev.example.com/";

fn run(moto: &Moto, args: &[&str]) -> (bool, String) {
    let out = moto.clusterctl(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn keys(moto: &Moto) -> BTreeSet<String> {
    moto.s3(REGION)
        .await
        .list_objects_v2()
        .bucket("example-clusterctl-state")
        .prefix(PREFIX)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key()?.strip_prefix(PREFIX).map(str::to_string))
        .collect()
}

/// Every state-store key a rendered user data script fetches.
fn fetched(user_data: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in user_data.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("fetch ") {
            let key = rest.split_whitespace().next().unwrap_or_default();
            if !key.contains('$') {
                out.insert(key.to_string());
            }
        }
        if let Some(list) = line.strip_prefix("for f in ")
            && let Some(list) = list.strip_suffix("; do")
        {
            out.extend(list.split_whitespace().map(|f| format!("pki/{f}")));
        }
    }
    out
}

#[tokio::test]
async fn secrets_for_terraform_are_made_before_apply_and_removed_after_destroy() {
    let Some(moto) = Moto::start() else { return };
    let Some(terraform) = crate::terraform::Terraform::new("secrets with terraform") else {
        return;
    };
    crate::direct::account(&moto, REGION).await;
    let dir = render_example("dev");
    let readme = std::fs::read_to_string(dir.path().join("terraform/README.md")).unwrap();
    assert!(
        readme.contains("clusterctl secrets create -f")
            && readme.contains("clusterctl secrets delete -f")
    );

    let (ok, out) = run(&moto, &["secrets", "create", "-f", "examples/dev.yaml"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Wrote the secrets of dev.example.com"),
        "{out}"
    );
    let (ok, out) = run(&moto, &["secrets", "create", "-f", "examples/dev.yaml"]);
    assert!(ok && out.contains("nothing written"), "{out}");

    let applied = terraform.apply_to_moto(&moto, REGION, &dir.path().join("terraform"));
    assert!(applied.contains("Apply complete!"), "{applied}");
    // Every object any instance fetches at boot is there.
    let present = keys(&moto).await;
    let mut wanted = BTreeSet::new();
    for f in std::fs::read_dir(dir.path().join("terraform/data"))
        .unwrap()
        .flatten()
    {
        if f.file_name().to_string_lossy().ends_with("_user_data") {
            wanted.extend(fetched(&std::fs::read_to_string(f.path()).unwrap()));
        }
    }
    assert!(
        wanted.contains("pki/etcd/ca.key") && wanted.contains("secrets/bootstrap-token"),
        "{wanted:?}"
    );
    let missing: Vec<_> = wanted.difference(&present).collect();
    assert!(missing.is_empty(), "instances would wait for {missing:?}");

    // A running cluster never gets new CAs.
    moto.s3(REGION)
        .await
        .delete_object()
        .bucket("example-clusterctl-state")
        .key(format!("{PREFIX}pki/front-proxy-ca.crt"))
        .send()
        .await
        .unwrap();
    let (ok, out) = run(&moto, &["secrets", "create", "-f", "examples/dev.yaml"]);
    assert!(
        !ok && out.contains("refusing to write new secrets (pki/front-proxy-ca.crt)"),
        "{out}"
    );
    // Nor are its secrets deleted while it exists.
    let (ok, out) = run(
        &moto,
        &["secrets", "delete", "-f", "examples/dev.yaml", "--yes"],
    );
    assert!(
        !ok && out.contains("refusing to delete the secrets of dev.example.com"),
        "{out}"
    );
    assert!(keys(&moto).await.contains("pki/ca.key"));

    terraform.run(
        &dir.path().join("terraform"),
        &["destroy", "-auto-approve", "-input=false", "-no-color"],
    );
    let (ok, out) = run(
        &moto,
        &["secrets", "delete", "-f", "examples/dev.yaml", "--yes"],
    );
    assert!(ok, "{out}");
    let left = keys(&moto).await;
    assert!(left.is_empty(), "left in the state store: {left:?}");
}
