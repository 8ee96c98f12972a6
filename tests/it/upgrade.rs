//! A cluster made before the internal API endpoint existed picks it up
//! with one in-place change per control-plane group: the internal target
//! group is attached (UpdateAutoScalingGroup cannot), ELB health checks are
//! switched on, and the next plan is empty.

use std::sync::Arc;

use clusterctl::apply::{Quiet, apply};
use clusterctl::cloud::Cloud;
use clusterctl::cloud::aws::AwsCloud;
use clusterctl::model::Props;
use clusterctl::plan::Action;
use clusterctl::resource::Kind;
use clusterctl::spec::Spec;

use crate::moto::Moto;
use crate::support::root;

#[tokio::test]
async fn control_plane_groups_gain_the_internal_target_group_in_place() {
    let Some(moto) = Moto::start() else { return };
    crate::direct::account(&moto, "us-east-1").await;
    let clients = clusterctl::cloud::Clients::from_sdk(&moto.sdk_config("us-east-1").await, true);
    let cloud = Arc::new(AwsCloud::new(
        &clients,
        "dev.example.com",
        "example-clusterctl-state",
        "clusters/dev.example.com",
    ));
    let spec = Spec::load(&root().join("examples/dev.yaml")).unwrap();
    let mut m = clusterctl::model::build(&spec).unwrap();
    clusterctl::direct::preflight::resolve_images(
        &clusterctl::cloud::aws::AwsCatalog::new(&clients),
        &mut m,
    )
    .await
    .unwrap();
    // The cluster as an earlier clusterctl made it.
    let mut old = m.clone();
    for r in &mut old.resources {
        if let Props::AutoscalingGroup {
            target_groups,
            elb_health_check,
            ..
        } = &mut r.props
            && !target_groups.is_empty()
        {
            target_groups.retain(|t| !t.label.starts_with("tcp-internal-"));
            *elb_health_check = false;
        }
    }
    let (plan, ids) = clusterctl::plan::refresh(cloud.as_ref(), &old, &old, 0)
        .await
        .unwrap();
    apply(cloud.clone(), &old, &plan, &ids, 8, Arc::new(Quiet))
        .await
        .unwrap();

    let (plan, ids) = clusterctl::plan::refresh(cloud.as_ref(), &m, &m, 0)
        .await
        .unwrap();
    let changes: Vec<_> = plan.changes.iter().collect();
    assert_eq!(changes.len(), 1, "{}", plan.render());
    assert_eq!(changes[0].kind, Kind::AutoscalingGroup);
    assert_eq!(changes[0].action, Action::Update, "{}", plan.render());
    let attrs: Vec<&str> = changes[0].changes.iter().map(|c| c.attr.as_str()).collect();
    assert_eq!(
        attrs,
        [
            "health_check_grace_period",
            "health_check_type",
            "target_groups"
        ],
        "{}",
        plan.render()
    );
    apply(cloud.clone(), &m, &plan, &ids, 8, Arc::new(Quiet))
        .await
        .unwrap();
    let again = clusterctl::plan::refresh(cloud.as_ref(), &m, &m, 0)
        .await
        .unwrap()
        .0;
    assert!(again.is_empty(), "{}", again.render());
    let groups = clients
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&changes[0].name)
        .send()
        .await
        .unwrap();
    let g = &groups.auto_scaling_groups()[0];
    assert_eq!(g.target_group_arns().len(), 2);
    assert_eq!(g.health_check_type(), Some("ELB"));
    let found = cloud.discover(&m).await.unwrap();
    assert!(found.untouched.is_empty(), "{:?}", found.untouched);
}
