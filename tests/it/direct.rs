//! The direct target against moto_server, for every resource type (network
//! layer, security groups, IAM, state objects, launch templates, Auto
//! Scaling groups, load balancer and DNS): apply, then plan shows no
//! changes; a second apply after a partial one converges without
//! duplicates; destroy removes only what carries the cluster tag.

use std::collections::BTreeSet;
use std::sync::Arc;

use clusterctl::apply::{Quiet, apply};
use clusterctl::cloud::aws::AwsCloud;
use clusterctl::cloud::{Cloud, IdMap};
use clusterctl::model::Model;
use clusterctl::plan::diff;
use clusterctl::spec::Spec;

use crate::moto::Moto;
use crate::support::{EditedSpec, root};

const SUPPORTED: &[&str] = &[
    "aws_vpc",
    "aws_internet_gateway",
    "aws_subnet",
    "aws_route_table",
    "aws_route",
    "aws_route_table_association",
    "aws_eip",
    "aws_nat_gateway",
    "aws_security_group",
    "aws_security_group_rule",
    "aws_iam_role",
    "aws_iam_role_policy",
    "aws_iam_instance_profile",
    "aws_s3_object",
    "aws_launch_template",
    "aws_autoscaling_group",
];

fn network_model(example: &str) -> Model {
    let spec = Spec::load(&root().join(format!("examples/{example}.yaml"))).unwrap();
    let mut m = clusterctl::model::build(&spec).unwrap();
    m.resources
        .retain(|r| SUPPORTED.contains(&r.id.kind.tf_type()));
    // This subset leaves the API load balancer out: control-plane groups go without it.
    for r in &mut m.resources {
        if let clusterctl::model::Props::AutoscalingGroup { target_groups, .. } = &mut r.props {
            target_groups.clear();
        }
    }
    m
}

async fn converge(cloud: &Arc<AwsCloud>, m: &Model) -> clusterctl::plan::Plan {
    let actual = cloud.discover(m).await.unwrap().actual;
    let ids = IdMap::default();
    for a in &actual {
        ids.insert(&a.address, &a.id);
    }
    let plan = diff(m, &actual, 0);
    apply(cloud.clone(), m, &plan, &ids, 10, Arc::new(Quiet))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    plan
}

async fn ec2(moto: &Moto) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&moto.sdk_config("eu-west-1").await)
}

async fn cloud(moto: &Moto, region: &str, cluster: &str) -> AwsCloud {
    let clients = clusterctl::cloud::Clients::from_sdk(&moto.sdk_config(region).await, true);
    moto.bucket(region, "example-clusterctl-state").await;
    AwsCloud::new(
        &clients,
        cluster,
        "example-clusterctl-state",
        &format!("clusters/{cluster}"),
    )
}

#[tokio::test]
async fn network_lifecycle_against_moto() {
    let Some(moto) = Moto::start() else { return };
    let client = ec2(&moto).await;
    let cloud = Arc::new(cloud(&moto, "eu-west-1", "ha.example.com").await);
    let m = network_model("ha");
    let first = converge(&cloud, &m).await;
    assert_eq!(first.summary().add, m.resources.len());
    let calls_before = cloud.calls();
    let again = diff(&m, &cloud.discover(&m).await.unwrap().actual, 0);
    let discovery_calls = cloud.calls() - calls_before;
    assert!(again.is_empty(), "{}", again.render());
    // One call per type (the VPC's contents by VPC id, once for discovery
    // and the untouched report), plus the VPC's two attributes; IAM in one
    // GetAccountAuthorizationDetails call. Launch templates' default
    // versions come in one more call; then load balancers, target groups
    // and their tags, and the DNS zone.
    assert!(discovery_calls <= 30, "{discovery_calls} calls");

    // A second apply after all is in place changes nothing and duplicates nothing.
    converge(&cloud, &m).await;
    let vpcs = client
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:KubernetesCluster")
                .values("ha.example.com")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    let subnets = client
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:KubernetesCluster")
                .values("ha.example.com")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(subnets.subnets().len(), 6);

    // A security group someone else put in our VPC.
    let vpc_id = vpcs.vpcs()[0].vpc_id().unwrap().to_string();
    let foreign = client
        .create_security_group()
        .group_name("not-ours")
        .description("x")
        .vpc_id(&vpc_id)
        .send()
        .await
        .unwrap();
    let foreign_id = foreign.group_id().unwrap().to_string();

    // Destroy: an empty model plans deleting everything we own.
    let empty = Model {
        resources: vec![],
        ..m.clone()
    };
    let actual = cloud.discover(&m).await.unwrap().actual;
    let plan = diff(&empty, &actual, 0);
    assert_eq!(
        plan.summary().destroy,
        m.resources.len(),
        "{}",
        plan.render()
    );
    let ids = IdMap::default();
    apply(cloud.clone(), &empty, &plan, &ids, 10, Arc::new(Quiet))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let left = cloud.discover(&m).await.unwrap().actual;
    assert!(
        left.iter().all(|a| !a.owned),
        "left behind: {:?}",
        left.iter().map(|a| &a.address).collect::<Vec<_>>()
    );
    let still = client
        .describe_security_groups()
        .group_ids(&foreign_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        still.security_groups().len(),
        1,
        "the foreign security group is untouched"
    );
}

#[tokio::test]
async fn editing_the_network_shows_exactly_that_change() {
    let Some(moto) = Moto::start() else { return };
    let cloud = Arc::new(cloud(&moto, "eu-west-1", "dev.example.com").await);
    // dev.yaml finds its image by name, which the direct target does not resolve yet.
    let mut m = network_model("dev");
    m.resources.retain(|r| {
        !["aws_launch_template", "aws_autoscaling_group"].contains(&r.id.kind.tf_type())
    });
    converge(&cloud, &m).await;
    let mut edited = m.clone();
    for r in &mut edited.resources {
        if let clusterctl::model::Props::SecurityGroupRule { peer, .. } = &mut r.props
            && r.id.label.starts_with("ssh-")
        {
            peer.cidrs.push("192.0.2.0/24".into());
        }
    }
    let plan = diff(&edited, &cloud.discover(&edited).await.unwrap().actual, 0);
    assert_eq!(
        plan.summary().add + plan.summary().change,
        2,
        "{}",
        plan.render()
    );
    assert!(
        plan.changes
            .iter()
            .all(|c| c.kind == "aws_security_group_rule"
                && c.action == clusterctl::plan::Action::Replace),
        "{}",
        plan.render()
    );
    converge(&cloud, &edited).await;
    let after = diff(&edited, &cloud.discover(&edited).await.unwrap().actual, 0);
    assert!(after.is_empty(), "{}", after.render());
}

fn run(moto: &Moto, args: &[&str]) -> std::process::Output {
    moto.clusterctl(args).output().unwrap()
}

#[tokio::test]
async fn cli_plan_detailed_exitcode_json_and_saved_plan() {
    let Some(moto) = Moto::start() else { return };
    // What a new account lacks is named, with what to do about it.
    let out = run(&moto, &["plan", "-f", "examples/dev.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the state store bucket example-clusterctl-state does not exist")
            && err.contains("spec.stateStore"),
        "{err}"
    );
    moto.bucket("us-east-1", "example-clusterctl-state").await;
    let out = run(&moto, &["plan", "-f", "examples/dev.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("spec.dnsZone example.com: no public hosted zone of that name"),
        "{err}"
    );
    hosted_zone(&moto, "us-east-1", "example.com").await;
    let out = run(
        &moto,
        &["plan", "-f", "examples/dev.yaml", "--detailed-exitcode"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("+ aws_vpc.dev-example-com") && text.contains("Must specify --yes"),
        "{text}"
    );
    let n = clusterctl::model::build(&Spec::load(&root().join("examples/dev.yaml")).unwrap())
        .unwrap()
        .resources
        .len();
    assert!(
        text.contains(&format!("Plan: {n} to add, 0 to change, 0 to destroy.")),
        "{text}"
    );
    let json = run(&moto, &["plan", "-f", "examples/dev.yaml", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["summary"]["add"], n);
    assert_eq!(v["plan"]["serial"], 0);
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("plan.json");
    let out = run(
        &moto,
        &[
            "plan",
            "-f",
            "examples/dev.yaml",
            "--out",
            saved.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    // The state moves on; the saved plan is refused as stale.
    let s3 = moto.s3("us-east-1").await;
    clusterctl::state::StateStore::new(s3, "example-clusterctl-state", "clusters/dev.example.com")
        .bump_serial()
        .await
        .unwrap();
    let stale = run(
        &moto,
        &["apply", "-f", "examples/dev.yaml", saved.to_str().unwrap()],
    );
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stale.stderr)
            .contains("state serial 0, but the state is now at 1"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    let no_yes = run(&moto, &["apply", "-f", "examples/dev.yaml"]);
    assert_eq!(no_yes.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_yes.stderr).contains("Must specify --yes"));

    // A saved plan carries its spec: it applies on its own, and refuses a
    // different spec or a file that is not a plan.
    let other = run(
        &moto,
        &["apply", "-f", "examples/ha.yaml", saved.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&other.stderr);
    assert_ne!(other.status.code(), Some(0), "{err}");
    assert!(
        err.contains("examples/ha.yaml is not the spec the saved plan was made from"),
        "{err}"
    );
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"changes\": 3}").unwrap();
    let out = run(&moto, &["apply", junk.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("not a plan saved by `clusterctl plan --out`"),
        "{err}"
    );
    let fresh = dir.path().join("fresh.json");
    run_ok(
        &moto,
        &[
            "plan",
            "-f",
            "examples/dev.yaml",
            "--out",
            fresh.to_str().unwrap(),
        ],
    );
    let applied = run_ok(&moto, &["apply", fresh.to_str().unwrap()]);
    assert!(
        applied.contains(&format!("Apply complete! Resources: {n} added")),
        "{applied}"
    );
    let again = run(
        &moto,
        &["plan", "-f", "examples/dev.yaml", "--detailed-exitcode"],
    );
    assert_eq!(again.status.code(), Some(0));
}

#[tokio::test]
async fn cli_apply_refuses_while_another_run_holds_the_lock() {
    let Some(moto) = Moto::start() else { return };
    moto.bucket("us-east-1", "example-clusterctl-state").await;
    let s3 = moto.s3("us-east-1").await;
    let store = clusterctl::state::StateStore::new(
        s3,
        "example-clusterctl-state",
        "clusters/dev.example.com",
    );
    let held = store.lock("apply", None).await.unwrap();
    let out = run(&moto, &["apply", "-f", "examples/dev.yaml", "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&held.info.id) && err.contains(&held.info.who),
        "{err}"
    );
    // Nothing was created while locked.
    let ec2 = ec2(&moto).await;
    let vpcs = ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:KubernetesCluster")
                .values("dev.example.com")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(vpcs.vpcs().is_empty());
}

#[tokio::test]
async fn editing_a_node_group_updates_its_asgs_and_launch_template() {
    let Some(moto) = Moto::start() else { return };
    let cloud = Arc::new(cloud(&moto, "eu-west-1", "ha.example.com").await);
    let m = network_model("ha");
    converge(&cloud, &m).await;
    let mut edited = m.clone();
    for r in &mut edited.resources {
        match &mut r.props {
            clusterctl::model::Props::AutoscalingGroup {
                max_size,
                instance_group,
                ..
            } if instance_group == "nodes" => *max_size += 1,
            clusterctl::model::Props::LaunchTemplate { instance_type, .. }
                if r.name.starts_with("nodes.") =>
            {
                *instance_type = "m6i.2xlarge".into()
            }
            _ => {}
        }
    }
    let actual = cloud.discover(&edited).await.unwrap().actual;
    let plan = diff(&edited, &actual, 0);
    let kinds: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.kind.tf_type(), c.changes[0].attr.as_str()))
        .collect();
    assert_eq!(
        plan.summary(),
        clusterctl::plan::Summary {
            add: 0,
            change: 4,
            destroy: 0
        },
        "{}",
        plan.render()
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|(k, a)| *k == "aws_autoscaling_group" && *a == "max_size")
            .count(),
        3,
        "{kinds:?}"
    );
    assert!(
        plan.changes
            .iter()
            .any(|c| c.kind == "aws_launch_template" && c.rolling_update)
    );
    converge(&cloud, &edited).await;
    let after = diff(&edited, &cloud.discover(&edited).await.unwrap().actual, 0);
    assert!(after.is_empty(), "{}", after.render());
    let groups = aws_sdk_autoscaling::Client::new(&moto.sdk_config("eu-west-1").await)
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    assert_eq!(
        groups.auto_scaling_groups().len(),
        9,
        "3 control-plane + 2 node groups × 3 zones, no duplicates"
    );
}

/// An account ready for an example: its public zone and the state bucket.
pub(crate) async fn account(moto: &Moto, region: &str) {
    hosted_zone(moto, region, "example.com").await;
    moto.bucket(region, "example-clusterctl-state").await;
}

async fn hosted_zone(moto: &Moto, region: &str, name: &str) {
    let r53 = aws_sdk_route53::Client::new(&moto.sdk_config(region).await);
    r53.create_hosted_zone()
        .name(name)
        .caller_reference(format!("clusterctl-test-{name}"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn full_ha_lifecycle_against_moto() {
    let Some(moto) = Moto::start() else { return };
    hosted_zone(&moto, "eu-west-1", "example.com").await;
    let cloud = Arc::new(cloud(&moto, "eu-west-1", "ha.example.com").await);
    let spec = Spec::load(&root().join("examples/ha.yaml")).unwrap();
    let m = clusterctl::model::build(&spec).unwrap();
    let first = converge(&cloud, &m).await;
    assert_eq!(first.summary().add, m.resources.len());
    let before = cloud.calls();
    let again = diff(&m, &cloud.discover(&m).await.unwrap().actual, 0);
    let discovery_calls = cloud.calls() - before;
    assert!(again.is_empty(), "{}", again.render());
    assert!(discovery_calls <= 30, "{discovery_calls} calls");
    // Destroy everything we own.
    let empty = Model {
        resources: vec![],
        ..m.clone()
    };
    let plan = diff(&empty, &cloud.discover(&m).await.unwrap().actual, 0);
    assert_eq!(
        plan.summary().destroy,
        m.resources.len(),
        "{}",
        plan.render()
    );
    apply(
        cloud.clone(),
        &empty,
        &plan,
        &IdMap::default(),
        10,
        Arc::new(Quiet),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let left = cloud.discover(&m).await.unwrap().actual;
    assert!(
        left.iter().all(|a| !a.owned),
        "left behind: {:?}",
        left.iter().map(|a| &a.address).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn large_example_converges_and_discovery_does_not_grow_with_groups() {
    let Some(moto) = Moto::start() else { return };
    hosted_zone(&moto, "us-west-2", "example.com").await;
    let cloud = Arc::new(cloud(&moto, "us-west-2", "large.example.com").await);
    let spec = Spec::load(&root().join("examples/large.yaml")).unwrap();
    let m = clusterctl::model::build(&spec).unwrap();
    converge(&cloud, &m).await;
    let before = cloud.calls();
    let again = diff(&m, &cloud.discover(&m).await.unwrap().actual, 0);
    let calls = cloud.calls() - before;
    assert!(again.is_empty(), "{}", again.render());
    // 43 groups, 120 ASGs, 43 launch templates: the same calls as ha.yaml,
    // plus a second page of ASGs. (31 since the internal API endpoint:
    // its load balancer's listeners and its target group's attributes.)
    assert!(calls <= 31, "{calls} discovery calls for large.yaml");
}

#[tokio::test]
async fn two_concurrent_applies_exactly_one_proceeds() {
    let Some(moto) = Moto::start_serialised() else {
        return;
    };
    account(&moto, "eu-west-1").await;
    let spawn = || {
        moto.clusterctl(&["apply", "-f", "examples/ha.yaml", "--yes"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(
        ok,
        1,
        "exactly one apply proceeds:\n{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let loser = if a.status.success() { &b } else { &a };
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(
        err.contains("the state is locked by") && err.contains("operation apply"),
        "{err}"
    );
    // The winner converged: a plan now shows no changes.
    let plan = run(
        &moto,
        &["plan", "-f", "examples/ha.yaml", "--detailed-exitcode"],
    );
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
}

/// Runs `apply` and kills it with SIGKILL after `after` finished changes.
fn apply_killed_after(moto: &Moto, after: usize) {
    killed_after(moto, "apply", after)
}

/// Runs `command` (apply or destroy) on ha.yaml and kills it with SIGKILL
/// after `after` finished changes.
fn killed_after(moto: &Moto, command: &str, after: usize) {
    use std::io::BufRead;
    let mut cmd = moto.clusterctl(&[
        command,
        "-f",
        "examples/ha.yaml",
        "--yes",
        "--parallelism",
        "4",
    ]);
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut done = 0;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.ends_with(": created")
            || line.ends_with(": updated")
            || line.ends_with(": destroyed")
        {
            done += 1;
            if done >= after {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    let _ = child.wait();
}

/// The same for destroy: killed at three points, force-unlocked, run again,
/// it finishes — nothing with the cluster's tag is left, and the secrets
/// (removed only after everything else) are gone too.
#[tokio::test]
async fn kill_9_during_destroy_then_destroy_again_finishes() {
    let n = clusterctl::model::build(&Spec::load(&root().join("examples/ha.yaml")).unwrap())
        .unwrap()
        .resources
        .len();
    let Some(moto) = Moto::start() else { return };
    account(&moto, "eu-west-1").await;
    let store = clusterctl::state::StateStore::new(
        moto.s3("eu-west-1").await,
        "example-clusterctl-state",
        "clusters/ha.example.com",
    );
    for after in [1, n / 2, n - 1] {
        run_ok(&moto, &["apply", "-f", "examples/ha.yaml", "--yes"]);
        killed_after(&moto, "destroy", after);
        let holder = store
            .lock_holder()
            .await
            .unwrap()
            .expect("the dead run's lock");
        assert_eq!(holder.operation, "destroy");
        run_ok(
            &moto,
            &["force-unlock", &holder.id, "-f", "examples/ha.yaml"],
        );
        run_ok(&moto, &["destroy", "-f", "examples/ha.yaml", "--yes"]);
        let cloud = cloud(&moto, "eu-west-1", "ha.example.com").await;
        let m = clusterctl::model::build(&Spec::load(&root().join("examples/ha.yaml")).unwrap())
            .unwrap();
        let left: Vec<String> = cloud
            .discover(&m)
            .await
            .unwrap()
            .actual
            .into_iter()
            .filter(|a| a.owned)
            .map(|a| a.address)
            .collect();
        assert!(left.is_empty(), "killed after {after}: left {left:?}");
        let secrets: Vec<String> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("pki/") || k.starts_with("secrets/"))
            .collect();
        assert!(secrets.is_empty(), "killed after {after}: {secrets:?}");
    }
}

fn run_ok(moto: &Moto, args: &[&str]) -> String {
    let out = run(moto, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn kill_9_at_five_points_then_reapply_converges_without_duplicates() {
    let n = clusterctl::model::build(&Spec::load(&root().join("examples/ha.yaml")).unwrap())
        .unwrap()
        .resources
        .len();
    for after in [1, n / 4, n / 2, 3 * n / 4, n - 1] {
        let Some(moto) = Moto::start() else { return };
        hosted_zone(&moto, "eu-west-1", "example.com").await;
        moto.bucket("eu-west-1", "example-clusterctl-state").await;
        apply_killed_after(&moto, after);
        // The dead run still holds the lock: a new apply refuses, force-unlock frees it.
        let refused = run(&moto, &["apply", "-f", "examples/ha.yaml", "--yes"]);
        assert_eq!(refused.status.code(), Some(1), "killed after {after}");
        let show: serde_json::Value = serde_json::from_str(&run_ok(
            &moto,
            &["state", "show", "-f", "examples/ha.yaml", "-o", "json"],
        ))
        .unwrap();
        let id = show["lock"]["ID"].as_str().unwrap().to_string();
        run_ok(&moto, &["force-unlock", &id, "-f", "examples/ha.yaml"]);
        run_ok(&moto, &["apply", "-f", "examples/ha.yaml", "--yes"]);
        let plan = run(
            &moto,
            &["plan", "-f", "examples/ha.yaml", "--detailed-exitcode"],
        );
        assert_eq!(
            plan.status.code(),
            Some(0),
            "killed after {after}: {}",
            String::from_utf8_lossy(&plan.stdout)
        );
        // Count by tag: nothing was made twice.
        let ec2 = ec2(&moto).await;
        let f = || {
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:KubernetesCluster")
                .values("ha.example.com")
                .build()
        };
        let [vpcs, subnets, _, lts, asgs] = moto.tagged_counts("eu-west-1", "ha.example.com").await;
        assert_eq!(
            (vpcs, subnets, lts, asgs),
            (1, 6, 5, 9),
            "VPCs, subnets, launch templates, ASGs; killed after {after}"
        );
        let nats = ec2
            .describe_nat_gateways()
            .filter(f())
            .filter(
                aws_sdk_ec2::types::Filter::builder()
                    .name("state")
                    .values("available")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            nats.nat_gateways().len(),
            3,
            "NAT gateways, killed after {after}"
        );
    }
}

#[tokio::test]
async fn image_lookups_resolve_to_the_newest_matching_ami_in_any_region() {
    let Some(moto) = Moto::start() else { return };
    for region in ["us-east-1", "eu-west-1"] {
        let clients = clusterctl::cloud::Clients::from_sdk(&moto.sdk_config(region).await, true);
        let catalog = clusterctl::cloud::aws::AwsCatalog::new(&clients);
        let mut m =
            clusterctl::model::build(&Spec::load(&root().join("examples/dev.yaml")).unwrap())
                .unwrap();
        clusterctl::direct::preflight::resolve_images(&catalog, &mut m)
            .await
            .unwrap();
        let images: Vec<&clusterctl::model::Image> = m
            .resources
            .iter()
            .filter_map(|r| match &r.props {
                clusterctl::model::Props::LaunchTemplate { image, .. } => Some(image),
                _ => None,
            })
            .collect();
        assert_eq!(images.len(), 2);
        // tests/fixtures/moto/amis.json: the 2025-10-15 amd64 noble image is
        // the newest match; a newer arm64 one and a newer jammy one are not matches.
        for i in images {
            assert_eq!(
                i,
                &clusterctl::model::Image::Ami {
                    id: "ami-0a1b2c3d4e5f60005".into()
                },
                "{region}"
            );
        }
    }
    let clients = clusterctl::cloud::Clients::from_sdk(&moto.sdk_config("us-east-1").await, true);
    let catalog = clusterctl::cloud::aws::AwsCatalog::new(&clients);
    let text = std::fs::read_to_string(root().join("examples/dev.yaml"))
        .unwrap()
        .replace(
            "  machineType: t3.large\n",
            "  machineType: t3.large\n  image: 099720109477/ubuntu/images/hvm-ssd-gp3/ubuntu-plucky-*\n",
        );
    let mut m = clusterctl::model::build(&Spec::parse(&text, "dev.yaml").unwrap()).unwrap();
    let e = clusterctl::direct::preflight::resolve_images(&catalog, &mut m)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no available image of owner 099720109477 matches the name ubuntu/images/hvm-ssd-gp3/ubuntu-plucky-*"),
        "{e}"
    );
    // Through the CLI: plan fails on the lookup; destroy needs no image.
    account(&moto, "us-east-1").await;
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("dev.yaml");
    std::fs::write(&spec, &text).unwrap();
    let file = spec.to_str().unwrap();
    let plan = run(&moto, &["plan", "-f", file]);
    let err = String::from_utf8_lossy(&plan.stderr);
    assert_eq!(plan.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: no available image of owner 099720109477"),
        "{err}"
    );
    run_ok(&moto, &["destroy", "-f", file, "--yes"]);
}

/// On a terminal, apply draws a live bar (count, elapsed time, what is in
/// flight) with the finished changes scrolling above it; piped, it prints
/// plain lines with no terminal control codes. The terminal is a pty from
/// util-linux `script`.
#[tokio::test]
async fn apply_shows_a_live_bar_on_a_terminal_and_plain_lines_otherwise() {
    let Some(moto) = Moto::start() else { return };
    let Some(script) = crate::support::tool("script") else {
        return;
    };
    account(&moto, "us-east-1").await;
    let n = clusterctl::model::build(&Spec::load(&root().join("examples/dev.yaml")).unwrap())
        .unwrap()
        .resources
        .len();
    let bin = env!("CARGO_BIN_EXE_clusterctl");
    let out = std::process::Command::new(script)
        .args([
            "-qec",
            &format!("{bin} apply -f examples/dev.yaml --yes"),
            "/dev/null",
        ])
        .current_dir(root())
        .envs(moto.env())
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    // Frames are rate-limited, so not every count is drawn; some after 0 are.
    let drawn: BTreeSet<usize> = tty
        .split("] ")
        .filter_map(|s| {
            let (k, rest) = s.split_once('/')?;
            rest.starts_with(&n.to_string()).then(|| k.parse().ok())?
        })
        .collect();
    assert!(
        drawn.contains(&0) && drawn.iter().any(|&k| k > 0),
        "{drawn:?}: {tty}"
    );
    assert!(tty.contains("creating aws_"), "{tty}");
    assert_eq!(tty.matches(": created").count(), n, "{tty}");
    assert!(tty.contains("\x1b[2K"), "the bar redraws its line");
    assert!(tty.contains("aws_vpc.dev-example-com: created"), "{tty}");
    assert!(
        tty.contains(&format!("Apply complete! Resources: {n} added")),
        "{tty}"
    );
    // Piped: one plain line per change.
    let piped = run(&moto, &["destroy", "-f", "examples/dev.yaml", "--yes"]);
    let text = String::from_utf8_lossy(&piped.stdout);
    assert!(piped.status.success(), "{text}");
    assert!(!text.contains('\x1b'), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.ends_with(": destroyed")).count(),
        n,
        "{text}"
    );
}

/// A machine type EC2 does not offer in a group's zones is reported at
/// plan time at its line of the spec, like any other spec problem, and
/// nothing is created.
#[tokio::test]
async fn unoffered_machine_types_are_reported_at_their_line() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "eu-west-1").await;
    let spec = EditedSpec::new("ha", |t| {
        t.replacen(
            "  machineType: m6i.xlarge\n",
            "  machineType: m6i.xlarg\n",
            1,
        )
        .replacen(
            "instances: [m6i.large, m5.large, m5a.large]",
            "instances: [m6i.large, m5.large, q9.huge]",
            1,
        )
    });
    let file = spec.file();
    for args in [vec!["plan", "-f", file], vec!["apply", "-f", file, "--yes"]] {
        let cmd = args[0];
        let out = run(&moto, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(
            err.contains(&format!(
                "{file}:{}:3: InstanceGroup/nodes spec.machineType: machine type m6i.xlarg is not offered in eu-west-1a, eu-west-1b, eu-west-1c (eu-west-1)",
                spec.line_of("machineType: m6i.xlarg")
            )),
            "{cmd}: {err}"
        );
        assert!(
            err.contains("InstanceGroup/spot-batch spec.mixedInstancesPolicy.instances[2]: machine type q9.huge is not offered"),
            "{cmd}: {err}"
        );
    }
    let vpcs = ec2(&moto).await.describe_vpcs().send().await.unwrap();
    assert!(
        vpcs.vpcs().iter().all(|v| v.is_default() == Some(true)),
        "nothing was created"
    );
}

/// A saved plan is applied as it was shown: with the AMIs its image lookups
/// resolved to then (not a newer image registered since), and only if what
/// exists still gives the same changes.
#[tokio::test]
async fn saved_plan_applies_the_images_it_showed_and_refuses_drift() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "us-east-1").await;
    let config = moto.sdk_config("us-east-1").await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let register = |name: &'static str| {
        let ec2 = ec2.clone();
        async move {
            ec2.register_image()
                .name(name)
                .root_device_name("/dev/sda1")
                .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664)
                .send()
                .await
                .unwrap()
                .image_id()
                .unwrap()
                .to_string()
        }
    };
    let first = register("clusterctl-test-1").await;
    let spec = EditedSpec::new("dev", |t| {
        t.replace(
            "  machineType: t3.large\n",
            "  machineType: t3.large\n  image: 123456789012/clusterctl-test-*\n",
        )
    });
    let file = spec.file();
    let saved = spec.path.with_file_name("plan.json");
    let out = saved.to_str().unwrap();
    run_ok(&moto, &["plan", "-f", file, "--out", out]);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(
        json["images"]["123456789012/clusterctl-test-*"], first,
        "{json}"
    );

    // A newer matching image appears; the saved plan still uses the first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = register("clusterctl-test-2").await;
    run_ok(&moto, &["apply", out]);
    let plan = run(&moto, &["plan", "-f", file, "--detailed-exitcode"]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!("\"{first}\" -> \"{second}\""))
            && text.contains("Plan: 0 to add, 1 to change, 0 to destroy.")
            && text.contains("Rolling update needed"),
        "{text}"
    );

    // Saved again (to move to the second image); then the nodes' ASG is
    // changed outside clusterctl. The serial is the same, the changes are
    // not: the saved plan is refused, naming the ASG.
    run_ok(&moto, &["plan", "-f", file, "--out", out]);
    let asgs = aws_sdk_autoscaling::Client::new(&config);
    let groups = asgs.describe_auto_scaling_groups().send().await.unwrap();
    let nodes = groups
        .auto_scaling_groups()
        .iter()
        .filter_map(|g| g.auto_scaling_group_name())
        .find(|n| n.starts_with("nodes"))
        .unwrap()
        .to_string();
    asgs.update_auto_scaling_group()
        .auto_scaling_group_name(&nodes)
        .max_size(7)
        .send()
        .await
        .unwrap();
    let refused = run(&moto, &["apply", out]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("changed since the saved plan was made")
            && err.contains("aws_autoscaling_group.nodes"),
        "{err}"
    );
    // Nothing was applied: the launch template still has the first image.
    let plan = run(&moto, &["plan", "-f", file]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains(&format!("\"{first}\" -> \"{second}\""))
            && text.contains("Plan: 0 to add, 2 to change, 0 to destroy."),
        "{text}"
    );
    run_ok(&moto, &["plan", "-f", file, "--out", out]);
    run_ok(&moto, &["apply", out]);
    let plan = run(&moto, &["plan", "-f", file, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );

    // The image a saved plan recorded is deregistered before it is applied.
    let third = register("clusterctl-test-3").await;
    run_ok(&moto, &["plan", "-f", file, "--out", out]);
    ec2.deregister_image()
        .image_id(&third)
        .send()
        .await
        .unwrap();
    let gone = run(&moto, &["apply", out]);
    let err = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(gone.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the image lookup 123456789012/clusterctl-test-* resolved to {third}, which no longer exists in us-east-1"
        )),
        "{err}"
    );
}

/// A zone the region does not have is named at its line of the spec (not
/// reported as every machine type being unoffered there).
#[tokio::test]
async fn unknown_zones_are_reported_at_their_line() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "us-east-1").await;
    let spec = EditedSpec::new("dev", |t| t.replace("us-east-1a", "us-east-1q"));
    let (file, line) = (spec.file(), spec.line_of("zones: [us-east-1q]"));
    let out = run(&moto, &["plan", "-f", file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:{line}:11: Cluster/dev.example.com spec.zones[0]: zone us-east-1q is not an available zone of us-east-1 (it has us-east-1a, us-east-1b,"
        )),
        "{err}"
    );
    assert!(!err.contains("not offered"), "{err}");
}

/// The AMI decides the launch template's root device name (Amazon Linux's
/// is /dev/xvda, Ubuntu's /dev/sda1), an AMI that does not exist is named at
/// its line, and so is an image whose architecture a machine type cannot run.
#[tokio::test]
async fn images_give_the_root_device_and_must_exist_and_fit_the_machine_type() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "us-east-1").await;
    let images = |cp_image: &'static str, nodes_image: &'static str| {
        move |t: String| {
            t.replace(
                "  machineType: t3.medium\n",
                &format!("  machineType: t3.medium\n  image: {cp_image}\n"),
            )
            .replace(
                "  machineType: t3.large\n",
                &format!("  machineType: t3.large\n  image: {nodes_image}\n"),
            )
        }
    };
    // tests/fixtures/moto/amis.json: …70001 is Amazon Linux x86_64, …70002 arm64.
    let mut spec = EditedSpec::new(
        "dev",
        images("ami-0000000000000dead", "ami-0b2c3d4e5f6a70001"),
    );
    let file = spec.file().to_string();
    let out = run(&moto, &["plan", "-f", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:{}:3: InstanceGroup/control-plane-us-east-1a spec.image: image ami-0000000000000dead does not exist in us-east-1",
            spec.line_of("ami-0000000000000dead")
        )),
        "{err}"
    );
    const UBUNTU: &str = "099720109477/ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*";
    spec.set(images(UBUNTU, "ami-0b2c3d4e5f6a70002"));
    let out = run(&moto, &["plan", "-f", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:{}:3: InstanceGroup/nodes spec.machineType: machine type t3.large runs x86_64, but the group's image ami-0b2c3d4e5f6a70002 is arm64",
            spec.line_of("machineType: t3.large")
        )),
        "{err}"
    );

    spec.set(images(UBUNTU, "ami-0b2c3d4e5f6a70001"));
    run_ok(&moto, &["apply", "-f", &file, "--yes"]);
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config("us-east-1").await);
    let mut devices = BTreeSet::new();
    for name in [
        "nodes.dev.example.com",
        "control-plane-us-east-1a.dev.example.com",
    ] {
        let v = ec2
            .describe_launch_template_versions()
            .launch_template_name(name)
            .versions("$Latest")
            .send()
            .await
            .unwrap();
        let data = v.launch_template_versions()[0]
            .launch_template_data()
            .unwrap();
        devices.insert((
            name,
            data.image_id().unwrap().to_string(),
            data.block_device_mappings()[0]
                .device_name()
                .unwrap()
                .to_string(),
        ));
    }
    assert_eq!(
        devices,
        BTreeSet::from([
            (
                "control-plane-us-east-1a.dev.example.com",
                "ami-0a1b2c3d4e5f60005".to_string(),
                "/dev/sda1".to_string()
            ),
            (
                "nodes.dev.example.com",
                "ami-0b2c3d4e5f6a70001".to_string(),
                "/dev/xvda".to_string()
            ),
        ])
    );
    let plan = run(&moto, &["plan", "-f", &file, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
}

/// What else can block deleting the VPC without a network interface of its
/// own is reported too: a route table, a network ACL, a gateway endpoint,
/// a peering connection, an egress-only internet gateway and a VPN gateway
/// that others made. The main route table and the
/// default ACL that AWS made with the VPC are not.
#[tokio::test]
async fn untouched_report_names_route_tables_acls_endpoints_and_peerings() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "us-east-1").await;
    run_ok(&moto, &["apply", "-f", "examples/dev.yaml", "--yes"]);
    let cloud = cloud(&moto, "us-east-1", "dev.example.com").await;
    let m =
        clusterctl::model::build(&Spec::load(&root().join("examples/dev.yaml")).unwrap()).unwrap();
    let found = cloud.discover(&m).await.unwrap();
    assert_eq!(found.untouched, vec![]);
    let actual = found.actual;

    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config("us-east-1").await);
    let vpc = actual
        .iter()
        .find(|a| a.kind == "aws_vpc")
        .unwrap()
        .id
        .clone();
    let table = ec2.create_route_table().vpc_id(&vpc).send().await.unwrap();
    let acl = ec2.create_network_acl().vpc_id(&vpc).send().await.unwrap();
    let endpoint = ec2
        .create_vpc_endpoint()
        .vpc_id(&vpc)
        .service_name("com.amazonaws.us-east-1.s3")
        .send()
        .await
        .unwrap();
    let other = ec2
        .create_vpc()
        .cidr_block("172.31.0.0/16")
        .send()
        .await
        .unwrap();
    let peering = ec2
        .create_vpc_peering_connection()
        .vpc_id(other.vpc().unwrap().vpc_id().unwrap())
        .peer_vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    let egress = ec2
        .create_egress_only_internet_gateway()
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    let vgw = ec2
        .create_vpn_gateway()
        .r#type(aws_sdk_ec2::types::GatewayType::Ipsec1)
        .send()
        .await
        .unwrap();
    let vgw_id = vgw
        .vpn_gateway()
        .unwrap()
        .vpn_gateway_id()
        .unwrap()
        .to_string();
    ec2.attach_vpn_gateway()
        .vpn_gateway_id(&vgw_id)
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    let mut found: Vec<(String, String)> = cloud
        .discover(&m)
        .await
        .unwrap()
        .untouched
        .into_iter()
        .map(|u| (u.kind, u.id))
        .collect();
    found.sort();
    let mut want = vec![
        (
            "aws_egress_only_internet_gateway".to_string(),
            egress
                .egress_only_internet_gateway()
                .unwrap()
                .egress_only_internet_gateway_id()
                .unwrap()
                .to_string(),
        ),
        ("aws_vpn_gateway".to_string(), vgw_id),
        (
            "aws_network_acl".to_string(),
            acl.network_acl()
                .unwrap()
                .network_acl_id()
                .unwrap()
                .to_string(),
        ),
        (
            "aws_route_table".to_string(),
            table
                .route_table()
                .unwrap()
                .route_table_id()
                .unwrap()
                .to_string(),
        ),
        (
            "aws_vpc_endpoint".to_string(),
            endpoint
                .vpc_endpoint()
                .unwrap()
                .vpc_endpoint_id()
                .unwrap()
                .to_string(),
        ),
        (
            "aws_vpc_peering_connection".to_string(),
            peering
                .vpc_peering_connection()
                .unwrap()
                .vpc_peering_connection_id()
                .unwrap()
                .to_string(),
        ),
    ];
    want.sort();
    assert_eq!(found, want);
}

/// Every type of a mixed-instances policy must run the group's image too.
#[tokio::test]
async fn a_mixed_instances_type_of_another_architecture_is_named() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "eu-west-1").await;
    let spec = EditedSpec::new("ha", |t| {
        t.replacen(
            "instances: [m6i.large, m5.large, m5a.large]",
            "instances: [m6i.large, m5.large, m6g.large]",
            1,
        )
    });
    let (file, line) = (spec.file(), spec.line_of("m6g.large"));
    let out = run(&moto, &["plan", "-f", file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:{line}:"
        )) && err.contains("InstanceGroup/spot-batch spec.mixedInstancesPolicy.instances[2]: machine type m6g.large runs arm64, but the group's image ami-0a1b2c3d4e5f60718 is x86_64"),
        "{err}"
    );
    assert!(err.contains("1 problem"), "{err}");
}
