//! A newcomer's first minutes (issue 16): `init` writes a spec that
//! validates and plans; without credentials every AWS command says what to
//! set in one line; a denied action is named; failures print each cause
//! once, with no JSON and no dependency's log lines.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use crate::moto::Moto;
use crate::support::{clusterctl, root};

const NO_CREDENTIALS: &str = "error: no AWS credentials were found: set AWS_PROFILE (after `aws sso login` for an SSO profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; for an emulator, also AWS_ENDPOINT_URL\n";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Stderr must be errors and clusterctl's own lines only: no JSON log
/// line, no dependency's log line, and no line twice.
fn assert_quiet_and_once(what: &str, out: &Output) {
    let err = text(&out.stderr);
    let mut seen = BTreeMap::new();
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        *seen.entry(line.to_string()).or_insert(0) += 1;
        assert!(
            !line.trim_start().starts_with('{'),
            "{what}: a JSON line on stderr: {line}"
        );
        for dep in [
            "aws_config",
            "aws_smithy",
            "hyper",
            "kube_client",
            "rustls",
            " WARN ",
            " INFO ",
        ] {
            assert!(!line.contains(dep), "{what}: a log line on stderr: {line}");
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{what}: lines printed more than once: {twice:?}\n{err}"
    );
}

fn init(args: &[&str]) -> Output {
    let mut all = vec!["init"];
    all.extend_from_slice(args);
    clusterctl(&all)
}

#[test]
fn init_writes_specs_that_validate_and_refuses_contradicting_flags() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "init-dev",
            vec![
                "--name",
                "dev.example.com",
                "--zones",
                "us-east-1a",
                "--state",
                "s3://example-clusterctl-state/clusters",
            ],
        ),
        (
            "init-ha",
            vec![
                "--name",
                "prod.example.com",
                "--zones",
                "eu-west-1a,eu-west-1b,eu-west-1c",
                "--state",
                "s3://example-clusterctl-state/clusters",
                "--node-size",
                "m6i.large",
                "--nodes",
                "3:12",
            ],
        ),
    ];
    for (name, args) in &cases {
        let out = init(args);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert_quiet_and_once(name, &out);
        let spec = text(&out.stdout);
        insta::with_settings!({ snapshot_path => "snapshots/init", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(*name, spec);
        });
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &spec).unwrap();
        let v = clusterctl(&["validate", "-f", file.to_str().unwrap()]);
        assert!(v.status.success(), "{name}: {}", text(&v.stderr));
        assert!(text(&v.stdout).contains("valid"), "{}", text(&v.stdout));
        assert!(text(&v.stderr).is_empty(), "{name}: {}", text(&v.stderr));
    }
    // The 3-zone spec is private with one control plane per zone.
    let ha = text(&init(&cases[1].1).stdout);
    assert!(ha.contains("topology: private"), "{ha}");
    for z in ["eu-west-1a", "eu-west-1b", "eu-west-1c"] {
        assert!(ha.contains(&format!("name: control-plane-{z}")), "{ha}");
    }

    // --out writes a new file and never replaces one.
    let out_file = dir.path().join("new.yaml");
    let mut args = cases[0].1.clone();
    let out_arg = out_file.to_str().unwrap().to_string();
    args.extend(["--out", &out_arg]);
    let first = init(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("Next: clusterctl plan -f"),
        "{}",
        text(&first.stdout)
    );
    let again = init(&args);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        text(&again.stderr),
        format!(
            "error: cannot write {}: it exists already\n",
            out_file.display()
        )
    );

    // Contradictions: exit 2, naming both flags.
    for (args, flags) in [
        (
            vec![
                "--name",
                "dev.example.com",
                "--zones",
                "us-east-1a",
                "--state",
                "s3://b/c",
                "--control-planes",
                "3",
            ],
            ["--control-planes", "--zones"],
        ),
        (
            vec![
                "--name",
                "dev.example.com",
                "--zones",
                "us-east-1a",
                "--state",
                "s3://b/c",
                "--region",
                "eu-west-1",
            ],
            ["--region", "--zones"],
        ),
        (
            vec![
                "--name",
                "dev.example.com",
                "--zones",
                "us-east-1a",
                "--state",
                "s3://b/c",
                "--dns-zone",
                "example.org",
            ],
            ["--name", "--dns-zone"],
        ),
    ] {
        let out = init(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        for f in flags {
            assert!(err.contains(f), "{args:?}: {f} not named: {err}");
        }
        assert!(out.stdout.is_empty());
    }
    // A bad value found by validation names its flag.
    let out = init(&[
        "--name",
        "dev.example.com",
        "--zones",
        "us-east-1a",
        "--state",
        "gs://nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--state"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn init_specs_plan_against_moto() {
    let Some(moto) = Moto::start() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, zones, region) in [
        ("dev.example.com", "us-east-1a", "us-east-1"),
        (
            "prod.example.com",
            "eu-west-1a,eu-west-1b,eu-west-1c",
            "eu-west-1",
        ),
    ] {
        rt.block_on(crate::direct::account(&moto, region));
        let file = dir.path().join(format!("{name}.yaml"));
        let out = init(&[
            "--name",
            name,
            "--zones",
            zones,
            "--state",
            "s3://example-clusterctl-state/clusters",
            "--out",
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let plan = moto
            .clusterctl(&["plan", "-f", file.to_str().unwrap()])
            .env("AWS_REGION", region)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(plan.status.success(), "{name}: {}", text(&plan.stderr));
        assert!(
            text(&plan.stdout).contains("to add"),
            "{}",
            text(&plan.stdout)
        );
        assert_quiet_and_once("plan of an init spec", &plan);
    }
}

/// The environment of a newcomer without AWS credentials: no AWS
/// variables and an empty home (no ~/.aws).
fn bare(args: &[&str], home: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clusterctl"))
        .args(args)
        .current_dir(root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .output()
        .unwrap()
}

#[test]
fn without_credentials_every_aws_command_says_what_to_set_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        vec!["plan", "-f", "examples/dev.yaml"],
        vec!["apply", "-f", "examples/dev.yaml", "--yes"],
        vec!["destroy", "-f", "examples/dev.yaml", "--yes"],
        vec!["state", "show", "-f", "examples/dev.yaml"],
    ] {
        let out = bare(&args, home.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), NO_CREDENTIALS, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

#[test]
fn rejected_credentials_are_said_in_one_line() {
    let Some(moto) = Moto::start_proxied(crate::proxy::Options {
        reject_credentials: true,
        ..Default::default()
    }) else {
        return;
    };
    for args in [
        vec!["plan", "-f", "examples/dev.yaml"],
        vec!["state", "show", "-f", "examples/dev.yaml"],
    ] {
        let out = moto
            .clusterctl(&args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: AWS rejected the credentials (InvalidClientTokenId, on sts:GetCallerIdentity)")
                && err.contains("AWS_PROFILE"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_denied_action_is_named_and_the_apply_summary_still_says_what_was_done() {
    let Some(moto) = Moto::start_proxied(crate::proxy::Options {
        deny_ec2_action: Some("CreateSecurityGroup"),
        ..Default::default()
    }) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(crate::direct::account(&moto, "us-east-1"));
    let out = moto
        .clusterctl(&["apply", "-f", "examples/dev.yaml", "--yes"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("AWS denied ec2:CreateSecurityGroup (UnauthorizedOperation)"),
        "{err}"
    );
    // What was done before the refusal is reported (the VPC, for one).
    let all = format!("{}{err}", text(&out.stdout));
    assert!(all.contains("aws_vpc.dev-example-com: created"), "{all}");
    // The failed changes say what AWS said, not the SDK's debug text.
    assert!(
        all.contains(
            "aws_security_group.nodes-dev-example-com: FAILED: AWS denied ec2:CreateSecurityGroup"
        ),
        "{all}"
    );
    assert!(!all.contains("Error {"), "{all}");
    assert_quiet_and_once("denied apply", &out);
}

/// Every command's failure paths: each cause once, and quiet.
#[test]
fn failures_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let exists = dir.path().join("exists.yaml");
    std::fs::write(&exists, "x").unwrap();
    let exists = exists.to_str().unwrap().to_string();
    let mut runs: Vec<(&str, Vec<String>)> = Vec::new();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    for cmd in [
        vec!["validate"],
        vec!["render", "-o", "/tmp/never"],
        vec!["plan"],
        vec!["apply", "--yes"],
        vec!["destroy", "--yes"],
        vec!["state", "show"],
        vec!["addons", "plan"],
        vec!["secrets", "create"],
    ] {
        let mut a = cmd.clone();
        a.extend(["-f", "/nonexistent/cluster.yaml"]);
        runs.push(("missing file", s(&a)));
    }
    runs.push((
        "unwritable output",
        s(&["render", "-f", "examples/dev.yaml", "-o", "/proc/x"]),
    ));
    runs.push((
        "existing init output",
        s(&[
            "init",
            "--name",
            "a.example.com",
            "--zones",
            "us-east-1a",
            "--state",
            "s3://b/c",
            "--out",
            &exists,
        ]),
    ));
    runs.push((
        "bad spec",
        s(&["validate", "-f", "tests/fixtures/invalid/unknown-cni.yaml"]),
    ));
    runs.push((
        "bad spec",
        s(&["plan", "-f", "tests/fixtures/invalid/unknown-cni.yaml"]),
    ));
    for cmd in [
        vec!["state", "pull", "--dir", "/tmp/never"],
        vec!["force-unlock", "some-id"],
        vec!["addons", "apply"],
        vec!["secrets", "delete", "--yes"],
    ] {
        let mut a = cmd.clone();
        a.extend(["-f", "/nonexistent/cluster.yaml"]);
        runs.push(("missing file", s(&a)));
    }
    // The components' own files.
    for (args, want) in [
        (
            vec!["janitor", "--kubeconfig", "/nonexistent/kc"],
            "error: cannot read kubeconfig /nonexistent/kc: no such file\n",
        ),
        (
            vec![
                "preview",
                "gc",
                "--once",
                "--state",
                "s3://b/p",
                "--kubeconfig",
                "/nonexistent/kc",
            ],
            "error: cannot read kubeconfig /nonexistent/kc: no such file\n",
        ),
        (
            vec![
                "node-autoscaler",
                "simulate",
                "--snapshot",
                "/nonexistent/s.yaml",
            ],
            "error: cannot read snapshot /nonexistent/s.yaml: no such file\n",
        ),
    ] {
        let out = clusterctl(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), want, "{args:?}");
    }
    for (what, args) in &runs {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = clusterctl(&argv);
        assert!(!out.status.success(), "{what} {argv:?} succeeded");
        assert_quiet_and_once(&format!("{what} {argv:?}"), &out);
        if *what == "missing file" {
            assert_eq!(
                text(&out.stderr),
                "error: cannot read spec file /nonexistent/cluster.yaml: no such file\n",
                "{argv:?}"
            );
        }
    }

    // Against the emulator: a missing bucket, a missing DNS zone, a held lock.
    let Some(moto) = Moto::start() else { return };
    let run = |args: &[&str]| {
        moto.clusterctl(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let out = run(&["plan", "-f", "examples/dev.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_quiet_and_once("missing bucket and zone", &out);
    assert!(
        text(&out.stderr).contains("example-clusterctl-state"),
        "{}",
        text(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(moto.bucket("us-east-1", "example-clusterctl-state"));
    let out = run(&["plan", "-f", "examples/dev.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_quiet_and_once("missing DNS zone", &out);
    assert!(
        text(&out.stderr).contains("example.com"),
        "{}",
        text(&out.stderr)
    );
    rt.block_on(crate::direct::account(&moto, "us-east-1"));
    // A lock held by someone else.
    let s3 = rt.block_on(moto.s3("us-east-1"));
    rt.block_on(
        s3.put_object()
            .bucket("example-clusterctl-state")
            .key("clusters/dev.example.com/lock")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(
                br#"{"ID":"someone-else","Operation":"apply","Who":"alice@laptop (pid 7)","Version":"0.1.0","Created":"2026-12-03T00:00:00Z","Path":"clusters/dev.example.com/lock"}"#,
            ))
            .send(),
    )
    .unwrap();
    let out = run(&["apply", "-f", "examples/dev.yaml", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_quiet_and_once("lock held", &out);
    let err = text(&out.stderr);
    assert!(
        err.contains("alice@laptop") && err.contains("force-unlock"),
        "{err}"
    );
}
