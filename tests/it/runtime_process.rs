//! A component as a process: SIGTERM, flags, and the standalone test API
//! server that `kubectl` can talk to.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

use crate::kube_env::{KubeEnv, eventually};

fn clusterctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clusterctl"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_within_two_seconds_and_releases_the_lease() {
    let env = KubeEnv::new("runtime-sigterm").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, env.kubeconfig_text()).unwrap();
    let mut child = tokio::process::Command::from({
        let mut c = clusterctl();
        c.args([
            "heartbeat",
            "--metrics-addr",
            "127.0.0.1:0",
            "--interval",
            "200ms",
        ])
        .args(["--lease-namespace", &env.ns, "--namespace", &env.ns])
        .env("CLUSTERCTL_KUBECONFIG", &kubeconfig)
        .env("CLUSTERCTL_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c
    })
    .spawn()
    .unwrap();
    let leases = Api::<Lease>::namespaced(env.client.clone(), &env.ns);
    let holder = || async {
        leases
            .get_opt("clusterctl-heartbeat")
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty())
    };
    eventually("the heartbeat leads", || async { holder().await.is_some() }).await;
    let pid = child.id().unwrap().to_string();
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("it exits")
        .unwrap();
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    assert_eq!(holder().await, None, "the Lease is released");
    let mut err = String::new();
    use tokio::io::AsyncReadExt as _;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    // JSON logs, one object a line, each pass in a span with its number.
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "tick"
            && l["span"]["name"] == "loop"
            && l["span"]["n"].is_number()),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "released the lease"),
        "{err}"
    );
    env.cleanup().await;
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--interval", "-3s"], "--interval"),
        (&["--interval", "0s"], "--interval"),
        (&["--interval", "soon"], "--interval"),
        (
            &["--lease-duration", "5s", "--renew-period", "5s"],
            "--renew-period",
        ),
        (&["--metrics-addr", "localhost"], "--metrics-addr"),
        (&["--leader-elect", "maybe"], "--leader-elect"),
        (&["--log-format", "xml"], "--log-format"),
    ];
    for (args, flag) in cases {
        let out = clusterctl().arg("heartbeat").args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // The environment fallback is checked the same way.
    let out = clusterctl()
        .arg("heartbeat")
        .env("CLUSTERCTL_INTERVAL", "-3s")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interval"));
}

/// The example binary next to the test binary (cargo test builds examples).
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join(name))
        .unwrap()
}

#[test]
fn kubectl_talks_to_the_standalone_test_server() {
    let Some(kubectl) = crate::support::tool("kubectl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut server = Command::new(example("test-apiserver"))
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the test-apiserver example (cargo test builds it)");
    let mut url = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let out = Command::new(kubectl)
        .args(["--kubeconfig"])
        .arg(&kubeconfig)
        .args(["get", "ns", "-o", "name"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("namespace/default") && text.contains("namespace/kube-system"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_makes_one_pass_without_a_lease_and_exits() {
    let env = KubeEnv::new("runtime-once").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, env.kubeconfig_text()).unwrap();
    let out = tokio::process::Command::from({
        let mut c = clusterctl();
        c.args([
            "heartbeat",
            "--once",
            "--namespace",
            &env.ns,
            "--lease-namespace",
            &env.ns,
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig);
        c
    })
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .get(clusterctl::controllers::heartbeat::CONFIG_MAP)
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["beats"], "1");
    let leases = Api::<Lease>::namespaced(env.client.clone(), &env.ns)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(leases.items.is_empty(), "a one-shot pass takes no lease");
    env.cleanup().await;
}
