//! Installing a channel, against the test API server (or the real cluster
//! of CLUSTERCTL_TEST_KUBECONFIG): a second run writes nothing, a version
//! bump touches only its addon, a downgrade is refused before any write,
//! and what an addon dropped is pruned (by label, only what clusterctl
//! applied, never an object replaced since the plan listed it).
//!
//! The addons are made up for the test, named after its namespace, so the
//! test touches nothing of a real cluster's own addons; their records on
//! kube-system are removed at the end.

use std::collections::BTreeMap;

use clusterctl::addons::channel::{Channel, ChannelAddon, ChannelMeta, ChannelSpec};
use clusterctl::addons::install::{self, Decision, InstallError};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::kube_env::KubeEnv;

/// One made-up addon: its name, version and objects (YAML documents).
struct Addon<'a> {
    name: String,
    version: &'a str,
    docs: Vec<String>,
}

fn configmap(ns: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  v: \"{value}\"\n"
    )
}

fn role(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\n  namespace: {ns}\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get]\n"
    )
}

/// A rendered channel (path → text), as `channel::render` makes one.
fn rendered(addons: &[Addon]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut entries = Vec::new();
    for a in addons {
        let text = a.docs.join("---\n");
        let path = format!("{}/v.yaml", a.name);
        let full = format!("{}.addons.clusterctl.io", a.name);
        entries.push(ChannelAddon {
            name: full.clone(),
            version: a.version.to_string(),
            id: "v".into(),
            manifest: path.clone(),
            manifest_hash: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())),
            selector: BTreeMap::from([("k8s-addon".to_string(), full)]),
            kubernetes_version: ">=1.29.0".into(),
            prune: true,
        });
        out.insert(path, text);
    }
    let channel = Channel {
        api_version: "addons.clusterctl.io/v1alpha1".into(),
        kind: "Addons".into(),
        metadata: ChannelMeta {
            name: "bootstrap".into(),
        },
        spec: ChannelSpec { addons: entries },
    };
    out.insert(
        "bootstrap-channel.yaml".into(),
        serde_norway::to_string(&channel).unwrap(),
    );
    out
}

/// Non-GET requests seen by the test server since `clear_requests`.
fn writes(env: &KubeEnv) -> Option<Vec<String>> {
    env.local().map(|s| {
        s.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    })
}

fn clear(env: &KubeEnv) {
    if let Some(s) = env.local() {
        s.clear_requests();
    }
}

async fn versions(env: &KubeEnv, names: &[&str]) -> Vec<Option<String>> {
    let api: Api<ConfigMap> = env.api();
    let mut out = Vec::new();
    for n in names {
        out.push(api.get(n).await.unwrap().metadata.resource_version);
    }
    out
}

async fn forget(env: &KubeEnv, names: &[&str]) {
    let annotations: serde_json::Map<_, _> = names
        .iter()
        .map(|n| (format!("addons.clusterctl.io/{n}"), serde_json::Value::Null))
        .collect();
    Api::<Namespace>::all(env.client.clone())
        .patch(
            "kube-system",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": annotations } })),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_channel_installs_once_upgrades_one_addon_refuses_downgrades_and_prunes_only_ours() {
    let env = KubeEnv::new("addons-channel").await;
    let ns = env.ns.clone();
    let (alpha, beta) = (format!("{ns}-alpha"), format!("{ns}-beta"));
    let (a_cm, b_cm, b_extra, b_role) = (
        format!("{alpha}-a"),
        format!("{beta}-a"),
        format!("{beta}-extra"),
        format!("{beta}-reader"),
    );
    let alpha_v1 = || Addon {
        name: alpha.clone(),
        version: "1.0.0",
        docs: vec![configmap(&ns, &a_cm, "1")],
    };
    let beta_at = |version, value, extra: bool| Addon {
        name: beta.clone(),
        version,
        docs: if extra {
            vec![
                configmap(&ns, &b_cm, value),
                configmap(&ns, &b_extra, value),
                role(&ns, &b_role),
            ]
        } else {
            vec![configmap(&ns, &b_cm, value)]
        },
    };

    // Install.
    let first = rendered(&[alpha_v1(), beta_at("1.0.0", "1", true)]);
    let out = install::apply_channel(&env.client, &first).await.unwrap();
    let decisions: Vec<_> = out.iter().map(|o| o.decision.clone()).collect();
    assert_eq!(decisions, [Decision::Install, Decision::Install]);
    assert_eq!((out[0].objects, out[1].objects), (1, 3));
    let cm = env.api::<ConfigMap>().get(&b_extra).await.unwrap();
    assert_eq!(
        cm.metadata.labels.unwrap()["k8s-addon"],
        format!("{beta}.addons.clusterctl.io")
    );

    // A second run: nothing to do, nothing written.
    let before = versions(&env, &[&a_cm, &b_cm, &b_extra]).await;
    clear(&env);
    let out = install::apply_channel(&env.client, &first).await.unwrap();
    assert!(
        out.iter().all(|o| o.decision == Decision::UpToDate),
        "{out:?}"
    );
    if let Some(w) = writes(&env) {
        assert!(w.is_empty(), "{w:?}");
    }
    assert_eq!(versions(&env, &[&a_cm, &b_cm, &b_extra]).await, before);

    // beta 1.1.0: only beta's objects (and its record) are written.
    clear(&env);
    let bumped = rendered(&[alpha_v1(), beta_at("1.1.0", "2", true)]);
    let out = install::apply_channel(&env.client, &bumped).await.unwrap();
    assert_eq!(out[0].decision, Decision::UpToDate);
    assert_eq!(
        out[1].decision,
        Decision::Upgrade {
            from: "1.0.0".into()
        }
    );
    if let Some(w) = writes(&env) {
        assert!(!w.is_empty());
        for line in &w {
            assert!(
                line.contains(&beta) || line.ends_with("/api/v1/namespaces/kube-system"),
                "a write outside beta: {line} (all: {w:?})"
            );
        }
    }
    let after = versions(&env, &[&a_cm, &b_cm]).await;
    assert_eq!(after[0], before[0], "alpha was rewritten");
    assert_ne!(after[1], before[1], "beta was not upgraded");
    let recorded = install::installed(&env.client).await.unwrap();
    assert_eq!(recorded[&beta].version, "1.1.0");
    assert_eq!(recorded[&alpha].version, "1.0.0");

    // Back to beta 1.0.0: refused as a whole, nothing written.
    clear(&env);
    let older = rendered(&[alpha_v1(), beta_at("1.0.0", "1", true)]);
    let err = install::apply_channel(&env.client, &older)
        .await
        .unwrap_err();
    assert!(matches!(err, InstallError::Downgrade(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "refusing to downgrade addon {beta}: the cluster runs 1.1.0 and this channel has 1.0.0 (to go back on purpose, remove the annotation addons.clusterctl.io/{beta} from namespace kube-system first); nothing was applied. Use a clusterctl whose channel has these versions or later."
        )
    );
    if let Some(w) = writes(&env) {
        assert!(w.is_empty(), "{w:?}");
    }
    assert_eq!(
        env.api::<ConfigMap>()
            .get(&b_cm)
            .await
            .unwrap()
            .data
            .unwrap()["v"],
        "2"
    );

    // beta 1.2.0 drops a ConfigMap and the only Role. Beside them: a
    // look-alike without the label, and one with the label that
    // clusterctl did not apply. Both are kept.
    let lookalike = format!("{beta}-extra-copy");
    let labelled = format!("{beta}-labelled");
    let cms: Api<ConfigMap> = env.api();
    for (name, labels) in [
        (&lookalike, json!({})),
        (
            &labelled,
            json!({ "k8s-addon": format!("{beta}.addons.clusterctl.io") }),
        ),
    ] {
        let cm: ConfigMap = serde_json::from_value(
            json!({ "metadata": { "name": name, "labels": labels }, "data": { "v": "x" } }),
        )
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let slim = rendered(&[alpha_v1(), beta_at("1.2.0", "3", false)]);
    clear(&env);
    let plan = install::plan(&env.client, &slim).await.unwrap();
    let planned = plan.outcomes();
    let names = |v: &[clusterctl::addons::prune::ObjRef]| -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    };
    assert_eq!(
        names(&planned[1].pruned),
        [
            format!("ConfigMap {ns}/{b_extra}"),
            format!("Role {ns}/{b_role}")
        ]
    );
    assert_eq!(
        names(&planned[1].kept),
        [format!("ConfigMap {ns}/{labelled}")]
    );
    assert!(planned[0].pruned.is_empty());
    if let Some(w) = writes(&env) {
        assert!(w.is_empty(), "plan wrote: {w:?}");
    }

    // Between the plan and its apply, the ConfigMap is replaced (same
    // name, new uid, applied by clusterctl again): it must survive.
    cms.delete(&b_extra, &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..100 {
        if cms.get_opt(&b_extra).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let replacement = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": b_extra, "namespace": ns, "labels": { "k8s-addon": format!("{beta}.addons.clusterctl.io") } },
        "data": { "v": "replaced" },
    });
    cms.patch(
        &b_extra,
        &PatchParams::apply("clusterctl").force(),
        &Patch::Apply(&replacement),
    )
    .await
    .unwrap();

    let out = install::apply_plan(&env.client, plan).await.unwrap();
    assert_eq!(names(&out[1].pruned), [format!("Role {ns}/{b_role}")]);
    let roles: Api<Role> = env.api();
    assert!(roles.get_opt(&b_role).await.unwrap().is_none());
    assert_eq!(
        cms.get(&b_extra).await.unwrap().data.unwrap()["v"],
        "replaced"
    );
    for kept in [&lookalike, &labelled, &a_cm, &b_cm] {
        assert!(cms.get_opt(kept).await.unwrap().is_some(), "{kept} is gone");
    }
    let recorded = install::installed(&env.client).await.unwrap();
    assert_eq!(recorded[&beta].version, "1.2.0");
    assert_eq!(recorded[&beta].kinds, ["v1/ConfigMap"]);

    forget(&env, &[&alpha, &beta]).await;
    env.cleanup().await;
}
