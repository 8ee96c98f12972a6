//! Bootstrap-token rotation: the token new nodes join with expires (24 h by
//! default), and a CronJob on the control planes keeps a valid one in the
//! state store, where instances read it at boot. Only the control-plane
//! role may write it (see `model::iam`).
//!
//! Observe (the token in the state store, the token Secrets in the
//! cluster) → decide (pure) → act (create the next Secret, then store it,
//! then delete the stored token it replaced if that one never expires).
//! The Secret is created before the state store is written, so an instance
//! never reads a token the API does not know. Expired tokens are removed by
//! kube-controller-manager's tokencleaner, which kubeadm enables.
//!
//! The token Secret format is kubeadm's (bootstrap.kubernetes.io/token,
//! `bootstrap-token-<id>`, the node group
//! `system:bootstrappers:kubeadm:default-node-token` that kubeadm's RBAC
//! lets join and be approved).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use serde::Serialize;

use crate::state::secrets::{BOOTSTRAP_TOKEN, bootstrap_token};
use crate::state::{StateError, StateStore};

/// The Secret type of bootstrap tokens.
pub const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
/// kubeadm's group for joining nodes.
pub const NODE_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// Label on the tokens this rotation makes.
pub const ROTATED_LABEL: &str = "clusterctl.io/bootstrap-token";

/// A token Secret as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSecret {
    /// Token id (the part before the dot).
    pub id: String,
    /// When it expires; `None` never.
    pub expiration: Option<DateTime<Utc>>,
    /// Its uid, for a guarded delete.
    pub uid: Option<String>,
}

/// What rotation sees.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The token id in the state store, if any (never the secret half).
    pub stored: Option<String>,
    /// The token Secrets in the cluster, by id.
    pub secrets: BTreeMap<String, TokenSecret>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// What rotation does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Decision {
    /// The stored token is valid long enough.
    Keep {
        /// Its id.
        id: String,
        /// When it expires.
        expires: DateTime<Utc>,
    },
    /// Make a new token and store it.
    Rotate {
        /// Why.
        reason: String,
        /// The stored token to delete afterwards (one that never expires).
        retire: Option<String>,
    },
}

/// Decides from what is observed: keep a stored token that is valid for
/// more than `renew_before`, rotate otherwise.
pub fn decide(o: &Observed, renew_before: Duration) -> Decision {
    let rotate = |reason: String, retire: Option<String>| Decision::Rotate { reason, retire };
    let Some(id) = &o.stored else {
        return rotate("the state store holds no token".into(), None);
    };
    let Some(secret) = o.secrets.get(id) else {
        return rotate(
            format!(
                "the stored token {id} is not in the cluster (expired and cleaned up, or never registered)"
            ),
            None,
        );
    };
    let Some(expires) = secret.expiration else {
        return rotate(
            format!("the stored token {id} never expires"),
            Some(id.clone()),
        );
    };
    let left = expires - o.now;
    if left <= chrono::Duration::from_std(renew_before).unwrap_or(chrono::Duration::MAX) {
        return rotate(
            format!(
                "the stored token {id} expires at {} ({}m left)",
                expires.to_rfc3339(),
                left.num_minutes().max(0)
            ),
            None,
        );
    }
    Decision::Keep {
        id: id.clone(),
        expires,
    }
}

/// Errors of a rotation pass.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The API failed.
    #[error("{what}")]
    Api {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> RotateError {
    let what = what.into();
    move |source| RotateError::Api { what, source }
}

fn data(s: &Secret, key: &str) -> Option<String> {
    if let Some(v) = s.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone()).ok();
    }
    s.string_data.as_ref().and_then(|d| d.get(key)).cloned()
}

/// Reads a token Secret (None for a Secret that is not one).
pub fn token_secret(s: &Secret) -> Option<TokenSecret> {
    if s.type_.as_deref() != Some(TOKEN_TYPE) {
        return None;
    }
    let id = data(s, "token-id")?;
    let expiration = data(s, "expiration")
        .and_then(|e| DateTime::parse_from_rfc3339(&e).ok())
        .map(|t| t.with_timezone(&Utc));
    Some(TokenSecret {
        id,
        expiration,
        uid: s.metadata.uid.clone(),
    })
}

/// The Secret for a token `id.secret` that expires at `expires`.
pub fn secret_for(token: &str, expires: DateTime<Utc>) -> Secret {
    let (id, secret) = token.split_once('.').unwrap_or((token, ""));
    let mut d = BTreeMap::new();
    for (k, v) in [
        ("token-id", id.to_string()),
        ("token-secret", secret.to_string()),
        (
            "expiration",
            expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        ("usage-bootstrap-authentication", "true".into()),
        ("usage-bootstrap-signing", "true".into()),
        ("auth-extra-groups", NODE_GROUP.into()),
        (
            "description",
            "Rotated by clusterctl for joining nodes.".into(),
        ),
    ] {
        d.insert(k.to_string(), v);
    }
    let mut s = Secret {
        type_: Some(TOKEN_TYPE.into()),
        string_data: Some(d),
        ..Default::default()
    };
    s.metadata.name = Some(format!("bootstrap-token-{id}"));
    s.metadata.labels = Some(BTreeMap::from([(
        ROTATED_LABEL.to_string(),
        "rotated".to_string(),
    )]));
    s
}

/// Options of a pass.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the token Secrets live (kube-system in a cluster).
    pub namespace: String,
    /// Lifetime of a new token.
    pub ttl: Duration,
    /// Rotate when the stored token has less than this left.
    pub renew_before: Duration,
    /// Decide only.
    pub dry_run: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            namespace: "kube-system".into(),
            ttl: Duration::from_secs(24 * 3600),
            renew_before: Duration::from_secs(12 * 3600),
            dry_run: false,
        }
    }
}

/// Observes the state store and the cluster.
pub async fn observe(
    client: &kube::Client,
    store: &StateStore,
    namespace: &str,
) -> Result<Observed, RotateError> {
    let stored = store.get(BOOTSTRAP_TOKEN).await?.and_then(|(b, _)| {
        let t = String::from_utf8(b).ok()?;
        t.trim().split_once('.').map(|(id, _)| id.to_string())
    });
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut found = BTreeMap::new();
    let mut lp = ListParams::default()
        .fields(&format!("type={TOKEN_TYPE}"))
        .limit(500);
    loop {
        let page = secrets
            .list(&lp)
            .await
            .map_err(api(format!("listing bootstrap tokens in {namespace}")))?;
        for s in &page.items {
            if let Some(t) = token_secret(s) {
                found.insert(t.id.clone(), t);
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    Ok(Observed {
        stored,
        secrets: found,
        now: Utc::now(),
    })
}

/// One rotation pass; returns what was decided.
pub async fn run(
    client: &kube::Client,
    store: &StateStore,
    opts: &Options,
) -> Result<Decision, RotateError> {
    let observed = observe(client, store, &opts.namespace).await?;
    let decision = decide(&observed, opts.renew_before);
    let Decision::Rotate { reason, retire } = &decision else {
        tracing::info!(?decision, "bootstrap token kept");
        return Ok(decision);
    };
    tracing::info!(%reason, dry_run = opts.dry_run, "rotating the bootstrap token");
    if opts.dry_run {
        return Ok(decision);
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &opts.namespace);
    let token = bootstrap_token();
    let expires =
        observed.now + chrono::Duration::from_std(opts.ttl).unwrap_or(chrono::Duration::hours(24));
    secrets
        .create(&PostParams::default(), &secret_for(&token, expires))
        .await
        .map_err(api("creating the next bootstrap token"))?;
    store.put(BOOTSTRAP_TOKEN, token.into_bytes()).await?;
    if let Some(old) = retire {
        // Only the token the state store held, and only the Secret observed
        // (its uid): a token someone made since under that name is kept.
        if let Some(uid) = observed.secrets.get(old).and_then(|s| s.uid.clone()) {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match secrets.delete(&format!("bootstrap-token-{old}"), &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(api(format!("deleting the retired token {old}"))(e)),
            }
        }
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::hours(h)
    }

    fn secret(id: &str, expires_in_h: Option<i64>) -> (String, TokenSecret) {
        (
            id.to_string(),
            TokenSecret {
                id: id.to_string(),
                expiration: expires_in_h.map(at),
                uid: Some(format!("uid-{id}")),
            },
        )
    }

    #[test]
    fn rotation_decisions() {
        let half_day = Duration::from_secs(12 * 3600);
        type Row = (
            Option<&'static str>,
            Vec<(String, TokenSecret)>,
            &'static str,
            Option<&'static str>,
        );
        let table: Vec<Row> = vec![
            (None, vec![], "rotate", None),
            (Some("aaaaaa"), vec![], "rotate", None),
            (
                Some("aaaaaa"),
                vec![secret("bbbbbb", Some(20))],
                "rotate",
                None,
            ),
            (
                Some("aaaaaa"),
                vec![secret("aaaaaa", Some(20))],
                "keep",
                None,
            ),
            (
                Some("aaaaaa"),
                vec![secret("aaaaaa", Some(12))],
                "rotate",
                None,
            ),
            (
                Some("aaaaaa"),
                vec![secret("aaaaaa", Some(-1))],
                "rotate",
                None,
            ),
            (
                Some("aaaaaa"),
                vec![secret("aaaaaa", None)],
                "rotate",
                Some("aaaaaa"),
            ),
        ];
        for (stored, secrets, want, retire) in table {
            let o = Observed {
                stored: stored.map(str::to_string),
                secrets: secrets.into_iter().collect(),
                now: at(0),
            };
            let d = decide(&o, half_day);
            match (&d, want) {
                (Decision::Keep { .. }, "keep") => {}
                (Decision::Rotate { retire: r, .. }, "rotate") => {
                    assert_eq!(r.as_deref(), retire, "{o:?}")
                }
                _ => panic!("{o:?}: {d:?}, wanted {want}"),
            }
        }
    }

    #[test]
    fn secrets_have_kubeadms_format_and_read_back() {
        let s = secret_for("abcdef.0123456789abcdef", at(24));
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        let d = s.string_data.as_ref().unwrap();
        assert_eq!(d["token-secret"], "0123456789abcdef");
        assert_eq!(d["expiration"], "2026-12-03T12:00:00Z");
        assert_eq!(d["auth-extra-groups"], NODE_GROUP);
        let back = token_secret(&s).unwrap();
        assert_eq!(back.id, "abcdef");
        assert_eq!(back.expiration, Some(at(24)));
        let mut other = s.clone();
        other.type_ = Some("Opaque".into());
        assert!(token_secret(&other).is_none());
    }
}
