//! Source locations for YAML documents: maps a field path such as
//! `spec.subnets[2].cidr` to the line and column where it appears.
//!
//! serde deserialisers lose positions, so the raw text is parsed a second time
//! with `yaml-rust2`'s event parser, which reports a marker for every node.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Self {
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// Path → position for one YAML document.
#[derive(Debug, Default, Clone)]
pub struct DocIndex {
    /// Where the document starts.
    pub start: Pos,
    paths: HashMap<String, Pos>,
}

impl DocIndex {
    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn lookup(&self, path: &str) -> Pos {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.paths.get(&p) {
                return *pos;
            }
            match parent_path(&p) {
                Some(parent) => p = parent,
                None => return self.start,
            }
        }
    }
}

/// The parent of a path: `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
pub fn parent_path(p: &str) -> Option<String> {
    if p.is_empty() {
        return None;
    }
    if p.ends_with(']')
        && let Some(i) = p.rfind('[')
    {
        return Some(p[..i].to_string());
    }
    match p.rfind('.') {
        Some(i) => Some(p[..i].to_string()),
        None => Some(String::new()),
    }
}

/// Appends a map key to a path.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    docs: Vec<DocIndex>,
    stack: Vec<Frame>,
}

impl Builder {
    /// Records a node that starts at `mark`; returns its path, or `None` when
    /// the node is a mapping key.
    fn node(&mut self, mark: Marker) -> Option<String> {
        let pos = Pos::from_marker(mark);
        let doc = self.docs.last_mut()?;
        match self.stack.last_mut() {
            None => {
                doc.start = pos;
                doc.paths.insert(String::new(), pos);
                Some(String::new())
            }
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                doc.paths.entry(p.clone()).or_insert(pos);
                Some(p)
            }
            Some(Frame::Map { path, key }) => key.take().map(|k| join_key(path, &k)),
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::DocumentStart => self.docs.push(DocIndex::default()),
            Event::Scalar(value, ..) => {
                let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if is_key {
                    if let (Some(Frame::Map { path, key }), Some(doc)) =
                        (self.stack.last_mut(), self.docs.last_mut())
                    {
                        doc.paths
                            .insert(join_key(path, &value), Pos::from_marker(mark));
                        *key = Some(value);
                    }
                } else {
                    self.node(mark);
                }
            }
            Event::Alias(_) => {
                self.node(mark);
            }
            Event::MappingStart(..) => {
                let path = self.node(mark).unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.node(mark).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// Where the scanner stopped.
    pub pos: Pos,
    /// The scanner's description.
    pub message: String,
}

/// Indexes every document of a YAML stream.
pub fn index_documents(text: &str) -> Result<Vec<DocIndex>, SyntaxError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut b, true).map_err(|e| SyntaxError {
        pos: Pos::from_marker(*e.marker()),
        message: e.info().to_string(),
    })?;
    Ok(b.docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_paths() {
        let text = "a: 1\nspec:\n  subnets:\n  - cidr: x\n  - zone: y\n    cidr: z\n---\nb: 2\n";
        let docs = index_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].lookup("spec.subnets[1].cidr"),
            Pos { line: 6, column: 5 }
        );
        // yaml-rust2 marks the first key of a `- key: value` item at its value.
        assert_eq!(docs[0].lookup("spec.subnets[0].cidr").line, 4);
        assert_eq!(docs[0].lookup("spec.subnets[0].missing").line, 4);
        assert_eq!(docs[1].lookup("b"), Pos { line: 8, column: 1 });
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("a.b[2].c").as_deref(), Some("a.b[2]"));
        assert_eq!(parent_path("a.b[2]").as_deref(), Some("a.b"));
        assert_eq!(parent_path("a").as_deref(), Some(""));
        assert_eq!(parent_path(""), None);
    }
}

/// A YAML file that could not be read into its type, at its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {path}{message}")]
pub struct FileError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field followed by `: ` (`jobs.ttl: `), or empty.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FileError {
    /// An error at `path` of `doc` (the field's line, or its nearest
    /// ancestor's).
    pub fn at(file: &str, doc: &DocIndex, path: &str, message: impl Into<String>) -> FileError {
        let pos = doc.lookup(path);
        FileError {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            path: if path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            },
            message: message.into(),
        }
    }
}

/// Reads the first YAML document of `text` (named `file` in errors) into
/// `T`, strictly as `T`'s serde attributes say (`deny_unknown_fields`): a
/// syntax error, an unknown key or a bad value is reported at its line and
/// field. An empty file reads as an empty mapping. Also returns the
/// document's index, for checks made after deserialising.
pub fn from_yaml_strict<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<(T, DocIndex), FileError> {
    let syntax = |pos: Pos, message: String| FileError {
        file: file.to_string(),
        line: pos.line,
        column: pos.column,
        path: String::new(),
        message,
    };
    let docs = index_documents(text).map_err(|e| syntax(e.pos, e.message))?;
    let doc = docs.first().cloned().unwrap_or_default();
    let value: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        let pos = e.location().map_or(Pos { line: 1, column: 1 }, |l| Pos {
            line: l.line(),
            column: l.column(),
        });
        syntax(pos, e.to_string())
    })?;
    let value = if value.is_null() {
        serde_norway::Value::Mapping(Default::default())
    } else {
        value
    };
    let parsed = serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let message = e.inner().to_string();
        // An unknown key is reported where the key is.
        if let Some(field) = message
            .split("unknown field `")
            .nth(1)
            .and_then(|r| r.split('`').next())
            && !path.ends_with(field)
        {
            path = join_key(&path, field);
        }
        FileError::at(file, &doc, &path, message)
    })?;
    Ok((parsed, doc))
}
