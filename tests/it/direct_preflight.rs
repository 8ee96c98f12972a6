//! The direct target's preflight and images, against moto_server: image
//! lookups resolve to the newest matching AMI, a saved plan applies the
//! images it showed and refuses drift, and zones, machine types, images
//! and architectures AWS would refuse are reported at their spec line.

use clusterctl::spec::Spec;

use std::collections::BTreeSet;

use crate::direct::{account, ec2, run, run_ok};
use crate::moto::Moto;
use crate::support::{EditedSpec, root};

#[tokio::test]
async fn image_lookups_resolve_to_the_newest_matching_ami_in_any_region() {
    let Some(moto) = Moto::start() else { return };
    for region in ["us-east-1", "eu-west-1"] {
        let clients = clusterctl::cloud::Clients::from_sdk(&moto.sdk_config(region).await, true);
        let catalog = clusterctl::cloud::aws::AwsCatalog::new(&clients);
        let mut m =
            clusterctl::model::build(&Spec::load(&root().join("examples/dev.yaml")).unwrap())
                .unwrap();
        clusterctl::direct::preflight::resolve_images(&catalog, &mut m)
            .await
            .unwrap();
        let images: Vec<&clusterctl::model::Image> = m
            .resources
            .iter()
            .filter_map(|r| match &r.props {
                clusterctl::model::Props::LaunchTemplate { image, .. } => Some(image),
                _ => None,
            })
            .collect();
        assert_eq!(images.len(), 2);
        // tests/fixtures/moto/amis.json: the 2025-10-15 amd64 noble image is
        // the newest match; a newer arm64 one and a newer jammy one are not matches.
        for i in images {
            assert_eq!(
                i,
                &clusterctl::model::Image::Ami {
                    id: "ami-0a1b2c3d4e5f60005".into()
                },
                "{region}"
            );
        }
    }
    let clients = clusterctl::cloud::Clients::from_sdk(&moto.sdk_config("us-east-1").await, true);
    let catalog = clusterctl::cloud::aws::AwsCatalog::new(&clients);
    let text = std::fs::read_to_string(root().join("examples/dev.yaml"))
        .unwrap()
        .replace(
            "  machineType: t3.large\n",
            "  machineType: t3.large\n  image: 099720109477/ubuntu/images/hvm-ssd-gp3/ubuntu-plucky-*\n",
        );
    let mut m = clusterctl::model::build(&Spec::parse(&text, "dev.yaml").unwrap()).unwrap();
    let e = clusterctl::direct::preflight::resolve_images(&catalog, &mut m)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no available image of owner 099720109477 matches the name ubuntu/images/hvm-ssd-gp3/ubuntu-plucky-*"),
        "{e}"
    );
    // Through the CLI: plan fails on the lookup; destroy needs no image.
    account(&moto, "us-east-1").await;
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("dev.yaml");
    std::fs::write(&spec, &text).unwrap();
    let file = spec.to_str().unwrap();
    let plan = run(&moto, &["plan", "-f", file]);
    let err = String::from_utf8_lossy(&plan.stderr);
    assert_eq!(plan.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: no available image of owner 099720109477"),
        "{err}"
    );
    run_ok(&moto, &["destroy", "-f", file, "--yes"]);
}

/// A machine type EC2 does not offer in a group's zones is reported at
/// plan time at its line of the spec, like any other spec problem, and
/// nothing is created.
#[tokio::test]
async fn unoffered_machine_types_are_reported_at_their_line() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "eu-west-1").await;
    let spec = EditedSpec::new("ha", |t| {
        t.replacen(
            "  machineType: m6i.xlarge\n",
            "  machineType: m6i.xlarg\n",
            1,
        )
        .replacen(
            "instances: [m6i.large, m5.large, m5a.large]",
            "instances: [m6i.large, m5.large, q9.huge]",
            1,
        )
    });
    let file = spec.file();
    for args in [vec!["plan", "-f", file], vec!["apply", "-f", file, "--yes"]] {
        let cmd = args[0];
        let out = run(&moto, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(
            err.contains(&format!(
                "{file}:{}:3: InstanceGroup/nodes spec.machineType: machine type m6i.xlarg is not offered in eu-west-1a, eu-west-1b, eu-west-1c (eu-west-1)",
                spec.line_of("machineType: m6i.xlarg")
            )),
            "{cmd}: {err}"
        );
        assert!(
            err.contains("InstanceGroup/spot-batch spec.mixedInstancesPolicy.instances[2]: machine type q9.huge is not offered"),
            "{cmd}: {err}"
        );
    }
    let vpcs = ec2(&moto).await.describe_vpcs().send().await.unwrap();
    assert!(
        vpcs.vpcs().iter().all(|v| v.is_default() == Some(true)),
        "nothing was created"
    );
}

/// A saved plan is applied as it was shown: with the AMIs its image lookups
/// resolved to then (not a newer image registered since), and only if what
/// exists still gives the same changes.
#[tokio::test]
async fn saved_plan_applies_the_images_it_showed_and_refuses_drift() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "us-east-1").await;
    let config = moto.sdk_config("us-east-1").await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let register = |name: &'static str| {
        let ec2 = ec2.clone();
        async move {
            ec2.register_image()
                .name(name)
                .root_device_name("/dev/sda1")
                .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664)
                .send()
                .await
                .unwrap()
                .image_id()
                .unwrap()
                .to_string()
        }
    };
    let first = register("clusterctl-test-1").await;
    let spec = EditedSpec::new("dev", |t| {
        t.replace(
            "  machineType: t3.large\n",
            "  machineType: t3.large\n  image: 123456789012/clusterctl-test-*\n",
        )
    });
    let file = spec.file();
    let saved = spec.path.with_file_name("plan.json");
    let out = saved.to_str().unwrap();
    run_ok(&moto, &["plan", "-f", file, "--out", out]);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(
        json["images"]["123456789012/clusterctl-test-*"], first,
        "{json}"
    );

    // A newer matching image appears; the saved plan still uses the first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = register("clusterctl-test-2").await;
    run_ok(&moto, &["apply", out]);
    let plan = run(&moto, &["plan", "-f", file, "--detailed-exitcode"]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!("\"{first}\" -> \"{second}\""))
            && text.contains("Plan: 0 to add, 1 to change, 0 to destroy.")
            && text.contains("Rolling update needed"),
        "{text}"
    );

    // Saved again (to move to the second image); then the nodes' ASG is
    // changed outside clusterctl. The serial is the same, the changes are
    // not: the saved plan is refused, naming the ASG.
    run_ok(&moto, &["plan", "-f", file, "--out", out]);
    let asgs = aws_sdk_autoscaling::Client::new(&config);
    let groups = asgs.describe_auto_scaling_groups().send().await.unwrap();
    let nodes = groups
        .auto_scaling_groups()
        .iter()
        .filter_map(|g| g.auto_scaling_group_name())
        .find(|n| n.starts_with("nodes"))
        .unwrap()
        .to_string();
    asgs.update_auto_scaling_group()
        .auto_scaling_group_name(&nodes)
        .max_size(7)
        .send()
        .await
        .unwrap();
    let refused = run(&moto, &["apply", out]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("changed since the saved plan was made")
            && err.contains("aws_autoscaling_group.nodes"),
        "{err}"
    );
    // Nothing was applied: the launch template still has the first image.
    let plan = run(&moto, &["plan", "-f", file]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains(&format!("\"{first}\" -> \"{second}\""))
            && text.contains("Plan: 0 to add, 2 to change, 0 to destroy."),
        "{text}"
    );
    run_ok(&moto, &["plan", "-f", file, "--out", out]);
    run_ok(&moto, &["apply", out]);
    let plan = run(&moto, &["plan", "-f", file, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );

    // The image a saved plan recorded is deregistered before it is applied.
    let third = register("clusterctl-test-3").await;
    run_ok(&moto, &["plan", "-f", file, "--out", out]);
    ec2.deregister_image()
        .image_id(&third)
        .send()
        .await
        .unwrap();
    let gone = run(&moto, &["apply", out]);
    let err = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(gone.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the image lookup 123456789012/clusterctl-test-* resolved to {third}, which no longer exists in us-east-1"
        )),
        "{err}"
    );
}

/// A zone the region does not have is named at its line of the spec (not
/// reported as every machine type being unoffered there).
#[tokio::test]
async fn unknown_zones_are_reported_at_their_line() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "us-east-1").await;
    let spec = EditedSpec::new("dev", |t| t.replace("us-east-1a", "us-east-1q"));
    let (file, line) = (spec.file(), spec.line_of("zones: [us-east-1q]"));
    let out = run(&moto, &["plan", "-f", file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:{line}:11: Cluster/dev.example.com spec.zones[0]: zone us-east-1q is not an available zone of us-east-1 (it has us-east-1a, us-east-1b,"
        )),
        "{err}"
    );
    assert!(!err.contains("not offered"), "{err}");
}

/// The AMI decides the launch template's root device name (Amazon Linux's
/// is /dev/xvda, Ubuntu's /dev/sda1), an AMI that does not exist is named at
/// its line, and so is an image whose architecture a machine type cannot run.
#[tokio::test]
async fn images_give_the_root_device_and_must_exist_and_fit_the_machine_type() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "us-east-1").await;
    let images = |cp_image: &'static str, nodes_image: &'static str| {
        move |t: String| {
            t.replace(
                "  machineType: t3.medium\n",
                &format!("  machineType: t3.medium\n  image: {cp_image}\n"),
            )
            .replace(
                "  machineType: t3.large\n",
                &format!("  machineType: t3.large\n  image: {nodes_image}\n"),
            )
        }
    };
    // tests/fixtures/moto/amis.json: …70001 is Amazon Linux x86_64, …70002 arm64.
    let mut spec = EditedSpec::new(
        "dev",
        images("ami-0000000000000dead", "ami-0b2c3d4e5f6a70001"),
    );
    let file = spec.file().to_string();
    let out = run(&moto, &["plan", "-f", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:{}:3: InstanceGroup/control-plane-us-east-1a spec.image: image ami-0000000000000dead does not exist in us-east-1",
            spec.line_of("ami-0000000000000dead")
        )),
        "{err}"
    );
    const UBUNTU: &str = "099720109477/ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*";
    spec.set(images(UBUNTU, "ami-0b2c3d4e5f6a70002"));
    let out = run(&moto, &["plan", "-f", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:{}:3: InstanceGroup/nodes spec.machineType: machine type t3.large runs x86_64, but the group's image ami-0b2c3d4e5f6a70002 is arm64",
            spec.line_of("machineType: t3.large")
        )),
        "{err}"
    );

    spec.set(images(UBUNTU, "ami-0b2c3d4e5f6a70001"));
    run_ok(&moto, &["apply", "-f", &file, "--yes"]);
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config("us-east-1").await);
    let mut devices = BTreeSet::new();
    for name in [
        "nodes.dev.example.com",
        "control-plane-us-east-1a.dev.example.com",
    ] {
        let v = ec2
            .describe_launch_template_versions()
            .launch_template_name(name)
            .versions("$Latest")
            .send()
            .await
            .unwrap();
        let data = v.launch_template_versions()[0]
            .launch_template_data()
            .unwrap();
        devices.insert((
            name,
            data.image_id().unwrap().to_string(),
            data.block_device_mappings()[0]
                .device_name()
                .unwrap()
                .to_string(),
        ));
    }
    assert_eq!(
        devices,
        BTreeSet::from([
            (
                "control-plane-us-east-1a.dev.example.com",
                "ami-0a1b2c3d4e5f60005".to_string(),
                "/dev/sda1".to_string()
            ),
            (
                "nodes.dev.example.com",
                "ami-0b2c3d4e5f6a70001".to_string(),
                "/dev/xvda".to_string()
            ),
        ])
    );
    let plan = run(&moto, &["plan", "-f", &file, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
}

/// Every type of a mixed-instances policy must run the group's image too.
#[tokio::test]
async fn a_mixed_instances_type_of_another_architecture_is_named() {
    let Some(moto) = Moto::start() else { return };
    account(&moto, "eu-west-1").await;
    let spec = EditedSpec::new("ha", |t| {
        t.replacen(
            "instances: [m6i.large, m5.large, m5a.large]",
            "instances: [m6i.large, m5.large, m6g.large]",
            1,
        )
    });
    let (file, line) = (spec.file(), spec.line_of("m6g.large"));
    let out = run(&moto, &["plan", "-f", file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:{line}:"
        )) && err.contains("InstanceGroup/spot-batch spec.mixedInstancesPolicy.instances[2]: machine type m6g.large runs arm64, but the group's image ami-0a1b2c3d4e5f60718 is x86_64"),
        "{err}"
    );
    assert!(err.contains("1 problem"), "{err}");
}
