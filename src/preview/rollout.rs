//! Waiting for a preview's Deployments and StatefulSets to roll out; on a
//! timeout, an error that says why, from the pods' own states.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use super::render::Rendered;
use super::{PreviewError, Shared};

/// (ready, wanted) of a workload, and whether its rollout is done: the
/// controller saw the latest generation, and every replica is updated and
/// available (ready for a StatefulSet).
pub fn progress_of(o: &Value) -> (i64, i64, bool) {
    let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &o["status"];
    let n = |k: &str| st[k].as_i64().unwrap_or(0);
    let generation = o["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = n("observedGeneration") >= generation;
    let ready = match o["kind"].as_str() {
        Some("StatefulSet") => n("readyReplicas"),
        _ => n("availableReplicas"),
    };
    let done = observed && n("updatedReplicas") >= want && ready >= want && n("replicas") <= want;
    (ready, want, done)
}

/// One line per pod that is not ready, with the reason its containers or
/// its scheduling give.
pub fn pod_problems(pods: &[Pod]) -> Vec<String> {
    let mut out = Vec::new();
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let Some(st) = &p.status else {
            out.push(format!("{name}: no status yet"));
            continue;
        };
        let mut why = Vec::new();
        for c in st
            .init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten())
        {
            if c.ready {
                continue;
            }
            if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                why.push(format!(
                    "container {}: {}{}",
                    c.name,
                    w.reason.clone().unwrap_or_else(|| "waiting".into()),
                    w.message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ));
            } else if let Some(t) = c
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .or(c.last_state.as_ref().and_then(|s| s.terminated.as_ref()))
            {
                why.push(format!(
                    "container {}: {} (exit {}, {} restarts)",
                    c.name,
                    t.reason.clone().unwrap_or_else(|| "terminated".into()),
                    t.exit_code,
                    c.restart_count
                ));
            }
        }
        for c in st.conditions.iter().flatten() {
            if c.type_ == "PodScheduled" && c.status == "False" {
                why.push(format!(
                    "not scheduled: {}",
                    c.message.clone().or(c.reason.clone()).unwrap_or_default()
                ));
            }
        }
        let ready = st
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            if why.is_empty() {
                why.push(format!("phase {}", st.phase.clone().unwrap_or_default()));
            }
            out.push(format!("{name}: {}", why.join("; ")));
        }
    }
    out
}

/// Waits until every workload among `objects` has rolled out.
pub async fn wait(
    s: &Shared,
    ns: &str,
    objects: &[Rendered],
    timeout: Duration,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), PreviewError> {
    let workloads: Vec<&Rendered> = objects
        .iter()
        .filter(|r| matches!(r.resource.kind.as_str(), "Deployment" | "StatefulSet"))
        .collect();
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let mut pending = Vec::new();
        for w in &workloads {
            let name = w.object.metadata.name.clone().unwrap_or_default();
            let api = Api::<DynamicObject>::namespaced_with(s.client.clone(), ns, &w.resource);
            let o = api.get(&name).await.map_err(PreviewError::kube(format!(
                "reading {} {name}",
                w.resource.kind
            )))?;
            let (ready, want, done) = progress_of(&serde_json::to_value(&o).unwrap_or_default());
            if !done {
                pending.push(format!("{} {name} {ready}/{want}", w.resource.kind));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let line = format!("waiting for {}", pending.join(", "));
        if line != last {
            progress(&line);
            last = line;
        }
        if start.elapsed() >= timeout {
            let pods = Api::<Pod>::namespaced(s.client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            return Err(PreviewError::Rollout {
                namespace: ns.to_string(),
                after: timeout,
                pending,
                pods: pod_problems(&pods),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rollouts_are_done_only_when_the_latest_generation_is_available() {
        let d = |status: Value| json!({ "kind": "Deployment", "metadata": { "generation": 2 }, "spec": { "replicas": 2 }, "status": status });
        assert!(!progress_of(&d(json!({}))).2);
        assert!(!progress_of(&d(json!({ "observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2, "replicas": 2 }))).2);
        assert!(!progress_of(&d(json!({ "observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2, "replicas": 3 }))).2);
        assert_eq!(
            progress_of(&d(
                json!({ "observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2, "replicas": 2 })
            )),
            (2, 2, true)
        );
    }

    #[test]
    fn the_failing_pods_say_why() {
        let pods: Vec<Pod> = serde_json::from_value(json!([
            { "metadata": { "name": "web-1" }, "status": { "phase": "Pending",
              "conditions": [{ "type": "Ready", "status": "False" }],
              "containerStatuses": [{ "name": "web", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": { "waiting": { "reason": "ImagePullBackOff", "message": "pull access denied" } } }] } },
            { "metadata": { "name": "web-2" }, "status": { "phase": "Running",
              "conditions": [{ "type": "Ready", "status": "False" }],
              "containerStatuses": [{ "name": "web", "ready": false, "restartCount": 4, "image": "x", "imageID": "",
                "state": { "waiting": { "reason": "CrashLoopBackOff" } },
                "lastState": { "terminated": { "exitCode": 1, "reason": "Error" } } }] } },
            { "metadata": { "name": "web-3" }, "status": { "phase": "Pending",
              "conditions": [{ "type": "PodScheduled", "status": "False", "message": "0/3 nodes are available: insufficient cpu" }] } },
            { "metadata": { "name": "web-4" }, "status": { "phase": "Running",
              "conditions": [{ "type": "Ready", "status": "True" }] } },
        ]))
        .unwrap();
        let p = pod_problems(&pods);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(
            p[0],
            "web-1: container web: ImagePullBackOff (pull access denied)"
        );
        assert_eq!(p[1], "web-2: container web: CrashLoopBackOff");
        assert_eq!(
            p[2],
            "web-3: not scheduled: 0/3 nodes are available: insufficient cpu"
        );
    }
}
