//! What `up` is given, checked: the branch (git's ref-name rules), the
//! image and tag (the OCI reference grammar), and, when not given, the repo
//! and branch of the current git checkout. Untrusted text never reaches a
//! shell (git runs with an argument vector) or a template's source.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

/// Why a branch name is not one git would accept, or `Ok`.
pub fn check_branch(b: &str) -> Result<(), String> {
    let shown = b.escape_default().to_string();
    let bad = |why: &str| {
        Err(format!(
            "branch \"{shown}\" is not a valid git branch name: {why}"
        ))
    };
    if b.is_empty() {
        return bad("it is empty");
    }
    if b.len() > 255 {
        return bad("it is longer than 255 bytes");
    }
    if let Some(c) = b
        .chars()
        .find(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return bad(&format!("it contains {:?}", c));
    }
    if b.contains("..") || b.contains("@{") || b.contains("//") || b == "@" {
        return bad("it contains `..`, `@{` or `//`, or is `@`");
    }
    if b.starts_with('/') || b.ends_with('/') || b.ends_with('.') || b.starts_with('-') {
        return bad("it starts with `/` or `-`, or ends with `/` or `.`");
    }
    if b.split('/')
        .any(|c| c.starts_with('.') || c.ends_with(".lock"))
    {
        return bad("a part starts with `.` or ends with `.lock`");
    }
    Ok(())
}

static IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    let domain = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?";
    let part = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let tag = r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?";
    let digest = r"(?:@sha256:[a-f0-9]{64})?";
    Regex::new(&format!("^{domain}{part}(?:/{part})*{tag}{digest}$"))
        .unwrap_or_else(|e| unreachable!("the image pattern is a constant: {e}"))
});

/// Whether `s` is an image reference (`[registry/]path[:tag][@digest]`).
pub fn check_image(s: &str) -> Result<(), String> {
    if s.len() <= 255 && IMAGE.is_match(s) {
        Ok(())
    } else {
        Err(format!(
            "image \"{}\" is not an image reference such as registry.example.com/web:1.2",
            s.escape_default()
        ))
    }
}

/// Whether `t` is an image tag.
pub fn check_tag(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag \"{}\" is not an image tag: letters, digits, `_`, `.`, `-`, at most 128",
            t.escape_default()
        ))
    }
}

/// The tag of an image reference (`latest` when it has none).
pub fn tag_of(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    match last.split_once(':') {
        Some((_, t)) => t.to_string(),
        None => "latest".to_string(),
    }
}

/// The repo name of a remote URL (`git@host:org/shop.git`,
/// `https://host/org/shop`): its last path part without `.git`.
pub fn repo_of_remote(url: &str) -> Option<String> {
    let path = url.trim_end_matches('/').trim_end_matches(".git");
    let name = path.rsplit(['/', ':']).next()?;
    (!name.is_empty()).then(|| name.to_string())
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The current branch of the checkout at `dir`.
pub fn current_branch(dir: &Path) -> Result<String, String> {
    let b = git(dir, &["rev-parse", "--abbrev-ref", "HEAD"])
        .map_err(|e| format!("cannot tell the branch ({e}); give --branch"))?;
    if b == "HEAD" {
        return Err("the checkout is on a detached HEAD; give --branch".into());
    }
    Ok(b)
}

/// The repo name of the checkout at `dir` (its `origin` remote's, or the
/// first remote's).
pub fn current_repo(dir: &Path) -> Result<String, String> {
    let remote = match git(dir, &["remote", "get-url", "origin"]) {
        Ok(u) => u,
        Err(_) => {
            let first = git(dir, &["remote"])
                .ok()
                .and_then(|r| r.lines().next().map(str::to_string))
                .ok_or("the checkout has no git remote; give --repo")?;
            git(dir, &["remote", "get-url", &first]).map_err(|e| format!("{e}; give --repo"))?
        }
    };
    repo_of_remote(&remote)
        .ok_or_else(|| format!("cannot tell the repo name from remote {remote}; give --repo"))
}

/// Who deploys: git's `user.email`, else `$USER`.
pub fn current_owner(dir: &Path) -> String {
    git(dir, &["config", "user.email"])
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_follow_git_rules() {
        for ok in ["main", "feature/login", "fix-1.2", "user/ÄÖ", "a#b", "it's"] {
            assert!(check_branch(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a b", "a..b", "a:b", "a\nb", "/a", "a/", "a.", "a.lock", "a/.b", "@", "a@{1}",
            "-x", "a\\b", "a*",
        ] {
            let e = check_branch(bad).unwrap_err();
            assert!(e.starts_with("branch \""), "{e}");
        }
        assert!(check_branch(&"x".repeat(256)).is_err());
    }

    #[test]
    fn images_and_tags() {
        for ok in [
            "web",
            "registry.example.com/team/web:1.2",
            "localhost:5000/web",
            "registry.k8s.io/pause:3.10",
            "a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(check_image(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Web",
            "web:",
            "web:a b",
            "web;rm -rf",
            "a//b",
            "web:-x",
            "{{x}}",
        ] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
        assert!(check_tag("v1.2_3-rc").is_ok());
        for bad in ["", "-x", ".x", "a/b", "a:b", "$(x)"] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
        assert_eq!(tag_of("localhost:5000/web"), "latest");
        assert_eq!(tag_of("r.io/web:1.2"), "1.2");
        assert_eq!(tag_of("r.io/web:1.2@sha256:ab"), "1.2");
    }

    #[test]
    fn repo_names_from_remotes() {
        for (url, want) in [
            ("git@github.com:onfido/shop.git", "shop"),
            ("https://github.com/onfido/shop", "shop"),
            ("https://github.com/onfido/shop.git/", "shop"),
            ("/srv/git/shop.git", "shop"),
        ] {
            assert_eq!(repo_of_remote(url).as_deref(), Some(want));
        }
    }

    #[test]
    fn repo_and_branch_come_from_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q", "-b", "feature/login"]);
        assert!(
            current_repo(dir.path())
                .unwrap_err()
                .contains("give --repo")
        );
        git(&["remote", "add", "origin", "git@github.com:onfido/shop.git"]);
        git(&[
            "-c",
            "user.email=a@b",
            "-c",
            "user.name=a",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ]);
        assert_eq!(current_repo(dir.path()).unwrap(), "shop");
        assert_eq!(current_branch(dir.path()).unwrap(), "feature/login");
        git(&["checkout", "-q", "--detach"]);
        assert!(
            current_branch(dir.path())
                .unwrap_err()
                .contains("detached HEAD")
        );
    }
}
