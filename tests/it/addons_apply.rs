//! Addons at apply: `clusterctl apply` against moto_server, with the new
//! cluster's API stood in for by the test API server (or the real cluster of
//! CLUSTERCTL_TEST_KUBECONFIG) through the documented override
//! CLUSTERCTL_API_KUBECONFIG. Apply waits for the API, installs the channel
//! once, and a second apply changes nothing in the cluster.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

use crate::kube_env::KubeEnv;
use crate::moto::Moto;

const REGION: &str = "us-east-1";

/// dev.yaml with only CoreDNS among the optional addons (metrics-server's
/// APIService would be unavailable on a test cluster without kubelets, and
/// a real control plane then stalls namespace deletion on discovery).
fn spec(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(crate::support::root().join("examples/dev.yaml")).unwrap();
    let text = text.replacen(
        "  stateStore: s3://example-clusterctl-state/clusters\n",
        "  stateStore: s3://example-clusterctl-state/clusters\n  addons: [coredns]\n",
        1,
    );
    assert!(text.contains("addons: [coredns]"));
    let path = dir.join("cluster.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The kubeconfig of the cluster the test runs against, with its server
/// replaced by `via` (a forwarder) and the TLS name kept; and the host:port
/// it named.
fn kubeconfig_via(env: &KubeEnv, via: std::net::SocketAddr) -> (String, String) {
    let text = env.kubeconfig_text();
    let mut kc: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let current = kc["current-context"].as_str().unwrap().to_string();
    let cluster_name = kc["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == current.as_str())
        .unwrap()["context"]["cluster"]
        .as_str()
        .unwrap()
        .to_string();
    let mut upstream = String::new();
    for c in kc["clusters"].as_array_mut().unwrap() {
        if c["name"] == cluster_name.as_str() {
            let server = c["cluster"]["server"].as_str().unwrap().to_string();
            let (scheme, rest) = server.split_once("://").unwrap();
            let hostport = rest.split('/').next().unwrap();
            let host = hostport.split(':').next().unwrap().to_string();
            upstream = if hostport.contains(':') {
                hostport.to_string()
            } else {
                format!("{hostport}:443")
            };
            c["cluster"]["server"] = format!("{scheme}://{via}").into();
            if scheme == "https" && c["cluster"].get("tls-server-name").is_none() {
                c["cluster"]["tls-server-name"] = host.into();
            }
        }
    }
    (serde_norway::to_string(&kc).unwrap(), upstream)
}

/// Forwards TCP connections on `listener` to the API server of `target`.
async fn forward(listener: TcpListener, target: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
            let _ = inbound.shutdown().await;
        });
    }
}

async fn clusterctl(moto: &Moto, kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut cmd = moto.clusterctl(args);
    cmd.env("CLUSTERCTL_SKIP_ADDONS", "0")
        .env("CLUSTERCTL_API_KUBECONFIG", kubeconfig);
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn forget_addons(client: &kube::Client) {
    let ns = Api::<Namespace>::all(client.clone())
        .get("kube-system")
        .await
        .unwrap();
    let mut annotations = serde_json::Map::new();
    for k in ns.metadata.annotations.unwrap_or_default().keys() {
        if k.starts_with("addons.clusterctl.io/") {
            annotations.insert(k.clone(), serde_json::Value::Null);
        }
    }
    let patch = serde_json::json!({ "metadata": { "annotations": annotations } });
    Api::<Namespace>::all(client.clone())
        .patch(
            "kube-system",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_waits_for_the_api_installs_the_channel_once_and_then_changes_nothing() {
    let Some(moto) = Moto::start() else { return };
    crate::direct::account(&moto, REGION).await;
    let env = KubeEnv::new("addons-apply").await;
    forget_addons(&env.client).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let spec_arg = spec.to_str().unwrap();

    // The API "comes up" only some seconds after apply starts waiting:
    // the forwarder's port is reserved, released, and listened on later.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let via = reserved.local_addr().unwrap();
    drop(reserved);
    let kubeconfig = dir.path().join("kubeconfig");
    let (text, target) = kubeconfig_via(&env, via);
    std::fs::write(&kubeconfig, text).unwrap();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        forward(TcpListener::bind(via).await.unwrap(), target).await;
    });

    let (ok, out) = clusterctl(
        &moto,
        &kubeconfig,
        &["apply", "-f", spec_arg, "--yes", "--api-timeout", "2m"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("Waiting for the Kubernetes API"), "{out}");
    assert!(out.contains("coredns 1.12.1: installed"), "{out}");
    assert!(out.contains("cilium "), "{out}");

    // What the channel holds is in the cluster, labelled, and recorded.
    let coredns = Api::<Deployment>::namespaced(env.client.clone(), "kube-system")
        .get("coredns")
        .await
        .unwrap();
    assert_eq!(
        coredns.metadata.labels.unwrap()["k8s-addon"],
        "coredns.addons.clusterctl.io"
    );
    let cilium = Api::<DaemonSet>::namespaced(env.client.clone(), "kube-system")
        .get("cilium")
        .await
        .unwrap();
    let rendered = {
        let s = clusterctl::spec::Spec::load(&spec).unwrap();
        clusterctl::addons::channel::render(&s).unwrap()
    };
    let channel = clusterctl::addons::install::read_channel(&rendered).unwrap();
    let recorded = clusterctl::addons::install::installed(&env.client)
        .await
        .unwrap();
    for a in &channel.spec.addons {
        let short = clusterctl::addons::install::short_name(&a.name);
        assert_eq!(recorded[short].manifest_hash, a.manifest_hash, "{short}");
    }
    assert!(!recorded.contains_key("metrics-server"), "{recorded:?}");

    // A second apply: AWS has no changes and nothing in the cluster is written.
    if let Some(s) = &env.server {
        s.clear_requests();
    }
    let versions = (
        coredns.metadata.resource_version.clone(),
        cilium.metadata.resource_version.clone(),
    );
    let (ok, out) = clusterctl(&moto, &kubeconfig, &["apply", "-f", spec_arg, "--yes"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("0 added, 0 changed, 0 destroyed"), "{out}");
    assert!(out.contains("coredns 1.12.1: up to date"), "{out}");
    assert!(out.contains("No addon changes."), "{out}");
    if let Some(s) = &env.server {
        let writes: Vec<_> = s
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect();
        assert!(writes.is_empty(), "{writes:?}");
    }
    let again = (
        Api::<Deployment>::namespaced(env.client.clone(), "kube-system")
            .get("coredns")
            .await
            .unwrap()
            .metadata
            .resource_version,
        Api::<DaemonSet>::namespaced(env.client.clone(), "kube-system")
            .get("cilium")
            .await
            .unwrap()
            .metadata
            .resource_version,
    );
    assert_eq!(versions, again);

    // `addons plan` agrees, and writes nothing.
    let (ok, out) = clusterctl(&moto, &kubeconfig, &["addons", "plan", "-f", spec_arg]).await;
    assert!(ok, "{out}");
    assert!(out.contains("coredns 1.12.1: up to date"), "{out}");
    assert!(out.contains("No addon changes."), "{out}");

    // `addons apply` keeps the channel in the state store: a file missing
    // there is written again, and only that one.
    let s3 = moto.s3(REGION).await;
    let key = "clusters/dev.example.com/addons/bootstrap-channel.yaml";
    s3.delete_object()
        .bucket("example-clusterctl-state")
        .key(key)
        .send()
        .await
        .unwrap();
    let (ok, out) = clusterctl(&moto, &kubeconfig, &["addons", "apply", "-f", spec_arg]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("Wrote 1 channel file to the state store."),
        "{out}"
    );
    let body = s3
        .get_object()
        .bucket("example-clusterctl-state")
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        rendered["bootstrap-channel.yaml"]
    );

    // The cluster runs a newer CoreDNS than this clusterctl ships: plan
    // says so, apply refuses, and nothing is written.
    let newer = serde_json::json!({ "metadata": { "annotations": {
        "addons.clusterctl.io/coredns": r#"{"version":"9.9.9","id":"k8s-1.29","manifestHash":"x"}"#,
    } } });
    Api::<Namespace>::all(env.client.clone())
        .patch(
            "kube-system",
            &PatchParams::default(),
            &Patch::Merge(&newer),
        )
        .await
        .unwrap();
    let (ok, out) = clusterctl(&moto, &kubeconfig, &["addons", "plan", "-f", spec_arg]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("coredns 1.12.1: REFUSED: the cluster runs 9.9.9"),
        "{out}"
    );
    if let Some(s) = &env.server {
        s.clear_requests();
    }
    let (ok, out) = clusterctl(&moto, &kubeconfig, &["addons", "apply", "-f", spec_arg]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "refusing to downgrade addon coredns: the cluster runs 9.9.9 and this channel has 1.12.1"
        ),
        "{out}"
    );
    if let Some(s) = &env.server {
        let writes: Vec<_> = s
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect();
        assert!(writes.is_empty(), "{writes:?}");
    }
    forget_addons(&env.client).await;
    late.abort();
    env.cleanup().await;
}

#[tokio::test]
async fn apply_reports_an_api_that_never_answers_and_says_how_to_finish() {
    let Some(moto) = Moto::start() else { return };
    crate::direct::account(&moto, REGION).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let (ok, out) = clusterctl(
        &moto,
        &kubeconfig,
        &[
            "apply",
            "-f",
            spec.to_str().unwrap(),
            "--yes",
            "--api-timeout",
            "2s",
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("AWS resources are applied (state serial")
            && out.contains("clusterctl addons apply -f")
            && out.contains("did not answer within"),
        "{out}"
    );
    // The AWS side converged all the same.
    let (ok, out) = clusterctl(
        &moto,
        &kubeconfig,
        &["plan", "-f", spec.to_str().unwrap(), "--detailed-exitcode"],
    )
    .await;
    assert!(ok, "{out}");
}
