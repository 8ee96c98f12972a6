//! The state of the test API server and the semantics of every verb:
//! resourceVersions, conflicts, finalizers, cascading deletion, namespace
//! termination, eviction against PodDisruptionBudgets, and the scale
//! subresource. The HTTP layer (`http.rs`) only parses and serialises.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::selectors::{FieldSelector, LabelSelector};
use super::types::{ResourceType, TYPES};

mod error;
mod gc;
mod subresources;

pub use error::ApiError;

/// How many watch events are kept for resuming watches; older resume points get 410 Gone.
pub const HISTORY: usize = 200_000;

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// ADDED
    Added,
    /// MODIFIED
    Modified,
    /// DELETED
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as recorded for watches.
#[derive(Debug)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Index into TYPES.
    pub ty: usize,
    /// Namespace ("" for cluster-scoped).
    pub ns: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for DELETED: its last state).
    pub obj: Value,
    /// The object before the change, so selector watches can turn a change
    /// that leaves the selection into DELETED and one that enters it into ADDED.
    pub prev: Option<Value>,
}

type Key = (usize, String, String);

/// Delete options.
#[derive(Debug, Default, Clone)]
pub struct DeleteOpts {
    /// Background, Foreground or Orphan.
    pub propagation: Option<String>,
    /// Precondition on uid.
    pub uid: Option<String>,
    /// Precondition on resourceVersion.
    pub resource_version: Option<String>,
    /// `gracePeriodSeconds` (Pods).
    pub grace_period: Option<i64>,
}

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object (status is kept when the type has a status subresource).
    Main,
    /// The status subresource (only status changes).
    Status,
}

/// The server state.
pub struct Store {
    rv: u64,
    uid_counter: u64,
    objects: BTreeMap<Key, Value>,
    uids: HashMap<String, Key>,
    history: VecDeque<Arc<Event>>,
    /// Resume points at or below this have been compacted away.
    pub compacted: u64,
    /// Live events.
    pub tx: broadcast::Sender<Arc<Event>>,
    /// The collector is running (deletions it makes do not re-enter it).
    in_gc: bool,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Default for Store {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Store {
            rv: 0,
            uid_counter: 0,
            objects: BTreeMap::new(),
            uids: HashMap::new(),
            history: VecDeque::new(),
            compacted: 0,
            tx,
            in_gc: false,
        }
    }
}

impl Store {
    /// The latest resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn emit(&mut self, ty: usize, ns: &str, kind: EventType, obj: Value, prev: Option<Value>) {
        let rv = self.rv;
        let ev = Arc::new(Event {
            rv,
            ty,
            ns: ns.to_string(),
            kind,
            obj,
            prev,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        let _ = self.tx.send(ev);
    }

    /// Events after `rv` of one type, or 410 when they were compacted.
    pub fn events_since(&self, rv: u64, ty: usize) -> Result<Vec<Arc<Event>>, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::expired(format!(
                "too old resource version: {rv} ({})",
                self.compacted + 1
            )));
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Ok(self
            .history
            .iter()
            .skip(start)
            .filter(|e| e.ty == ty)
            .cloned()
            .collect())
    }

    fn key(ty: usize, ns: &str, name: &str) -> Key {
        (
            ty,
            if TYPES[ty].namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        )
    }

    /// The object, if any.
    pub fn get(&self, ty: usize, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(ty, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&TYPES[ty], name))
    }

    fn namespace_ns() -> usize {
        ResourceType::index_of("", "v1", "namespaces").unwrap_or(0)
    }

    /// Inserts a new object: names, uid, timestamps, resourceVersion.
    pub fn create(&mut self, ty: usize, ns: &str, obj: Value) -> Result<Value, ApiError> {
        self.insert(ty, ns, obj, false)
    }

    /// Create; `keep_status` keeps a given status (seeding), where the real
    /// server resets the status of types with a status subresource.
    fn insert(
        &mut self,
        ty: usize,
        ns: &str,
        mut obj: Value,
        keep_status: bool,
    ) -> Result<Value, ApiError> {
        let t = &TYPES[ty];
        if !keep_status
            && t.has("status")
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was in an unknown format",
            ));
        }
        if obj.get("metadata").is_none_or(|m| !m.is_object()) {
            obj["metadata"] = json!({});
        }
        let body_ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
        if t.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let mut name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if name.is_empty() {
            match meta_str(&obj, "generateName") {
                Some(prefix) if !prefix.is_empty() => {
                    self.uid_counter += 1;
                    name = format!(
                        "{prefix}{:05x}",
                        (self.uid_counter * 2_654_435_761) % 0xfffff
                    );
                }
                _ => {
                    return Err(ApiError::invalid(
                        t,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            }
        }
        if !valid_name(t, &name) {
            return Err(ApiError::invalid(
                t,
                &name,
                format!(
                    "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
                ),
            ));
        }
        if t.namespaced {
            match self
                .objects
                .get(&(Self::namespace_ns(), String::new(), ns.to_string()))
            {
                None => return Err(ApiError::not_found(&TYPES[Self::namespace_ns()], ns)),
                Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                    return Err(ApiError::new(
                        403,
                        "Forbidden",
                        format!(
                            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                            t.qualified()
                        ),
                    ));
                }
                _ => {}
            }
        }
        let key = Self::key(ty, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", t.qualified()),
            )
            .with(t, &name));
        }
        let rv = self.next_rv();
        self.uid_counter += 1;
        let uid = format!(
            "{:08x}-{:04x}-4{:03x}-8000-{:012x}",
            rv as u32,
            (self.uid_counter >> 16) & 0xffff,
            self.uid_counter & 0xfff,
            self.uid_counter
        );
        obj["apiVersion"] = t.api_version().into();
        obj["kind"] = t.kind.into();
        let m = &mut obj["metadata"];
        m["name"] = name.clone().into();
        if t.namespaced {
            m["namespace"] = ns.into();
        } else if let Some(o) = m.as_object_mut() {
            o.remove("namespace");
        }
        m["uid"] = uid.clone().into();
        m["resourceVersion"] = rv.to_string().into();
        m["creationTimestamp"] = now().into();
        m["generation"] = 1.into();
        if let Some(o) = m.as_object_mut() {
            o.remove("deletionTimestamp");
        }
        defaults(t, &mut obj);
        self.objects.insert(key.clone(), obj.clone());
        self.uids.insert(uid, key);
        self.emit(ty, ns, EventType::Added, obj.clone(), None);
        if t.kind == "Namespace" {
            self.publish_root_ca(meta_str(&obj, "name").unwrap_or_default());
        }
        if !owner_uids(&obj).is_empty() {
            self.gc();
        }
        Ok(obj)
    }

    /// What kube-controller-manager's root-CA publisher does in every new
    /// namespace: a `kube-root-ca.crt` ConfigMap (tests must not assume a
    /// new namespace is empty).
    fn publish_root_ca(&mut self, ns: &str) {
        let Some(cm) = ResourceType::index_of("", "v1", "configmaps") else {
            return;
        };
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "kube-root-ca.crt", "namespace": ns },
            "data": { "ca.crt": "-----BEGIN CERTIFICATE-----\n(test API server: plain HTTP)\n-----END CERTIFICATE-----\n" },
        });
        let _ = self.insert(cm, ns, obj, false);
    }

    /// Replaces an object (PUT), with optimistic concurrency.
    pub fn update(
        &mut self,
        ty: usize,
        ns: &str,
        name: &str,
        mut obj: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let t = &TYPES[ty];
        let key = Self::key(ty, ns, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(t, name));
        };
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was in an unknown format",
            ));
        }
        if let Some(body_name) = meta_str(&obj, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(rv) = meta_str(&obj, "resourceVersion")
            && !rv.is_empty()
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(t, name));
        }
        let mut new = old.clone();
        match part {
            Part::Status => {
                new["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
            }
            Part::Main => {
                if t.has("status") {
                    obj["status"] = old.get("status").cloned().unwrap_or(Value::Null);
                    if obj["status"].is_null()
                        && let Some(o) = obj.as_object_mut()
                    {
                        o.remove("status");
                    }
                }
                let mut meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
                keep_server_fields(&old["metadata"], &mut meta);
                obj["metadata"] = meta;
                obj["apiVersion"] = t.api_version().into();
                obj["kind"] = t.kind.into();
                new = obj;
            }
        }
        Ok(self.commit(ty, ns, key, old, new))
    }

    /// Stores a changed object: bumps resourceVersion (and generation when
    /// the spec changed), emits MODIFIED, and finishes deletions whose
    /// finalizers are gone.
    fn commit(&mut self, ty: usize, ns: &str, key: Key, old: Value, mut new: Value) -> Value {
        write_only_fields(&TYPES[ty], &mut new);
        if new == old {
            return old;
        }
        let rv = self.next_rv();
        new["metadata"]["resourceVersion"] = rv.to_string().into();
        if new.get("spec") != old.get("spec") {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            new["metadata"]["generation"] = (g + 1).into();
        }
        self.objects.insert(key, new.clone());
        self.emit(ty, ns, EventType::Modified, new.clone(), Some(old));
        if new.pointer("/metadata/deletionTimestamp").is_some() {
            self.gc();
        }
        new
    }

    /// Applies a patch of the given content type.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        ty: usize,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &[u8],
        part: Part,
        field_manager: Option<&str>,
    ) -> Result<Value, ApiError> {
        let t = &TYPES[ty];
        let key = Self::key(ty, ns, name);
        let existing = self.objects.get(&key).cloned();
        let ct = content_type.split(';').next().unwrap_or_default().trim();
        if ct == "application/apply-patch+yaml" {
            let Some(manager) = field_manager else {
                return Err(ApiError::bad_request(
                    "PATCH with apply requires a fieldManager query parameter",
                ));
            };
            let applied: Value = serde_norway::from_slice::<serde_norway::Value>(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
                .and_then(|v| {
                    serde_json::to_value(v).map_err(|e| ApiError::bad_request(e.to_string()))
                })?;
            return match existing {
                // Server-side apply, approximated: create when absent, else a
                // JSON merge of the applied configuration (no field ownership).
                // Field ownership is not tracked, but the managers are: an
                // entry per applying manager in metadata.managedFields, as
                // owners are checked by (prune relies on it).
                None => {
                    let mut obj = applied;
                    obj["metadata"]["name"] = name.into();
                    obj["metadata"]["managedFields"] = json!([]);
                    add_apply_manager(t, &mut obj, manager);
                    self.create(ty, ns, obj)
                }
                Some(old) => {
                    let mut merged = old.clone();
                    json_patch::merge(&mut merged, &applied);
                    merged["metadata"]["managedFields"] = old
                        .pointer("/metadata/managedFields")
                        .cloned()
                        .unwrap_or_else(|| json!([]));
                    add_apply_manager(t, &mut merged, manager);
                    self.write_patched(ty, ns, name, key, old, merged, part)
                }
            };
        }
        let old = existing.ok_or_else(|| ApiError::not_found(t, name))?;
        let mut patched = old.clone();
        match ct {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                // Strategic merge is approximated by a JSON merge patch.
                let p: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                json_patch::merge(&mut patched, &p);
            }
            "application/json-patch+json" => {
                let p: json_patch::Patch = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                json_patch::patch(&mut patched, &p)
                    .map_err(|e| ApiError::invalid(t, name, e.to_string()))?;
            }
            other => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other})"
                    ),
                ));
            }
        }
        self.write_patched(ty, ns, name, key, old, patched, part)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_patched(
        &mut self,
        ty: usize,
        ns: &str,
        name: &str,
        key: Key,
        old: Value,
        mut patched: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let t = &TYPES[ty];
        let want_rv = meta_str(&patched, "resourceVersion").map(str::to_string);
        if want_rv.is_some() && want_rv.as_deref() != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(t, name));
        }
        keep_server_fields(&old["metadata"], &mut patched["metadata"]);
        let new = match part {
            Part::Status => {
                let mut n = old.clone();
                n["status"] = patched.get("status").cloned().unwrap_or(Value::Null);
                n
            }
            Part::Main if t.has("status") => {
                let mut n = patched;
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(o) = n.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                n
            }
            Part::Main => patched,
        };
        Ok(self.commit(ty, ns, key, old, new))
    }

    /// Lists objects, filtered and paginated. Returns (items, continue).
    #[allow(clippy::too_many_arguments)]
    pub fn list(
        &self,
        ty: usize,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        cont: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), ApiError> {
        let start: Bound<Key> = match cont {
            Some(token) if !token.is_empty() => {
                let raw = hex::decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
                let (cns, cname) = raw
                    .split_once('\u{0}')
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
                Bound::Excluded((ty, cns.to_string(), cname.to_string()))
            }
            _ => match ns {
                Some(n) => Bound::Included((ty, n.to_string(), String::new())),
                None => Bound::Included((ty, String::new(), String::new())),
            },
        };
        let end: Bound<Key> = Bound::Excluded((ty + 1, String::new(), String::new()));
        let mut items = Vec::new();
        let mut last: Option<&Key> = None;
        let mut more = false;
        for (k, v) in self.objects.range((start, end)) {
            if let Some(n) = ns
                && k.1 != n
            {
                if k.1.as_str() > n {
                    break;
                }
                continue;
            }
            if !labels.matches(v) || !fields.matches(v) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                break;
            }
            items.push(v.clone());
            last = Some(k);
        }
        let token = if more {
            last.map(|k| hex::encode(format!("{}\u{0}{}", k.1, k.2)))
        } else {
            None
        };
        Ok((items, token))
    }

    /// Inserts objects directly (test seeding): like create, without HTTP.
    pub fn seed(&mut self, obj: Value) -> Result<Value, ApiError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let ty = ResourceType::index_of_kind(&api_version, &kind)
            .ok_or_else(|| ApiError::bad_request(format!("unknown kind {api_version}/{kind}")))?;
        let ns = meta_str(&obj, "namespace")
            .unwrap_or(if TYPES[ty].namespaced { "default" } else { "" })
            .to_string();
        self.insert(ty, &ns, obj, true)
    }
}

/// Metadata the server owns: a client write cannot change it.
const SERVER_FIELDS: &[&str] = &[
    "uid",
    "creationTimestamp",
    "namespace",
    "name",
    "generation",
    "deletionTimestamp",
];

/// Copies the server-owned metadata of `old` over `new` (removing what `old` lacks).
/// Adds `manager` as an Apply manager of `obj` unless it is one already
/// (a no-op apply leaves managedFields, and so the object, unchanged).
fn add_apply_manager(t: &ResourceType, obj: &mut Value, manager: &str) {
    let list = obj["metadata"]["managedFields"]
        .as_array_mut()
        .expect("managedFields was set to an array");
    if !list
        .iter()
        .any(|e| e["manager"] == manager && e["operation"] == "Apply")
    {
        list.push(json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": t.api_version(),
            "time": now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": {},
        }));
    }
}

fn keep_server_fields(old: &Value, new: &mut Value) {
    for f in SERVER_FIELDS {
        match old.get(*f) {
            Some(v) => new[*f] = v.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove(*f);
                }
            }
        }
    }
}

/// The real server's name rules: RBAC objects need only be path segments
/// (`system:coredns`), everything served here else a DNS-1123 subdomain.
/// A Pod on a node in its graceful termination period.
fn terminating_on_node(o: &Value) -> bool {
    o["kind"] == "Pod"
        && o.pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
        && o.pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_some_and(|g| g > 0)
}

fn valid_name(t: &ResourceType, n: &str) -> bool {
    if t.group == "rbac.authorization.k8s.io" {
        return !n.is_empty() && n != "." && n != ".." && !n.contains(['/', '%']);
    }
    !n.is_empty()
        && n.len() <= 253
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn is_healthy(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_none()
        && pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
}

fn int_or_percent(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let x = p * total;
            if round_up { (x + 99) / 100 } else { x / 100 }
        }
        _ => 0,
    }
}

/// Defaults the real server (or its controllers) would set at once.
/// Fields the real server folds into others on every write: a Secret's
/// `stringData` is merged into `data` (base64), and never stored.
fn write_only_fields(t: &ResourceType, obj: &mut Value) {
    use base64::Engine as _;
    if t.kind != "Secret" {
        return;
    }
    let Some(Value::Object(plain)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in plain {
        let text = v.as_str().unwrap_or_default().to_string();
        obj["data"][k] = base64::engine::general_purpose::STANDARD
            .encode(text)
            .into();
    }
}

fn defaults(t: &ResourceType, obj: &mut Value) {
    write_only_fields(t, obj);
    match t.kind {
        "Namespace" => {
            obj["status"] = json!({ "phase": "Active" });
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"] = json!({ "finalizers": ["kubernetes"] });
            }
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
        }
        "Pod" if obj.pointer("/status/phase").is_none() => {
            obj["status"] = json!({ "phase": "Pending" });
        }
        "Deployment" | "StatefulSet" | "ReplicaSet" if obj.pointer("/spec/replicas").is_none() => {
            obj["spec"]["replicas"] = 1.into();
        }
        _ => {}
    }
}
