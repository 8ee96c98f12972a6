//! Subresources: eviction against PodDisruptionBudgets, and scale.

use super::*;

impl Store {
    /// Evicts a pod unless a PodDisruptionBudget forbids it (429).
    pub fn evict(&mut self, ns: &str, name: &str, body: &Value) -> Result<Value, ApiError> {
        let pod_ty = ResourceType::index_of("", "v1", "pods").unwrap_or(0);
        let pdb_ty = ResourceType::index_of("policy", "v1", "poddisruptionbudgets").unwrap_or(0);
        let pod = self.get(pod_ty, ns, name)?;
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending");
        if phase == "Running" {
            let pdbs: Vec<Value> = self
                .objects
                .range(
                    (pdb_ty, ns.to_string(), String::new())
                        ..(pdb_ty, format!("{ns}\u{0}"), String::new()),
                )
                .map(|(_, v)| v.clone())
                .filter(|p| {
                    p.pointer("/spec/selector")
                        .and_then(|s| LabelSelector::from_object(s).ok())
                        .is_some_and(|s| !s.0.is_empty() && s.matches(&pod))
                })
                .collect();
            if pdbs.len() > 1 {
                return Err(ApiError::new(
                    500,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = pdbs.first() {
                let sel = LabelSelector::from_object(&pdb["spec"]["selector"]).unwrap_or_default();
                let (pods, _) = self.list(
                    pod_ty,
                    Some(ns),
                    &sel,
                    &FieldSelector::default(),
                    None,
                    None,
                )?;
                let expected = pods.len() as i64;
                let healthy = pods.iter().filter(|p| is_healthy(p)).count() as i64;
                let allowed = match (&pdb["spec"]["minAvailable"], &pdb["spec"]["maxUnavailable"]) {
                    (min, _) if !min.is_null() => healthy - int_or_percent(min, expected, true),
                    (_, max) if !max.is_null() => {
                        int_or_percent(max, expected, false) - (expected - healthy)
                    }
                    _ => healthy,
                };
                if allowed <= 0 {
                    let pdb_name = meta_str(pdb, "name").unwrap_or_default();
                    let mut e = ApiError::new(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                    );
                    e.details = json!({ "causes": [{ "reason": "DisruptionBudget", "message": format!("The disruption budget {pdb_name} needs {} healthy pods and has {healthy} currently", healthy - allowed) }] });
                    return Err(e);
                }
            }
        }
        let mut opts = DeleteOpts::default();
        if let Some(p) = body.pointer("/deleteOptions/preconditions") {
            opts.uid = p["uid"].as_str().map(str::to_string);
            opts.resource_version = p["resourceVersion"].as_str().map(str::to_string);
        }
        self.delete(pod_ty, ns, name, &opts)?;
        Ok(
            json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 }),
        )
    }

    /// The `autoscaling/v1` Scale view of an object.
    pub fn scale(&self, ty: usize, ns: &str, name: &str) -> Result<Value, ApiError> {
        let obj = self.get(ty, ns, name)?;
        let selector = obj
            .pointer("/spec/selector")
            .and_then(|s| LabelSelector::from_object(s).ok())
            .map(|s| s.to_query())
            .unwrap_or_default();
        Ok(json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": name, "namespace": ns, "uid": obj["metadata"]["uid"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
                "creationTimestamp": obj["metadata"]["creationTimestamp"],
            },
            "spec": { "replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1)) },
            "status": { "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector },
        }))
    }

    /// Writes `spec.replicas` from a Scale (PUT) or a patch of it.
    pub fn set_scale(
        &mut self,
        ty: usize,
        ns: &str,
        name: &str,
        scale: &Value,
    ) -> Result<Value, ApiError> {
        let t = &TYPES[ty];
        let key = Self::key(ty, ns, name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(t, name))?;
        if let Some(rv) = meta_str(scale, "resourceVersion")
            && !rv.is_empty()
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(t, name));
        }
        let replicas = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::invalid(t, name, "spec.replicas: Required value"))?;
        if replicas < 0 {
            return Err(ApiError::invalid(
                t,
                name,
                "spec.replicas: Invalid value: must be greater than or equal to 0",
            ));
        }
        let mut new = old.clone();
        new["spec"]["replicas"] = replicas.into();
        self.commit(ty, ns, key, old, new);
        self.scale(ty, ns, name)
    }
}
