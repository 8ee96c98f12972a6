//! Fault injection: a proxy in front of moto_server answers one request in
//! five with a throttling error (in each service's own error format); apply
//! still converges, and the retries are counted.

use std::sync::Arc;

use clusterctl::apply::{Quiet, apply};
use clusterctl::cloud::aws::AwsCloud;
use clusterctl::cloud::{Clients, Cloud, IdMap};
use clusterctl::plan::diff;
use clusterctl::spec::Spec;

use crate::moto::Moto;
use crate::proxy::{Options, Proxy};
use crate::support::root;

#[tokio::test]
async fn apply_converges_through_20_percent_throttling() {
    let Some(moto) = Moto::start() else { return };
    let direct = Clients::from_sdk(&moto.sdk_config("eu-west-1").await, true);
    direct
        .route53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference("faults")
        .send()
        .await
        .unwrap();
    moto.bucket("eu-west-1", "example-clusterctl-state").await;
    let proxy = Proxy::start(
        &moto.endpoint,
        Options {
            throttle_every: Some(5),
            ..Default::default()
        },
    );
    let endpoint = proxy.endpoint.clone();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(clusterctl::cloud::MAX_ATTEMPTS)
                .with_initial_backoff(std::time::Duration::from_millis(20)),
        )
        .load()
        .await;
    let clients = Clients::from_sdk(&config, true);
    let cloud = Arc::new(AwsCloud::new(
        &clients,
        "ha.example.com",
        "example-clusterctl-state",
        "clusters/ha.example.com",
    ));
    let m =
        clusterctl::model::build(&Spec::load(&root().join("examples/ha.yaml")).unwrap()).unwrap();
    let actual = cloud.discover(&m).await.unwrap().actual;
    let ids = IdMap::default();
    let plan = diff(&m, &actual, 0);
    apply(cloud.clone(), &m, &plan, &ids, 10, Arc::new(Quiet))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let after = diff(&m, &cloud.discover(&m).await.unwrap().actual, 0);
    assert!(after.is_empty(), "{}", after.render());
    let (operations, retries) = cloud.retries();
    let faults = proxy.injected();
    eprintln!(
        "fault injection: {operations} operations, {retries} retries, {faults} throttling errors injected"
    );
    assert!(
        faults * 6 >= operations,
        "one request in five was throttled ({faults} faults, {operations} operations)"
    );
    // moto itself may fail a request on a loaded machine; those are
    // retried too, and counted apart.
    let upstream = proxy.upstream_errors();
    assert_eq!(
        retries,
        faults + upstream,
        "every injected fault was retried, and nothing else was ({upstream} upstream errors)"
    );
}
