//! Plan at AWS's latency (issue 17): through a proxy that holds every
//! request 100 ms, as a real account's round trip would, and throttles one
//! request in five, the plan succeeds, retries exactly the injected faults,
//! stays within its per-service bound, and is the same plan, change for
//! change, as the one made straight against the emulator.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::moto::Moto;
use crate::proxy::{Options, Proxy};

const REGION: &str = "eu-west-1";

fn plan(moto: &Moto, endpoint: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["plan", "-f", "examples/ha.yaml", "-o", "json"];
    args.extend_from_slice(extra);
    let out = moto
        .clusterctl(&args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plan via {endpoint} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_at_latency_with_throttling_is_the_same_plan_within_its_bound() {
    let Some(moto) = Moto::start() else { return };
    let direct = clusterctl::cloud::Clients::from_sdk(&moto.sdk_config(REGION).await, true);
    direct
        .route53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference("latency")
        .send()
        .await
        .unwrap();
    moto.bucket(REGION, "example-clusterctl-state").await;
    let out = moto
        .clusterctl(&["apply", "-f", "examples/ha.yaml", "--yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One change made outside clusterctl, so the plan has something to say.
    let groups = direct
        .autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    let group = groups.auto_scaling_groups()[0]
        .auto_scaling_group_name()
        .unwrap()
        .to_string();
    direct
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .max_size(17)
        .send()
        .await
        .unwrap();

    let reference = plan(&moto, &moto.endpoint, &[]);
    let changes = &reference["plan"]["changes"];
    assert_eq!(
        changes.as_array().map(Vec::len),
        Some(1),
        "the one change made outside: {changes}"
    );
    assert_eq!(reference["retries"], 0);

    // 100 ms a request, one in five throttled.
    let slow = Proxy::start(
        &moto.endpoint,
        Options {
            latency: Some(Duration::from_millis(100)),
            throttle_every: Some(5),
            ..Default::default()
        },
    );
    let throttled = plan(&moto, &slow.endpoint, &[]);
    assert_eq!(&throttled["plan"]["changes"], changes, "the same plan");
    let faults = slow.injected();
    assert!(faults > 0, "faults were injected");
    assert_eq!(
        throttled["retries"].as_u64(),
        Some(faults + slow.upstream_errors()),
        "every injected fault was retried, and nothing else ({} upstream errors)",
        slow.upstream_errors()
    );
    assert_eq!(
        throttled["apiCalls"], reference["apiCalls"],
        "no more calls than without the faults"
    );
    let peaks = slow.peak_in_flight();
    eprintln!("in flight at most, per service, at the default bound: {peaks:?}");
    assert!(
        peaks
            .values()
            .all(|p| *p <= clusterctl::cloud::DEFAULT_PARALLELISM),
        "{peaks:?}"
    );
    assert!(
        peaks.get("ec2").is_some_and(|p| *p > 2),
        "discovery asks EC2 several things at once: {peaks:?}"
    );

    // The bound holds per service.
    let bounded = Proxy::start(
        &moto.endpoint,
        Options {
            latency: Some(Duration::from_millis(50)),
            ..Default::default()
        },
    );
    let narrow = plan(&moto, &bounded.endpoint, &["--parallelism", "2"]);
    assert_eq!(&narrow["plan"]["changes"], changes, "the same plan");
    let peaks: BTreeMap<String, usize> = bounded.peak_in_flight();
    assert!(peaks.values().all(|p| *p <= 2), "{peaks:?}");
    assert_eq!(peaks.get("ec2"), Some(&2), "{peaks:?}");
}
