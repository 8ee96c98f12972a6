//! An in-memory cloud for unit tests: it keeps resources by address, records
//! every call, refuses duplicates, and can fail after N mutating calls to
//! simulate a crash.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Actual, Cloud, CloudError, IdMap};
use crate::model::{Model, Resource};
use crate::plan::AttrChange;
use crate::plan::attrs::desired;

/// The fake cloud.
#[derive(Debug, Default)]
pub struct FakeCloud {
    resources: Mutex<BTreeMap<String, Actual>>,
    calls: AtomicU64,
    mutations: AtomicU64,
    /// Fail every mutating call after this many succeeded.
    pub fail_after: Mutex<Option<u64>>,
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
        let n = self.mutations.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_after
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|limit| n >= limit)
        {
            return Err(CloudError::Call {
                op: "mutate".into(),
                address: address.into(),
                message: "injected crash".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Cloud for FakeCloud {
    async fn discover(&self, _model: &Model) -> Result<Vec<Actual>, CloudError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(self.resources())
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
            r.id.kind.trim_start_matches("aws_"),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        map.insert(
            address.clone(),
            Actual {
                address,
                kind: r.id.kind.into(),
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
        _actual_id: &str,
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
            None => Err(CloudError::Call {
                op: "update".into(),
                address,
                message: "not found".into(),
            }),
        }
    }

    async fn delete(&self, _kind: &str, address: &str, _id: &str) -> Result<(), CloudError> {
        self.mutate(address)?;
        let mut map = self.resources.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(address) {
            Some(a) if !a.owned => Err(CloudError::Call {
                op: "delete".into(),
                address: address.into(),
                message: "not ours".into(),
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
