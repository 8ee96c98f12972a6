//! The HTTP face of the test API server: routes Kubernetes REST paths to the
//! store, serialises Status errors, and streams watches as JSON lines.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Shared;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{ApiError, DeleteOpts, Event, EventType, Part};
use super::types::{ResourceType, TYPES};

/// Response body type.
pub type Body = BoxBody<Bytes, Infallible>;

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn error(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

enum Route {
    Version,
    Api,
    Apis,
    Resources(String, String),
    Collection(usize, Option<String>),
    Item(usize, String, String),
    Sub(usize, String, String, String),
}

fn route(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["api"] => return Ok(Route::Api),
        ["apis"] => return Ok(Route::Apis),
        ["api", v] => return Ok(Route::Resources(String::new(), v.to_string())),
        ["apis", g, v] => return Ok(Route::Resources(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route(path)),
    };
    let ty = |plural: &str| {
        ResourceType::index_of(group, version, plural).ok_or_else(|| ApiError::no_route(path))
    };
    let namespaced_plural =
        |p: &str| ResourceType::index_of(group, version, p).filter(|&i| TYPES[i].namespaced);
    match rest {
        ["namespaces", ns, plural] if namespaced_plural(plural).is_some() => {
            Ok(Route::Collection(ty(plural)?, Some(ns.to_string())))
        }
        ["namespaces", ns, plural, name] if namespaced_plural(plural).is_some() => {
            Ok(Route::Item(ty(plural)?, ns.to_string(), name.to_string()))
        }
        ["namespaces", ns, plural, name, sub] if namespaced_plural(plural).is_some() => {
            Ok(Route::Sub(
                ty(plural)?,
                ns.to_string(),
                name.to_string(),
                sub.to_string(),
            ))
        }
        [plural] => Ok(Route::Collection(ty(plural)?, None)),
        [plural, name] => {
            let t = ty(plural)?;
            if TYPES[t].namespaced {
                return Err(ApiError::no_route(path));
            }
            Ok(Route::Item(t, String::new(), name.to_string()))
        }
        [plural, name, sub] => {
            let t = ty(plural)?;
            if TYPES[t].namespaced {
                return Err(ApiError::no_route(path));
            }
            Ok(Route::Sub(
                t,
                String::new(),
                name.to_string(),
                sub.to_string(),
            ))
        }
        _ => Err(ApiError::no_route(path)),
    }
}

fn discovery_groups() -> Vec<(String, String)> {
    let mut gv: Vec<(String, String)> = Vec::new();
    for t in TYPES {
        let k = (t.group.to_string(), t.version.to_string());
        if !t.group.is_empty() && !gv.contains(&k) {
            gv.push(k);
        }
    }
    gv
}

/// kubectl's short names (`kubectl get ns`), as the real server lists them.
fn short_names(plural: &str) -> Vec<&'static str> {
    match plural {
        "namespaces" => vec!["ns"],
        "nodes" => vec!["no"],
        "pods" => vec!["po"],
        "services" => vec!["svc"],
        "configmaps" => vec!["cm"],
        "serviceaccounts" => vec!["sa"],
        "events" => vec!["ev"],
        "resourcequotas" => vec!["quota"],
        "limitranges" => vec!["limits"],
        "deployments" => vec!["deploy"],
        "replicasets" => vec!["rs"],
        "statefulsets" => vec!["sts"],
        "daemonsets" => vec!["ds"],
        "cronjobs" => vec!["cj"],
        "ingresses" => vec!["ing"],
        "poddisruptionbudgets" => vec!["pdb"],
        _ => vec![],
    }
}

fn resource_list(group: &str, version: &str) -> Option<Value> {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for t in TYPES
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        resources.push(json!({
            "name": t.plural, "singularName": t.kind.to_lowercase(), "namespaced": t.namespaced, "kind": t.kind,
            "shortNames": short_names(t.plural),
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }));
        for sub in t.subresources {
            let r = match *sub {
                "scale" => {
                    json!({ "name": format!("{}/scale", t.plural), "singularName": "", "namespaced": t.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"] })
                }
                "eviction" => {
                    json!({ "name": format!("{}/eviction", t.plural), "singularName": "", "namespaced": t.namespaced, "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"] })
                }
                _ => {
                    json!({ "name": format!("{}/{sub}", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"] })
                }
            };
            resources.push(r);
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(
        json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }),
    )
}

struct Query(HashMap<String, String>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

/// Handles one request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query_str = req.uri().query().unwrap_or_default().to_string();
    let user_agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    shared.record(method.as_str(), &path, &query_str, &user_agent);
    if let Some(component) = super::rbac::component_of(&user_agent)
        && let Some(a) = super::rbac::access(method.as_str(), &path, &query_str)
    {
        match super::rbac::POLICIES.check(component, &a) {
            Some(source) => super::rbac::used(component, &source),
            None => {
                let msg = format!(
                    "{component} may not {a}: no rule of its addon's Role or ClusterRole allows it (the test API server checks the components' RBAC)"
                );
                shared.violation(msg.clone());
                return Ok(error(&ApiError::new(403, "Forbidden", msg)));
            }
        }
    }
    let q = Query(
        form_urlencoded::parse(query_str.as_bytes())
            .into_owned()
            .collect(),
    );
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(error(&ApiError::bad_request(e.to_string()))),
    };
    Ok(
        match dispatch(&shared, &method, &path, &q, &content_type, &body).await {
            Ok(r) => r,
            Err(e) => error(&e),
        },
    )
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request was in an unknown format: {e}"
        ))
    })
}

fn selectors(q: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let l = LabelSelector::parse(q.get("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let f = FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    Ok((l, f))
}

async fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    q: &Query,
    ct: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    if path == "/debug/requests" {
        return Ok(json_response(200, &shared.request_counts()));
    }
    match route(path)? {
        Route::Version => Ok(json_response(
            200,
            &json!({
                "major": "1", "minor": "34", "gitVersion": "v1.34.0-clusterctl-testserver", "gitCommit": "", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "n/a", "compiler": "n/a", "platform": "linux/amd64",
            }),
        )),
        Route::Api => Ok(json_response(
            200,
            &json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string() }],
            }),
        )),
        Route::Apis => {
            let groups: Vec<Value> = discovery_groups()
                .into_iter()
                .map(|(g, v)| {
                    let gv = json!({ "groupVersion": format!("{g}/{v}"), "version": v });
                    json!({ "name": g, "versions": [gv.clone()], "preferredVersion": gv })
                })
                .collect();
            Ok(json_response(
                200,
                &json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }),
            ))
        }
        Route::Resources(g, v) => resource_list(&g, &v)
            .map(|r| json_response(200, &r))
            .ok_or_else(|| ApiError::no_route(path)),
        Route::Collection(ty, ns) => collection(shared, method, ty, ns, q, body).await,
        Route::Item(ty, ns, name) => {
            if *method == Method::DELETE
                && shared
                    .refuse_delete_names
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&name)
            {
                return Err(ApiError::new(
                    500,
                    "InternalError",
                    "deletes of this object are refused (test fault)",
                ));
            }
            if TYPES[ty].kind == "Lease" && (*method == Method::PUT || *method == Method::PATCH) {
                let refused = shared
                    .refuse_lease_holder
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if let Some(holder) = refused
                    && parse_json(body)
                        .ok()
                        .and_then(|b| b.pointer("/spec/holderIdentity").cloned())
                        == Some(Value::String(holder))
                {
                    return Err(ApiError::new(
                        500,
                        "InternalError",
                        "lease writes of this holder are refused (test fault)",
                    ));
                }
            }
            let mut store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
            match *method {
                Method::GET => store.get(ty, &ns, &name).map(|o| json_response(200, &o)),
                Method::PUT => store
                    .update(ty, &ns, &name, parse_json(body)?, Part::Main)
                    .map(|o| json_response(200, &o)),
                Method::PATCH => store
                    .patch(ty, &ns, &name, ct, body, Part::Main, q.get("fieldManager"))
                    .map(|o| json_response(200, &o)),
                Method::DELETE => {
                    let opts = delete_opts(q, &parse_json(body)?);
                    store
                        .delete(ty, &ns, &name, &opts)
                        .map(|o| json_response(200, &o))
                }
                _ => Err(ApiError::method(method.as_str())),
            }
        }
        Route::Sub(ty, ns, name, sub) => {
            let t = &TYPES[ty];
            if !t.has(&sub) {
                return Err(ApiError::no_route(path));
            }
            let mut store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
            match (sub.as_str(), method) {
                ("status", &Method::GET) => {
                    store.get(ty, &ns, &name).map(|o| json_response(200, &o))
                }
                ("status", &Method::PUT) => store
                    .update(ty, &ns, &name, parse_json(body)?, Part::Status)
                    .map(|o| json_response(200, &o)),
                ("status", &Method::PATCH) => store
                    .patch(
                        ty,
                        &ns,
                        &name,
                        ct,
                        body,
                        Part::Status,
                        q.get("fieldManager"),
                    )
                    .map(|o| json_response(200, &o)),
                ("scale", &Method::GET) => {
                    store.scale(ty, &ns, &name).map(|o| json_response(200, &o))
                }
                ("scale", &Method::PUT) => store
                    .set_scale(ty, &ns, &name, &parse_json(body)?)
                    .map(|o| json_response(200, &o)),
                ("scale", &Method::PATCH) => {
                    let mut scale = store.scale(ty, &ns, &name)?;
                    let ct = ct.split(';').next().unwrap_or_default().trim();
                    if ct == "application/json-patch+json" {
                        let p: json_patch::Patch = serde_json::from_slice(body)
                            .map_err(|e| ApiError::bad_request(e.to_string()))?;
                        json_patch::patch(&mut scale, &p)
                            .map_err(|e| ApiError::invalid(t, &name, e.to_string()))?;
                    } else {
                        json_patch::merge(&mut scale, &parse_json(body)?);
                    }
                    store
                        .set_scale(ty, &ns, &name, &scale)
                        .map(|o| json_response(200, &o))
                }
                ("eviction", &Method::POST) => store
                    .evict(&ns, &name, &parse_json(body)?)
                    .map(|o| json_response(201, &o)),
                _ => Err(ApiError::method(method.as_str())),
            }
        }
    }
}

fn delete_opts(q: &Query, body: &Value) -> DeleteOpts {
    DeleteOpts {
        propagation: body["propagationPolicy"]
            .as_str()
            .or(q.get("propagationPolicy"))
            .map(str::to_string),
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        grace_period: body["gracePeriodSeconds"]
            .as_i64()
            .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok())),
    }
}

async fn collection(
    shared: &Arc<Shared>,
    method: &Method,
    ty: usize,
    ns: Option<String>,
    q: &Query,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let t = &TYPES[ty];
    let ns = if t.namespaced { ns } else { None };
    match *method {
        Method::GET if q.flag("watch") => watch(shared, ty, ns, q),
        Method::GET => {
            let (l, f) = selectors(q)?;
            let limit = q
                .get("limit")
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|&n| n > 0);
            let store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
            let (items, cont) = store.list(ty, ns.as_deref(), &l, &f, limit, q.get("continue"))?;
            let mut meta = json!({ "resourceVersion": store.rv().to_string() });
            if let Some(c) = cont {
                meta["continue"] = c.into();
            }
            Ok(json_response(
                200,
                &json!({ "kind": format!("{}List", t.kind), "apiVersion": t.api_version(), "metadata": meta, "items": items }),
            ))
        }
        Method::POST => {
            let Some(ns) = ns.or_else(|| (!t.namespaced).then(String::new)) else {
                return Err(ApiError::no_route("create needs a namespace"));
            };
            let mut store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
            store
                .create(ty, &ns, parse_json(body)?)
                .map(|o| json_response(201, &o))
        }
        Method::DELETE => {
            let (l, f) = selectors(q)?;
            let opts = delete_opts(q, &parse_json(body)?);
            let mut store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
            let (items, _) = store.list(ty, ns.as_deref(), &l, &f, None, None)?;
            let mut deleted = Vec::new();
            for item in items {
                let name = item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let ins = item["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Ok(o) = store.delete(ty, &ins, &name, &opts) {
                    deleted.push(o);
                }
            }
            Ok(json_response(
                200,
                &json!({ "kind": format!("{}List", t.kind), "apiVersion": t.api_version(), "metadata": { "resourceVersion": store.rv().to_string() }, "items": deleted }),
            ))
        }
        _ => Err(ApiError::method(method.as_str())),
    }
}

/// What a selector watch should send for an event, if anything.
fn filtered(
    ev: &Event,
    ns: Option<&str>,
    l: &LabelSelector,
    f: &FieldSelector,
) -> Option<(&'static str, Value)> {
    if ns.is_some_and(|n| n != ev.ns) {
        return None;
    }
    let sel = |o: &Value| l.matches(o) && f.matches(o);
    let now = sel(&ev.obj);
    match ev.kind {
        EventType::Added => now.then(|| ("ADDED", ev.obj.clone())),
        EventType::Deleted => now.then(|| ("DELETED", ev.obj.clone())),
        EventType::Modified => match (ev.prev.as_ref().is_some_and(sel), now) {
            (true, true) => Some(("MODIFIED", ev.obj.clone())),
            (false, true) => Some(("ADDED", ev.obj.clone())),
            (true, false) => Some(("DELETED", ev.obj.clone())),
            (false, false) => None,
        },
    }
}

fn line(kind: &str, obj: &Value) -> Result<Frame<Bytes>, Infallible> {
    let mut v = serde_json::to_vec(&json!({ "type": kind, "object": obj })).unwrap_or_default();
    v.push(b'\n');
    Ok(Frame::data(Bytes::from(v)))
}

fn watch(
    shared: &Arc<Shared>,
    ty: usize,
    ns: Option<String>,
    q: &Query,
) -> Result<Response<Body>, ApiError> {
    let (l, f) = selectors(q)?;
    let t = TYPES[ty];
    let bookmarks = q.flag("allowWatchBookmarks");
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1800)
            .min(3600),
    );
    let initial_events_end = q.flag("sendInitialEvents");
    let start_rv: Option<u64> = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0 && !initial_events_end);
    let bookmark_every = shared.bookmark_interval;

    let (tx, rx_body) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1024);
    let (mut rx, first, mut seen) = {
        let store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
        let rx = store.tx.subscribe();
        let mut first: Vec<Result<Frame<Bytes>, Infallible>> = Vec::new();
        match start_rv {
            Some(rv) => match store.events_since(rv, ty) {
                Ok(evs) => {
                    for ev in evs {
                        if let Some((k, o)) = filtered(&ev, ns.as_deref(), &l, &f) {
                            first.push(line(k, &o));
                        }
                    }
                }
                Err(e) => first.push(line("ERROR", &e.status())),
            },
            None => {
                let (items, _) = store.list(ty, ns.as_deref(), &l, &f, None, None)?;
                for o in items {
                    first.push(line("ADDED", &o));
                }
                if initial_events_end {
                    first.push(line("BOOKMARK", &json!({
                        "kind": t.kind, "apiVersion": t.api_version(),
                        "metadata": { "resourceVersion": store.rv().to_string(), "annotations": { "k8s.io/initial-events-end": "true" } },
                    })));
                }
            }
        }
        (rx, first, store.rv())
    };
    tokio::spawn(async move {
        for frame in first {
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(bookmark_every);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= seen { continue; }
                        seen = ev.rv;
                        if ev.ty != ty { continue; }
                        if let Some((k, o)) = filtered(&ev, ns.as_deref(), &l, &f)
                            && tx.send(line(k, &o)).await.is_err() { return; }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(line("ERROR", &ApiError::expired("watch fell behind; resume from a newer resourceVersion").status())).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    // Deliver everything already committed, then promise it.
                    loop {
                        match rx.try_recv() {
                            Ok(ev) => {
                                if ev.rv <= seen { continue; }
                                seen = ev.rv;
                                if ev.ty != ty { continue; }
                                if let Some((k, o)) = filtered(&ev, ns.as_deref(), &l, &f)
                                    && tx.send(line(k, &o)).await.is_err() { return; }
                            }
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(_) => return,
                        }
                    }
                    let bm = json!({ "kind": t.kind, "apiVersion": t.api_version(), "metadata": { "resourceVersion": seen.to_string() } });
                    if tx.send(line("BOOKMARK", &bm)).await.is_err() { return; }
                }
                _ = &mut deadline => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx_body, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed())
        .map_err(|e| ApiError::bad_request(e.to_string()))
}
