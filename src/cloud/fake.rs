//! In-memory implementations for tests: a [`FakeCloud`] that keeps
//! resources by address, refuses duplicates and deletes of what is not
//! owned, and can fail or panic on cue to simulate crashes and bugs; and a
//! [`FakeCatalog`] whose zones, offerings, architectures, images and DNS
//! zones a test sets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Actual, Catalog, Cloud, CloudError, Discovery, IdMap, ImageInfo};
use crate::model::attrs::desired;
use crate::model::{Model, Resource};
use crate::resource::{AttrChange, Kind};

/// The fake cloud.
#[derive(Debug, Default)]
pub struct FakeCloud {
    resources: Mutex<BTreeMap<String, Actual>>,
    calls: AtomicU64,
    mutations: AtomicU64,
    /// Fail every mutating call after this many succeeded.
    pub fail_after: Mutex<Option<u64>>,
    /// Panic inside the call that creates, updates or deletes this address
    /// (a bug in a cloud implementation, say).
    pub panic_on: Mutex<Option<String>>,
    next_id: AtomicU64,
}

impl FakeCloud {
    /// A snapshot of what exists.
    pub fn resources(&self) -> Vec<Actual> {
        self.resources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Adds a resource made by someone else (not owned).
    pub fn insert_foreign(&self, a: Actual) {
        self.resources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(a.address.clone(), a);
    }

    fn mutate(&self, address: &str) -> Result<(), CloudError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let panic_here = self
            .panic_on
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            == Some(address);
        if panic_here {
            panic!("injected panic at {address}");
        }
        let n = self.mutations.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_after
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|limit| n >= limit)
        {
            return Err(CloudError::Injected {
                address: address.into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Cloud for FakeCloud {
    async fn discover(&self, _model: &Model) -> Result<Discovery, CloudError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(Discovery {
            actual: self.resources(),
            untouched: vec![],
        })
    }

    async fn create(&self, r: &Resource, ids: &IdMap) -> Result<String, CloudError> {
        let address = r.id.address();
        for d in r.deps() {
            ids.resolve(&address, d)?;
        }
        self.mutate(&address)?;
        let mut map = self.resources.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = map.get(&address) {
            return Ok(existing.id.clone());
        }
        let id = format!(
            "{}-{:04}",
            r.id.kind.tf_type().trim_start_matches("aws_"),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        map.insert(
            address.clone(),
            Actual {
                address,
                kind: r.id.kind,
                name: r.name.clone(),
                id: id.clone(),
                attrs: desired(r),
                owned: true,
            },
        );
        Ok(id)
    }

    async fn update(
        &self,
        r: &Resource,
        actual_id: &str,
        _changes: &[AttrChange],
        _ids: &IdMap,
    ) -> Result<(), CloudError> {
        let address = r.id.address();
        self.mutate(&address)?;
        let mut map = self.resources.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&address) {
            Some(a) => {
                a.attrs = desired(r);
                Ok(())
            }
            None => Err(CloudError::Unresolved {
                address,
                missing: actual_id.to_string(),
            }),
        }
    }

    async fn delete(&self, kind: Kind, address: &str, id: &str) -> Result<(), CloudError> {
        self.mutate(address)?;
        let mut map = self.resources.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(address) {
            Some(a) if !a.owned => Err(CloudError::NotOwned {
                kind,
                address: address.into(),
                id: id.into(),
                cluster: "fake".into(),
            }),
            _ => {
                map.remove(address);
                Ok(())
            }
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// A region as a test describes it.
#[derive(Debug, Default, Clone)]
pub struct FakeCatalog {
    /// Available zones.
    pub zones: Vec<String>,
    /// Offered (instance type, zone) pairs.
    pub offerings: HashSet<(String, String)>,
    /// Architectures by instance type.
    pub architectures: HashMap<String, Vec<String>>,
    /// Images by id.
    pub images: HashMap<String, ImageInfo>,
    /// `owner/name-pattern` → the AMI the lookup finds.
    pub lookups: HashMap<String, String>,
    /// Public hosted zones.
    pub dns_zones: HashSet<String>,
}

impl FakeCatalog {
    /// A region where `zones` exist, every one of `types` is offered in
    /// each and runs x86_64, and `images` are x86_64 AMIs with a
    /// `/dev/sda1` root device.
    pub fn region(zones: &[&str], types: &[&str], images: &[&str]) -> FakeCatalog {
        FakeCatalog {
            zones: zones.iter().map(|z| z.to_string()).collect(),
            offerings: types
                .iter()
                .flat_map(|t| zones.iter().map(move |z| (t.to_string(), z.to_string())))
                .collect(),
            architectures: types
                .iter()
                .map(|t| (t.to_string(), vec!["x86_64".to_string()]))
                .collect(),
            images: images
                .iter()
                .map(|i| {
                    (
                        i.to_string(),
                        ImageInfo {
                            architecture: "x86_64".into(),
                            root_device: "/dev/sda1".into(),
                        },
                    )
                })
                .collect(),
            lookups: HashMap::new(),
            dns_zones: HashSet::new(),
        }
    }
}

#[async_trait::async_trait]
impl Catalog for FakeCatalog {
    async fn zones(&self) -> Result<Vec<String>, CloudError> {
        let mut z = self.zones.clone();
        z.sort();
        Ok(z)
    }

    async fn offerings(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Result<HashSet<(String, String)>, CloudError> {
        Ok(self
            .offerings
            .iter()
            .filter(|(t, z)| types.contains(t) && zones.contains(z))
            .cloned()
            .collect())
    }

    async fn architectures(
        &self,
        types: &[String],
    ) -> Result<HashMap<String, Vec<String>>, CloudError> {
        Ok(self
            .architectures
            .iter()
            .filter(|(t, _)| types.contains(t))
            .map(|(t, a)| (t.clone(), a.clone()))
            .collect())
    }

    async fn images(&self, ids: &[String]) -> Result<HashMap<String, ImageInfo>, CloudError> {
        Ok(self
            .images
            .iter()
            .filter(|(i, _)| ids.contains(i))
            .map(|(i, info)| (i.clone(), info.clone()))
            .collect())
    }

    async fn newest_image(&self, owner: &str, name: &str) -> Result<Option<String>, CloudError> {
        Ok(self.lookups.get(&format!("{owner}/{name}")).cloned())
    }

    async fn public_zone_exists(&self, zone: &str) -> Result<bool, CloudError> {
        Ok(self.dns_zones.contains(zone.trim_end_matches('.')))
    }
}
