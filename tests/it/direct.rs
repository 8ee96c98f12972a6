//! The direct target against moto_server, for every resource type (network
//! layer, security groups, IAM, state objects, launch templates, Auto
//! Scaling groups, load balancer and DNS): apply, then plan shows no
//! changes; a second apply after a partial one converges without
//! duplicates; destroy removes only what carries the cluster tag.

use std::sync::Arc;

use clusterctl::apply::{Quiet, apply};
use clusterctl::cloud::aws::AwsCloud;
use clusterctl::cloud::{Cloud, IdMap};
use clusterctl::model::Model;
use clusterctl::plan::diff;
use clusterctl::spec::Spec;

use crate::moto::Moto;
use crate::support::root;

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

pub(crate) fn network_model(example: &str) -> Model {
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

pub(crate) async fn converge(cloud: &Arc<AwsCloud>, m: &Model) -> clusterctl::plan::Plan {
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

pub(crate) async fn ec2(moto: &Moto) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&moto.sdk_config("eu-west-1").await)
}

pub(crate) async fn cloud(moto: &Moto, region: &str, cluster: &str) -> AwsCloud {
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

pub(crate) fn run(moto: &Moto, args: &[&str]) -> std::process::Output {
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

pub(crate) async fn hosted_zone(moto: &Moto, region: &str, name: &str) {
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

pub(crate) fn run_ok(moto: &Moto, args: &[&str]) -> String {
    let out = run(moto, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
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
