//! Plans: what exists (found by a [`Cloud`]) against what the model wants,
//! as Terraform users know them — `+` create, `~` update, `-/+` replace,
//! `-` destroy — with a machine-readable form and the state serial the plan
//! was made against.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::model::Model;
use crate::model::attrs::desired;
use crate::resource::{Actual, Attrs, Kind};
pub use crate::resource::{AttrChange, Untouched};

/// Version of the saved-plan format.
pub const PLAN_FORMAT: u32 = 1;

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `+`
    Create,
    /// `~`
    Update,
    /// `-/+`
    Replace,
    /// `-`
    Delete,
}

impl Action {
    /// Terraform's symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// One resource's planned change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// `type.label`.
    pub address: String,
    /// Its type.
    pub kind: Kind,
    /// AWS name.
    pub name: String,
    /// What happens.
    pub action: Action,
    /// The existing resource's id (update, replace, delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Attribute changes (all attributes for a create).
    pub changes: Vec<AttrChange>,
    /// A launch template change that needs new instances.
    pub rolling_update: bool,
}

/// A plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_FORMAT`].
    pub format_version: u32,
    /// Cluster name.
    pub cluster: String,
    /// The state serial the plan was made against.
    pub serial: u64,
    /// Changes: creates and updates in dependency order, then deletes.
    pub changes: Vec<ResourceChange>,
    /// The spec the plan was made from (a saved plan applies on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<SavedSpec>,
    /// Resources inside the cluster's VPC without its ownership tag: never
    /// changed or deleted, only reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untouched: Vec<Untouched>,
    /// Addresses the model wants that exist without this cluster's
    /// ownership mark (a role of that name made by hand, a `shared`
    /// resource): never adopted or changed; an apply refuses while any remain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ours: Vec<String>,
    /// The AMI each image lookup (`owner/name`) resolved to: a saved plan
    /// is applied with these, not with whatever is newest by then.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub images: std::collections::BTreeMap<String, String>,
}

/// A spec as a saved plan carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSpec {
    /// Where it was read from (for messages).
    pub file: String,
    /// Its text.
    pub text: String,
}

/// Counts, as Terraform reports them (a replace is one add and one destroy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Resources to create.
    pub add: usize,
    /// Resources to change in place.
    pub change: usize,
    /// Resources to destroy.
    pub destroy: usize,
}

impl Plan {
    /// The counts.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
                Action::Delete => s.destroy += 1,
            }
        }
        s
    }

    /// The report of resources left alone, for people: empty when there are
    /// none. When the plan deletes the VPC it says that AWS will refuse
    /// until they are gone.
    pub fn untouched_note(&self, tag: &str) -> String {
        if self.untouched.is_empty() {
            return String::new();
        }
        let mut out = format!(
            "\nLeft untouched: {} in the cluster's VPC without the tag {tag}:\n",
            if self.untouched.len() == 1 {
                "1 resource".to_string()
            } else {
                format!("{} resources", self.untouched.len())
            }
        );
        for u in &self.untouched {
            let _ = writeln!(out, "  {} {} ({})", u.kind, u.id, u.name);
        }
        if self
            .changes
            .iter()
            .any(|c| c.kind == Kind::Vpc && c.action == Action::Delete)
        {
            out.push_str(
                "AWS refuses to delete a VPC (and the subnets and security groups they use) while these remain: remove them, or destroy again afterwards.\n",
            );
        }
        out
    }

    /// No changes at all.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The Terraform-style text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.is_empty() {
            out.push_str("No changes. Your infrastructure matches the configuration.\n");
            return out;
        }
        out.push_str("clusterctl will perform the following actions:\n\n");
        for c in &self.changes {
            let what = match c.action {
                Action::Create => "will be created",
                Action::Update => "will be updated in-place",
                Action::Replace => "must be replaced",
                Action::Delete => "will be destroyed",
            };
            let _ = writeln!(out, "  # {} ({}) {what}", c.address, c.name);
            let _ = writeln!(out, "  {} {}", c.action.symbol(), c.address);
            for a in &c.changes {
                let q = |v: &Option<String>| {
                    v.as_ref()
                        .map(|s| format!("{s:?}"))
                        .unwrap_or_else(|| "null".into())
                };
                let note = if a.forces_replacement && c.action == Action::Replace {
                    " # forces replacement"
                } else {
                    ""
                };
                match c.action {
                    Action::Create => {
                        let _ = writeln!(out, "      + {} = {}", a.attr, q(&a.new));
                    }
                    Action::Delete => {}
                    _ => {
                        let sym = match (&a.old, &a.new) {
                            (None, Some(_)) => "+",
                            (Some(_), None) => "-",
                            _ => "~",
                        };
                        let _ = writeln!(
                            out,
                            "      {sym} {}: {} -> {}{note}",
                            a.attr,
                            q(&a.old),
                            q(&a.new)
                        );
                    }
                }
            }
            out.push('\n');
        }
        let groups: Vec<&str> = self
            .changes
            .iter()
            .filter(|c| c.rolling_update)
            .map(|c| c.name.as_str())
            .collect();
        if !groups.is_empty() {
            let _ = writeln!(
                out,
                "Rolling update needed: the launch templates {} change in ways running instances do not pick up.\nAfter apply, replace their instances (a rolling update), one zone at a time.\n",
                groups.join(", ")
            );
        }
        let s = self.summary();
        let _ = writeln!(
            out,
            "Plan: {} to add, {} to change, {} to destroy.",
            s.add, s.change, s.destroy
        );
        out
    }
}

/// Discovers what exists of `model`'s cluster, and plans `target` (the
/// model, or the model emptied for a destroy) against it: the one way a
/// plan is made. Returns the plan, with the untouched resources, and the
/// ids of what exists.
pub async fn refresh(
    cloud: &dyn crate::cloud::Cloud,
    model: &Model,
    target: &Model,
    serial: u64,
) -> Result<(Plan, crate::cloud::IdMap), crate::cloud::CloudError> {
    let found = tracing::Instrument::instrument(
        cloud.discover(model),
        tracing::info_span!("discover", cluster = %model.cluster_name),
    )
    .await?;
    Ok(of_discovery(target, found, serial))
}

/// The plan from `target` to what a discovery found, and the ids it found.
pub fn of_discovery(
    target: &Model,
    found: crate::cloud::Discovery,
    serial: u64,
) -> (Plan, crate::cloud::IdMap) {
    let ids = crate::cloud::IdMap::of(&found.actual);
    let mut plan = diff(target, &found.actual, serial);
    plan.untouched = found.untouched;
    (plan, ids)
}

/// Compares the model with what exists. Tags of existing resources that the
/// model does not want are removed, except AWS's own (`aws:`).
pub fn diff(model: &Model, actual: &[Actual], serial: u64) -> Plan {
    let by_address: HashMap<&str, &Actual> =
        actual.iter().map(|a| (a.address.as_str(), a)).collect();
    let mut changes = Vec::new();
    let mut not_ours = Vec::new();
    for r in &model.resources {
        let want = desired(r);
        let address = r.id.address();
        match by_address.get(address.as_str()) {
            None => changes.push(ResourceChange {
                address,
                kind: r.id.kind,
                name: r.name.clone(),
                action: Action::Create,
                id: None,
                changes: want
                    .iter()
                    .map(|(k, v)| AttrChange {
                        attr: k.clone(),
                        old: None,
                        new: Some(v.clone()),
                        forces_replacement: false,
                    })
                    .collect(),
                rolling_update: false,
            }),
            Some(a) if !a.owned => not_ours.push(address),
            Some(a) => {
                let attr_changes = compare(r.id.kind, &want, &a.attrs);
                if attr_changes.is_empty() {
                    continue;
                }
                let replace = attr_changes.iter().any(|c| c.forces_replacement);
                let rolling = attr_changes
                    .iter()
                    .any(|c| r.id.kind.needs_new_instances(&c.attr));
                changes.push(ResourceChange {
                    address,
                    kind: r.id.kind,
                    name: r.name.clone(),
                    action: if replace {
                        Action::Replace
                    } else {
                        Action::Update
                    },
                    id: Some(a.id.clone()),
                    changes: attr_changes,
                    rolling_update: rolling,
                });
            }
        }
    }
    let wanted: std::collections::HashSet<String> =
        model.resources.iter().map(|r| r.id.address()).collect();
    let mut deletes: Vec<&Actual> = actual
        .iter()
        .filter(|a| a.owned && !wanted.contains(&a.address))
        .collect();
    deletes.sort_by_key(|a| (std::cmp::Reverse(a.kind.rank()), a.address.clone()));
    for a in deletes {
        changes.push(ResourceChange {
            address: a.address.clone(),
            kind: a.kind,
            name: a.name.clone(),
            action: Action::Delete,
            id: Some(a.id.clone()),
            changes: vec![],
            rolling_update: false,
        });
    }
    Plan {
        format_version: PLAN_FORMAT,
        cluster: model.cluster_name.clone(),
        serial,
        changes,
        spec: None,
        untouched: vec![],
        not_ours,
        images: Default::default(),
    }
}

fn compare(kind: Kind, want: &Attrs, have: &Attrs) -> Vec<AttrChange> {
    let mut keys: Vec<&String> = want.keys().collect();
    keys.extend(have.keys().filter(|k| {
        (k.starts_with("tags.") && !k.starts_with("tags.aws:"))
            || (k.starts_with("instance_tags.") && !k.starts_with("instance_tags.aws:"))
    }));
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (old, new) = (have.get(k), want.get(k));
            (old != new).then(|| AttrChange {
                attr: k.clone(),
                old: old.cloned(),
                new: new.cloned(),
                forces_replacement: kind.forces_replacement(k),
            })
        })
        .collect()
}

/// Counts of planned actions by resource type (for summaries).
pub fn by_kind(plan: &Plan) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in &plan.changes {
        *m.entry(c.kind.to_string()).or_insert(0) += 1;
    }
    m
}
