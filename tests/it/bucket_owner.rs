//! The state bucket's expected owner: every S3 request clusterctl makes
//! names the credentials' account as `x-amz-expected-bucket-owner`, so a
//! bucket that has passed to another account (deleted and re-created by
//! someone else under the same name) is refused by S3 instead of being read
//! or written. moto ignores the header; the test proxy answers as S3 does.

use crate::moto::Moto;
use crate::proxy::{Options, Proxy};

const REGION: &str = "us-east-1";

async fn account(moto: &Moto) -> &'static str {
    let sts = aws_sdk_sts::Client::new(&moto.sdk_config(REGION).await);
    let id = sts
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .account
        .unwrap();
    Box::leak(id.into_boxed_str())
}

fn run(moto: &Moto, proxy: &Proxy, args: &[&str]) -> (bool, String) {
    let out = moto
        .clusterctl(args)
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_request_names_the_bucket_owner_and_another_owner_is_refused() {
    let Some(moto) = Moto::start() else { return };
    crate::direct::account(&moto, REGION).await;
    let ours = account(&moto).await;

    let proxy = Proxy::start(
        &moto.endpoint,
        Options {
            bucket_owner: Some(ours),
            ..Default::default()
        },
    );
    let (ok, out) = run(
        &moto,
        &proxy,
        &["apply", "-f", "examples/dev.yaml", "--yes"],
    );
    assert!(ok, "{out}");
    let (ok, out) = run(&moto, &proxy, &["state", "show", "-f", "examples/dev.yaml"]);
    assert!(ok, "{out}");
    let seen = proxy.s3_requests();
    assert!(seen.len() > 20, "{seen:?}");
    let without: Vec<_> = seen
        .iter()
        .filter(|r| r.expected_owner.as_deref() != Some(ours))
        .collect();
    assert!(
        without.is_empty(),
        "S3 requests without the owner: {without:?}"
    );

    // The same bucket name, now another account's: refused before anything
    // is read or written.
    let theirs = Proxy::start(
        &moto.endpoint,
        Options {
            bucket_owner: Some("210987654321"),
            ..Default::default()
        },
    );
    for args in [
        &["plan", "-f", "examples/dev.yaml"][..],
        &["secrets", "create", "-f", "examples/dev.yaml"][..],
        &["state", "show", "-f", "examples/dev.yaml"][..],
    ] {
        let (ok, out) = run(&moto, &theirs, args);
        assert!(!ok, "{args:?}: {out}");
        assert!(
            out.contains("example-clusterctl-state") && out.to_lowercase().contains("denied"),
            "{args:?}: {out}"
        );
    }
    let writes: Vec<_> = theirs
        .s3_requests()
        .into_iter()
        .filter(|r| !r.what.starts_with("GET") && !r.what.starts_with("HEAD"))
        .collect();
    // Each was answered 403 by the proxy, never forwarded to moto.
    assert!(
        writes
            .iter()
            .all(|r| r.expected_owner.as_deref() == Some(ours)),
        "{writes:?}"
    );
}
