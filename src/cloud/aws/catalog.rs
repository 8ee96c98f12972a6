//! [`Catalog`] over the SDK: what the preflight asks of AWS before any
//! change (zones, instance-type offerings and architectures, images, DNS
//! zones). Each question is one paginated call, whatever the spec's size.

use std::collections::{HashMap, HashSet};

use aws_sdk_ec2::types as ec2;

use super::err;
use crate::cloud::{Catalog, CloudError, ImageInfo};

/// The SDK-backed catalog of one region.
#[derive(Debug, Clone)]
pub struct AwsCatalog {
    ec2: aws_sdk_ec2::Client,
    route53: aws_sdk_route53::Client,
    zone_ids: super::ZoneIds,
}

impl AwsCatalog {
    /// A catalog over these clients.
    pub fn new(clients: &crate::cloud::Clients) -> AwsCatalog {
        AwsCatalog {
            ec2: clients.ec2.clone(),
            route53: clients.route53.clone(),
            zone_ids: clients.zone_ids.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Catalog for AwsCatalog {
    async fn zones(&self) -> Result<Vec<String>, CloudError> {
        let r = self
            .ec2
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| err("DescribeAvailabilityZones", "zones", e))?;
        let mut zones: Vec<String> = r
            .availability_zones()
            .iter()
            .filter(|z| z.state() == Some(&ec2::AvailabilityZoneState::Available))
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect();
        zones.sort();
        Ok(zones)
    }

    async fn offerings(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Result<HashSet<(String, String)>, CloudError> {
        offered_instance_types(&self.ec2, types, zones).await
    }

    async fn architectures(
        &self,
        types: &[String],
    ) -> Result<HashMap<String, Vec<String>>, CloudError> {
        architectures(&self.ec2, types).await
    }

    async fn images(&self, ids: &[String]) -> Result<HashMap<String, ImageInfo>, CloudError> {
        describe_images(&self.ec2, ids).await
    }

    /// The newest available AMI of `owner` whose name matches, as
    /// Terraform's `aws_ami` data source with `most_recent = true` finds it.
    async fn newest_image(&self, owner: &str, name: &str) -> Result<Option<String>, CloudError> {
        let out = self
            .ec2
            .describe_images()
            .owners(owner)
            .filters(ec2::Filter::builder().name("name").values(name).build())
            .filters(
                ec2::Filter::builder()
                    .name("state")
                    .values("available")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| err("DescribeImages", &format!("{owner}/{name}"), e))?;
        Ok(out
            .images()
            .iter()
            .filter_map(|i| Some((i.creation_date()?, i.image_id()?)))
            .max()
            .map(|(_, id)| id.to_string()))
    }

    async fn public_zone_exists(&self, zone: &str) -> Result<bool, CloudError> {
        Ok(self.zone_ids.get(&self.route53, zone).await?.is_some())
    }
}

/// The AMIs among `ids` that exist and this account may use: one paginated
/// DescribeImages call, by `image-id` filter (a missing id is simply absent,
/// where the ImageIds parameter would fail the whole call).
async fn describe_images(
    ec2c: &aws_sdk_ec2::Client,
    ids: &[String],
) -> Result<HashMap<String, ImageInfo>, CloudError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // A deprecated public AMI still launches; without IncludeDeprecated
    // EC2 would hide it, and a running cluster's image would look missing.
    let images = all_items!(
        ec2c.describe_images().include_deprecated(true).filters(
            ec2::Filter::builder()
                .name("image-id")
                .set_values(Some(ids.to_vec()))
                .build(),
        ),
        "DescribeImages",
        "images",
    )?;
    Ok(images
        .iter()
        .filter_map(|i| {
            Some((
                i.image_id()?.to_string(),
                ImageInfo {
                    architecture: i
                        .architecture()
                        .map(|a| a.as_str().to_string())
                        .unwrap_or_default(),
                    root_device: i.root_device_name().unwrap_or("/dev/sda1").to_string(),
                },
            ))
        })
        .collect())
}

/// The architectures each of `types` supports (types EC2 does not know are
/// absent): one paginated DescribeInstanceTypes call, by filter.
async fn architectures(
    ec2c: &aws_sdk_ec2::Client,
    types: &[String],
) -> Result<HashMap<String, Vec<String>>, CloudError> {
    if types.is_empty() {
        return Ok(HashMap::new());
    }
    let found = all_items!(
        ec2c.describe_instance_types().filters(
            ec2::Filter::builder()
                .name("instance-type")
                .set_values(Some(types.to_vec()))
                .build(),
        ),
        "DescribeInstanceTypes",
        "instance types",
    )?;
    Ok(found
        .iter()
        .filter_map(|t| {
            let archs = t
                .processor_info()?
                .supported_architectures()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect();
            Some((t.instance_type()?.as_str().to_string(), archs))
        })
        .collect())
}

/// Which of `types` are offered in which of `zones`: one paginated
/// DescribeInstanceTypeOfferings call, filtered by both.
async fn offered_instance_types(
    ec2c: &aws_sdk_ec2::Client,
    types: &[String],
    zones: &[String],
) -> Result<std::collections::HashSet<(String, String)>, CloudError> {
    let pages = all_items!(
        ec2c.describe_instance_type_offerings()
            .location_type(ec2::LocationType::AvailabilityZone)
            .filters(
                ec2::Filter::builder()
                    .name("instance-type")
                    .set_values(Some(types.to_vec()))
                    .build(),
            )
            .filters(
                ec2::Filter::builder()
                    .name("location")
                    .set_values(Some(zones.to_vec()))
                    .build(),
            ),
        "DescribeInstanceTypeOfferings",
        "instance types",
    )?;
    Ok(pages
        .iter()
        .filter_map(|o| {
            Some((
                o.instance_type()?.as_str().to_string(),
                o.location()?.to_string(),
            ))
        })
        .collect())
}
