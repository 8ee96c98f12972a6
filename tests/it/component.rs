//! Helpers for tests of components on the runtime: scrape a component's
//! endpoints, parse its metrics, read the Events it emitted. Start one
//! with `clusterctl::controllers::runtime::start(component, args,
//! env.config().await)` (the test API server, or the real cluster of
//! CLUSTERCTL_TEST_KUBECONFIG), and wait with `kube_env::eventually`.

use k8s_openapi::api::events::v1::Event;
use kube::api::Api;

use crate::kube_env::KubeEnv;

/// A sample: name, labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// The families and samples of a Prometheus text exposition, checked line
/// by line (a line that is neither fails the test).
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let sample = regex::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (\S+)( \d+)?$"#,
    )
    .unwrap();
    let label = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#).unwrap();
    let mut out = Vec::new();
    let mut eof = false;
    for line in text.lines() {
        assert!(!eof, "text after # EOF: {line}");
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let kw = rest.split_whitespace().next().unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT"].contains(&kw),
                "bad comment: {line}"
            );
            continue;
        }
        let c = sample
            .captures(line)
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let labels = c
            .get(3)
            .map(|l| {
                label
                    .captures_iter(l.as_str())
                    .map(|m| (m[1].to_string(), m[2].to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let value: f64 = match &c[4] {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        out.push((c[1].to_string(), labels, value));
    }
    assert!(eof, "an OpenMetrics exposition ends with # EOF");
    out
}

pub async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", &url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The value of the sample `name` whose labels include `labels`.
pub fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| *v)
}

/// The Events in the test's namespace with `reason`, as (note, reporting
/// controller).
pub async fn events(env: &KubeEnv, reason: &str) -> Vec<(String, String)> {
    Api::<Event>::namespaced(env.client.clone(), &env.ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| {
            (
                e.note.unwrap_or_default(),
                e.reporting_controller.unwrap_or_default(),
            )
        })
        .collect()
}
