//! `clusterctl preview` end to end: the binary against the test API server
//! (or a real cluster given CLUSTERCTL_TEST_KUBECONFIG) and moto_server's
//! Route53 and S3. On the test server, which has no Deployment controller,
//! a small task reports every preview Deployment as rolled out.

use std::time::Duration;

use clusterctl::cloud::dns::{Change, Dns, RecordSet, Route53};
use clusterctl::preview::Shared;
use clusterctl::preview::ledger::{self, LedgerStore};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::kube_env::{KubeEnv, eventually};

pub(crate) const REGION: &str = "eu-west-1";
pub(crate) const BUCKET: &str = "preview-ledgers";
pub(crate) const ZONE: &str = "preview.example.com";

/// The moto account's zone and bucket, and its Route53 client.
pub(crate) async fn account(endpoint: &str) -> (Route53, String, aws_sdk_s3::Client) {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await;
    let clients = clusterctl::cloud::Clients::from_sdk(&cfg, true);
    let r53 = Route53::new(clients.route53.clone());
    let zone = match r53.zone_id(ZONE).await {
        Ok(z) => z,
        Err(_) => {
            clients
                .route53
                .create_hosted_zone()
                .name(ZONE)
                .caller_reference(format!("{}", std::process::id()))
                .send()
                .await
                .unwrap();
            r53.zone_id(ZONE).await.unwrap()
        }
    };
    let mut req = clients.s3.create_bucket().bucket(BUCKET);
    req = req.create_bucket_configuration(
        aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
            .build(),
    );
    let _ = req.send().await;
    (r53, zone, clients.s3)
}

/// Reports the Deployments of preview namespaces as rolled out (the test
/// server has no Deployment controller; a real cluster has its own).
pub(crate) fn fake_rollouts(env: &KubeEnv) -> Option<tokio::task::JoinHandle<()>> {
    env.local()?;
    let client = env.client.clone();
    Some(tokio::spawn(async move {
        loop {
            let deployments = Api::<Deployment>::all(client.clone())
                .list(&ListParams::default().labels(&format!(
                    "{}={}",
                    ledger::MANAGED_BY,
                    ledger::MANAGED_BY_VALUE
                )))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            for d in deployments {
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let g = d.metadata.generation.unwrap_or(1);
                let status = json!({ "status": { "observedGeneration": g, "replicas": want, "updatedReplicas": want,
                                                  "availableReplicas": want, "readyReplicas": want } });
                let api = Api::<Deployment>::namespaced(
                    client.clone(),
                    d.metadata.namespace.as_deref().unwrap_or_default(),
                );
                let _ = api
                    .patch_status(
                        d.metadata.name.as_deref().unwrap_or_default(),
                        &PatchParams::default(),
                        &Patch::Merge(&status),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }))
}

const TEMPLATE: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    preview.example.com/branch: {{ branch }}
spec:
  replicas: {{ replicas }}
  selector:
    matchLabels: { app: web }
  template:
    metadata:
      labels: { app: web }
    spec:
      containers:
      - name: web
        image: {{ image }}
        env:
        - { name: PUBLIC_URL, value: \"{{ url }}\" }
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: { app: web }
  ports:
  - port: 80
";

/// A checkout with its preview config; the source namespace is `source`.
fn checkout(source: &str, cap: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".clusterctl")).unwrap();
    std::fs::create_dir_all(dir.path().join("deploy")).unwrap();
    std::fs::write(dir.path().join("deploy/web-template.preview.yml"), TEMPLATE).unwrap();
    std::fs::write(
        dir.path().join(".clusterctl/preview.yaml"),
        format!(
            "defaultService: web\ndomain: {ZONE}\nstate: s3://{BUCKET}/team\nsourceNamespace: {source}\nttl: 72h\nmaxPerRepo: {cap}\n\
             dns:\n  target: lb-1.{REGION}.elb.amazonaws.com\n\
             services:\n  web:\n    templates: [deploy/web-template.preview.yml]\n    image: registry.k8s.io/pause:{{tag}}\n    secrets: [web-env]\n    configMaps: [web-config]\n"
        ),
    )
    .unwrap();
    dir
}

struct Cli<'a> {
    moto: &'a crate::moto::Moto,
    kubeconfig: std::path::PathBuf,
    dir: std::path::PathBuf,
    repo: String,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut full: Vec<&str> = vec!["preview"];
        full.extend_from_slice(args);
        let kc = self.kubeconfig.display().to_string();
        let dir = self.dir.display().to_string();
        full.extend_from_slice(&["--kubeconfig", &kc, "--dir", &dir, "--repo", &self.repo]);
        let out = self.moto.clusterctl(&full).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

fn annotation(ns: &Namespace, key: &str) -> String {
    ns.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .cloned()
        .unwrap_or_default()
}

async fn zone_records(r53: &Route53, zone: &str) -> Vec<RecordSet> {
    r53.records(zone).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_list_redeploy_extend_and_down_end_to_end() {
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    let (r53, zone, s3) = account(&moto.endpoint).await;
    let env = KubeEnv::new("preview-e2e").await;
    let faker = fake_rollouts(&env);
    // The source namespace (staging): the test's own.
    let secret: Secret = serde_json::from_value(
        json!({ "metadata": { "name": "web-env" }, "stringData": { "TOKEN": "s3cret" } }),
    )
    .unwrap();
    env.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let cm: ConfigMap = serde_json::from_value(
        json!({ "metadata": { "name": "web-config" }, "data": { "MODE": "preview" } }),
    )
    .unwrap();
    env.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let dir = checkout(&env.ns, 5);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, env.kubeconfig_text()).unwrap();
    let cli = Cli {
        moto: &moto,
        kubeconfig,
        dir: dir.path().to_path_buf(),
        repo: format!("shop-{}", &env.ns[env.ns.len() - 6..]),
    };
    let branch = "feature/Login#2";
    let ns_name = clusterctl::preview::naming::namespace(&cli.repo, branch).unwrap();
    let names = clusterctl::preview::naming::names(&cli.repo, branch, "web").unwrap();
    let host = format!("{}.{ZONE}", names.host_label);

    // up: everything it makes.
    let (ok, out, err) = cli.run(&[
        "up",
        "--branch",
        branch,
        "--tag",
        "3.10",
        "--timeout",
        "60s",
        "--owner",
        "dev@example.com",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("https://{host}/")), "{out}");
    let nss = Api::<Namespace>::all(env.client.clone());
    let ns = nss.get(&ns_name).await.unwrap();
    let labels = ns.metadata.labels.clone().unwrap();
    assert_eq!(labels[ledger::MANAGED_BY], ledger::MANAGED_BY_VALUE);
    assert_eq!(labels[ledger::REPO_LABEL], ledger::repo_label(&cli.repo));
    assert_eq!(annotation(&ns, ledger::BRANCH), branch);
    assert_eq!(annotation(&ns, ledger::REPO), cli.repo);
    assert_eq!(annotation(&ns, ledger::OWNER), "dev@example.com");
    for k in [
        ledger::CREATED,
        ledger::LAST_DEPLOYED,
        ledger::EXPIRES_AT,
        ledger::LEDGER,
    ] {
        assert!(!annotation(&ns, k).is_empty(), "{k}");
    }
    let first_expiry = annotation(&ns, ledger::EXPIRES_AT);
    let d = Api::<Deployment>::namespaced(env.client.clone(), &ns_name)
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        d.metadata.annotations.unwrap()["preview.example.com/branch"],
        branch
    );
    let image = d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("registry.k8s.io/pause:3.10"));
    let copied = Api::<Secret>::namespaced(env.client.clone(), &ns_name)
        .get("web-env")
        .await
        .unwrap();
    assert!(copied.data.unwrap().contains_key("TOKEN"));
    assert!(
        Api::<ConfigMap>::namespaced(env.client.clone(), &ns_name)
            .get("web-config")
            .await
            .is_ok()
    );
    assert!(
        Api::<ResourceQuota>::namespaced(env.client.clone(), &ns_name)
            .get("preview-quota")
            .await
            .is_ok()
    );
    assert!(
        Api::<LimitRange>::namespaced(env.client.clone(), &ns_name)
            .get("preview-limits")
            .await
            .is_ok()
    );
    let ing = Api::<Ingress>::namespaced(env.client.clone(), &ns_name)
        .get("preview-web")
        .await
        .unwrap();
    let spec = ing.spec.unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("traefik"));
    assert_eq!(spec.rules.unwrap()[0].host.as_deref(), Some(host.as_str()));
    let records = zone_records(&r53, &zone).await;
    let cname = records
        .iter()
        .find(|r| r.name == host && r.kind == "CNAME")
        .expect("the CNAME");
    assert_eq!(cname.values, [format!("lb-1.{REGION}.elb.amazonaws.com")]);
    let txt = records
        .iter()
        .find(|r| r.name == ledger::owner_name(&host) && r.kind == "TXT")
        .expect("the TXT mark");
    assert_eq!(txt.values, [ledger::owner_value(&ns_name)]);
    let ledgers = LedgerStore::new(s3.clone(), BUCKET, "team");
    assert_eq!(
        ledgers.get(&ns_name).await.unwrap().unwrap().records.len(),
        1
    );

    // list shows it.
    let (ok, out, err) = cli.run(&["list", "-o", "json"]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["branch"], branch);
    assert_eq!(rows[0]["namespace"], ns_name);
    assert_eq!(rows[0]["urls"][0], format!("https://{host}/"));
    assert_eq!(rows[0]["status"], "Active");
    let (_, table, _) = cli.run(&["list"]);
    assert!(
        table.starts_with("BRANCH") && table.contains(&ns_name),
        "{table}"
    );

    // up again: redeployed, the expiry pushed out, created kept.
    let (ok, out, err) = cli.run(&[
        "up",
        "--branch",
        branch,
        "--tag",
        "3.10",
        "--timeout",
        "60s",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Redeployed"), "{out}");
    let ns2 = nss.get(&ns_name).await.unwrap();
    assert!(annotation(&ns2, ledger::EXPIRES_AT) > first_expiry);
    assert_eq!(
        annotation(&ns2, ledger::CREATED),
        annotation(&ns, ledger::CREATED)
    );

    // extend sets it to now + TTL.
    let (ok, _, err) = cli.run(&["extend", branch, "--ttl", "1h"]);
    assert!(ok, "{err}");
    let ns3 = nss.get(&ns_name).await.unwrap();
    let exp = chrono::DateTime::parse_from_rfc3339(&annotation(&ns3, ledger::EXPIRES_AT)).unwrap();
    let left = exp.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(55) && left <= chrono::Duration::hours(1),
        "{left}"
    );

    // down: everything goes, DNS included.
    let (ok, out, err) = cli.run(&["down", branch]);
    assert!(ok, "{err}");
    assert!(out.contains(&host), "{out}");
    eventually("the namespace is gone or going", || async {
        nss.get_opt(&ns_name)
            .await
            .unwrap()
            .is_none_or(|n| n.metadata.deletion_timestamp.is_some())
    })
    .await;
    let records = zone_records(&r53, &zone).await;
    assert!(
        !records.iter().any(|r| r.name.contains(&names.host_label)),
        "{records:?}"
    );
    assert!(ledgers.get(&ns_name).await.unwrap().is_none());
    // down again: nothing left to remove is a clear error, not a crash.
    let (ok, _, err) = cli.run(&["down", branch]);
    assert!(!ok && err.contains("no preview in namespace"), "{err}");
    if let Some(f) = faker {
        f.abort();
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_held_by_others_and_the_cap_are_refused_before_anything_is_written() {
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    let (r53, zone, _) = account(&moto.endpoint).await;
    let env = KubeEnv::new("preview-refusals").await;
    for (kind, name) in [("Secret", "web-env"), ("ConfigMap", "web-config")] {
        let o: serde_json::Value = json!({ "apiVersion": "v1", "kind": kind, "metadata": { "name": name, "namespace": env.ns } });
        let r = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("", "v1", kind));
        Api::<kube::api::DynamicObject>::namespaced_with(env.client.clone(), &env.ns, &r)
            .create(&PostParams::default(), &serde_json::from_value(o).unwrap())
            .await
            .unwrap();
    }
    let dir = checkout(&env.ns, 2);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, env.kubeconfig_text()).unwrap();
    let cli = Cli {
        moto: &moto,
        kubeconfig,
        dir: dir.path().to_path_buf(),
        repo: format!("cart-{}", &env.ns[env.ns.len() - 6..]),
    };
    // Someone else's record at the host this branch would get.
    let names = clusterctl::preview::naming::names(&cli.repo, "taken", "web").unwrap();
    let host = format!("{}.{ZONE}", names.host_label);
    let foreign = RecordSet {
        name: host.clone(),
        kind: "CNAME".into(),
        ttl: Some(60),
        values: vec!["elsewhere.example.net".into()],
        alias: None,
    };
    r53.change(&zone, &[Change::Upsert(foreign.clone())])
        .await
        .unwrap();
    let (ok, _, err) = cli.run(&["up", "--branch", "taken", "--tag", "3.10", "--no-wait"]);
    assert!(
        !ok && err.contains("without this preview's TXT mark"),
        "{err}"
    );
    let nss = Api::<Namespace>::all(env.client.clone());
    assert!(
        nss.get_opt(&names.namespace).await.unwrap().is_none(),
        "nothing was created"
    );
    assert!(
        zone_records(&r53, &zone).await.contains(&foreign),
        "the foreign record is untouched"
    );

    // The cap: two live previews per repo.
    for b in ["one", "two"] {
        let (ok, _, err) = cli.run(&["up", "--branch", b, "--tag", "3.10", "--no-wait"]);
        assert!(ok, "{err}");
    }
    let (ok, _, err) = cli.run(&["up", "--branch", "three", "--tag", "3.10", "--no-wait"]);
    assert!(
        !ok && err.contains("already has 2 live previews (maxPerRepo 2)"),
        "{err}"
    );
    // A bad branch name is a clear error.
    let (ok, _, err) = cli.run(&["up", "--branch", "a..b", "--tag", "3.10", "--no-wait"]);
    assert!(
        !ok && err.contains("is not a valid git branch name"),
        "{err}"
    );
    for b in ["one", "two"] {
        let (ok, _, err) = cli.run(&["down", b]);
        assert!(ok, "{err}");
    }
    env.cleanup().await;
}

/// A Shared for library-level tests.
pub(crate) async fn shared(
    env: &KubeEnv,
    endpoint: &str,
    s3: aws_sdk_s3::Client,
    prefix: &str,
) -> Shared {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await;
    let clients = clusterctl::cloud::Clients::from_sdk(&cfg, true);
    Shared {
        client: env.client.clone(),
        dns: std::sync::Arc::new(Route53::new(clients.route53.clone())),
        ledgers: LedgerStore::new(s3, BUCKET, prefix),
    }
}
