//! A real AWS emulator for the tests: one `moto_server` process per test,
//! on a free port of 127.0.0.1, killed when the handle drops.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tool;

/// A running moto_server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`: moto_server, or the proxy in front of it.
    pub endpoint: String,
    _proxy: Option<crate::proxy::Proxy>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto_server, or returns None (test skipped) when it is not
    /// installed and CLUSTERCTL_REQUIRE_TOOLS is not set.
    pub fn start() -> Option<Moto> {
        let bin = std::env::var_os("CLUSTERCTL_MOTO_SERVER")
            .map(std::path::PathBuf::from)
            .or_else(|| tool("moto_server"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Canonical's Ubuntu images, for the specs' default image lookup.
            .env(
                "MOTO_AMIS_PATH",
                crate::support::root().join("tests/fixtures/moto/amis.json"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _proxy: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// Starts moto_server behind a proxy that forwards one request at a
    /// time, so that a conditional put is atomic as it is on S3 (see
    /// `proxy.rs`). For tests of concurrent writers.
    pub fn start_serialised() -> Option<Moto> {
        let mut moto = Moto::start()?;
        let proxy = crate::proxy::Proxy::start(
            &moto.endpoint,
            crate::proxy::Options {
                serialise: true,
                ..Default::default()
            },
        );
        moto.endpoint = proxy.endpoint.clone();
        moto._proxy = Some(proxy);
        Some(moto)
    }

    /// Starts moto_server behind the test proxy with `options` (faults).
    pub fn start_proxied(options: crate::proxy::Options) -> Option<Moto> {
        let mut moto = Moto::start()?;
        let proxy = crate::proxy::Proxy::start(&moto.endpoint, options);
        moto.endpoint = proxy.endpoint.clone();
        moto._proxy = Some(proxy);
        Some(moto)
    }

    /// Requests the serialising proxy has passed to moto_server (None
    /// without one).
    pub fn proxied_requests(&self) -> Option<u64> {
        self._proxy.as_ref().map(|p| p.forwarded())
    }

    /// Environment for clusterctl processes and SDK clients.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "eu-west-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            // No instance boots on the emulator: apply does not wait for
            // the cluster's API (the addons tests turn this back on).
            ("CLUSTERCTL_SKIP_ADDONS", "1".into()),
        ]
    }

    /// A `clusterctl` command, run from the repository root, pointed at this server.
    pub fn clusterctl(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterctl"));
        cmd.args(args).current_dir(crate::support::root());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// SDK configuration pointing at this server.
    pub async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "moto",
            ))
            .load()
            .await
    }

    /// An S3 client (path-style) for this server.
    pub async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let cfg = self.sdk_config(region).await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&cfg)
                .force_path_style(true)
                .build(),
        )
    }

    /// Creates a bucket (nothing to do if this account already has it).
    pub async fn bucket(&self, region: &str, name: &str) {
        let s3 = self.s3(region).await;
        let mut req = s3.create_bucket().bucket(name);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
            Err(e) => panic!("create bucket {name}: {e:?}"),
        }
    }

    /// VPCs, subnets, security groups, launch templates and ASGs carrying the
    /// cluster's tag.
    pub async fn tagged_counts(&self, region: &str, cluster: &str) -> [usize; 5] {
        let ec2 = aws_sdk_ec2::Client::new(&self.sdk_config(region).await);
        let tagged = || {
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:KubernetesCluster")
                .values(cluster)
                .build()
        };
        let vpcs = ec2.describe_vpcs().filters(tagged()).send().await.unwrap();
        let subnets = ec2
            .describe_subnets()
            .filters(tagged())
            .send()
            .await
            .unwrap();
        let sgs = ec2
            .describe_security_groups()
            .filters(tagged())
            .send()
            .await
            .unwrap();
        let lts = ec2
            .describe_launch_templates()
            .filters(tagged())
            .max_results(200)
            .send()
            .await
            .unwrap();
        let asgs = aws_sdk_autoscaling::Client::new(&self.sdk_config(region).await)
            .describe_auto_scaling_groups()
            .filters(
                aws_sdk_autoscaling::types::Filter::builder()
                    .name("tag:KubernetesCluster")
                    .values(cluster)
                    .build(),
            )
            .max_records(100)
            .send()
            .await
            .unwrap();
        [
            vpcs.vpcs().len(),
            subnets.subnets().len(),
            sgs.security_groups().len(),
            lts.launch_templates().len(),
            asgs.auto_scaling_groups().len(),
        ]
    }
}
