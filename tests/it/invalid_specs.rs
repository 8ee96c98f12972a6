//! Every broken spec under tests/fixtures/invalid/ is rejected with exit
//! code 1, and each message names the file, line, column and field path.
//! Each fixture states the paths it must be reported at in `# expect:` lines.

use crate::support::{clusterctl, root};

fn fixtures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("tests/fixtures/invalid"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn at_least_twenty_fixtures() {
    assert!(fixtures().len() >= 20, "{} fixtures", fixtures().len());
}

#[test]
fn every_invalid_spec_is_rejected_with_path_and_line() {
    for name in fixtures() {
        let rel = format!("tests/fixtures/invalid/{name}");
        let text = std::fs::read_to_string(root().join(&rel)).unwrap();
        let mut expect: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(str::to_string)
            .collect();
        if text.is_empty() {
            expect.push("(document)".into());
        }
        assert!(!expect.is_empty(), "{name} has no `# expect:` line");
        let out = clusterctl(&["validate", "-f", &rel]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: exit code, stderr:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
        let problems: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("  {rel}:")))
            .collect();
        assert!(
            !problems.is_empty(),
            "{name}: no located problem in:\n{stderr}"
        );
        for p in &problems {
            let rest = &p[rel.len() + 3..];
            let mut parts = rest.splitn(3, ':');
            let line: usize = parts
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: no line in {p}"));
            let col: usize = parts
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: no column in {p}"));
            assert!(line >= 1 && col >= 1, "{p}");
            assert!(
                line <= text.lines().count().max(1),
                "{name}: line {line} past the end"
            );
        }
        assert!(stderr.contains("help: "), "{name}: no help in:\n{stderr}");
        for path in &expect {
            assert!(
                problems.iter().any(|p| p.contains(&format!(" {path}: "))),
                "{name}: expected a problem at `{path}`, got:\n{stderr}"
            );
        }
        insta::with_settings!({ snapshot_path => "snapshots/invalid", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name.trim_end_matches(".yaml"), stderr);
        });
    }
}

#[test]
fn json_output_lists_problems() {
    let out = clusterctl(&[
        "validate",
        "-f",
        "tests/fixtures/invalid/many-problems.yaml",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let problems = v["problems"].as_array().unwrap();
    assert!(problems.len() >= 5, "{v:#}");
    for p in problems {
        assert!(p["line"].as_u64().unwrap() >= 1);
        assert!(!p["path"].as_str().unwrap().is_empty());
        assert!(!p["help"].as_str().unwrap().is_empty());
    }
}
