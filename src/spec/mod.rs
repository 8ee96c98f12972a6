//! The cluster spec: reading the multi-document YAML, reporting every problem
//! at once with file, line, column and field path, filling in defaults, and
//! the typed result the model is built from.

mod addon_checks;
pub mod defaults;
pub mod location;
mod networks;
pub mod types;
pub mod validate;
pub mod values;

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_norway::Value;

pub use location::Pos;
use location::{DocIndex, join_key};
pub use types::*;

/// One thing wrong with a spec.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The file, as the user named it.
    pub file: String,
    /// Line of the offending field (1-based).
    pub line: usize,
    /// Column of the offending field (1-based).
    pub column: usize,
    /// The object, `Cluster/<name>` or `InstanceGroup/<name>` (or
    /// `document <n>` before its name is known).
    pub object: String,
    /// Field path inside the object, e.g. `spec.subnets[2].cidr`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        write!(
            f,
            "{}:{}:{}: {} {}: {}\n    help: {}",
            self.file, self.line, self.column, self.object, path, self.message, self.help
        )
    }
}

/// Errors of the spec boundary.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read spec file {path}: {}", crate::io_reason(source))]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The spec has one or more problems; all of them are listed.
    #[error("{} in {file}", plural(problems.len()))]
    Invalid {
        /// The file.
        file: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 problem".to_string()
    } else {
        format!("{n} problems")
    }
}

/// A parsed, defaulted and validated spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The file it came from.
    pub file: String,
    /// The user's text, unchanged (stored as `config` in the state store).
    pub source: String,
    /// The Cluster document as written, without defaults (the state
    /// store's `config`; instance groups are stored one object each).
    pub user_cluster: String,
    /// The fully defaulted cluster.
    pub cluster: Cluster,
    /// The fully defaulted instance groups, in file order.
    pub groups: Vec<InstanceGroup>,
}

impl Spec {
    /// Reads, defaults and validates a spec file.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Spec::parse(&text, &path.display().to_string())
    }

    /// Parses, defaults and validates spec text; `file` is used in messages.
    pub fn parse(text: &str, file: &str) -> Result<Spec, SpecError> {
        let mut r = Reader {
            file: file.to_string(),
            incomplete: false,
            problems: Vec::new(),
            user_cluster: String::new(),
        };
        let parsed = r.read(text);
        match parsed {
            Some((mut cluster, cluster_doc, mut groups)) => {
                let mut gs: Vec<InstanceGroup> = groups.iter().map(|g| g.0.clone()).collect();
                defaults::apply(&mut cluster, &mut gs);
                for (g, d) in groups.iter_mut().zip(gs) {
                    g.0 = d;
                }
                validate::validate(&mut r, (&cluster, &cluster_doc), &groups);
                if r.problems.is_empty() {
                    return Ok(Spec {
                        file: file.to_string(),
                        source: text.to_string(),
                        user_cluster: std::mem::take(&mut r.user_cluster),
                        cluster,
                        groups: groups.into_iter().map(|g| g.0).collect(),
                    });
                }
            }
            None if r.problems.is_empty() => {
                r.problems.push(r.problem(
                    &DocRef::file(),
                    "",
                    "no Cluster document",
                    "add a document with `kind: Cluster`",
                ));
            }
            None => {}
        }
        r.problems
            .sort_by(|a, b| (a.line, a.column, &a.path).cmp(&(b.line, b.column, &b.path)));
        r.problems.dedup();
        Err(SpecError::Invalid {
            file: file.to_string(),
            problems: r.problems,
        })
    }

    /// The defaulted spec as YAML documents (what `validate -o yaml` prints
    /// and `cluster-completed.spec` holds).
    pub fn completed_yaml(&self) -> String {
        let mut out = to_yaml(&self.cluster);
        for g in &self.groups {
            out.push_str("---\n");
            out.push_str(&to_yaml(g));
        }
        out
    }

    /// The defaulted Cluster alone (the state store's
    /// `cluster-completed.spec`, as kops keeps it).
    pub fn completed_cluster_yaml(&self) -> String {
        to_yaml(&self.cluster)
    }

    /// The defaulted spec as one JSON value: `{cluster, instanceGroups}`.
    pub fn completed_json(&self) -> serde_json::Value {
        serde_json::json!({ "cluster": self.cluster, "instanceGroups": self.groups })
    }

    /// A problem found after validation (by the direct target, against
    /// what AWS offers), placed at `path` of the `kind`/`name` document.
    pub fn problem_in(
        &self,
        kind: &str,
        name: &str,
        path: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Problem {
        let indexes = location::index_documents(&self.source).unwrap_or_default();
        let position = serde_norway::Deserializer::from_str(&self.source)
            .map(|d| Value::deserialize(d).unwrap_or(Value::Null))
            .position(|v| {
                v["kind"].as_str() == Some(kind) && v["metadata"]["name"].as_str() == Some(name)
            });
        let doc = DocRef {
            index: position
                .and_then(|n| indexes.get(n).cloned())
                .unwrap_or_default(),
            object: format!("{kind}/{name}"),
        };
        Reader {
            file: self.file.clone(),
            incomplete: false,
            problems: Vec::new(),
            user_cluster: String::new(),
        }
        .problem(&doc, path, message, help)
    }

    /// The instance groups with the given role.
    pub fn groups_with_role(&self, role: Role) -> impl Iterator<Item = &InstanceGroup> {
        self.groups.iter().filter(move |g| g.spec.role == role)
    }
}

/// Serialises one document as YAML. The spec types serialise infallibly.
pub fn to_yaml<T: Serialize>(v: &T) -> String {
    serde_norway::to_string(v).unwrap_or_else(|e| format!("# cannot serialise: {e}\n"))
}

/// Where a document is: its index and how to name it in messages.
#[derive(Debug, Clone, Default)]
pub struct DocRef {
    /// Path → position.
    pub index: DocIndex,
    /// `Cluster/<name>`, `InstanceGroup/<name>` or `document <n>`.
    pub object: String,
}

impl DocRef {
    fn file() -> DocRef {
        DocRef {
            index: DocIndex::default(),
            object: "file".to_string(),
        }
    }
}

/// Collects problems while reading and validating one file.
pub struct Reader {
    file: String,
    /// Some instance group could not be read, so checks across groups
    /// (control-plane count) would mislead and are skipped.
    pub incomplete: bool,
    /// Problems so far.
    pub problems: Vec<Problem>,
    /// The Cluster document as the user wrote it (re-serialised).
    user_cluster: String,
}

impl Reader {
    /// Builds a problem located at `path` in `doc`.
    pub fn problem(
        &self,
        doc: &DocRef,
        path: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Problem {
        let mut pos = doc.index.lookup(path);
        if pos.line == 0 {
            pos = Pos { line: 1, column: 1 };
        }
        Problem {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            object: doc.object.clone(),
            path: path.to_string(),
            message: message.into(),
            help: help.into(),
        }
    }

    /// Records a problem.
    pub fn report(
        &mut self,
        doc: &DocRef,
        path: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let p = self.problem(doc, path, message, help);
        self.problems.push(p);
    }

    fn at(&mut self, pos: Pos, message: String, help: &str) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: pos.line.max(1),
            column: pos.column.max(1),
            object: "file".to_string(),
            path: String::new(),
            message,
            help: help.to_string(),
        });
    }

    #[allow(clippy::type_complexity)]
    fn read(&mut self, text: &str) -> Option<(Cluster, DocRef, Vec<(InstanceGroup, DocRef)>)> {
        if text.trim().is_empty() {
            self.at(Pos { line: 1, column: 1 }, "the spec is empty".into(),
                "write a `kind: Cluster` document and at least one `kind: InstanceGroup` document, separated by `---` (see examples/dev.yaml)");
            return None;
        }
        let indexes = match location::index_documents(text) {
            Ok(i) => i,
            Err(e) => {
                self.at(
                    e.pos,
                    format!("not valid YAML: {}", e.message),
                    "fix the YAML syntax at this position",
                );
                return None;
            }
        };
        let mut values = Vec::new();
        for doc in serde_norway::Deserializer::from_str(text) {
            match Value::deserialize(doc) {
                Ok(v) => values.push(v),
                Err(e) => {
                    let pos = e
                        .location()
                        .map(|l| Pos {
                            line: l.line(),
                            column: l.column(),
                        })
                        .unwrap_or_default();
                    self.at(
                        pos,
                        format!("not valid YAML: {e}"),
                        "fix the YAML syntax at this position",
                    );
                    return None;
                }
            }
        }
        let mut cluster: Option<(Cluster, DocRef)> = None;
        let mut clusters_seen = 0;
        let mut groups = Vec::new();
        let mut docs_seen = 0;
        for (n, value) in values.into_iter().enumerate() {
            if value.is_null() {
                continue;
            }
            docs_seen += 1;
            let mut doc = DocRef {
                index: indexes.get(n).cloned().unwrap_or_default(),
                object: format!("document {}", n + 1),
            };
            let Some(map) = value.as_mapping() else {
                self.report(
                    &doc,
                    "",
                    "a document must be a mapping with apiVersion, kind, metadata and spec",
                    "start the document with `apiVersion: clusterctl.io/v1alpha1` and a `kind:`",
                );
                continue;
            };
            let get = |k: &str| map.get(Value::String(k.to_string()));
            if let Some(name) = get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
            {
                let kind = get("kind").and_then(Value::as_str).unwrap_or("object");
                doc.object = format!("{kind}/{name}");
            }
            match get("apiVersion") {
                None => {
                    self.report(
                        &doc,
                        "",
                        "missing field `apiVersion`",
                        format!("add `apiVersion: {API_VERSION}`"),
                    );
                    continue;
                }
                Some(Value::String(v)) if v == API_VERSION => {}
                Some(v) => {
                    self.report(
                        &doc,
                        "apiVersion",
                        format!("unsupported apiVersion {}", scalar(v)),
                        format!("this clusterctl reads `apiVersion: {API_VERSION}`"),
                    );
                    continue;
                }
            }
            match get("kind").and_then(Value::as_str) {
                Some("Cluster") => {
                    clusters_seen += 1;
                    if clusters_seen > 1 {
                        self.report(&doc, "kind", "a second Cluster document", "a spec holds exactly one Cluster; move the other cluster to its own file");
                        continue;
                    }
                    self.user_cluster = to_yaml(&value);
                    if let Some(c) = self.typed::<Cluster>(&doc, value) {
                        cluster = Some((c, doc));
                    }
                }
                Some("InstanceGroup") => match self.typed::<InstanceGroup>(&doc, value) {
                    Some(g) => groups.push((g, doc)),
                    None => self.incomplete = true,
                },
                None if get("kind").is_none() => self.report(
                    &doc,
                    "",
                    "missing field `kind`",
                    "add `kind: Cluster` or `kind: InstanceGroup`",
                ),
                _ => self.report(
                    &doc,
                    "kind",
                    format!(
                        "unknown kind {}",
                        get("kind").map(scalar).unwrap_or_default()
                    ),
                    "use `kind: Cluster` or `kind: InstanceGroup`",
                ),
            }
        }
        if docs_seen == 0 {
            self.at(
                Pos { line: 1, column: 1 },
                "the spec has no documents".into(),
                "write a `kind: Cluster` document and at least one `kind: InstanceGroup` document",
            );
            return None;
        }
        let (c, cdoc) = cluster?;
        if groups.is_empty() && self.problems.is_empty() {
            self.report(&cdoc, "", "no InstanceGroup documents", "add at least one `kind: InstanceGroup` document after `---` (see examples/dev.yaml)");
        }
        Some((c, cdoc, groups))
    }

    /// Deserialises a document into `T`, reporting every unknown field, bad
    /// type and missing field: each error is recorded, the offending key is
    /// removed, and deserialisation is tried again.
    fn typed<T: serde::de::DeserializeOwned>(
        &mut self,
        doc: &DocRef,
        mut value: Value,
    ) -> Option<T> {
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(t) => return Some(t),
                Err(e) => {
                    let segments: Vec<serde_path_to_error::Segment> =
                        e.path().iter().cloned().collect();
                    let mut path = e.path().to_string();
                    if path == "." {
                        path.clear();
                    }
                    let msg = e.inner().to_string();
                    let (path, prunable) = if let Some(field) = backticked(&msg, "unknown field `")
                    {
                        let full = if path.ends_with(&field) {
                            path
                        } else {
                            join_key(&path, &field)
                        };
                        (full, Some(field))
                    } else if let Some(field) = backticked(&msg, "missing field `") {
                        (join_key(&path, &field), None)
                    } else {
                        (path, None)
                    };
                    let help = help_for(&msg);
                    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                    let already = self
                        .problems
                        .iter()
                        .any(|p| p.object == doc.object && p.path == path);
                    if !(already && msg.starts_with("missing field")) {
                        self.report(doc, &path, msg.clone(), help);
                    }
                    let removed = match prunable {
                        Some(field) => remove_key(&mut value, &segments, &field),
                        None if !msg.starts_with("missing field") => {
                            remove_last(&mut value, &segments)
                        }
                        None => false,
                    };
                    if !removed {
                        return None;
                    }
                }
            }
        }
        None
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{}`", to_yaml(other).trim()),
    }
}

fn backticked(msg: &str, prefix: &str) -> Option<String> {
    let rest = msg.strip_prefix(prefix)?;
    Some(rest.split('`').next()?.to_string())
}

fn help_for(msg: &str) -> String {
    if msg.starts_with("unknown field") {
        "remove the field or fix its spelling; field names are camelCase as in kops (run `clusterctl validate -o yaml` on examples/dev.yaml to see every field)".into()
    } else if msg.starts_with("missing field") {
        "add this required field".into()
    } else if msg.starts_with("unknown variant") {
        "use one of the listed values (they are case-sensitive)".into()
    } else if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        "give the field a value of the expected type".into()
    } else {
        "fix the value of this field".into()
    }
}

fn navigate<'a>(
    value: &'a mut Value,
    segments: &[serde_path_to_error::Segment],
) -> Option<&'a mut Value> {
    use serde_path_to_error::Segment;
    let mut cur = value;
    for s in segments {
        cur = match s {
            Segment::Map { key } => cur.as_mapping_mut()?.get_mut(Value::String(key.clone()))?,
            Segment::Seq { index } => cur.as_sequence_mut()?.get_mut(*index)?,
            Segment::Enum { .. } | Segment::Unknown => return None,
        };
    }
    Some(cur)
}

fn remove_key(value: &mut Value, segments: &[serde_path_to_error::Segment], key: &str) -> bool {
    use serde_path_to_error::Segment;
    let segments = match segments.split_last() {
        Some((Segment::Map { key: last }, parent)) if last == key => parent,
        _ => segments,
    };
    navigate(value, segments)
        .and_then(Value::as_mapping_mut)
        .and_then(|m| m.remove(Value::String(key.to_string())))
        .is_some()
}

/// Removes the value at a map path so that deserialisation can go on; gives
/// up on sequence elements (removing one would renumber its siblings).
fn remove_last(value: &mut Value, segments: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    match segments.split_last() {
        Some((Segment::Map { key }, parent)) => remove_key(value, parent, key),
        _ => false,
    }
}
