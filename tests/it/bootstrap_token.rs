//! `clusterctl bootstrap-token rotate` (what the CronJob runs) against
//! moto_server's S3 and the test API server (or the real cluster of
//! CLUSTERCTL_TEST_KUBECONFIG), in the test's namespace.

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;

use crate::kube_env::KubeEnv;
use crate::moto::Moto;

const REGION: &str = "eu-west-1";
const BUCKET: &str = "token-rotation-state";
const KEY: &str = "clusters/t.example.com/secrets/bootstrap-token";

async fn stored(moto: &Moto) -> String {
    let out = moto
        .s3(REGION)
        .await
        .get_object()
        .bucket(BUCKET)
        .key(KEY)
        .send()
        .await
        .unwrap();
    String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
}

async fn store(moto: &Moto, token: &str) {
    moto.s3(REGION)
        .await
        .put_object()
        .bucket(BUCKET)
        .key(KEY)
        .body(token.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

async fn rotate(
    moto: &Moto,
    env: &KubeEnv,
    kubeconfig: &std::path::Path,
    extra: &[&str],
) -> String {
    let mut args = vec![
        "bootstrap-token",
        "rotate",
        "--state-store",
        "s3://token-rotation-state/clusters",
        "--cluster",
        "t.example.com",
        "--region",
        REGION,
        "--namespace",
        &env.ns,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = tokio::process::Command::from(moto.clusterctl(&args))
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn token_secret(id: &str, expiration: Option<&str>) -> Secret {
    let mut data = serde_json::json!({
        "token-id": id, "token-secret": "0123456789abcdef",
        "usage-bootstrap-authentication": "true",
    });
    if let Some(e) = expiration {
        data["expiration"] = e.into();
    }
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": format!("bootstrap-token-{id}") },
        "type": "bootstrap.kubernetes.io/token",
        "stringData": data,
    }))
    .unwrap()
}

fn field(s: &Secret, k: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[k].0.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_a_fresh_token_stored_and_retires_only_the_one_it_replaced() {
    let Some(moto) = Moto::start() else { return };
    moto.bucket(REGION, BUCKET).await;
    let env = KubeEnv::new("token-rotation").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, env.kubeconfig_text()).unwrap();
    let secrets = env.api::<Secret>();

    // The stored token is not in the cluster: a new one is made, and stored
    // only after its Secret exists.
    store(&moto, "aaaaaa.0123456789abcdef").await;
    let dry = rotate(&moto, &env, &kubeconfig, &["--dry-run"]).await;
    assert!(dry.contains("would be rotated (dry run)"), "{dry}");
    assert_eq!(stored(&moto).await, "aaaaaa.0123456789abcdef");
    let out = rotate(&moto, &env, &kubeconfig, &[]).await;
    assert!(
        out.contains("rotated: the stored token aaaaaa is not in the cluster"),
        "{out}"
    );
    let token = stored(&moto).await;
    let (id, secret) = token.split_once('.').unwrap();
    assert_ne!(id, "aaaaaa");
    let s = secrets.get(&format!("bootstrap-token-{id}")).await.unwrap();
    assert_eq!(s.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
    assert_eq!(field(&s, "token-secret"), secret);
    assert_eq!(
        field(&s, "auth-extra-groups"),
        "system:bootstrappers:kubeadm:default-node-token"
    );
    let expires = chrono::DateTime::parse_from_rfc3339(&field(&s, "expiration")).unwrap();
    let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        left > chrono::Duration::hours(23) && left <= chrono::Duration::hours(24),
        "{left}"
    );

    // Fresh: kept, nothing written.
    let out = rotate(&moto, &env, &kubeconfig, &[]).await;
    assert!(out.contains(&format!("Bootstrap token {id} kept")), "{out}");
    assert_eq!(stored(&moto).await, token);

    // A stored token that never expires (as kubeadm's ttl 0s made) is
    // replaced and then deleted; another non-expiring token is not ours to
    // delete and stays.
    for s in [token_secret("bbbbbb", None), token_secret("zzzzzz", None)] {
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    store(&moto, "bbbbbb.0123456789abcdef").await;
    let out = rotate(&moto, &env, &kubeconfig, &[]).await;
    assert!(
        out.contains("the stored token bbbbbb never expires"),
        "{out}"
    );
    let next = stored(&moto).await;
    assert!(!next.starts_with("bbbbbb."));
    assert!(
        secrets
            .get_opt("bootstrap-token-bbbbbb")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        secrets
            .get_opt("bootstrap-token-zzzzzz")
            .await
            .unwrap()
            .is_some()
    );

    // Close to expiry: rotated with half its life gone.
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    secrets
        .create(&PostParams::default(), &token_secret("cccccc", Some(&soon)))
        .await
        .unwrap();
    store(&moto, "cccccc.0123456789abcdef").await;
    let out = rotate(&moto, &env, &kubeconfig, &[]).await;
    assert!(out.contains("the stored token cccccc expires at"), "{out}");
    assert!(!stored(&moto).await.starts_with("cccccc."));
    // An expiring token is left to the tokencleaner.
    assert!(
        secrets
            .get_opt("bootstrap-token-cccccc")
            .await
            .unwrap()
            .is_some()
    );
    env.cleanup().await;
}
