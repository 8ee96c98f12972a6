//! clusterctl: provision Kubernetes clusters on AWS from a kops-style spec,
//! and run the in-cluster components that keep them lean.
//!
//! Dependencies point one way: `spec` → `model` → {`render`, `plan`} →
//! {`apply`, `direct`, the controllers}. `resource` (kinds, attributes, a
//! resource as found) is a leaf under `model`, `plan` and `cloud`, so that
//! `cloud` never imports `plan`.

pub mod addons;
pub mod apply;
pub mod cloud;
pub mod controllers;
pub mod direct;
pub mod kubeconfig;
pub mod model;
pub mod plan;
pub mod preview;
pub mod render;
pub mod resource;
pub mod spec;
pub mod state;
pub mod telemetry;

/// An I/O error's reason for a person: `no such file`, `permission
/// denied`, ... (the OS's text without its `(os error N)` otherwise).
/// Messages that name a file end with it; the error itself, their cause,
/// is then not printed again.
pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "no such file".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::AlreadyExists => "it exists already".into(),
        ErrorKind::IsADirectory => "it is a directory".into(),
        ErrorKind::NotADirectory => "a parent is not a directory".into(),
        ErrorKind::ReadOnlyFilesystem => "read-only file system".into(),
        ErrorKind::StorageFull => "no space left on the device".into(),
        _ => {
            let text = e.to_string();
            let text = match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            let mut c = text.chars();
            match c.next() {
                Some(first) => first.to_lowercase().chain(c).collect(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod io_reason_tests {
    #[test]
    fn reasons_read_as_words() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            super::io_reason(&Error::from(ErrorKind::NotFound)),
            "no such file"
        );
        assert_eq!(
            super::io_reason(&Error::from_raw_os_error(30)),
            "read-only file system"
        );
        assert_eq!(super::io_reason(&Error::other("Odd thing")), "odd thing");
    }
}
