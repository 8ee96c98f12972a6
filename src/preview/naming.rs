//! Names of a preview: one namespace per (repo, branch), and one host label
//! `<slug>-<service>` under the preview domain (a single label, so one
//! wildcard certificate covers every preview).
//!
//! Branch names are untrusted: any string becomes a DNS-1123 label of at
//! most 63 characters (lowercase `[a-z0-9-]`, no leading or trailing `-`),
//! or a clear error. The readable part keeps what it can of the repo and
//! branch; a stable hash of the exact (repo, branch) pair is appended
//! whenever the readable part alone could be shared by another pair (it was
//! cut, lowercased, or had characters replaced, or the repo or branch has a
//! `-` that makes the join ambiguous). A name without the hash has exactly
//! one `-`; one with it has at least two, so the two kinds never meet.

use sha2::{Digest, Sha256};

/// The longest DNS-1123 label.
pub const MAX_LABEL: usize = 63;
/// Hex digits of the hash suffix (40 bits).
const HASH: usize = 10;

/// A preview's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The namespace.
    pub namespace: String,
    /// The host's first label, `<slug>-<service>`.
    pub host_label: String,
}

/// Lowercase `[a-z0-9]` runs joined by single `-`; whether that changed
/// anything.
fn sanitize(s: &str) -> (String, bool) {
    let mut out = String::new();
    let mut pending_dash = false;
    for c in s.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if pending_dash && !out.is_empty() {
                out.push('-');
            }
            pending_dash = false;
            out.push(c);
        } else if c.is_ascii_uppercase() {
            if pending_dash && !out.is_empty() {
                out.push('-');
            }
            pending_dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            pending_dash = true;
        }
    }
    let exact = out == s;
    (out, !exact)
}

fn hash(repo: &str, branch: &str) -> String {
    let mut h = Sha256::new();
    h.update(repo.as_bytes());
    h.update([0u8]);
    h.update(branch.as_bytes());
    hex::encode(h.finalize())[..HASH].to_string()
}

/// A label of at most `max` characters for (repo, branch).
fn slug(repo: &str, branch: &str, max: usize) -> String {
    let (r, r_lossy) = sanitize(repo);
    let (b, b_lossy) = sanitize(branch);
    let readable = match (r.is_empty(), b.is_empty()) {
        (false, false) => format!("{r}-{b}"),
        (false, true) => r.clone(),
        (true, false) => b.clone(),
        (true, true) => String::new(),
    };
    let plain = !r_lossy
        && !b_lossy
        && !r.is_empty()
        && !b.is_empty()
        && !r.contains('-')
        && !b.contains('-')
        && readable.len() <= max;
    if plain {
        return readable;
    }
    let h = hash(repo, branch);
    // Room for "-<hash>"; a readable part never ends with '-'.
    let room = max.saturating_sub(HASH + 1);
    let mut cut: String = readable.chars().take(room).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    if cut.is_empty() {
        // Only symbols: "p-<hash>", still a label that starts with a letter.
        format!("p-{h}")
    } else {
        format!("{cut}-{h}")
    }
}

/// Whether `s` is a DNS-1123 label.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The names of the preview of `branch` of `repo` for `service`, or an
/// error naming what is wrong with the service name or the inputs.
pub fn names(repo: &str, branch: &str, service: &str) -> Result<Names, String> {
    if repo.trim().is_empty() {
        return Err("the repo name is empty".into());
    }
    if branch.trim().is_empty() {
        return Err("the branch name is empty".into());
    }
    if !is_label(service) || service.len() > 20 {
        return Err(format!(
            "service \"{}\" must be a DNS label of at most 20 characters (lowercase letters, digits, '-')",
            service.escape_default()
        ));
    }
    let namespace = slug(repo, branch, MAX_LABEL);
    let host_label = format!(
        "{}-{service}",
        slug(repo, branch, MAX_LABEL - 1 - service.len())
    );
    Ok(Names {
        namespace,
        host_label,
    })
}

/// The namespace of the preview of `branch` of `repo`.
pub fn namespace(repo: &str, branch: &str) -> Result<String, String> {
    names(repo, branch, "x").map(|n| n.namespace)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    use super::*;

    #[test]
    fn readable_names_where_they_can_be() {
        let n = names("shop", "main", "web").unwrap();
        assert_eq!(n.namespace, "shop-main");
        assert_eq!(n.host_label, "shop-main-web");
        // Lossy or ambiguous: the readable part and a stable hash.
        for (repo, branch, prefix) in [
            ("shop", "feature/Login", "shop-feature-login-"),
            ("my-shop", "main", "my-shop-main-"),
            ("shop", "../../etc/passwd", "shop-etc-passwd-"),
            ("shop", "{{ 7*7 }}", "shop-7-7-"),
            ("shop", "$(rm -rf /)", "shop-rm-rf-"),
        ] {
            let n = names(repo, branch, "web").unwrap();
            assert!(n.namespace.starts_with(prefix), "{branch}: {}", n.namespace);
            assert_eq!(n.namespace.len(), prefix.len() + HASH);
            assert!(is_label(&n.namespace) && is_label(&n.host_label));
        }
        assert!(
            names("shop", "🚀🚀", "web")
                .unwrap()
                .namespace
                .starts_with("shop-")
        );
        assert!(names("", "x", "web").is_err());
        assert!(names("shop", " ", "web").is_err());
        assert!(names("shop", "x", "Web").is_err());
        assert!(names("shop", "x", "a-very-long-service-name").is_err());
        // Differ only in case, or only past the cut: different names.
        let long = "x".repeat(300);
        assert_ne!(
            names("shop", "Fix", "web").unwrap(),
            names("shop", "fix", "web").unwrap()
        );
        assert_ne!(
            names("shop", &format!("{long}a"), "web").unwrap(),
            names("shop", &format!("{long}b"), "web").unwrap()
        );
        // The join is never ambiguous.
        assert_ne!(
            names("a-b", "c", "web").unwrap(),
            names("a", "b-c", "web").unwrap()
        );
    }

    fn branch() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,300}",
            "[a-zA-Z0-9/._-]{1,80}",
            "[^a-zA-Z0-9]{1,40}",
            "(\\.\\./){1,5}[a-z]{0,10}",
            "[a-z]{1,5}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]
        #[test]
        fn every_name_is_a_label_and_stable(repo in "[a-zA-Z0-9._-]{1,40}", b in branch()) {
            prop_assume!(!b.trim().is_empty());
            let n = names(&repo, &b, "web").unwrap();
            prop_assert!(is_label(&n.namespace), "{:?}", n.namespace);
            prop_assert!(is_label(&n.host_label), "{:?}", n.host_label);
            prop_assert_eq!(names(&repo, &b, "web").unwrap(), n);
        }
    }

    #[test]
    fn ten_thousand_adversarial_branches_never_collide() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = branch();
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut hosts: HashMap<String, String> = HashMap::new();
        let mut n = 0;
        while n < 10_000 {
            let b = strategy.new_tree(&mut runner).unwrap().current();
            if b.trim().is_empty() {
                continue;
            }
            // Case twins and long twins of every tenth name too.
            let mut batch: Vec<String> = vec![b.clone()];
            if n % 10 == 0 {
                batch.push(b.to_uppercase());
                batch.push(format!("{}{b}", "y".repeat(70)));
            }
            for b in batch {
                let names = super::names("shop", &b, "web").unwrap();
                if let Some(other) = seen.insert(names.namespace.clone(), b.clone()) {
                    assert_eq!(other, b, "{} collides", names.namespace);
                }
                if let Some(other) = hosts.insert(names.host_label.clone(), b.clone()) {
                    assert_eq!(other, b, "{} collides", names.host_label);
                }
                n += 1;
            }
        }
    }
}
