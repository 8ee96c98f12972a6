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
        text.contains("Exit codes:") && text.contains("not implemented yet"),
        "{text}"
    );
}

#[test]
fn stubs_say_not_implemented() {
    let out = clusterctl(&["preview"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`preview` is not implemented yet"));
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
