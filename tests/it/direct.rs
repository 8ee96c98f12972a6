//! The direct target against moto_server, for the resource types it
//! implements so far (network layer and security groups): apply, then plan
//! shows no changes; a second apply after a partial one converges without
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
];

fn network_model(example: &str) -> Model {
    let spec = Spec::load(&root().join(format!("examples/{example}.yaml"))).unwrap();
    let mut m = clusterctl::model::build(&spec).unwrap();
    m.resources.retain(|r| SUPPORTED.contains(&r.id.kind));
    m
}

async fn converge(cloud: &Arc<AwsCloud>, m: &Model) -> clusterctl::plan::Plan {
    let actual = cloud.discover(m).await.unwrap();
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

#[tokio::test]
async fn network_lifecycle_against_moto() {
    let Some(moto) = Moto::start() else { return };
    let client = ec2(&moto).await;
    let cloud = Arc::new(AwsCloud::new(client.clone(), "ha.example.com"));
    let m = network_model("ha");
    let first = converge(&cloud, &m).await;
    assert_eq!(first.summary().add, m.resources.len());
    let calls_before = cloud.calls();
    let again = diff(&m, &cloud.discover(&m).await.unwrap(), 0);
    let discovery_calls = cloud.calls() - calls_before;
    assert!(again.is_empty(), "{}", again.render());
    // One call per type, plus the VPC's two attributes: never one per resource.
    assert!(discovery_calls <= 12, "{discovery_calls} calls");

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
    let actual = cloud.discover(&m).await.unwrap();
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
    let left = cloud.discover(&m).await.unwrap();
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
    let cloud = Arc::new(AwsCloud::new(ec2(&moto).await, "dev.example.com"));
    let m = network_model("dev");
    converge(&cloud, &m).await;
    let mut edited = m.clone();
    for r in &mut edited.resources {
        if let clusterctl::model::Props::SecurityGroupRule { peer, .. } = &mut r.props
            && r.id.label.starts_with("ssh-")
        {
            peer.cidrs.push("192.0.2.0/24".into());
        }
    }
    let plan = diff(&edited, &cloud.discover(&edited).await.unwrap(), 0);
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
    let after = diff(&edited, &cloud.discover(&edited).await.unwrap(), 0);
    assert!(after.is_empty(), "{}", after.render());
}
