//! The API server's errors, as `Status` objects.

use serde_json::{Value, json};

use super::ResourceType;

/// An API error, serialised as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, …
    pub reason: &'static str,
    /// Human message, in the real server's words.
    pub message: String,
    /// `details` of the Status.
    pub details: Value,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub(super) fn with(mut self, ty: &ResourceType, name: &str) -> Self {
        let mut d = json!({ "name": name, "kind": ty.plural });
        if !ty.group.is_empty() {
            d["group"] = ty.group.into();
        }
        self.details = d;
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", msg)
    }

    /// 404 NotFound for an object.
    pub fn not_found(ty: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", ty.qualified()),
        )
        .with(ty, name)
    }

    /// 404 for an unknown path.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 409 Conflict.
    pub(super) fn conflict(ty: &ResourceType, name: &str) -> Self {
        Self::new(409, "Conflict", format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            ty.qualified()
        ))
        .with(ty, name)
    }

    /// 422 Invalid.
    pub fn invalid(ty: &ResourceType, name: &str, msg: impl Into<String>) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {}", ty.kind, msg.into()),
        )
        .with(ty, name)
    }

    /// 410 Expired.
    pub fn expired(msg: impl Into<String>) -> Self {
        Self::new(410, "Expired", msg)
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if !self.details.is_null() {
            s["details"] = self.details.clone();
        }
        s
    }
}
