//! The CLI surface: validate output formats, completions, help, stubs.

use crate::support::clusterctl;

#[test]
fn validate_json_prints_the_defaulted_spec() {
    let out = clusterctl(&["validate", "-f", "examples/ha.yaml", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cluster"]["metadata"]["name"], "ha.example.com");
    // Defaults are filled in: allocated subnets, API name, component settings.
    let subnets = v["cluster"]["spec"]["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 6);
    assert!(
        subnets
            .iter()
            .all(|s| s["cidr"].as_str().unwrap().starts_with("10.20."))
    );
    assert_eq!(v["cluster"]["spec"]["api"]["port"], 443);
    assert_eq!(v["instanceGroups"].as_array().unwrap().len(), 5);
    assert_eq!(v["instanceGroups"][3]["spec"]["rootVolumeType"], "gp3");
}

#[test]
fn validate_yaml_round_trips() {
    let out = clusterctl(&["validate", "-f", "examples/dev.yaml", "-o", "yaml"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let again = clusterctl_spec(&text);
    assert_eq!(
        again, text,
        "the defaulted spec is a fixed point of defaulting"
    );
}

fn clusterctl_spec(text: &str) -> String {
    clusterctl::spec::Spec::parse(text, "defaulted.yaml")
        .unwrap()
        .completed_yaml()
}

#[test]
fn validate_human() {
    let out = clusterctl(&["validate", "-f", "examples/dev.yaml"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("cluster dev.example.com is valid"));
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = clusterctl(&["validate", "-f", "no/such/file.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read spec file no/such/file.yaml")
    );
}

#[test]
fn completions_and_help() {
    let out = clusterctl(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("_clusterctl()"));
    let help = clusterctl(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Exit codes:") && text.contains("usage error"),
        "{text}"
    );
}

#[test]
fn preview_commands_have_help_with_examples_and_check_their_flags() {
    for sub in ["up", "list", "extend", "down", "gc"] {
        let out = clusterctl(&["preview", sub, "--help"]);
        assert!(out.status.success(), "{sub}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("clusterctl preview "),
            "{sub}"
        );
    }
    // up needs an image or a tag, not both.
    let out = clusterctl(&["preview", "up", "--image", "a", "--tag", "b"]);
    assert_eq!(out.status.code(), Some(2));
    // A missing config is an error that names the file.
    let out = clusterctl(&[
        "preview",
        "up",
        "--dir",
        "/nonexistent",
        "--image",
        "web:1",
        "--repo",
        "r",
        "--branch",
        "b",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read preview config /nonexistent/.clusterctl/preview.yaml"),
        "{err}"
    );
}

#[test]
fn render_summary_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = clusterctl(&[
        "render",
        "-f",
        "examples/dev.yaml",
        "-o",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["resources"]["aws_vpc"], 1);
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "terraform/outputs.tf")
    );
}
