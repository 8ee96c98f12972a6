//! The lifecycle of every example through the `clusterctl` binary against
//! moto_server: apply, a plan with no changes (exit 0 under
//! `--detailed-exitcode`), then four spec edits — maxSize, machineType, a
//! node group added, the same group removed — each planned, checked to show
//! exactly the resources of that group, applied, and planned again empty.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clusterctl::model::{Model, Props};
use clusterctl::spec::Spec;
use serde::Deserialize;
use serde_norway::Value;

use crate::moto::Moto;
use crate::support::root;

/// The documents of a spec file.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn write_documents(path: &Path, docs: &[Value]) {
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_norway::to_string(d).unwrap())
        .collect();
    std::fs::write(path, text.join("---\n")).unwrap();
}

fn group_doc<'a>(docs: &'a mut [Value], name: &str) -> &'a mut Value {
    docs.iter_mut()
        .find(|d| d["kind"].as_str() == Some("InstanceGroup") && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no instance group {name}"))
}

fn model(path: &Path) -> Model {
    clusterctl::model::build(&Spec::load(path).unwrap()).unwrap()
}

/// Addresses of a group's ASGs and of its launch template.
fn group_resources(m: &Model, group: &str) -> (BTreeSet<String>, String) {
    let mut asgs = BTreeSet::new();
    let mut lt = None;
    for r in &m.resources {
        if let Props::AutoscalingGroup {
            instance_group,
            launch_template,
            ..
        } = &r.props
            && instance_group == group
        {
            asgs.insert(r.id.address());
            lt = Some(launch_template.address());
        }
    }
    (
        asgs,
        lt.unwrap_or_else(|| panic!("group {group} has no ASG")),
    )
}

fn state_object(m: &Model, key: &str) -> String {
    m.resources
        .iter()
        .find(|r| r.id.kind == "aws_s3_object" && r.name.ends_with(&format!("/{key}")))
        .unwrap_or_else(|| panic!("no state object {key}"))
        .id
        .address()
}

/// One planned change, as `-o json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Change {
    address: String,
    action: String,
    attrs: BTreeSet<String>,
    rolling_update: bool,
}

struct Cli<'a> {
    moto: &'a Moto,
}

impl Cli<'_> {
    fn ok(&self, args: &[&str]) -> String {
        let out = self.moto.clusterctl(args).output().unwrap();
        assert!(
            out.status.success(),
            "clusterctl {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, spec: &Path) {
        self.ok(&["apply", "-f", spec.to_str().unwrap(), "--yes"]);
    }

    /// `plan --detailed-exitcode` must exit 0 and say so.
    fn assert_no_changes(&self, spec: &Path) {
        let out = self
            .moto
            .clusterctl(&["plan", "-f", spec.to_str().unwrap(), "--detailed-exitcode"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {text}{}",
            spec.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("No changes. Your infrastructure matches the configuration."),
            "{text}"
        );
    }

    fn plan(&self, spec: &Path) -> BTreeSet<Change> {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["plan", "-f", spec.to_str().unwrap(), "-o", "json"]))
                .unwrap();
        v["plan"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Change {
                address: c["address"].as_str().unwrap().to_string(),
                action: c["action"].as_str().unwrap().to_string(),
                attrs: c["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["attr"].as_str().unwrap().to_string())
                    .collect(),
                rolling_update: c["rolling_update"].as_bool().unwrap(),
            })
            .collect()
    }
}

fn update(address: &str, attrs: &[&str], rolling_update: bool) -> Change {
    Change {
        address: address.to_string(),
        action: "update".into(),
        attrs: attrs.iter().map(|a| a.to_string()).collect(),
        rolling_update,
    }
}

fn addresses(changes: &BTreeSet<Change>, action: &str) -> BTreeSet<String> {
    changes
        .iter()
        .filter(|c| c.action == action)
        .map(|c| c.address.clone())
        .collect()
}

/// Runs the whole lifecycle of `example`, editing instance group `group`.
async fn lifecycle(example: &str, region: &str, group: &str) {
    let Some(moto) = Moto::start() else { return };
    let r53 = aws_sdk_route53::Client::new(&moto.sdk_config(region).await);
    r53.create_hosted_zone()
        .name("example.com")
        .caller_reference("clusterctl-lifecycle")
        .send()
        .await
        .unwrap();
    moto.bucket(region, "example-clusterctl-state").await;
    let cli = Cli { moto: &moto };
    let dir = tempfile::tempdir().unwrap();
    let original: PathBuf = root().join(format!("examples/{example}.yaml"));
    let base = model(&original);

    cli.apply(&original);
    cli.assert_no_changes(&original);
    let store = clusterctl::state::StateStore::new(
        moto.s3(region).await,
        "example-clusterctl-state",
        &format!("clusters/{example}.example.com"),
    );
    assert_eq!(
        secret_objects(&store).await,
        9,
        "{example}: the first apply writes the CAs, SA key pair and bootstrap token"
    );

    let (asgs, lt) = group_resources(&base, group);
    let ig_object = state_object(&base, &format!("instancegroup/{group}"));
    let zones = asgs.len() as u64;

    // maxSize: every zone's share grows by one; only the ASGs and the group's stored spec change.
    let mut docs = documents(&original);
    let g = group_doc(&mut docs, group);
    let max = g["spec"]["maxSize"].as_u64().unwrap();
    g["spec"]["maxSize"] = Value::from(max + zones);
    let sized = dir.path().join("sized.yaml");
    write_documents(&sized, &docs);
    let mut want: BTreeSet<Change> = asgs
        .iter()
        .map(|a| update(a, &["max_size"], false))
        .collect();
    want.insert(update(&ig_object, &["content"], false));
    assert_eq!(cli.plan(&sized), want, "{example}: maxSize edit");
    cli.apply(&sized);
    cli.assert_no_changes(&sized);

    // machineType: a new launch template version, with the rolling-update
    // hint; the ASGs' node-template tag for the instance-type label (which
    // the node autoscaler reads to scale from zero) follows.
    let g = group_doc(&mut docs, group);
    g["spec"]["machineType"] = Value::from("m7i.2xlarge");
    let retyped = dir.path().join("retyped.yaml");
    write_documents(&retyped, &docs);
    let mut want: BTreeSet<Change> = asgs
        .iter()
        .map(|a| {
            update(
                a,
                &["tags.k8s.io/cluster-autoscaler/node-template/label/node.kubernetes.io/instance-type"],
                false,
            )
        })
        .collect();
    want.insert(update(&lt, &["instance_type"], true));
    want.insert(update(&ig_object, &["content"], false));
    assert_eq!(cli.plan(&retyped), want, "{example}: machineType edit");
    cli.apply(&retyped);
    cli.assert_no_changes(&retyped);

    // A new node group, a copy of this one: its launch template, one ASG
    // per zone and its stored spec are created, nothing else changes.
    let mut extra = group_doc(&mut docs, group).clone();
    extra["metadata"]["name"] = Value::from("extra");
    extra["spec"]["role"] = Value::from("Node");
    if let Some(labels) = extra["spec"]["nodeLabels"].as_mapping_mut() {
        labels.clear();
    }
    docs.push(extra);
    let grown = dir.path().join("grown.yaml");
    write_documents(&grown, &docs);
    let grown_model = model(&grown);
    let (extra_asgs, extra_lt) = group_resources(&grown_model, "extra");
    let mut created: BTreeSet<String> = extra_asgs.clone();
    created.insert(extra_lt);
    created.insert(state_object(&grown_model, "instancegroup/extra"));
    assert_eq!(created.len() as u64, zones + 2);
    let plan = cli.plan(&grown);
    assert_eq!(
        addresses(&plan, "create"),
        created,
        "{example}: add a group"
    );
    assert_eq!(
        plan.len(),
        created.len(),
        "{example}: only creates: {plan:?}"
    );
    cli.apply(&grown);
    cli.assert_no_changes(&grown);

    // Removing it again destroys exactly what it made.
    let plan = cli.plan(&retyped);
    assert_eq!(
        addresses(&plan, "delete"),
        created,
        "{example}: remove a group"
    );
    assert_eq!(
        plan.len(),
        created.len(),
        "{example}: only deletes: {plan:?}"
    );
    cli.apply(&retyped);
    cli.assert_no_changes(&retyped);

    // Nothing of the removed group is left in AWS.
    let groups: Vec<aws_sdk_autoscaling::types::AutoScalingGroup> =
        aws_sdk_autoscaling::Client::new(&moto.sdk_config(region).await)
            .describe_auto_scaling_groups()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .unwrap();
    let names: Vec<&str> = groups
        .iter()
        .filter_map(|g| g.auto_scaling_group_name())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with("extra")), "{names:?}");
    let all_asgs = base
        .resources
        .iter()
        .filter(|r| r.id.kind == "aws_autoscaling_group")
        .count();
    assert_eq!(names.len(), all_asgs, "{example}: ASGs, no duplicates");

    destroy_leaves_what_we_do_not_own(&moto, &cli, &retyped, region, example).await;
}

/// Someone puts a security group and a subnet into the cluster's VPC; plan
/// and destroy report both, destroy removes everything that carries the
/// cluster's tag and neither of them.
async fn destroy_leaves_what_we_do_not_own(
    moto: &Moto,
    cli: &Cli<'_>,
    spec: &Path,
    region: &str,
    example: &str,
) {
    let cluster = format!("{example}.example.com");
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config(region).await);
    let tagged = || {
        aws_sdk_ec2::types::Filter::builder()
            .name("tag:KubernetesCluster")
            .values(&cluster)
            .build()
    };
    let vpcs = ec2.describe_vpcs().filters(tagged()).send().await.unwrap();
    let [vpc] = vpcs.vpcs() else {
        panic!("{example}: one VPC expected: {vpcs:?}")
    };
    let cidr: ipnet::Ipv4Net = vpc.cidr_block().unwrap().parse().unwrap();
    let last = ipnet::Ipv4Net::new(
        std::net::Ipv4Addr::from(u32::from(cidr.broadcast()) & !0xf),
        28,
    )
    .unwrap();
    // It carries the ownership tag alone, as a load balancer's security
    // group made by the AWS cloud provider does: not found by the
    // KubernetesCluster tag, so not ours to delete, and reported.
    let sg = ec2
        .create_security_group()
        .group_name("database-not-ours")
        .description("made outside clusterctl")
        .vpc_id(vpc.vpc_id().unwrap())
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key(format!("kubernetes.io/cluster/{cluster}"))
                        .value("owned")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let sg_id = sg.group_id().unwrap().to_string();
    // Tagged with the cluster's name (copied tags, say) but not marked
    // owned: not ours, so reported and never deleted.
    let subnet = ec2
        .create_subnet()
        .vpc_id(vpc.vpc_id().unwrap())
        .cidr_block(last.to_string())
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Subnet)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("KubernetesCluster")
                        .value(&cluster)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let subnet_id = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
    // A database's network interface in that subnet.
    let eni = ec2
        .create_network_interface()
        .subnet_id(&subnet_id)
        .description("RDSNetworkInterface")
        .send()
        .await
        .unwrap();
    let eni_id = eni
        .network_interface()
        .unwrap()
        .network_interface_id()
        .unwrap()
        .to_string();

    let v: serde_json::Value =
        serde_json::from_str(&cli.ok(&["plan", "-f", spec.to_str().unwrap(), "-o", "json"]))
            .unwrap();
    let mut reported: Vec<(String, String)> = v["plan"]["untouched"]
        .as_array()
        .unwrap_or_else(|| panic!("{example}: no untouched list: {v}"))
        .iter()
        .map(|u| {
            (
                u["kind"].as_str().unwrap().to_string(),
                u["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    reported.sort();
    assert_eq!(
        reported,
        [
            ("aws_network_interface".to_string(), eni_id.clone()),
            ("aws_security_group".to_string(), sg_id.clone()),
            ("aws_subnet".to_string(), subnet_id.clone())
        ],
        "{example}"
    );

    // The first control-plane instance to boot would have left this.
    let store = clusterctl::state::StateStore::new(
        moto.s3(region).await,
        "example-clusterctl-state",
        &format!("clusters/{cluster}"),
    );
    store
        .put(
            clusterctl::state::secrets::INIT_MARKER,
            b"ip-10-0-0-1".to_vec(),
        )
        .await
        .unwrap();

    // AWS refuses to delete a VPC that still holds a subnet: destroy removes
    // everything else, reports what it left and why the VPC stays, exit 1.
    let out = cli
        .moto
        .clusterctl(&["destroy", "-f", spec.to_str().unwrap(), "--yes"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{example}: {stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "Left untouched: 3 resources in the cluster's VPC without the tag kubernetes.io/cluster/{cluster}=owned"
        )) && stdout.contains(&format!("aws_security_group {sg_id} (database-not-ours)"))
            && stdout.contains(&format!("aws_network_interface {eni_id} (RDSNetworkInterface)"))
            && stdout.contains(&format!("aws_subnet {subnet_id}"))
            && stdout.contains("AWS refuses to delete a VPC"),
        "{stdout}"
    );
    assert!(
        stderr.contains("DeleteVpc") && stderr.contains("DependencyViolation"),
        "{stderr}"
    );
    assert_eq!(
        moto.tagged_counts(region, &cluster).await,
        [1, 1, 0, 0, 0],
        "{example}: only the VPC is left, and the foreign subnet carrying the cluster's name"
    );
    // No control plane is left, so the init marker went; the secrets stay
    // until the destroy is complete.
    assert!(
        store
            .get(clusterctl::state::secrets::INIT_MARKER)
            .await
            .unwrap()
            .is_none(),
        "{example}"
    );
    assert_eq!(secret_objects(&store).await, 9, "{example}");
    // Once its owner removes the database and the subnet, destroy finishes;
    // the foreign security group is still reported and still there.
    ec2.delete_network_interface()
        .network_interface_id(&eni_id)
        .send()
        .await
        .unwrap();
    ec2.delete_subnet()
        .subnet_id(&subnet_id)
        .send()
        .await
        .unwrap();
    let out = cli.ok(&["destroy", "-f", spec.to_str().unwrap(), "--yes"]);
    assert!(
        out.contains("Left untouched: 1 resource")
            && out.contains("Destroy complete! Resources: 0 added, 0 changed, 1 destroyed."),
        "{out}"
    );
    assert_eq!(
        moto.tagged_counts(region, &cluster).await,
        [0; 5],
        "{example}: nothing with the cluster's tag is left"
    );
    let sg_left = ec2
        .describe_security_groups()
        .group_ids(&sg_id)
        .send()
        .await
        .unwrap();
    assert_eq!(sg_left.security_groups().len(), 1, "{example}");
    assert_eq!(
        secret_objects(&store).await,
        0,
        "{example}: destroy removes the secrets"
    );
}

async fn secret_objects(store: &clusterctl::state::StateStore) -> usize {
    store
        .list()
        .await
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("pki/") || k.starts_with("secrets/"))
        .count()
}

#[tokio::test]
async fn dev_example_lifecycle() {
    lifecycle("dev", "us-east-1", "nodes").await;
}

#[tokio::test]
async fn ha_example_lifecycle() {
    lifecycle("ha", "eu-west-1", "nodes").await;
}

#[tokio::test]
async fn large_example_lifecycle() {
    lifecycle("large", "us-west-2", "pool-02").await;
}
