//! Checks of the cluster's own address ranges (pods, Services) against
//! each other and the VPC.

use ipnet::Ipv4Net;

use super::defaults::overlaps;
use super::values::parse_cidr;
use super::{DocRef, Reader};

/// The pod and service ranges: valid, large enough, and overlapping
/// neither each other nor the VPC (a pod or Service address inside the VPC
/// would shadow an instance's).
pub(super) fn cluster_networks(
    r: &mut Reader,
    d: &DocRef,
    s: &super::ClusterSpec,
    vpc: Option<Ipv4Net>,
) {
    let mut parsed: Vec<(&str, Ipv4Net)> = Vec::new();
    for (path, value, largest_prefix, why) in [
        (
            "spec.podCIDR",
            s.pod_cidr.as_deref(),
            16,
            "each node takes a /24 of it",
        ),
        (
            "spec.serviceCIDR",
            s.service_cidr.as_deref(),
            24,
            "it holds every Service's cluster IP",
        ),
    ] {
        let Some(value) = value else { continue };
        match parse_cidr(value) {
            Ok(n) if n.prefix_len() > largest_prefix => r.report(
                d,
                path,
                format!("{n} is too small: {why}"),
                format!("use a /{largest_prefix} or larger"),
            ),
            Ok(n) => parsed.push((path, n)),
            Err(e) => r.report(d, path, e, "use an IPv4 block such as 100.96.0.0/11"),
        }
    }
    for (i, (path, n)) in parsed.iter().enumerate() {
        if let Some(v) = vpc
            && overlaps(n, &v)
        {
            r.report(
                d,
                path,
                format!("{n} overlaps networkCIDR {v}"),
                "pods and Services need addresses outside the VPC, such as 100.96.0.0/11 and 100.64.0.0/13",
            );
        }
        for (other_path, m) in &parsed[..i] {
            if overlaps(n, m) {
                r.report(
                    d,
                    path,
                    format!("{n} overlaps {other_path} {m}"),
                    "give pods and Services separate ranges",
                );
            }
        }
    }
}
