//! The direct target under crashes and contention, against moto_server:
//! two concurrent applies (exactly one proceeds), apply and destroy killed
//! with SIGKILL at several points and run again (they converge without
//! duplicates), and apply's live progress on a terminal and in a pipe.

use std::collections::BTreeSet;

use clusterctl::cloud::Cloud;
use clusterctl::spec::Spec;

use crate::direct::{account, cloud, ec2, hosted_zone, run, run_ok};
use crate::moto::Moto;
use crate::support::root;

#[tokio::test]
async fn two_concurrent_applies_exactly_one_proceeds() {
    let Some(moto) = Moto::start_serialised() else {
        return;
    };
    account(&moto, "eu-west-1").await;
    let spawn = || {
        moto.clusterctl(&["apply", "-f", "examples/ha.yaml", "--yes"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(
        ok,
        1,
        "exactly one apply proceeds:\n{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let loser = if a.status.success() { &b } else { &a };
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(
        err.contains("the state is locked by") && err.contains("operation apply"),
        "{err}"
    );
    // The winner converged: a plan now shows no changes.
    let plan = run(
        &moto,
        &["plan", "-f", "examples/ha.yaml", "--detailed-exitcode"],
    );
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
}

/// Runs `apply` and kills it with SIGKILL after `after` finished changes.
fn apply_killed_after(moto: &Moto, after: usize) {
    killed_after(moto, "apply", after)
}

/// Runs `command` (apply or destroy) on ha.yaml and kills it with SIGKILL
/// after `after` finished changes.
fn killed_after(moto: &Moto, command: &str, after: usize) {
    use std::io::BufRead;
    let mut cmd = moto.clusterctl(&[
        command,
        "-f",
        "examples/ha.yaml",
        "--yes",
        "--parallelism",
        "4",
    ]);
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut done = 0;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.ends_with(": created")
            || line.ends_with(": updated")
            || line.ends_with(": destroyed")
        {
            done += 1;
            if done >= after {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    let _ = child.wait();
}

/// The same for destroy: killed at three points, force-unlocked, run again,
/// it finishes — nothing with the cluster's tag is left, and the secrets
/// (removed only after everything else) are gone too.
#[tokio::test]
async fn kill_9_during_destroy_then_destroy_again_finishes() {
    let n = clusterctl::model::build(&Spec::load(&root().join("examples/ha.yaml")).unwrap())
        .unwrap()
        .resources
        .len();
    let Some(moto) = Moto::start() else { return };
    account(&moto, "eu-west-1").await;
    let store = clusterctl::state::StateStore::new(
        moto.s3("eu-west-1").await,
        "example-clusterctl-state",
        "clusters/ha.example.com",
    );
    for after in [1, n / 2, n - 1] {
        run_ok(&moto, &["apply", "-f", "examples/ha.yaml", "--yes"]);
        killed_after(&moto, "destroy", after);
        let holder = store
            .lock_holder()
            .await
            .unwrap()
            .expect("the dead run's lock");
        assert_eq!(holder.operation, "destroy");
        run_ok(
            &moto,
            &["force-unlock", &holder.id, "-f", "examples/ha.yaml"],
        );
        run_ok(&moto, &["destroy", "-f", "examples/ha.yaml", "--yes"]);
        let cloud = cloud(&moto, "eu-west-1", "ha.example.com").await;
        let m = clusterctl::model::build(&Spec::load(&root().join("examples/ha.yaml")).unwrap())
            .unwrap();
        let left: Vec<String> = cloud
            .discover(&m)
            .await
            .unwrap()
            .actual
            .into_iter()
            .filter(|a| a.owned)
            .map(|a| a.address)
            .collect();
        assert!(left.is_empty(), "killed after {after}: left {left:?}");
        let secrets: Vec<String> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("pki/") || k.starts_with("secrets/"))
            .collect();
        assert!(secrets.is_empty(), "killed after {after}: {secrets:?}");
    }
}

#[tokio::test]
async fn kill_9_at_five_points_then_reapply_converges_without_duplicates() {
    let n = clusterctl::model::build(&Spec::load(&root().join("examples/ha.yaml")).unwrap())
        .unwrap()
        .resources
        .len();
    for after in [1, n / 4, n / 2, 3 * n / 4, n - 1] {
        let Some(moto) = Moto::start() else { return };
        hosted_zone(&moto, "eu-west-1", "example.com").await;
        moto.bucket("eu-west-1", "example-clusterctl-state").await;
        apply_killed_after(&moto, after);
        // The dead run still holds the lock: a new apply refuses, force-unlock frees it.
        let refused = run(&moto, &["apply", "-f", "examples/ha.yaml", "--yes"]);
        assert_eq!(refused.status.code(), Some(1), "killed after {after}");
        let show: serde_json::Value = serde_json::from_str(&run_ok(
            &moto,
            &["state", "show", "-f", "examples/ha.yaml", "-o", "json"],
        ))
        .unwrap();
        let id = show["lock"]["ID"].as_str().unwrap().to_string();
        run_ok(&moto, &["force-unlock", &id, "-f", "examples/ha.yaml"]);
        run_ok(&moto, &["apply", "-f", "examples/ha.yaml", "--yes"]);
        let plan = run(
            &moto,
            &["plan", "-f", "examples/ha.yaml", "--detailed-exitcode"],
        );
        assert_eq!(
            plan.status.code(),
            Some(0),
            "killed after {after}: {}",
            String::from_utf8_lossy(&plan.stdout)
        );
        // Count by tag: nothing was made twice.
        let ec2 = ec2(&moto).await;
        let f = || {
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:KubernetesCluster")
                .values("ha.example.com")
                .build()
        };
        let [vpcs, subnets, _, lts, asgs] = moto.tagged_counts("eu-west-1", "ha.example.com").await;
        assert_eq!(
            (vpcs, subnets, lts, asgs),
            (1, 6, 5, 9),
            "VPCs, subnets, launch templates, ASGs; killed after {after}"
        );
        let nats = ec2
            .describe_nat_gateways()
            .filter(f())
            .filter(
                aws_sdk_ec2::types::Filter::builder()
                    .name("state")
                    .values("available")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            nats.nat_gateways().len(),
            3,
            "NAT gateways, killed after {after}"
        );
    }
}

/// On a terminal, apply draws a live bar (count, elapsed time, what is in
/// flight) with the finished changes scrolling above it; piped, it prints
/// plain lines with no terminal control codes. The terminal is a pty from
/// util-linux `script`.
#[tokio::test]
async fn apply_shows_a_live_bar_on_a_terminal_and_plain_lines_otherwise() {
    let Some(moto) = Moto::start() else { return };
    let Some(script) = crate::support::tool("script") else {
        return;
    };
    account(&moto, "us-east-1").await;
    let n = clusterctl::model::build(&Spec::load(&root().join("examples/dev.yaml")).unwrap())
        .unwrap()
        .resources
        .len();
    let bin = env!("CARGO_BIN_EXE_clusterctl");
    let out = std::process::Command::new(script)
        .args([
            "-qec",
            &format!("{bin} apply -f examples/dev.yaml --yes"),
            "/dev/null",
        ])
        .current_dir(root())
        .envs(moto.env())
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    // Frames are rate-limited, so not every count is drawn; some after 0 are.
    let drawn: BTreeSet<usize> = tty
        .split("] ")
        .filter_map(|s| {
            let (k, rest) = s.split_once('/')?;
            rest.starts_with(&n.to_string()).then(|| k.parse().ok())?
        })
        .collect();
    assert!(
        drawn.contains(&0) && drawn.iter().any(|&k| k > 0),
        "{drawn:?}: {tty}"
    );
    assert!(tty.contains("creating aws_"), "{tty}");
    assert_eq!(tty.matches(": created").count(), n, "{tty}");
    assert!(tty.contains("\x1b[2K"), "the bar redraws its line");
    assert!(tty.contains("aws_vpc.dev-example-com: created"), "{tty}");
    assert!(
        tty.contains(&format!("Apply complete! Resources: {n} added")),
        "{tty}"
    );
    // Piped: one plain line per change.
    let piped = run(&moto, &["destroy", "-f", "examples/dev.yaml", "--yes"]);
    let text = String::from_utf8_lossy(&piped.stdout);
    assert!(piped.status.success(), "{text}");
    assert!(!text.contains('\x1b'), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.ends_with(": destroyed")).count(),
        n,
        "{text}"
    );
}
