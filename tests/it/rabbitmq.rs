//! A private RabbitMQ broker for the queue autoscaler's tests: Debian's
//! rabbitmq-server with the management plugin on loopback ports of its
//! own (`scripts/lib/rabbitmq.sh`), stopped when the handle drops.

use std::path::PathBuf;

use crate::support::{require_tools, root};

/// A running broker.
pub struct Broker {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>` of the management API.
    pub management: String,
    /// The AMQP port on 127.0.0.1.
    pub amqp_port: u16,
    /// User and password.
    pub user: String,
    password: String,
}

impl Broker {
    /// Starts one, or skips (None) when rabbitmq-server is not installed
    /// and CLUSTERCTL_REQUIRE_TOOLS is not set.
    pub fn start() -> Option<Broker> {
        Broker::start_configured(|_| String::new())
    }

    /// The broker this test binary shares (started once; stopped by a
    /// watcher when the binary exits). Tests on it use queues and vhosts
    /// of their own, and never stop it.
    pub fn shared() -> Option<&'static Broker> {
        static SHARED: std::sync::OnceLock<Option<Broker>> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| {
                let broker = Broker::start()?;
                let out = std::process::Command::new(root().join("scripts/lib/rabbitmq.sh"))
                    .arg("watch")
                    .arg(broker.dir())
                    .arg(std::process::id().to_string())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(broker)
            })
            .as_ref()
    }

    /// Starts one with settings of the test's own: `extra` gets the
    /// broker's directory (to write certificates into) and returns lines
    /// for its rabbitmq.conf.
    pub fn start_configured(extra: impl FnOnce(&std::path::Path) -> String) -> Option<Broker> {
        if !std::path::Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() {
            assert!(
                !require_tools(),
                "rabbitmq-server is required (CLUSTERCTL_REQUIRE_TOOLS=1) but not installed"
            );
            eprintln!("SKIPPED: rabbitmq-server is not installed");
            return None;
        }
        // One broker starts at a time: Erlang VMs starting side by side on
        // two cores take minutes instead of seconds.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let conf = extra(dir.path());
        std::fs::write(dir.path().join("extra.conf"), conf).unwrap();
        let out = std::process::Command::new(root().join("scripts/lib/rabbitmq.sh"))
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
        let var = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {k}=")))
                .unwrap()
                .to_string()
        };
        Some(Broker {
            management: format!("http://127.0.0.1:{}", var("RABBITMQ_MANAGEMENT_PORT")),
            amqp_port: var("RABBITMQ_AMQP_PORT").parse().unwrap(),
            user: var("RABBITMQ_USER"),
            password: var("RABBITMQ_PASSWORD"),
            dir,
        })
    }

    /// The password (test-only).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A management API request with curl: (status, body).
    pub async fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .args(["-u", &format!("{}:{}", self.user, self.password)])
            .args(["-H", "content-type: application/json"]);
        if let Some(b) = body {
            cmd.args(["-d", b]);
        }
        let out = cmd
            .arg(format!("{}{path}", self.management))
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Publishes `n` messages to a queue of the default vhost (declared
    /// first), over one keep-alive connection.
    pub async fn publish(&self, queue: &str, n: usize) {
        self.publish_to("%2F", queue, n).await
    }

    /// Adds a vhost the broker's user may use.
    pub async fn add_vhost(&self, vhost: &str) {
        let (code, body) = self.api("PUT", &format!("/api/vhosts/{vhost}"), None).await;
        assert!(code == 201 || code == 204, "{code} {body}");
        let (code, body) = self
            .api(
                "PUT",
                &format!("/api/permissions/{vhost}/{}", self.user),
                Some(r#"{"configure":".*","write":".*","read":".*"}"#),
            )
            .await;
        assert!(code == 201 || code == 204, "{code} {body}");
    }

    /// Publishes `n` messages to a queue of `vhost` (percent-encoded),
    /// declared first.
    pub async fn publish_to(&self, vhost: &str, queue: &str, n: usize) {
        use http_body_util::{BodyExt, Full};
        let (code, body) = self
            .api(
                "PUT",
                &format!("/api/queues/{vhost}/{queue}"),
                Some(r#"{"durable":false}"#),
            )
            .await;
        assert!(code == 201 || code == 204, "{code} {body}");
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<bytes::Bytes>>();
        let auth = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.user, self.password))
        };
        let payload = format!(
            r#"{{"properties":{{}},"routing_key":"{queue}","payload":"x","payload_encoding":"string"}}"#
        );
        for _ in 0..n {
            let req = hyper::Request::post(format!(
                "{}/api/exchanges/{vhost}/amq.default/publish",
                self.management
            ))
            .header("authorization", format!("Basic {auth}"))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(payload.clone())))
            .unwrap();
            let resp = client.request(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(
                status == 200 && body.starts_with(b"{\"routed\":true"),
                "{status} {body:?}"
            );
        }
    }

    /// Stops the broker (it can be started again with [`Broker::relaunch`]).
    pub fn stop(&self) {
        let out = std::process::Command::new(root().join("scripts/lib/rabbitmq.sh"))
            .arg("stop")
            .arg(self.dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it again on the same ports.
    pub fn relaunch(&self) {
        let out = std::process::Command::new(root().join("scripts/lib/rabbitmq.sh"))
            .arg("relaunch")
            .arg(self.dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Empties a queue of the default vhost.
    pub async fn purge(&self, queue: &str) {
        let (code, body) = self
            .api("DELETE", &format!("/api/queues/%2F/{queue}/contents"), None)
            .await;
        assert!(code == 204 || code == 200, "{code} {body}");
    }

    fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = std::process::Command::new(root().join("scripts/lib/rabbitmq.sh"))
            .arg("stop")
            .arg(self.dir())
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_lags_and_the_statistics_say_so() {
    use clusterctl::controllers::queue_autoscaler::stats::{
        Matcher, Queues, parse_queues, queues_path, reading,
    };
    use clusterctl::controllers::queue_autoscaler::target::{Operation, queue_ref};
    let Some(broker) = Broker::shared() else {
        return;
    };
    broker.publish("lagging", 25).await;
    let q = Matcher::new(&queue_ref("lagging", false).unwrap()).unwrap();
    // Right after publishing, the API may not count the queue yet: the
    // reading says "unknown", never zero.
    let (code, body) = broker.api("GET", &queues_path("/"), None).await;
    assert_eq!(code, 200, "{body}");
    let first = reading(
        &q,
        Operation::Sum,
        &Queues::from(parse_queues(&serde_json::from_str(&body).unwrap())),
    );
    if let Some(r) = first {
        assert!(r.ready.is_none() || r.ready == Some(25.0), "{r:?}");
    }
    // Within seconds the counts arrive.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = broker.api("GET", &queues_path("/"), None).await;
        let r = reading(
            &q,
            Operation::Sum,
            &Queues::from(parse_queues(&serde_json::from_str(&body).unwrap())),
        );
        if r.and_then(|r| r.ready) == Some(25.0) {
            assert_eq!(r.unwrap().unacked, Some(0.0));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no count after 30 s: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Wrong credentials: 401, and the answer holds no secret.
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-w", "%{http_code}", "-u", "clusterctl:wrong"])
        .arg(format!("{}{}", broker.management, queues_path("/")))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("401"), "{text}");
    assert!(!text.contains(broker.password()));
}
