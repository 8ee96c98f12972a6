//! Deletion: finalizers, preconditions, graceful pod deletion, the
//! propagation policies, and the garbage collector's passes (dependents of
//! deleted owners, terminating namespaces).

use super::*;

impl Store {
    /// Deletes an object, honouring finalizers, preconditions and the
    /// propagation policy. Returns the object's last state.
    pub fn delete(
        &mut self,
        ty: usize,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let t = &TYPES[ty];
        let key = Self::key(ty, ns, name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(t, name))?;
        if opts
            .uid
            .as_deref()
            .is_some_and(|u| Some(u) != meta_str(&old, "uid"))
        {
            return Err(ApiError::new(409, "Conflict", format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {}, UID in object meta: {}",
                t.qualified(), opts.uid.as_deref().unwrap_or_default(), meta_str(&old, "uid").unwrap_or_default()
            )).with(t, name));
        }
        if opts
            .resource_version
            .as_deref()
            .is_some_and(|r| Some(r) != meta_str(&old, "resourceVersion"))
        {
            return Err(ApiError::conflict(t, name));
        }
        let uid = meta_str(&old, "uid").unwrap_or_default().to_string();
        if t.kind == "Pod"
            && let Some(done) = self.delete_pod_gracefully(ty, ns, &key, &old, opts)
        {
            return Ok(done);
        }
        let policy = opts.propagation.as_deref().unwrap_or("Background");
        if !["Background", "Foreground", "Orphan"].contains(&policy) {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{policy}\""
            )));
        }
        if policy == "Orphan" {
            self.orphan_dependents(&uid);
        }
        let mut new = old.clone();
        let mut fins = finalizers(&old);
        if policy == "Foreground"
            && self.has_dependents(&uid)
            && !fins.iter().any(|f| f == "foregroundDeletion")
        {
            fins.push("foregroundDeletion".into());
            new["metadata"]["finalizers"] = json!(fins);
        }
        let is_namespace = ty == Self::namespace_ns();
        if is_namespace {
            new["status"]["phase"] = "Terminating".into();
        }
        if !fins.is_empty() || is_namespace {
            if new.pointer("/metadata/deletionTimestamp").is_none() {
                new["metadata"]["deletionTimestamp"] = now().into();
                new["metadata"]["deletionGracePeriodSeconds"] = 0.into();
            }
            let out = self.commit(ty, ns, key.clone(), old, new);
            self.gc();
            return Ok(self.objects.get(&key).cloned().unwrap_or(out));
        }
        let out = self.remove(&key);
        self.gc();
        Ok(out)
    }

    /// A Pod's graceful deletion, as the real server does it: the first
    /// delete sets `deletionTimestamp` (a MODIFIED event). A pod that is not
    /// on a node, or a delete with grace period 0, then goes at once
    /// (DELETED); a pod on a node stays, terminating, until its kubelet
    /// deletes it again with grace period 0. `None`: carry on with the
    /// ordinary deletion (finalizers, propagation).
    fn delete_pod_gracefully(
        &mut self,
        ty: usize,
        ns: &str,
        key: &Key,
        old: &Value,
        opts: &DeleteOpts,
    ) -> Option<Value> {
        let on_node = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let grace = opts
            .grace_period
            .or_else(|| {
                old.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0);
        let terminating = old.pointer("/metadata/deletionTimestamp").is_some();
        let graceful = on_node && grace > 0;
        if terminating {
            // Already terminating: only its kubelet's (grace 0) delete ends it.
            return if graceful { Some(old.clone()) } else { None };
        }
        let mut new = old.clone();
        let when = chrono::Utc::now() + chrono::Duration::seconds(if graceful { grace } else { 0 });
        new["metadata"]["deletionTimestamp"] = when
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .into();
        new["metadata"]["deletionGracePeriodSeconds"] = (if graceful { grace } else { 0 }).into();
        let out = self.commit(ty, ns, key.clone(), old.clone(), new);
        if graceful || !finalizers(&out).is_empty() || !self.objects.contains_key(key) {
            // Terminating, held by finalizers, or already collected (the
            // collector removes what is marked and holds no finalizer).
            return Some(out);
        }
        let out = self.remove(key);
        self.gc();
        Some(out)
    }

    /// Removes an object now and emits DELETED.
    fn remove(&mut self, key: &Key) -> Value {
        let Some(mut obj) = self.objects.remove(key) else {
            return Value::Null;
        };
        if let Some(uid) = meta_str(&obj, "uid") {
            self.uids.remove(uid);
        }
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = rv.to_string().into();
        self.emit(key.0, &key.1, EventType::Deleted, obj.clone(), None);
        obj
    }

    fn has_dependents(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|o| owner_uids(o).iter().any(|u| u == uid))
    }

    fn orphan_dependents(&mut self, uid: &str) {
        let deps: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| owner_uids(o).iter().any(|u| u == uid))
            .map(|(k, _)| k.clone())
            .collect();
        for k in deps {
            let Some(old) = self.objects.get(&k).cloned() else {
                continue;
            };
            let mut new = old.clone();
            if let Some(refs) = new
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r["uid"].as_str() != Some(uid));
            }
            let ns = k.1.clone();
            self.commit(k.0, &ns, k, old, new);
        }
    }

    /// The garbage collector and namespace controller, run to a fixpoint
    /// after every change that can finish a deletion: objects whose
    /// finalizers are gone are removed, `foregroundDeletion` is lifted when
    /// no dependents remain, dependents whose owners are all gone are
    /// deleted (background), and terminating namespaces are emptied.
    pub fn gc(&mut self) {
        if self.in_gc {
            return;
        }
        self.in_gc = true;
        self.gc_passes();
        self.in_gc = false;
    }

    fn gc_passes(&mut self) {
        for _ in 0..64 {
            let mut changed = false;
            // Terminating namespaces: delete their content; remove them when empty.
            let ns_ty = Self::namespace_ns();
            let terminating: Vec<String> = self
                .objects
                .iter()
                .filter(|(k, o)| k.0 == ns_ty && o.pointer("/metadata/deletionTimestamp").is_some())
                .map(|(k, _)| k.2.clone())
                .collect();
            for ns in terminating {
                let content: Vec<Key> = self
                    .objects
                    .keys()
                    .filter(|k| TYPES[k.0].namespaced && k.1 == ns)
                    .cloned()
                    .collect();
                for k in &content {
                    let Some(o) = self.objects.get(k) else {
                        continue;
                    };
                    if o.pointer("/metadata/deletionTimestamp").is_none() {
                        let name = k.2.clone();
                        let _ = self.delete(k.0, &ns, &name, &DeleteOpts::default());
                        changed = true;
                    }
                }
                let remaining = self
                    .objects
                    .keys()
                    .any(|k| TYPES[k.0].namespaced && k.1 == ns);
                let key = (ns_ty, String::new(), ns.clone());
                if !remaining
                    && self
                        .objects
                        .get(&key)
                        .is_some_and(|n| finalizers(n).is_empty())
                {
                    self.remove(&key);
                    changed = true;
                }
            }
            // Finished deletions and foreground owners.
            let deleting: Vec<Key> = self
                .objects
                .iter()
                .filter(|(k, o)| k.0 != ns_ty && o.pointer("/metadata/deletionTimestamp").is_some())
                .map(|(k, _)| k.clone())
                .collect();
            for k in deleting {
                let Some(o) = self.objects.get(&k).cloned() else {
                    continue;
                };
                let fins = finalizers(&o);
                let uid = meta_str(&o, "uid").unwrap_or_default().to_string();
                if fins.is_empty() && terminating_on_node(&o) {
                    // Its kubelet ends it (a delete with grace period 0).
                } else if fins.is_empty() {
                    self.remove(&k);
                    changed = true;
                } else if fins.iter().any(|f| f == "foregroundDeletion") {
                    // Delete the dependents; lift the finalizer once they are gone.
                    let deps: Vec<Key> = self
                        .objects
                        .iter()
                        .filter(|(_, d)| {
                            owner_uids(d).contains(&uid)
                                && d.pointer("/metadata/deletionTimestamp").is_none()
                        })
                        .map(|(dk, _)| dk.clone())
                        .collect();
                    for dk in deps {
                        let dns = dk.1.clone();
                        let dname = dk.2.clone();
                        let _ = self.delete(
                            dk.0,
                            &dns,
                            &dname,
                            &DeleteOpts {
                                propagation: Some("Foreground".into()),
                                ..Default::default()
                            },
                        );
                        changed = true;
                    }
                    if !self.has_dependents(&uid) {
                        let mut n = o.clone();
                        n["metadata"]["finalizers"] = json!(
                            fins.iter()
                                .filter(|f| *f != "foregroundDeletion")
                                .collect::<Vec<_>>()
                        );
                        let ns = k.1.clone();
                        self.commit(k.0, &ns, k.clone(), o, n);
                        changed = true;
                    }
                }
            }
            // Orphans whose owners are all gone (background cascading deletion).
            let orphans: Vec<Key> = self
                .objects
                .iter()
                .filter(|(_, o)| {
                    let owners = owner_uids(o);
                    !owners.is_empty()
                        && o.pointer("/metadata/deletionTimestamp").is_none()
                        && owners.iter().all(|u| !self.uids.contains_key(u))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in orphans {
                let ns = k.1.clone();
                let name = k.2.clone();
                let _ = self.delete(k.0, &ns, &name, &DeleteOpts::default());
                changed = true;
            }
            if !changed {
                return;
            }
        }
    }
}
