//! Golden files of every rendered file of every example, determinism, and
//! `render --check`.

use std::process::Command;

use clusterctl::model;
use clusterctl::render;
use clusterctl::spec::Spec;

use crate::support::{EXAMPLES, clusterctl, render_example, root};

fn rendered(example: &str) -> render::Rendered {
    let spec = Spec::load(&root().join(format!("examples/{example}.yaml"))).unwrap();
    let m = model::build(&spec).unwrap();
    render::render(&m).unwrap()
}

#[test]
fn golden_files() {
    for example in EXAMPLES {
        let r = rendered(example);
        insta::with_settings!({ snapshot_path => format!("snapshots/render/{example}"), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!("_file_list", r.files.keys().cloned().collect::<Vec<_>>().join("\n"));
            for (path, content) in &r.files {
                insta::assert_snapshot!(path.replace('/', "__"), content);
            }
        });
    }
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    for example in EXAMPLES {
        let a = render_example(example);
        let b = render_example(example);
        let diff = Command::new("diff")
            .arg("-r")
            .arg(a.path())
            .arg(b.path())
            .output()
            .unwrap();
        assert!(
            diff.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&diff.stdout)
        );
        assert_eq!(rendered(example).files, rendered(example).files);
    }
}

#[test]
fn check_detects_stale_output() {
    let dir = render_example("ha");
    let d = dir.path().to_str().unwrap();
    let fresh = clusterctl(&["render", "-f", "examples/ha.yaml", "-o", d, "--check"]);
    assert_eq!(
        fresh.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fresh.stdout)
    );

    let edited = dir.path().join("terraform/network.tf");
    let mut text = std::fs::read_to_string(&edited).unwrap();
    text.push_str("# hand edit\n");
    std::fs::write(&edited, text).unwrap();
    std::fs::remove_file(dir.path().join("addons/bootstrap-channel.yaml")).unwrap();
    std::fs::write(dir.path().join("terraform/stray.tf"), "").unwrap();
    let stale = clusterctl(&["render", "-f", "examples/ha.yaml", "-o", d, "--check"]);
    let stdout = String::from_utf8_lossy(&stale.stdout);
    assert_eq!(stale.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("changed  terraform/network.tf"), "{stdout}");
    assert!(
        stdout.contains("missing  addons/bootstrap-channel.yaml"),
        "{stdout}"
    );
    assert!(stdout.contains("extra    terraform/stray.tf"), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("  ")).count(),
        3,
        "{stdout}"
    );

    // Rendering again repairs it: new content, the missing file back, the stray file gone.
    let again = clusterctl(&["render", "-f", "examples/ha.yaml", "-o", d]);
    assert!(again.status.success());
    let fresh = clusterctl(&["render", "-f", "examples/ha.yaml", "-o", d, "--check"]);
    assert_eq!(fresh.status.code(), Some(0));
}

#[test]
fn model_has_the_expected_shape() {
    let spec = Spec::load(&root().join("examples/ha.yaml")).unwrap();
    let m = model::build(&spec).unwrap();
    let c = m.counts();
    assert_eq!(c["aws_vpc"], 1);
    assert_eq!(c["aws_subnet"], 6, "private + utility per zone");
    assert_eq!(c["aws_nat_gateway"], 3, "a NAT gateway per zone");
    // 3 control-plane groups in one zone each, 2 node groups over 3 zones.
    assert_eq!(c["aws_autoscaling_group"], 3 + 2 * 3);
    assert_eq!(c["aws_launch_template"], 5);
    // Every referenced resource exists and comes earlier.
    for (i, r) in m.resources.iter().enumerate() {
        for d in r.deps() {
            let j = m
                .resources
                .iter()
                .position(|x| &x.id == d)
                .unwrap_or_else(|| panic!("{} refers to missing {}", r.id.address(), d.address()));
            assert!(
                j < i,
                "{} comes before its dependency {}",
                r.id.address(),
                d.address()
            );
        }
    }
    // Labels are unique.
    let mut ids: Vec<_> = m.resources.iter().map(|r| r.id.address()).collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n);
    // Every taggable resource carries the ownership tags.
    for r in m.resources.iter().filter(|r| !r.tags.is_empty()) {
        assert_eq!(
            r.tags.get("KubernetesCluster").map(String::as_str),
            Some("ha.example.com"),
            "{}",
            r.id.address()
        );
        assert_eq!(
            r.tags
                .get("kubernetes.io/cluster/ha.example.com")
                .map(String::as_str),
            Some("owned")
        );
    }
    // Node-template tags let the autoscaler scale from zero.
    let spot = m
        .of_kind(clusterctl::resource::Kind::AutoscalingGroup)
        .find(|r| r.name.starts_with("spot-batch-eu-west-1a"))
        .unwrap();
    assert_eq!(
        spot.tags["k8s.io/cluster-autoscaler/node-template/label/workload"],
        "batch"
    );
    assert_eq!(
        spot.tags["k8s.io/cluster-autoscaler/node-template/taint/dedicated"],
        "batch:NoSchedule"
    );
    assert_eq!(spot.tags["clusterctl.io/instancegroup"], "spot-batch");
}

#[test]
fn secrets_never_appear_in_rendered_files() {
    for example in EXAMPLES {
        for (path, content) in rendered(example).files {
            for needle in [
                "BEGIN RSA PRIVATE KEY",
                "BEGIN CERTIFICATE",
                "BEGIN PRIVATE KEY",
            ] {
                assert!(!content.contains(needle), "{path} contains {needle}");
            }
            if path.contains("user_data") {
                assert!(
                    content.contains("fetch secrets/bootstrap-token"),
                    "{path} fetches the token at boot"
                );
                // The token is read into kubeadm's config file at boot,
                // from the private work directory, never written here.
                for line in content.lines().filter(|l| l.contains("token: \"")) {
                    assert_eq!(
                        line.trim().trim_start_matches("- "),
                        "token: \"$(cat \"${WORK}/bootstrap-token\")\"",
                        "{path}"
                    );
                }
            }
        }
    }
}

#[test]
fn large_example_is_generated_by_its_script() {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let st = Command::new(root().join("scripts/gen-large-example"))
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read_to_string(tmp.path()).unwrap(),
        std::fs::read_to_string(root().join("examples/large.yaml")).unwrap(),
        "examples/large.yaml is stale: run scripts/gen-large-example"
    );
}

#[test]
fn channel_hashes_match_manifests() {
    use sha2::Digest;
    let r = rendered("ha");
    let channel: serde_json::Value =
        serde_norway::from_str(&r.files["addons/bootstrap-channel.yaml"]).unwrap();
    let addons = channel["spec"]["addons"].as_array().unwrap();
    assert_eq!(
        addons.len(),
        12,
        "the pod network, token rotation, the cloud controller manager, the EBS CSI driver, 3 addons and 5 enabled components"
    );
    let names: Vec<&str> = addons.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        &names[..5],
        [
            "cilium.addons.clusterctl.io",
            "bootstrap-token.addons.clusterctl.io",
            "aws-cloud-controller-manager.addons.clusterctl.io",
            "aws-ebs-csi-driver.addons.clusterctl.io",
            "coredns.addons.clusterctl.io"
        ],
        "the network, then what initialises nodes, before what needs them"
    );
    // The cloud controller manager matches the cluster's minor (ha: 1.33).
    assert!(
        r.files["addons/aws-cloud-controller-manager/k8s-1.33.yaml"]
            .contains("cloud-controller-manager:v1.33.2\"")
    );
    assert!(r.files["addons/aws-ebs-csi-driver/k8s-1.29.yaml"].contains("replicas: 2"));
    // CoreDNS serves at the tenth address of the service range, where
    // kubeadm points every kubelet; Cilium reaches the API by its internal name.
    assert!(r.files["addons/coredns/k8s-1.29.yaml"].contains("clusterIP: 100.64.0.10"));
    assert!(
        r.files["addons/cilium/k8s-1.29.yaml"].contains("value: \"api.internal.ha.example.com\"")
    );
    for a in addons {
        let manifest = &r.files[&format!("addons/{}", a["manifest"].as_str().unwrap())];
        assert_eq!(
            a["manifestHash"].as_str().unwrap(),
            hex::encode(sha2::Sha256::digest(manifest.as_bytes()))
        );
        semver::VersionReq::parse(a["kubernetesVersion"].as_str().unwrap()).unwrap();
        assert!(
            a["selector"]["k8s-addon"]
                .as_str()
                .unwrap()
                .ends_with(".addons.clusterctl.io")
        );
    }
    // dev.yaml leaves the queue autoscaler and previews off.
    let dev = rendered("dev");
    assert!(
        !dev.files
            .keys()
            .any(|k| k.contains("queue-autoscaler") || k.contains("preview-gc"))
    );
    assert!(dev.files["addons/janitor/v0.1.0.yaml"].contains("*/30 * * * *"));
    assert!(
        r.files["addons/janitor/v0.1.0.yaml"].contains("*/15 * * * *"),
        "the spec's schedule reaches the CronJob"
    );
}
