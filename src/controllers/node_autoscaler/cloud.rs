//! The AWS side, as a small trait (cluster-autoscaler's `CloudProvider`
//! and `NodeGroup`, for Auto Scaling groups): the node groups, recent
//! capacity failures, and the two writes. [`AwsNodeGroups`] is the SDK
//! implementation, [`FakeNodeGroups`] the in-memory one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::model::{FailedActivity, Group, Instance, Taint, Template, ZoneAsg};
use super::resources::Resources;
use crate::model::naming::{
    TAG_AUTOSCALER_ENABLED, TAG_AUTOSCALER_PRIORITY, TAG_CLUSTER, TAG_INSTANCE_GROUP,
    TAG_NODE_TEMPLATE_LABEL, TAG_NODE_TEMPLATE_TAINT,
};

/// Errors of the AWS side.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {message}")]
pub struct GroupsError {
    /// The call.
    pub op: &'static str,
    /// What AWS said.
    pub message: String,
}

/// Node groups of one cluster.
#[async_trait::async_trait]
pub trait NodeGroups: Send + Sync {
    /// The autoscaled groups, one per instance group, with a zone per ASG.
    async fn groups(&self) -> Result<Vec<Group>, GroupsError>;
    /// Scaling activities of the cluster's ASGs that failed since `since`.
    async fn failures(&self, since: DateTime<Utc>) -> Result<Vec<FailedActivity>, GroupsError>;
    /// Sets an ASG's desired capacity.
    async fn set_desired(&self, asg: &str, desired: i64) -> Result<(), GroupsError>;
    /// Terminates an instance, decrementing its ASG's desired capacity.
    async fn terminate(&self, instance: &str) -> Result<(), GroupsError>;
}

/// The kubelet's defaults that make allocatable from capacity: 110 pods,
/// and 100 MiB kept back by the hard memory eviction threshold.
pub const MAX_PODS: i64 = 110;
const EVICTION_RESERVE: i64 = 100 << 20;
/// Ephemeral storage of a template without a resources tag.
const DEFAULT_EPHEMERAL: i64 = 20 << 30;

/// A template from an ASG's tags and its instance type's size.
pub fn template(
    instance_type: &str,
    vcpus: i64,
    memory_mib: i64,
    tags: &BTreeMap<String, String>,
) -> Template {
    let mut labels = BTreeMap::new();
    let mut taints = Vec::new();
    let mut ephemeral = DEFAULT_EPHEMERAL;
    for (k, v) in tags {
        if let Some(l) = k.strip_prefix(TAG_NODE_TEMPLATE_LABEL) {
            labels.insert(l.to_string(), v.clone());
        } else if let Some(key) = k.strip_prefix(TAG_NODE_TEMPLATE_TAINT) {
            // `value:Effect`, as kops and cluster-autoscaler write them.
            let (value, effect) = v.rsplit_once(':').unwrap_or(("", v.as_str()));
            taints.push(Taint {
                key: key.to_string(),
                value: (!value.is_empty()).then(|| value.to_string()),
                effect: effect.to_string(),
            });
        } else if k == "k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage" {
            ephemeral = super::resources::quantity(v, false).unwrap_or(ephemeral);
        }
    }
    Template {
        instance_type: instance_type.to_string(),
        allocatable: Resources {
            cpu_m: vcpus * 1000,
            memory: (memory_mib << 20) - EVICTION_RESERVE,
            pods: MAX_PODS,
            ephemeral,
        },
        labels,
        taints,
    }
}

/// One ASG as read: its tags and instance type resolved.
#[derive(Debug, Clone)]
pub struct AsgInfo {
    /// The ASG.
    pub asg: ZoneAsg,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its instance type.
    pub instance_type: String,
}

/// Groups ASGs by their instance-group tag (sorted by name, zones by zone).
pub fn group_asgs(asgs: Vec<AsgInfo>, sizes: &HashMap<String, (i64, i64)>) -> Vec<Group> {
    let mut by: BTreeMap<String, Vec<AsgInfo>> = BTreeMap::new();
    for a in asgs {
        let name = a
            .tags
            .get(TAG_INSTANCE_GROUP)
            .cloned()
            .unwrap_or_else(|| a.asg.name.clone());
        by.entry(name).or_default().push(a);
    }
    by.into_iter()
        .map(|(name, mut asgs)| {
            asgs.sort_by(|a, b| a.asg.zone.cmp(&b.asg.zone));
            let first = &asgs[0];
            let (vcpus, mem) = sizes.get(&first.instance_type).copied().unwrap_or((0, 0));
            let mut tags = first.tags.clone();
            // The zone label differs per ASG; the template is the group's.
            tags.retain(|k, _| !k.ends_with("topology.kubernetes.io/zone"));
            Group {
                template: template(&first.instance_type, vcpus, mem, &tags),
                priority: first
                    .tags
                    .get(TAG_AUTOSCALER_PRIORITY)
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0),
                name,
                zones: asgs.into_iter().map(|a| a.asg).collect(),
            }
        })
        .collect()
}

/// The in-memory implementation: groups as given; writes recorded and
/// applied (terminate removes the instance and decrements).
#[derive(Debug, Default)]
pub struct FakeNodeGroups {
    /// The groups.
    pub state: Mutex<Vec<Group>>,
    /// Failed activities to report.
    pub failed: Mutex<Vec<FailedActivity>>,
    /// Writes, in order: `set <asg> <n>` or `terminate <id>`.
    pub writes: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl NodeGroups for FakeNodeGroups {
    async fn groups(&self) -> Result<Vec<Group>, GroupsError> {
        Ok(self.state.lock().map(|g| g.clone()).unwrap_or_default())
    }

    async fn failures(&self, since: DateTime<Utc>) -> Result<Vec<FailedActivity>, GroupsError> {
        Ok(self
            .failed
            .lock()
            .map(|f| f.iter().filter(|a| a.at >= since).cloned().collect())
            .unwrap_or_default())
    }

    async fn set_desired(&self, asg: &str, desired: i64) -> Result<(), GroupsError> {
        let mut groups = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let a = groups
            .iter_mut()
            .flat_map(|g| g.zones.iter_mut())
            .find(|a| a.name == asg)
            .ok_or_else(|| GroupsError {
                op: "SetDesiredCapacity",
                message: format!("no ASG {asg}"),
            })?;
        if desired < a.min || desired > a.max {
            return Err(GroupsError {
                op: "SetDesiredCapacity",
                message: format!("{desired} is outside {}..{}", a.min, a.max),
            });
        }
        a.desired = desired;
        drop(groups);
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("set {asg} {desired}"));
        Ok(())
    }

    async fn terminate(&self, instance: &str) -> Result<(), GroupsError> {
        let mut groups = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let a = groups
            .iter_mut()
            .flat_map(|g| g.zones.iter_mut())
            .find(|a| a.instances.iter().any(|i| i.id == instance))
            .ok_or_else(|| GroupsError {
                op: "TerminateInstanceInAutoScalingGroup",
                message: format!("no instance {instance}"),
            })?;
        a.instances.retain(|i| i.id != instance);
        a.desired -= 1;
        drop(groups);
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("terminate {instance}"));
        Ok(())
    }
}

/// The SDK implementation.
pub struct AwsNodeGroups {
    autoscaling: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    cluster: String,
    /// Instance type → (vCPUs, MiB), read once.
    sizes: Mutex<HashMap<String, (i64, i64)>>,
    /// The cluster's ASG names, from the last `groups`.
    names: Mutex<Vec<String>>,
}

fn sdk_err<E: std::fmt::Display>(op: &'static str) -> impl Fn(E) -> GroupsError {
    move |e| GroupsError {
        op,
        message: e.to_string(),
    }
}

impl AwsNodeGroups {
    /// Node groups of `cluster` through the SDK clients.
    pub fn new(clients: &crate::cloud::Clients, cluster: &str) -> AwsNodeGroups {
        AwsNodeGroups {
            autoscaling: clients.autoscaling.clone(),
            ec2: clients.ec2.clone(),
            cluster: cluster.to_string(),
            sizes: Mutex::default(),
            names: Mutex::default(),
        }
    }

    async fn sizes_of(&self, types: &[String]) -> Result<HashMap<String, (i64, i64)>, GroupsError> {
        let missing: Vec<String> = {
            let known = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
            types
                .iter()
                .filter(|t| !known.contains_key(*t))
                .cloned()
                .collect()
        };
        for chunk in missing.chunks(100) {
            let out = self
                .ec2
                .describe_instance_types()
                .set_instance_types(Some(
                    chunk
                        .iter()
                        .map(|t| aws_sdk_ec2::types::InstanceType::from(t.as_str()))
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| {
                    sdk_err("DescribeInstanceTypes")(aws_sdk_ec2::error::DisplayErrorContext(e))
                })?;
            let mut known = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
            for t in out.instance_types() {
                let name = t
                    .instance_type()
                    .map(|x| x.as_str().to_string())
                    .unwrap_or_default();
                let vcpus = t.v_cpu_info().and_then(|v| v.default_v_cpus()).unwrap_or(0) as i64;
                let mem = t.memory_info().and_then(|m| m.size_in_mib()).unwrap_or(0);
                known.insert(name, (vcpus, mem));
            }
        }
        Ok(self.sizes.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

#[async_trait::async_trait]
impl NodeGroups for AwsNodeGroups {
    async fn groups(&self) -> Result<Vec<Group>, GroupsError> {
        use aws_sdk_autoscaling::types::Filter;
        let mut asgs = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .autoscaling
                .describe_auto_scaling_groups()
                .filters(
                    Filter::builder()
                        .name(format!("tag:{TAG_CLUSTER}"))
                        .values(&self.cluster)
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name(format!("tag:{TAG_AUTOSCALER_ENABLED}"))
                        .values("true")
                        .build(),
                )
                .max_records(100)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    sdk_err("DescribeAutoScalingGroups")(
                        aws_sdk_autoscaling::error::DisplayErrorContext(e),
                    )
                })?;
            for g in page.auto_scaling_groups() {
                let tags: BTreeMap<String, String> =
                    crate::cloud::tag_map(g.tags().iter().map(|t| (t.key(), t.value())));
                let instance_type = g
                    .mixed_instances_policy()
                    .and_then(|m| m.launch_template())
                    .and_then(|lt| lt.overrides().first())
                    .and_then(|o| o.instance_type().map(str::to_string))
                    .or_else(|| {
                        tags.get(&format!(
                            "{TAG_NODE_TEMPLATE_LABEL}node.kubernetes.io/instance-type"
                        ))
                        .cloned()
                    })
                    .unwrap_or_default();
                let instances = g
                    .instances()
                    .iter()
                    .filter(|i| {
                        !matches!(
                            i.lifecycle_state().map(|s| s.as_str()),
                            Some(
                                "Terminating"
                                    | "Terminating:Wait"
                                    | "Terminating:Proceed"
                                    | "Terminated"
                            )
                        )
                    })
                    .map(|i| Instance {
                        id: i.instance_id().unwrap_or_default().to_string(),
                        private_dns: None,
                    })
                    .collect();
                asgs.push(AsgInfo {
                    asg: ZoneAsg {
                        name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
                        zone: g.availability_zones().first().cloned().unwrap_or_default(),
                        min: i64::from(g.min_size().unwrap_or(0)),
                        max: i64::from(g.max_size().unwrap_or(0)),
                        desired: i64::from(g.desired_capacity().unwrap_or(0)),
                        instances,
                    },
                    tags,
                    instance_type,
                });
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        let mut types: Vec<String> = asgs.iter().map(|a| a.instance_type.clone()).collect();
        types.sort();
        types.dedup();
        types.retain(|t| !t.is_empty());
        let sizes = self.sizes_of(&types).await?;
        *self.names.lock().unwrap_or_else(|p| p.into_inner()) =
            asgs.iter().map(|a| a.asg.name.clone()).collect();
        Ok(group_asgs(asgs, &sizes))
    }

    async fn failures(&self, since: DateTime<Utc>) -> Result<Vec<FailedActivity>, GroupsError> {
        // One account-wide call, newest first: read pages until older than
        // `since`, keep this cluster's ASGs.
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Vec::new();
        let mut token = None;
        'pages: loop {
            let page = self
                .autoscaling
                .describe_scaling_activities()
                .max_records(100)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    sdk_err("DescribeScalingActivities")(
                        aws_sdk_autoscaling::error::DisplayErrorContext(e),
                    )
                })?;
            for a in page.activities() {
                let at = a
                    .end_time()
                    .or(a.start_time())
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), 0))
                    .unwrap_or(since);
                if at < since {
                    break 'pages;
                }
                let asg = a.auto_scaling_group_name().unwrap_or_default();
                let failed = matches!(
                    a.status_code().map(|s| s.as_str()),
                    Some("Failed" | "Cancelled")
                );
                if failed && names.iter().any(|n| n == asg) {
                    out.push(FailedActivity {
                        asg: asg.to_string(),
                        message: a.status_message().unwrap_or_default().to_string(),
                        at,
                    });
                }
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn set_desired(&self, asg: &str, desired: i64) -> Result<(), GroupsError> {
        self.autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(asg)
            .desired_capacity(desired as i32)
            .honor_cooldown(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                sdk_err("SetDesiredCapacity")(aws_sdk_autoscaling::error::DisplayErrorContext(e))
            })
    }

    async fn terminate(&self, instance: &str) -> Result<(), GroupsError> {
        self.autoscaling
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance)
            .should_decrement_desired_capacity(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                sdk_err("TerminateInstanceInAutoScalingGroup")(
                    aws_sdk_autoscaling::error::DisplayErrorContext(e),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_come_from_the_instance_type_and_the_tags() {
        let tags = BTreeMap::from([
            (
                format!("{TAG_NODE_TEMPLATE_LABEL}workload"),
                "batch".to_string(),
            ),
            (
                format!("{TAG_NODE_TEMPLATE_TAINT}dedicated"),
                "batch:NoSchedule".to_string(),
            ),
            (
                format!("{TAG_NODE_TEMPLATE_TAINT}spot"),
                ":PreferNoSchedule".to_string(),
            ),
            (
                "k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage".to_string(),
                "50Gi".to_string(),
            ),
            ("Name".to_string(), "x".to_string()),
        ]);
        let t = template("m5.large", 2, 8192, &tags);
        assert_eq!(t.allocatable.cpu_m, 2000);
        assert_eq!(t.allocatable.memory, (8192i64 << 20) - (100 << 20));
        assert_eq!(t.allocatable.pods, 110);
        assert_eq!(t.allocatable.ephemeral, 50 << 30);
        assert_eq!(t.labels["workload"], "batch");
        assert_eq!(
            t.taints[0],
            Taint {
                key: "dedicated".into(),
                value: Some("batch".into()),
                effect: "NoSchedule".into()
            }
        );
        assert_eq!(t.taints[1].value, None);
    }
}
