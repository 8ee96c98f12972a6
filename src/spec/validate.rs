//! Semantic validation of a defaulted spec. Every check records a problem
//! and goes on, so one run reports everything that is wrong.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

use super::defaults::overlaps;
pub use super::values::{
    Taint, cron_expression, dns_label, dns_subdomain, parse_cidr, parse_duration, parse_taint,
    parse_version,
};
use super::values::{
    image, kubernetes_version, label_key, label_value, machine_type, state_store, zone_in_region,
};
use super::{Cluster, DocRef, InstanceGroup, Reader, Role, SubnetType, Topology};

/// AWS regions this build knows. A region missing here is an error, so that
/// a typo is caught before any API call; add new regions as AWS opens them.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// Oldest Kubernetes minor version clusterctl provisions.
pub const MIN_KUBERNETES: (u64, u64) = (1, 29);

/// Tag keys clusterctl sets itself; users may not set them.
const RESERVED_TAG_PREFIXES: &[&str] = &[
    "aws:",
    "KubernetesCluster",
    "Name",
    "kubernetes.io/cluster/",
    "clusterctl.io/",
    "k8s.io/cluster-autoscaler/",
];

/// Validates a defaulted cluster and its groups, recording problems in `r`.
pub fn validate(r: &mut Reader, cluster: (&Cluster, &DocRef), groups: &[(InstanceGroup, DocRef)]) {
    let (c, d) = cluster;
    let s = &c.spec;

    if let Err(e) = dns_subdomain(&c.metadata.name) {
        r.report(
            d,
            "metadata.name",
            format!(
                "cluster name `{}` is not a DNS-1123 subdomain: {e}",
                c.metadata.name
            ),
            "use lowercase letters, digits, `-` and `.`, such as `prod.example.com`",
        );
    }

    let region_known = KNOWN_REGIONS.contains(&s.region.as_str());
    if !region_known {
        r.report(
            d,
            "spec.region",
            format!("unknown AWS region `{}`", s.region),
            "use a region code such as `eu-west-1` or `us-east-1`",
        );
    }
    if s.zones.is_empty() {
        r.report(
            d,
            "spec.zones",
            "no zones given",
            format!(
                "list at least one zone of {}, e.g. `{}a`",
                s.region, s.region
            ),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, z) in s.zones.iter().enumerate() {
        let p = format!("spec.zones[{i}]");
        if !seen.insert(z) {
            r.report(
                d,
                &p,
                format!("zone `{z}` is listed twice"),
                "list each zone once",
            );
        } else if !zone_in_region(z, &s.region) {
            r.report(
                d,
                &p,
                format!("zone `{z}` is not in region `{}`", s.region),
                format!(
                    "use a zone of {0}, such as `{0}a`, or change spec.region",
                    s.region
                ),
            );
        }
    }

    let net = match s.network_cidr.as_deref().map(parse_cidr) {
        Some(Ok(n)) if !(16..=28).contains(&n.prefix_len()) => {
            r.report(
                d,
                "spec.networkCIDR",
                format!(
                    "networkCIDR {n} has prefix /{}; AWS allows /16 to /28",
                    n.prefix_len()
                ),
                "use a block between /16 and /28, such as 10.0.0.0/16",
            );
            None
        }
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            r.report(
                d,
                "spec.networkCIDR",
                e,
                "use an IPv4 block such as 10.0.0.0/16",
            );
            None
        }
        None => None,
    };

    super::networks::cluster_networks(r, d, s, net);

    let topology = s.topology.unwrap_or(Topology::Public);
    let mut names = BTreeSet::new();
    let mut cidrs: Vec<(usize, Ipv4Net)> = Vec::new();
    let mut kinds_by_zone: BTreeMap<&str, BTreeSet<SubnetType>> = BTreeMap::new();
    for (i, sn) in s.subnets.iter().enumerate() {
        let p = format!("spec.subnets[{i}]");
        if let Some(n) = &sn.name
            && !names.insert(n.clone())
        {
            r.report(
                d,
                &format!("{p}.name"),
                format!("subnet name `{n}` is used twice"),
                "give every subnet its own name",
            );
        }
        if !s.zones.contains(&sn.zone) {
            r.report(
                d,
                &format!("{p}.zone"),
                format!("subnet zone `{}` is not one of spec.zones", sn.zone),
                "add the zone to spec.zones or move the subnet to a listed zone",
            );
        }
        kinds_by_zone
            .entry(sn.zone.as_str())
            .or_default()
            .insert(sn.kind);
        if topology == Topology::Public && sn.kind != SubnetType::Public {
            r.report(
                d,
                &format!("{p}.type"),
                format!("a {:?} subnet in public topology", sn.kind),
                "use `type: Public`, or set `spec.topology: private`",
            );
        }
        if topology == Topology::Private && sn.kind == SubnetType::Public {
            r.report(d, &format!("{p}.type"), "a Public subnet in private topology",
                "use `type: Private` for instances and `type: Utility` for load balancers and NAT gateways");
        }
        match sn.cidr.as_deref() {
            None => {
                if net.is_some() {
                    r.report(
                        d,
                        &p,
                        format!(
                            "no room left in networkCIDR for subnet `{}`",
                            sn.name.as_deref().unwrap_or(&sn.zone)
                        ),
                        "enlarge spec.networkCIDR or give the subnets smaller CIDRs",
                    );
                }
            }
            Some(text) => match parse_cidr(text) {
                Err(e) => r.report(
                    d,
                    &format!("{p}.cidr"),
                    e,
                    "use an IPv4 block such as 10.0.32.0/19, or omit cidr to allocate one",
                ),
                Ok(c) => {
                    if let Some(n) = net
                        && !n.contains(&c)
                    {
                        r.report(d, &format!("{p}.cidr"), format!("subnet {c} is outside networkCIDR {n}"),
                                format!("choose a block inside {n}, or omit cidr to allocate one automatically"));
                    }
                    if c.prefix_len() > 28 {
                        r.report(
                            d,
                            &format!("{p}.cidr"),
                            format!("subnet {c} is smaller than /28, the smallest AWS allows"),
                            "use a /28 or larger block",
                        );
                    }
                    if let Some((j, other)) = cidrs.iter().find(|(_, o)| overlaps(o, &c)) {
                        r.report(d, &format!("{p}.cidr"), format!("subnet {c} overlaps spec.subnets[{j}] ({other})"),
                            "give each subnet its own block, or omit cidr to allocate one automatically");
                    }
                    cidrs.push((i, c));
                }
            },
        }
    }
    for z in &s.zones {
        let kinds = kinds_by_zone.get(z.as_str()).cloned().unwrap_or_default();
        let need: &[SubnetType] = match topology {
            Topology::Public => &[SubnetType::Public],
            Topology::Private => &[SubnetType::Private, SubnetType::Utility],
        };
        for k in need {
            if !kinds.contains(k) && !s.subnets.is_empty() {
                r.report(d, "spec.subnets", format!("zone `{z}` has no {k:?} subnet"),
                    format!("add a subnet with `zone: {z}` and `type: {k:?}`, or omit spec.subnets to get the default layout"));
            }
        }
    }

    if let Err(e) = kubernetes_version(&s.kubernetes_version) {
        r.report(
            d,
            "spec.kubernetesVersion",
            e,
            "use a released version such as 1.33.2",
        );
    }
    if let Err(e) = dns_subdomain(&s.dns_zone) {
        r.report(
            d,
            "spec.dnsZone",
            format!("dnsZone `{}` is not a DNS name: {e}", s.dns_zone),
            "name a Route53 hosted zone, such as example.com",
        );
    }
    if let Some(api) = &s.api {
        if let Some(n) = &api.public_name
            && (dns_subdomain(n).is_err()
                || !(n == &s.dns_zone || n.ends_with(&format!(".{}", s.dns_zone))))
        {
            r.report(
                d,
                "spec.api.publicName",
                format!(
                    "publicName `{n}` is not a name inside dnsZone `{}`",
                    s.dns_zone
                ),
                format!("use a name such as api.{}", c.metadata.name),
            );
        }
        if api.port == Some(0) {
            r.report(d, "spec.api.port", "port 0 is not a port", "use 443");
        }
    }
    for (field, list) in [
        ("sshAccess", &s.ssh_access),
        ("kubernetesApiAccess", &s.kubernetes_api_access),
    ] {
        for (i, cidr) in list.iter().flatten().enumerate() {
            if let Err(e) = parse_cidr(cidr) {
                r.report(
                    d,
                    &format!("spec.{field}[{i}]"),
                    e,
                    "use an IPv4 block such as 203.0.113.0/24",
                );
            }
        }
    }
    if let Some(name) = &s.ssh_key_name
        && (name.is_empty() || name.len() > 255)
    {
        r.report(
            d,
            "spec.sshKeyName",
            "sshKeyName must be 1 to 255 characters",
            "name an EC2 key pair, or remove the field",
        );
    }
    if let Err(e) = state_store(&s.state_store) {
        r.report(
            d,
            "spec.stateStore",
            e,
            "use `s3://<bucket>/<prefix>`, such as s3://example-kops-state/clusters",
        );
    }
    super::addon_checks::check(r, d, s);
    for (k, v) in &s.tags {
        tag(r, d, &format!("spec.tags.{k}"), k, v);
    }
    if let Some(comp) = &s.components {
        if comp.image.as_deref().is_some_and(str::is_empty) {
            r.report(
                d,
                "spec.components.image",
                "image is empty",
                "name the clusterctl image, or remove the field for the default",
            );
        }
        if let Some(na) = &comp.node_autoscaler {
            duration(
                r,
                d,
                "spec.components.nodeAutoscaler.scanInterval",
                na.scan_interval.as_deref(),
            );
            if let Some(t) = na.scale_down_utilization_threshold
                && !(t > 0.0 && t <= 1.0)
            {
                r.report(
                    d,
                    "spec.components.nodeAutoscaler.scaleDownUtilizationThreshold",
                    format!("{t} is not a fraction in (0, 1]"),
                    "use a value such as 0.5",
                );
            }
        }
        if let Some(j) = &comp.janitor {
            cron(
                r,
                d,
                "spec.components.janitor.schedule",
                j.schedule.as_deref(),
            );
            duration(
                r,
                d,
                "spec.components.janitor.defaultTtl",
                j.default_ttl.as_deref(),
            );
        }
        if let Some(n) = &comp.node_cleanup {
            duration(
                r,
                d,
                "spec.components.nodeCleanup.interval",
                n.interval.as_deref(),
            );
            if let Some(t) = n.disk_threshold_percent
                && !(50..85).contains(&t)
            {
                r.report(d, "spec.components.nodeCleanup.diskThresholdPercent", format!("{t}% is outside 50..84"),
                        "stay below the kubelet's 85% image GC threshold so the two never race; 80 is the default");
            }
        }
        if let Some(p) = &comp.preview {
            cron(
                r,
                d,
                "spec.components.preview.gcSchedule",
                p.gc_schedule.as_deref(),
            );
            duration(
                r,
                d,
                "spec.components.preview.defaultTtl",
                p.default_ttl.as_deref(),
            );
            match (&p.enabled, &p.domain) {
                (Some(true), None) => r.report(
                    d,
                    "spec.components.preview",
                    "previews are enabled but no domain is set",
                    format!(
                        "set spec.components.preview.domain, such as preview.{}",
                        s.dns_zone
                    ),
                ),
                (_, Some(dom)) if dns_subdomain(dom).is_err() => r.report(
                    d,
                    "spec.components.preview.domain",
                    format!("`{dom}` is not a DNS name"),
                    "use a name such as preview.example.com",
                ),
                _ => {}
            }
        }
    }

    // Instance groups.
    let mut ig_names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut cp_members = 0u32;
    let mut cp_zones = BTreeSet::new();
    let mut last_cp: Option<&DocRef> = None;
    for (i, (g, gd)) in groups.iter().enumerate() {
        let gs = &g.spec;
        let name = &g.metadata.name;
        if let Some(first) = ig_names.insert(name, i) {
            r.report(
                gd,
                "metadata.name",
                format!(
                    "instance group name `{name}` is also used by instance group #{}",
                    first + 1
                ),
                "give every instance group its own name",
            );
        }
        if let Err(e) = dns_label(name) {
            r.report(gd, "metadata.name", format!("instance group name `{name}` is not a DNS-1123 label: {e}"),
                "use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit");
        }
        if gs.min_size > gs.max_size {
            r.report(
                gd,
                "spec.minSize",
                format!(
                    "minSize {} is greater than maxSize {}",
                    gs.min_size, gs.max_size
                ),
                "make minSize at most maxSize",
            );
        }
        if gs.max_size > 1000 {
            r.report(
                gd,
                "spec.maxSize",
                format!("maxSize {} is over 1000", gs.max_size),
                "split the group, or keep maxSize at most 1000",
            );
        }
        if !machine_type(&gs.machine_type) {
            r.report(
                gd,
                "spec.machineType",
                format!("`{}` is not an EC2 instance type", gs.machine_type),
                "use a type such as m6i.large",
            );
        }
        if let Some(img) = &gs.image
            && !image(img)
        {
            r.report(
                gd,
                "spec.image",
                format!("`{img}` is neither an AMI id nor `owner/name`"),
                "use `ami-0123456789abcdef0` or `<owner-account>/<name pattern>`",
            );
        }
        let zones = gs.zones.clone().unwrap_or_default();
        if zones.is_empty() {
            r.report(
                gd,
                "spec.zones",
                "no zones given",
                "list at least one of the cluster's zones, or omit zones for all of them",
            );
        }
        let instance_kind = match topology {
            Topology::Public => SubnetType::Public,
            Topology::Private => SubnetType::Private,
        };
        for (zi, z) in zones.iter().enumerate() {
            if !s.zones.contains(z) {
                r.report(
                    gd,
                    &format!("spec.zones[{zi}]"),
                    format!(
                        "zone `{z}` is not one of the cluster's zones ({})",
                        s.zones.join(", ")
                    ),
                    "use a zone listed in the Cluster's spec.zones",
                );
            } else if !kinds_by_zone
                .get(z.as_str())
                .is_some_and(|k| k.contains(&instance_kind))
            {
                r.report(
                    gd,
                    &format!("spec.zones[{zi}]"),
                    format!("zone `{z}` has no {instance_kind:?} subnet for instances"),
                    format!("add a {instance_kind:?} subnet in {z} to the Cluster"),
                );
            }
        }
        if let Some(size) = gs.root_volume_size
            && !(8..=16384).contains(&size)
        {
            r.report(
                gd,
                "spec.rootVolumeSize",
                format!("{size} GiB is outside 8..16384"),
                "use a size in GiB such as 64",
            );
        }
        if let Some(t) = &gs.root_volume_type
            && !["gp2", "gp3", "io1", "io2"].contains(&t.as_str())
        {
            r.report(
                gd,
                "spec.rootVolumeType",
                format!("`{t}` is not a bootable EBS volume type"),
                "use gp3, gp2, io1 or io2",
            );
        }
        if let Some(p) = &gs.max_price
            && !p.parse::<f64>().is_ok_and(|v| v > 0.0 && v.is_finite())
        {
            r.report(
                gd,
                "spec.maxPrice",
                format!("maxPrice `{p}` is not a positive price"),
                "give a USD hourly price such as \"0.10\"",
            );
        }
        if let Some(m) = &gs.mixed_instances_policy {
            if m.instances.is_empty() {
                r.report(
                    gd,
                    "spec.mixedInstancesPolicy.instances",
                    "no instance types listed",
                    "list two or more instance types, such as [m6i.large, m5.large]",
                );
            }
            for (j, t) in m.instances.iter().enumerate() {
                if !machine_type(t) {
                    r.report(
                        gd,
                        &format!("spec.mixedInstancesPolicy.instances[{j}]"),
                        format!("`{t}` is not an EC2 instance type"),
                        "use a type such as m6i.large",
                    );
                }
            }
            if m.on_demand_above_base.is_some_and(|v| v > 100) {
                r.report(
                    gd,
                    "spec.mixedInstancesPolicy.onDemandAboveBase",
                    "a percentage over 100",
                    "use 0 to 100",
                );
            }
            if let Some(st) = &m.spot_allocation_strategy {
                const S: &[&str] = &[
                    "lowest-price",
                    "capacity-optimized",
                    "capacity-optimized-prioritized",
                    "price-capacity-optimized",
                ];
                if !S.contains(&st.as_str()) {
                    r.report(
                        gd,
                        "spec.mixedInstancesPolicy.spotAllocationStrategy",
                        format!("unknown strategy `{st}`"),
                        format!("use one of: {}", S.join(", ")),
                    );
                }
            }
        }
        for (k, v) in &gs.node_labels {
            if let Err(e) = label_key(k) {
                r.report(
                    gd,
                    &format!("spec.nodeLabels.{k}"),
                    format!("label key `{k}` is invalid: {e}"),
                    "use `[prefix/]name` with a DNS prefix and a name of at most 63 characters",
                );
            }
            if let Err(e) = label_value(v) {
                r.report(
                    gd,
                    &format!("spec.nodeLabels.{k}"),
                    format!("label value `{v}` is invalid: {e}"),
                    "use at most 63 letters, digits, `-`, `_` and `.`",
                );
            }
        }
        for (j, t) in gs.taints.iter().enumerate() {
            if let Err(e) = parse_taint(t) {
                r.report(gd, &format!("spec.taints[{j}]"), format!("taint `{t}` does not parse: {e}"),
                    "write `key=value:Effect` or `key:Effect`, with Effect NoSchedule, PreferNoSchedule or NoExecute");
            }
        }
        for (k, v) in &gs.cloud_labels {
            tag(r, gd, &format!("spec.cloudLabels.{k}"), k, v);
        }
        if gs.role == Role::ControlPlane {
            last_cp = Some(gd);
            if gs.min_size != gs.max_size {
                r.report(
                    gd,
                    "spec.maxSize",
                    format!(
                        "control-plane group has minSize {} and maxSize {}",
                        gs.min_size, gs.max_size
                    ),
                    "a control-plane group has a fixed size: make minSize equal maxSize",
                );
            }
            if gs.autoscaler.as_ref().and_then(|a| a.enabled) == Some(true) {
                r.report(
                    gd,
                    "spec.autoscaler.enabled",
                    "the node autoscaler cannot manage a control-plane group",
                    "set enabled: false",
                );
            }
            cp_members += gs.min_size;
            if gs.min_size > 0 {
                cp_zones.extend(zones.iter().cloned());
            }
        }
    }
    match last_cp {
        _ if r.incomplete => {}
        None => {
            if let Some((_, gd)) = groups.last() {
                r.report(
                    gd,
                    "spec.role",
                    "no instance group has role ControlPlane",
                    "add an InstanceGroup with `role: ControlPlane` (one per zone, 1 or 3 in all)",
                );
            }
        }
        Some(gd) => {
            if cp_zones.is_empty() {
                r.report(
                    gd,
                    "spec.minSize",
                    "the control-plane groups are in no zone",
                    "give the control-plane groups minSize 1 and at least one zone",
                );
            } else if cp_members.is_multiple_of(2) {
                r.report(gd, "spec.minSize", format!("{cp_members} control-plane members in all; etcd needs an odd number for quorum"),
                    "use 1, 3 or 5 control-plane members in all");
            }
        }
    }
}

fn tag(r: &mut Reader, d: &DocRef, path: &str, k: &str, v: &str) {
    if RESERVED_TAG_PREFIXES.iter().any(|p| k.starts_with(p)) {
        r.report(
            d,
            path,
            format!("tag `{k}` is set by clusterctl itself"),
            "choose another key",
        );
    } else if k.is_empty() || k.len() > 128 || v.len() > 256 {
        r.report(
            d,
            path,
            "AWS tags take keys of 1 to 128 and values of at most 256 characters",
            "shorten the tag",
        );
    }
}

fn cron(r: &mut Reader, d: &DocRef, path: &str, expr: Option<&str>) {
    if let Some(e) = expr
        && let Err(msg) = cron_expression(e)
    {
        r.report(
            d,
            path,
            format!("schedule `{e}` is not a cron expression: {msg}"),
            "use five fields, minute hour day-of-month month day-of-week, such as \"*/30 * * * *\"",
        );
    }
}

fn duration(r: &mut Reader, d: &DocRef, path: &str, text: Option<&str>) {
    if let Some(t) = text
        && parse_duration(t).is_none()
    {
        r.report(
            d,
            path,
            format!("`{t}` is not a duration"),
            "use a number and a unit, such as 30s, 10m, 6h, 7d or 2w",
        );
    }
}
