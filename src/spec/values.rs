//! The value checks of the spec, one function per kind of value (CIDRs,
//! durations, cron expressions, DNS names, label keys and values, taints,
//! versions, machine types, images): each says what is wrong in words a
//! user can act on. Validation and the commands use them.

use std::str::FromStr;

use ipnet::Ipv4Net;

/// Checks a five-field Kubernetes CronJob schedule (or an `@hourly` macro).
pub fn cron_expression(e: &str) -> Result<(), String> {
    let e = e.trim();
    let full = if e.starts_with('@') {
        e.to_string()
    } else {
        let n = e.split_whitespace().count();
        if n != 5 {
            return Err(format!("it has {n} fields, not 5"));
        }
        format!("0 {e}")
    };
    cron::Schedule::from_str(&full)
        .map(|_| ())
        .map_err(|err| err.to_string())
}

/// Parses `30s`, `10m`, `6h`, `7d`, `2w` or a sum such as `1h30m`, in seconds.
pub fn parse_duration(t: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut num = String::new();
    for ch in t.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
        } else {
            let n: u64 = num.parse().ok()?;
            num.clear();
            let unit = match ch {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return None,
            };
            total = total.checked_add(n.checked_mul(unit)?)?;
        }
    }
    (num.is_empty() && total > 0).then_some(total)
}

/// Parses a CIDR that must be in canonical form (no host bits set).
pub fn parse_cidr(text: &str) -> Result<Ipv4Net, String> {
    let n: Ipv4Net = text
        .parse()
        .map_err(|_| format!("`{text}` is not an IPv4 CIDR block"))?;
    if n.trunc() != n {
        return Err(format!(
            "`{text}` has host bits set; did you mean {}?",
            n.trunc()
        ));
    }
    Ok(n)
}

pub(crate) fn zone_in_region(zone: &str, region: &str) -> bool {
    zone.strip_prefix(region)
        .is_some_and(|rest| rest.len() == 1 && rest.chars().all(|c| c.is_ascii_lowercase()))
}

/// Parses a Kubernetes version (an optional `v`, then major.minor.patch).
pub fn parse_version(v: &str) -> Result<semver::Version, String> {
    semver::Version::parse(v.strip_prefix('v').unwrap_or(v))
        .map_err(|e| format!("`{v}` is not a version: {e}"))
}

pub(crate) fn kubernetes_version(v: &str) -> Result<(), String> {
    let ver = parse_version(v)?;
    if ver.major != 1 || ver.minor < super::validate::MIN_KUBERNETES.1 {
        return Err(format!(
            "Kubernetes {ver} is not supported; clusterctl provisions {}.{} and later 1.x",
            super::validate::MIN_KUBERNETES.0,
            super::validate::MIN_KUBERNETES.1
        ));
    }
    Ok(())
}

pub(crate) fn state_store(s: &str) -> Result<(), String> {
    let Some(rest) = s.strip_prefix("s3://") else {
        return Err(format!("stateStore `{s}` is not an s3:// URL"));
    };
    let bucket = rest.split('/').next().unwrap_or_default();
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Err(format!("`{bucket}` is not a valid S3 bucket name"));
    }
    if rest.contains("//") {
        return Err(format!("stateStore `{s}` has an empty path segment"));
    }
    Ok(())
}

/// Checks a DNS-1123 label.
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > 63 {
        return Err(format!("it is {} characters long, more than 63", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("`{c}` is not allowed"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("it starts or ends with `-`".into());
    }
    Ok(())
}

/// Checks a DNS-1123 subdomain.
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("it is {} characters long, more than 253", s.len()));
    }
    for label in s.split('.') {
        dns_label(label).map_err(|e| {
            if label.is_empty() {
                "it has an empty label".to_string()
            } else {
                format!("label `{label}`: {e}")
            }
        })?;
    }
    Ok(())
}

pub(crate) fn machine_type(t: &str) -> bool {
    let mut parts = t.split('.');
    matches!((parts.next(), parts.next(), parts.next()), (Some(f), Some(sz), None)
        if !f.is_empty() && !sz.is_empty()
        && f.starts_with(|c: char| c.is_ascii_lowercase())
        && f.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && sz.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
}

pub(crate) fn image(i: &str) -> bool {
    if let Some(hex) = i.strip_prefix("ami-") {
        return (8..=17).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    match i.split_once('/') {
        Some((owner, name)) => {
            !owner.is_empty() && !name.is_empty() && !i.contains(char::is_whitespace)
        }
        None => false,
    }
}

pub(crate) fn label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        dns_subdomain(p).map_err(|e| format!("prefix: {e}"))?;
    }
    if name.is_empty() || name.len() > 63 {
        return Err("the name must be 1 to 63 characters".into());
    }
    label_value(name)
}

pub(crate) fn label_value(v: &str) -> Result<(), String> {
    if v.len() > 63 {
        return Err("it is longer than 63 characters".into());
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err("only letters, digits, `-`, `_` and `.` are allowed".into());
    }
    let edges_ok = v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !v.is_empty() && !edges_ok {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}

/// A parsed taint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value (may be empty).
    pub value: String,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

/// Parses `key=value:Effect` or `key:Effect`.
pub fn parse_taint(t: &str) -> Result<Taint, String> {
    let (kv, effect) = t.rsplit_once(':').ok_or("it has no `:Effect`")?;
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        return Err(format!(
            "effect `{effect}` is not NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    label_key(key).map_err(|e| format!("key `{key}`: {e}"))?;
    label_value(value).map_err(|e| format!("value `{value}`: {e}"))?;
    Ok(Taint {
        key: key.into(),
        value: value.into(),
        effect: effect.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints() {
        assert!(parse_taint("dedicated=gpu:NoSchedule").is_ok());
        assert!(parse_taint("node-role.kubernetes.io/control-plane:NoSchedule").is_ok());
        assert!(parse_taint("dedicated=gpu").is_err());
        assert!(parse_taint("dedicated=gpu:Never").is_err());
        assert!(parse_taint("=x:NoSchedule").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn crons() {
        assert!(cron_expression("*/30 * * * *").is_ok());
        assert!(cron_expression("@hourly").is_ok());
        assert!(cron_expression("* * * *").is_err());
        assert!(cron_expression("61 * * * *").is_err());
    }

    #[test]
    fn names_and_cidrs() {
        assert!(dns_subdomain("prod.example.com").is_ok());
        assert!(dns_subdomain("Prod.example.com").is_err());
        assert!(dns_subdomain("a..b").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        assert!(
            parse_cidr("10.0.0.1/16")
                .unwrap_err()
                .contains("10.0.0.0/16")
        );
        assert!(zone_in_region("eu-west-1a", "eu-west-1"));
        assert!(!zone_in_region("eu-west-2a", "eu-west-1"));
        assert!(
            machine_type("m6i.large") && machine_type("u-6tb1.metal") && !machine_type("large")
        );
    }
}
