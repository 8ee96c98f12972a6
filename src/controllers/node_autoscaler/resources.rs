//! Requests and capacities: CPU in millicores, memory and ephemeral
//! storage in bytes, and pod slots.

use std::ops::{Add, AddAssign, Sub};

use serde::{Deserialize, Serialize};

/// An amount of the four resources scheduling counts.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// CPU, millicores.
    #[serde(default)]
    pub cpu_m: i64,
    /// Memory, bytes.
    #[serde(default)]
    pub memory: i64,
    /// Pod slots.
    #[serde(default)]
    pub pods: i64,
    /// Ephemeral storage, bytes.
    #[serde(default)]
    pub ephemeral: i64,
}

impl Resources {
    /// Whether `self` fits within `free`.
    pub fn fits_in(&self, free: &Resources) -> bool {
        self.cpu_m <= free.cpu_m
            && self.memory <= free.memory
            && self.pods <= free.pods
            && self.ephemeral <= free.ephemeral
    }

    /// The resources of `self` that exceed `cap`, named (for reasons).
    pub fn exceeding(&self, cap: &Resources) -> Vec<String> {
        let mut out = Vec::new();
        if self.cpu_m > cap.cpu_m {
            out.push(format!("cpu {}m > {}m", self.cpu_m, cap.cpu_m));
        }
        if self.memory > cap.memory {
            out.push(format!(
                "memory {}Mi > {}Mi",
                self.memory >> 20,
                cap.memory >> 20
            ));
        }
        if self.pods > cap.pods {
            out.push(format!("pods {} > {}", self.pods, cap.pods));
        }
        if self.ephemeral > cap.ephemeral {
            out.push(format!(
                "ephemeral-storage {}Mi > {}Mi",
                self.ephemeral >> 20,
                cap.ephemeral >> 20
            ));
        }
        out
    }

    /// `n` times `self`.
    pub fn times(&self, n: i64) -> Resources {
        Resources {
            cpu_m: self.cpu_m * n,
            memory: self.memory * n,
            pods: self.pods * n,
            ephemeral: self.ephemeral * n,
        }
    }

    /// Requested share of `total`: the larger of CPU and memory.
    pub fn utilization(&self, total: &Resources) -> f64 {
        let share = |a: i64, b: i64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        share(self.cpu_m, total.cpu_m).max(share(self.memory, total.memory))
    }

    /// The unused share of `total` (CPU and memory averaged): least-waste's
    /// measure.
    pub fn waste(&self, total: &Resources) -> f64 {
        let share = |a: i64, b: i64| {
            if b > 0 {
                1.0 - a as f64 / b as f64
            } else {
                0.0
            }
        };
        (share(self.cpu_m, total.cpu_m) + share(self.memory, total.memory)) / 2.0
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu_m: self.cpu_m + o.cpu_m,
            memory: self.memory + o.memory,
            pods: self.pods + o.pods,
            ephemeral: self.ephemeral + o.ephemeral,
        }
    }
}

impl AddAssign for Resources {
    fn add_assign(&mut self, o: Resources) {
        *self = *self + o;
    }
}

impl Sub for Resources {
    type Output = Resources;
    fn sub(self, o: Resources) -> Resources {
        Resources {
            cpu_m: self.cpu_m - o.cpu_m,
            memory: self.memory - o.memory,
            pods: self.pods - o.pods,
            ephemeral: self.ephemeral - o.ephemeral,
        }
    }
}

/// Parses a Kubernetes quantity into a base unit (`milli` for CPU-style
/// millicores). `None` for what does not parse.
pub fn quantity(q: &str, milli: bool) -> Option<i64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "m" => 0.001,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    let v = n * mult * if milli { 1000.0 } else { 1.0 };
    Some(v.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("100m", true), Some(100));
        assert_eq!(quantity("2", true), Some(2000));
        assert_eq!(quantity("1.5", true), Some(1500));
        assert_eq!(quantity("128Mi", false), Some(128 << 20));
        assert_eq!(quantity("1G", false), Some(1_000_000_000));
        assert_eq!(quantity("4Gi", false), Some(4 << 30));
        assert_eq!(quantity("1e3", false), Some(1000));
        assert_eq!(quantity("lots", false), None);
    }

    #[test]
    fn fitting_and_shares() {
        let cap = Resources {
            cpu_m: 2000,
            memory: 4 << 30,
            pods: 110,
            ephemeral: 20 << 30,
        };
        let half = Resources {
            cpu_m: 1000,
            memory: 1 << 30,
            pods: 1,
            ephemeral: 0,
        };
        assert!(half.fits_in(&cap));
        assert!((half.utilization(&cap) - 0.5).abs() < 1e-9);
        assert!((half.waste(&cap) - 0.625).abs() < 1e-9);
        let big = Resources {
            cpu_m: 3000,
            ..half
        };
        assert!(!big.fits_in(&cap));
        assert_eq!(big.exceeding(&cap), ["cpu 3000m > 2000m"]);
    }
}
