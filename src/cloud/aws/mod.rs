//! The AWS implementation of [`Cloud`], over the SDK. One module per area,
//! each owning find, create, update and delete for its kinds, as kops has
//! one file per task:
//!
//! | module       | kinds |
//! |--------------|-------|
//! | [`network`]  | VPC, internet gateway, subnets, route tables, routes, associations, Elastic IPs, NAT gateways |
//! | [`security`] | security groups and their rules |
//! | [`iam`]      | roles, inline policies, instance profiles |
//! | [`objects`]  | the state store's managed objects |
//! | [`compute`]  | launch templates, Auto Scaling groups ([`launch_templates`]: their data and discovery) |
//! | [`edge`]     | load balancer, target group, listener |
//! | [`dns`]      | Route53 records (with their TXT ownership records) |
//!
//! plus [`catalog`] (what the preflight asks of AWS) and [`untouched`]
//! (what sits in the cluster's VPC without its ownership tag).
//!
//! Discovery makes one paginated Describe call per resource type (never one
//! per resource); resources are matched to the model by type and name, so
//! resources the Terraform target made are recognised too. What lives in
//! the cluster's VPC is described once, by VPC id, and serves both the
//! discovery and the untouched report.
//!
//! Every delete first checks, with a call of its own, that the resource
//! carries this cluster's ownership mark: the plan's filter is one check,
//! this is the second, independent one.

/// Every item of a paginated describe request, in order, or the call's
/// error as `op` on `address`. A macro: each request's paginator is a
/// type of its own.
macro_rules! all_items {
    ($request:expr, $op:literal, $address:expr $(,)?) => {
        $request
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| err($op, $address, e))
    };
}

mod catalog;
mod compute;
mod dns;
mod edge;
mod iam;
mod launch_templates;
mod network;
mod objects;
mod security;
mod untouched;

use std::collections::HashMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use tracing::Instrument;

pub use catalog::AwsCatalog;
pub use dns::ZoneIds;

use super::{Cloud, CloudError, Discovery, IdMap, call_error as err, ec2_tags};
use crate::model::naming::{TAG_CLUSTER, ownership_tag, tf_label};
use crate::model::{Model, Resource};
use crate::resource::{Actual, AttrChange, Attrs, Kind, attrs::tags as tag_attrs};

/// The SDK-backed cloud.
#[derive(Debug)]
pub struct AwsCloud {
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    autoscaling: aws_sdk_autoscaling::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    route53: aws_sdk_route53::Client,
    zone_ids: ZoneIds,
    attempts: super::AttemptCounter,
    cluster: String,
    bucket: String,
    prefix: String,
    /// The state bucket's expected owner.
    expected_owner: Option<String>,
}

fn tag_spec(kind: ResourceType, r: &Resource) -> TagSpecification {
    let tags: Vec<Tag> = r
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags))
        .build()
}

/// Model addresses by (kind, AWS name).
struct Names(HashMap<(Kind, String), String>);

impl Names {
    fn of(model: &Model) -> Names {
        Names(
            model
                .resources
                .iter()
                .map(|r| ((r.id.kind, r.name.clone()), r.id.address()))
                .collect(),
        )
    }

    fn address(&self, kind: Kind, name: &str) -> String {
        self.0
            .get(&(kind, name.to_string()))
            .cloned()
            .unwrap_or_else(|| format!("{kind}.{}", tf_label(name)))
    }

    fn wants(&self, kind: Kind, name: &str) -> bool {
        self.0.contains_key(&(kind, name.to_string()))
    }
}

impl AwsCloud {
    /// A cloud for `cluster` over these clients, with its state objects at
    /// `s3://bucket/prefix/`.
    pub fn new(clients: &super::Clients, cluster: &str, bucket: &str, prefix: &str) -> AwsCloud {
        AwsCloud {
            ec2: clients.ec2.clone(),
            s3: clients.s3.clone(),
            iam: clients.iam.clone(),
            autoscaling: clients.autoscaling.clone(),
            elb: clients.elb.clone(),
            route53: clients.route53.clone(),
            zone_ids: clients.zone_ids.clone(),
            attempts: clients.attempts.clone(),
            cluster: cluster.to_string(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            expected_owner: None,
        }
    }

    /// Names `account` as the state bucket's expected owner on every S3
    /// request (see `StateStore::with_expected_owner`).
    pub fn with_expected_owner(mut self, account: Option<String>) -> AwsCloud {
        self.expected_owner = account;
        self
    }

    /// SDK attempts so far (retries included).
    pub fn attempts(&self) -> u64 {
        self.attempts.get()
    }

    /// SDK operations so far, and how many extra attempts (retries) they took.
    pub fn retries(&self) -> (u64, u64) {
        (self.attempts.operations(), self.attempts.retries())
    }

    fn owned_filter(&self) -> Filter {
        Filter::builder()
            .name(format!("tag:{TAG_CLUSTER}"))
            .values(&self.cluster)
            .build()
    }

    /// Both marks of this cluster: `KubernetesCluster=<name>` and
    /// `kubernetes.io/cluster/<name>=owned`. Either alone (or `shared`) is
    /// not ours.
    fn is_ours(&self, tags: &std::collections::BTreeMap<String, String>) -> bool {
        tags.get(TAG_CLUSTER) == Some(&self.cluster)
            && tags
                .get(&ownership_tag(&self.cluster))
                .is_some_and(|v| v == "owned")
    }

    fn actual(&self, kind: Kind, names: &Names, id: &str, t: &[Tag], attrs: Attrs) -> Actual {
        let tags = ec2_tags(t);
        let name = tags.get("Name").cloned().unwrap_or_else(|| id.to_string());
        let owned = self.is_ours(&tags);
        let mut a = attrs;
        tag_attrs(&mut a, "tags", &tags);
        Actual {
            address: names.address(kind, &name),
            kind,
            name,
            id: id.to_string(),
            attrs: a,
            owned,
        }
    }

    /// Refuses unless the EC2 resource `id` carries both of this cluster's
    /// tags (one DescribeTags call).
    async fn ensure_ec2_owned(
        &self,
        kind: Kind,
        address: &str,
        id: &str,
    ) -> Result<(), CloudError> {
        let r = self
            .ec2
            .describe_tags()
            .filters(Filter::builder().name("resource-id").values(id).build())
            .send()
            .await
            .map_err(|e| err("DescribeTags", address, e))?;
        let tags = crate::cloud::tag_map(r.tags().iter().map(|t| (t.key(), t.value())));
        self.refuse_unless(self.is_ours(&tags), kind, address, id)
    }

    fn refuse_unless(
        &self,
        owned: bool,
        kind: Kind,
        address: &str,
        id: &str,
    ) -> Result<(), CloudError> {
        if owned {
            Ok(())
        } else {
            Err(CloudError::NotOwned {
                kind,
                address: address.to_string(),
                id: id.to_string(),
                cluster: self.cluster.clone(),
            })
        }
    }

    /// Checks the ownership mark of what `delete` is about to remove, with
    /// calls of its own: the tags of EC2, IAM, Auto Scaling and load
    /// balancer resources (of the parent, for routes, associations, rules,
    /// inline policies and listeners), the key of a state object, the TXT
    /// ownership record of a DNS record.
    async fn ensure_owned(&self, kind: Kind, address: &str, id: &str) -> Result<(), CloudError> {
        match kind {
            Kind::Vpc
            | Kind::InternetGateway
            | Kind::Subnet
            | Kind::RouteTable
            | Kind::Eip
            | Kind::NatGateway
            | Kind::SecurityGroup
            | Kind::LaunchTemplate => self.ensure_ec2_owned(kind, address, id).await,
            Kind::Route => {
                let rt = id.split_once('|').map(|(rt, _)| rt).unwrap_or(id);
                self.ensure_ec2_owned(kind, address, rt).await
            }
            Kind::SecurityGroupRule => {
                let sg = id.split_once('|').map(|(sg, _)| sg).unwrap_or_default();
                self.ensure_ec2_owned(kind, address, sg).await
            }
            Kind::RouteTableAssociation => {
                network::ensure_association_owned(self, address, id).await
            }
            Kind::IamRole | Kind::IamRolePolicy | Kind::IamInstanceProfile => {
                iam::ensure_owned(self, kind, address, id).await
            }
            Kind::S3Object => {
                let owned = objects::is_managed_key(&self.prefix, id);
                self.refuse_unless(owned, kind, address, id)
            }
            Kind::AutoscalingGroup => compute::ensure_asg_owned(self, address, id).await,
            Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener => {
                edge::ensure_owned(self, kind, address, id).await
            }
            // Checked by the delete itself, against the records as they
            // are at that moment (see `dns::delete`).
            Kind::DnsRecord => Ok(()),
        }
    }

    /// Applies tag changes (`tags.<key>`) to an EC2 resource.
    async fn update_ec2_tags(
        &self,
        address: &str,
        actual_id: &str,
        changes: &[AttrChange],
    ) -> Result<(), CloudError> {
        let set: Vec<Tag> = changes
            .iter()
            .filter_map(|c| {
                Some(
                    Tag::builder()
                        .key(c.attr.strip_prefix("tags.")?)
                        .value(c.new.as_ref()?)
                        .build(),
                )
            })
            .collect();
        if !set.is_empty() {
            self.ec2
                .create_tags()
                .resources(actual_id)
                .set_tags(Some(set))
                .send()
                .await
                .map_err(|e| err("CreateTags", address, e))?;
        }
        let unset: Vec<Tag> = changes
            .iter()
            .filter(|c| c.new.is_none())
            .filter_map(|c| Some(Tag::builder().key(c.attr.strip_prefix("tags.")?).build()))
            .collect();
        if !unset.is_empty() {
            self.ec2
                .delete_tags()
                .resources(actual_id)
                .set_tags(Some(unset))
                .send()
                .await
                .map_err(|e| err("DeleteTags", address, e))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Cloud for AwsCloud {
    async fn discover(&self, model: &Model) -> Result<Discovery, CloudError> {
        // Every area reads what it needs at once, and within an area a call
        // waits only for the answer it filters on (the VPCs' contents for
        // the VPC ids, rules for the groups, listeners for the load
        // balancers, records for the zone); pages stay in order. Only then
        // is anything matched to the model, area by area, in the order
        // their ids refer to each other: the network (with its security
        // groups), IAM, the state objects, launch templates, the edge, DNS
        // (alias targets name load balancers) and Auto Scaling groups.
        let names = Names::of(model);
        let (scan, (roles, iam_ids), objs, lts, edge, zones, groups) = tokio::try_join!(
            network::fetch(self),
            async {
                let mut ids = HashMap::new();
                let out = iam::discover(self, &names, &mut ids).await?;
                Ok::<_, CloudError>((out, ids))
            },
            objects::discover(self, model),
            launch_templates::fetch(self),
            edge::fetch(self, model),
            dns::fetch(self, model),
            compute::fetch_asgs(self),
        )?;
        let mut by_id: HashMap<String, String> = HashMap::new();
        let mut out = network::actuals(self, &names, &scan, &mut by_id);
        out.extend(security::actuals(self, model, &names, &scan, &mut by_id));
        by_id.extend(iam_ids);
        out.extend(roles);
        out.extend(objs);
        out.extend(launch_templates::actuals(self, &lts, &mut by_id));
        let (lbs, lb_dns) = edge::actuals(self, model, &edge, &mut by_id);
        out.extend(lbs);
        out.extend(dns::actuals(self, model, &zones, &lb_dns));
        out.extend(compute::asg_actuals(self, &groups, &by_id));
        let untouched = untouched::report(self, &scan, &out);
        Ok(Discovery {
            actual: out,
            untouched,
        })
    }

    async fn create(&self, r: &Resource, ids: &IdMap) -> Result<String, CloudError> {
        let span = tracing::info_span!("create", address = %r.id.address());
        async {
            match r.id.kind {
                Kind::Vpc
                | Kind::InternetGateway
                | Kind::Subnet
                | Kind::RouteTable
                | Kind::Route
                | Kind::RouteTableAssociation
                | Kind::Eip
                | Kind::NatGateway => network::create(self, r, ids).await,
                Kind::SecurityGroup | Kind::SecurityGroupRule => {
                    security::create(self, r, ids).await
                }
                Kind::IamRole | Kind::IamRolePolicy | Kind::IamInstanceProfile => {
                    iam::create(self, r, ids).await
                }
                Kind::S3Object => objects::create(self, r).await,
                Kind::LaunchTemplate | Kind::AutoscalingGroup => {
                    compute::create(self, r, ids).await
                }
                Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener => {
                    edge::create(self, r, ids).await
                }
                Kind::DnsRecord => dns::upsert(self, r, ids).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn update(
        &self,
        r: &Resource,
        actual_id: &str,
        changes: &[AttrChange],
        ids: &IdMap,
    ) -> Result<(), CloudError> {
        let span = tracing::info_span!("update", address = %r.id.address(), id = actual_id);
        async {
            match r.id.kind {
                Kind::Vpc
                | Kind::InternetGateway
                | Kind::Subnet
                | Kind::RouteTable
                | Kind::Route
                | Kind::RouteTableAssociation
                | Kind::Eip
                | Kind::NatGateway => network::update(self, r, actual_id, changes).await,
                Kind::SecurityGroup | Kind::SecurityGroupRule => {
                    self.update_ec2_tags(&r.id.address(), actual_id, changes)
                        .await
                }
                // Writing again is the update.
                Kind::S3Object => objects::create(self, r).await.map(|_| ()),
                Kind::IamRole | Kind::IamRolePolicy | Kind::IamInstanceProfile => {
                    iam::update(self, r, actual_id, changes, ids).await
                }
                Kind::LaunchTemplate | Kind::AutoscalingGroup => {
                    compute::update(self, r, actual_id, changes, ids).await
                }
                Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener => {
                    edge::update(self, r, actual_id, changes, ids).await
                }
                Kind::DnsRecord => dns::upsert(self, r, ids).await.map(|_| ()),
            }
        }
        .instrument(span)
        .await
    }

    async fn delete(&self, kind: Kind, address: &str, id: &str) -> Result<(), CloudError> {
        let span = tracing::info_span!("delete", %address, id);
        async {
            self.ensure_owned(kind, address, id).await?;
            match kind {
                Kind::Vpc
                | Kind::InternetGateway
                | Kind::Subnet
                | Kind::RouteTable
                | Kind::Route
                | Kind::RouteTableAssociation
                | Kind::Eip
                | Kind::NatGateway => network::delete(self, kind, address, id).await,
                Kind::SecurityGroup | Kind::SecurityGroupRule => {
                    security::delete(self, kind, address, id).await
                }
                Kind::IamRole | Kind::IamRolePolicy | Kind::IamInstanceProfile => {
                    iam::delete(self, kind, address, id).await
                }
                Kind::S3Object => objects::delete(self, address, id).await,
                Kind::LaunchTemplate | Kind::AutoscalingGroup => {
                    compute::delete(self, kind, address, id).await
                }
                Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener => {
                    edge::delete(self, kind, address, id).await
                }
                Kind::DnsRecord => dns::delete(self, address, id).await,
            }
        }
        .instrument(span)
        .await
    }

    /// SDK operations, counted by the clients' interceptor (retries are not
    /// extra operations; see [`AwsCloud::retries`]).
    fn calls(&self) -> u64 {
        self.attempts.operations()
    }
}
