//! What both plans and clouds speak: resource kinds, the comparable
//! attributes of a resource, a resource as a cloud found it ([`Actual`]),
//! an attribute's change, and the resources left alone. A leaf: it
//! depends on no other module of clusterctl, so `plan` and `cloud` both
//! use it without depending on each other.

pub mod attrs;
mod kind;

use serde::{Deserialize, Serialize};

pub use attrs::Attrs;
pub use kind::{Immutable, Kind, KindInfo};

/// A resource that exists, as a cloud describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Actual {
    /// The model address it corresponds to (`type.label`), derived from its
    /// type and name, so resources made by the Terraform target match too.
    pub address: String,
    /// Its type.
    pub kind: Kind,
    /// AWS name.
    pub name: String,
    /// AWS id (or ARN, or key).
    pub id: String,
    /// Comparable attributes (see [`attrs`]).
    pub attrs: Attrs,
    /// Carries this cluster's ownership mark, so it may be deleted.
    pub owned: bool,
}

/// One attribute's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrChange {
    /// Attribute name.
    pub attr: String,
    /// Value now (None: absent).
    pub old: Option<String>,
    /// Value wanted (None: removed).
    pub new: Option<String>,
    /// This change cannot be made in place.
    pub forces_replacement: bool,
}

/// A resource in the cluster's VPC that the cluster does not own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Untouched {
    /// Terraform type (also of types clusterctl never makes, such as
    /// `aws_instance` or `aws_vpc_endpoint`).
    pub kind: String,
    /// AWS id.
    pub id: String,
    /// Its Name tag or AWS name, if any.
    pub name: String,
}
