//! Every default of the spec, in one place. [`apply`] turns a user spec into
//! the fully defaulted spec (`cluster-completed.spec`); it never fails and
//! never guesses at invalid input: validation runs afterwards.

use ipnet::Ipv4Net;

use super::types::*;

/// VPC CIDR when none is given.
pub const NETWORK_CIDR: &str = "10.0.0.0/16";
/// Pod addresses (kops' default), outside every VPC range.
pub const POD_CIDR: &str = "100.96.0.0/11";
/// Service cluster IPs (kops' default).
pub const SERVICE_CIDR: &str = "100.64.0.0/13";
/// Topology when none is given.
pub const TOPOLOGY: Topology = Topology::Public;
/// API listener port.
pub const API_PORT: u16 = 443;
/// Who may reach the API when nothing is said.
pub const KUBERNETES_API_ACCESS: &[&str] = &["0.0.0.0/0"];
/// Addons installed when the spec lists none.
pub const ADDONS: &[&str] = &["coredns", "metrics-server", "traefik"];
/// Image of the clusterctl components.
pub const COMPONENT_IMAGE: &str = concat!("clusterctl:", env!("CARGO_PKG_VERSION"));
/// Node autoscaler loop interval (cluster-autoscaler's scan interval).
pub const NODE_AUTOSCALER_SCAN_INTERVAL: &str = "10s";
/// Requested-utilization threshold for scale-down (cluster-autoscaler's 0.5).
pub const NODE_AUTOSCALER_SCALE_DOWN_THRESHOLD: f64 = 0.5;
/// Janitor CronJob schedule.
pub const JANITOR_SCHEDULE: &str = "*/30 * * * *";
/// Age after which the janitor removes finished Jobs and empty ReplicaSets.
pub const JANITOR_DEFAULT_TTL: &str = "7d";
/// Node cleanup sweep interval.
pub const NODE_CLEANUP_INTERVAL: &str = "1h";
/// Node cleanup disk threshold, below the kubelet's 85% image GC high mark.
pub const NODE_CLEANUP_DISK_THRESHOLD: u8 = 80;
/// Preview garbage collection schedule (Jenkins X runs its GC every 30 minutes).
pub const PREVIEW_GC_SCHEDULE: &str = "*/30 * * * *";
/// Preview time to live after the last deploy.
pub const PREVIEW_DEFAULT_TTL: &str = "7d";
/// Instance image: Ubuntu 24.04 LTS from Canonical's account.
pub const IMAGE: &str = "099720109477/ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*";
/// Root volume size of control-plane instances, GiB.
pub const CONTROL_PLANE_ROOT_VOLUME_SIZE: u32 = 64;
/// Root volume size of nodes, GiB.
pub const NODE_ROOT_VOLUME_SIZE: u32 = 128;
/// Root volume type.
pub const ROOT_VOLUME_TYPE: &str = "gp3";
/// Spot allocation strategy.
pub const SPOT_ALLOCATION_STRATEGY: &str = "price-capacity-optimized";

/// Fills in every default of a cluster and its instance groups.
pub fn apply(cluster: &mut Cluster, groups: &mut [InstanceGroup]) {
    let name = cluster.metadata.name.clone();
    let s = &mut cluster.spec;
    s.network_cidr
        .get_or_insert_with(|| NETWORK_CIDR.to_string());
    s.pod_cidr.get_or_insert_with(|| POD_CIDR.to_string());
    s.cni.get_or_insert(Cni::Cilium);
    s.service_cidr
        .get_or_insert_with(|| SERVICE_CIDR.to_string());
    let topology = *s.topology.get_or_insert(TOPOLOGY);
    if s.subnets.is_empty() {
        for zone in &s.zones {
            match topology {
                Topology::Public => s.subnets.push(subnet(zone, SubnetType::Public)),
                Topology::Private => {
                    s.subnets.push(subnet(zone, SubnetType::Private));
                    s.subnets.push(subnet(zone, SubnetType::Utility));
                }
            }
        }
    }
    for sn in &mut s.subnets {
        if sn.name.is_none() {
            sn.name = Some(default_subnet_name(&sn.zone, sn.kind));
        }
    }
    if let Some(net) = s
        .network_cidr
        .as_deref()
        .and_then(|c| c.parse::<Ipv4Net>().ok())
    {
        allocate_cidrs(net, &mut s.subnets);
    }
    let api = s.api.get_or_insert_with(ApiAccessSpec::default);
    api.public_name.get_or_insert_with(|| format!("api.{name}"));
    api.load_balancer.get_or_insert(LoadBalancerType::Public);
    api.port.get_or_insert(API_PORT);
    s.ssh_access.get_or_insert_with(Vec::new);
    s.kubernetes_api_access.get_or_insert_with(|| {
        KUBERNETES_API_ACCESS
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    s.addons
        .get_or_insert_with(|| ADDONS.iter().map(|s| s.to_string()).collect());

    let c = s.components.get_or_insert_with(ComponentsSpec::default);
    c.image.get_or_insert_with(|| COMPONENT_IMAGE.to_string());
    let na = c.node_autoscaler.get_or_insert_with(Default::default);
    na.enabled.get_or_insert(true);
    na.scan_interval
        .get_or_insert_with(|| NODE_AUTOSCALER_SCAN_INTERVAL.to_string());
    na.scale_down_utilization_threshold
        .get_or_insert(NODE_AUTOSCALER_SCALE_DOWN_THRESHOLD);
    c.queue_autoscaler
        .get_or_insert_with(Default::default)
        .enabled
        .get_or_insert(false);
    let j = c.janitor.get_or_insert_with(Default::default);
    j.enabled.get_or_insert(true);
    j.schedule
        .get_or_insert_with(|| JANITOR_SCHEDULE.to_string());
    j.default_ttl
        .get_or_insert_with(|| JANITOR_DEFAULT_TTL.to_string());
    let nc = c.node_cleanup.get_or_insert_with(Default::default);
    nc.enabled.get_or_insert(true);
    nc.interval
        .get_or_insert_with(|| NODE_CLEANUP_INTERVAL.to_string());
    nc.disk_threshold_percent
        .get_or_insert(NODE_CLEANUP_DISK_THRESHOLD);
    let p = c.preview.get_or_insert_with(Default::default);
    p.enabled.get_or_insert(false);
    p.gc_schedule
        .get_or_insert_with(|| PREVIEW_GC_SCHEDULE.to_string());
    p.default_ttl
        .get_or_insert_with(|| PREVIEW_DEFAULT_TTL.to_string());

    let zones = cluster.spec.zones.clone();
    for g in groups {
        let gs = &mut g.spec;
        gs.image.get_or_insert_with(|| IMAGE.to_string());
        gs.zones.get_or_insert_with(|| zones.clone());
        gs.root_volume_size.get_or_insert(match gs.role {
            Role::ControlPlane => CONTROL_PLANE_ROOT_VOLUME_SIZE,
            Role::Node => NODE_ROOT_VOLUME_SIZE,
        });
        gs.root_volume_type
            .get_or_insert_with(|| ROOT_VOLUME_TYPE.to_string());
        if let Some(m) = gs.mixed_instances_policy.as_mut() {
            m.on_demand_base.get_or_insert(0);
            m.on_demand_above_base.get_or_insert(0);
            m.spot_allocation_strategy
                .get_or_insert_with(|| SPOT_ALLOCATION_STRATEGY.to_string());
        }
        let a = gs
            .autoscaler
            .get_or_insert_with(GroupAutoscalerSpec::default);
        a.enabled
            .get_or_insert(gs.role == Role::Node && gs.min_size != gs.max_size);
        a.balance_zones.get_or_insert(true);
        a.priority.get_or_insert(0);
    }
}

fn subnet(zone: &str, kind: SubnetType) -> SubnetSpec {
    SubnetSpec {
        name: None,
        zone: zone.to_string(),
        kind,
        cidr: None,
    }
}

/// kops names subnets after their zone, with `utility-` for utility subnets.
pub fn default_subnet_name(zone: &str, kind: SubnetType) -> String {
    match kind {
        SubnetType::Utility => format!("utility-{zone}"),
        SubnetType::Public | SubnetType::Private => zone.to_string(),
    }
}

/// The prefix length a subnet of `kind` gets inside a `/net` VPC: private
/// and public subnets take an eighth of the VPC, utility subnets a 64th.
pub fn subnet_prefix(net: u8, kind: SubnetType) -> u8 {
    let extra = match kind {
        SubnetType::Public | SubnetType::Private => 3,
        SubnetType::Utility => 6,
    };
    (net + extra).min(28)
}

/// Gives every subnet without a CIDR the first free aligned block of its size,
/// large blocks first, in spec order. Deterministic; leaves a subnet without
/// a CIDR when there is no room (validation reports it).
pub fn allocate_cidrs(net: Ipv4Net, subnets: &mut [SubnetSpec]) {
    let mut taken: Vec<Ipv4Net> = subnets
        .iter()
        .filter_map(|s| s.cidr.as_deref()?.parse::<Ipv4Net>().ok())
        .collect();
    let mut order: Vec<usize> = (0..subnets.len())
        .filter(|&i| subnets[i].cidr.is_none())
        .collect();
    order.sort_by_key(|&i| (subnet_prefix(net.prefix_len(), subnets[i].kind), i));
    for i in order {
        let prefix = subnet_prefix(net.prefix_len(), subnets[i].kind);
        let Ok(mut candidates) = net.subnets(prefix) else {
            continue;
        };
        if let Some(block) = candidates.find(|c| !taken.iter().any(|t| overlaps(t, c))) {
            taken.push(block);
            subnets[i].cidr = Some(block.to_string());
        }
    }
}

/// Whether two networks share an address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sn(zone: &str, kind: SubnetType, cidr: Option<&str>) -> SubnetSpec {
        SubnetSpec {
            name: None,
            zone: zone.into(),
            kind,
            cidr: cidr.map(Into::into),
        }
    }

    #[test]
    fn allocates_like_kops_private_then_utility() {
        let mut s = vec![
            sn("a", SubnetType::Private, None),
            sn("a", SubnetType::Utility, None),
            sn("b", SubnetType::Private, None),
            sn("b", SubnetType::Utility, None),
        ];
        allocate_cidrs("10.0.0.0/16".parse().unwrap(), &mut s);
        let got: Vec<_> = s.iter().map(|s| s.cidr.clone().unwrap()).collect();
        assert_eq!(
            got,
            [
                "10.0.0.0/19",
                "10.0.64.0/22",
                "10.0.32.0/19",
                "10.0.68.0/22"
            ]
        );
    }

    #[test]
    fn allocation_skips_given_cidrs() {
        let mut s = vec![
            sn("a", SubnetType::Public, Some("10.0.0.0/19")),
            sn("b", SubnetType::Public, None),
        ];
        allocate_cidrs("10.0.0.0/16".parse().unwrap(), &mut s);
        assert_eq!(s[1].cidr.as_deref(), Some("10.0.32.0/19"));
    }

    #[test]
    fn no_room_leaves_cidr_empty() {
        let mut s: Vec<_> = (0..9).map(|_| sn("a", SubnetType::Public, None)).collect();
        allocate_cidrs("10.0.0.0/16".parse().unwrap(), &mut s);
        assert!(s[7].cidr.is_some());
        assert!(s[8].cidr.is_none());
    }
}
