//! The S3 state store of a cluster, at `s3://bucket/prefix/<cluster>/`:
//! the objects the model writes (`config`, `cluster-completed.spec`,
//! `instancegroup/<name>`, `addons/…`, `clusterctl-version`), plus what only
//! the direct target keeps: a `serial` that grows on every successful apply,
//! and a `lock` object taken with a conditional put (If-None-Match: *) by
//! every mutating command.

pub mod pull;
pub mod secrets;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Someone else holds the lock.
    #[error(
        "the state is locked by {} (operation {}, since {}, lock ID {}); wait for it, pass --lock-timeout, or run `clusterctl force-unlock {}` if that run is dead",
        .0.who, .0.operation, .0.created, .0.id, .0.id
    )]
    Locked(Box<LockInfo>),
    /// force-unlock named a lock that is not the one held.
    #[error("lock ID {given} does not match the lock held ({held})")]
    LockMismatch {
        /// The ID given.
        given: String,
        /// The ID held, if any.
        held: String,
    },
    /// The stored state was written by a newer clusterctl.
    #[error(
        "the state store was written by clusterctl {stored}, newer than this clusterctl {ours}; upgrade clusterctl"
    )]
    TooNew {
        /// Version in the store.
        stored: String,
        /// This build.
        ours: String,
    },
    /// The state store's bucket does not exist.
    #[error(
        "the state store bucket {bucket} does not exist: create it (with versioning on, so earlier states can be recovered), or point spec.stateStore at another"
    )]
    NoBucket {
        /// Bucket.
        bucket: String,
    },
    /// A secret could not be made or read.
    #[error("state store secret {name}: {message}")]
    Secret {
        /// The object.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// An S3 call failed.
    #[error("S3 {op} s3://{bucket}/{key}: {message}")]
    S3 {
        /// The operation.
        op: &'static str,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The service's code and message.
        message: String,
    },
    /// The credentials may not make an S3 call.
    #[error("S3 {op} s3://{bucket}/{key}: access denied: {message}")]
    Denied {
        /// The operation.
        op: &'static str,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The service's message.
        message: String,
    },
    /// `state pull` found keys that would be written outside its directory.
    #[error(
        "refusing to pull s3://{bucket}: these keys would be written outside the target directory: {}",
        keys.join(", ")
    )]
    UnsafeKeys {
        /// Bucket.
        bucket: String,
        /// The keys.
        keys: Vec<String>,
    },
    /// A local file could not be written.
    #[error("writing {}", path.display())]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored object does not parse.
    #[error("s3://{bucket}/{key} is corrupt: {message}")]
    Corrupt {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Why.
        message: String,
    },
}

/// The short code and message of an S3 error, for reports; for an error
/// without a service answer (no connection, no credentials), its chain of
/// causes, each once.
fn describe_error<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => {
            let err = s.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("no message")
            )
        }
        other => {
            let mut msg = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                let part = s.to_string();
                if !msg.contains(&part) {
                    msg.push_str(": ");
                    msg.push_str(&part);
                }
                src = s.source();
            }
            msg
        }
    }
}

/// What a lock records (the fields Terraform's lock info has).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LockInfo {
    /// Random lock ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// `apply`, `destroy`, …
    pub operation: String,
    /// `user@host (pid N)`.
    pub who: String,
    /// clusterctl version.
    pub version: String,
    /// RFC 3339 time the lock was taken.
    pub created: String,
    /// The lock object's path.
    pub path: String,
}

/// The serial file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Serial {
    /// Grows by one on every successful apply.
    pub serial: u64,
}

/// A cluster's place in the state store.
#[derive(Debug, Clone)]
pub struct StateStore {
    s3: aws_sdk_s3::Client,
    /// Bucket.
    pub bucket: String,
    /// Key prefix of the cluster, `<prefix>/<cluster>`.
    pub prefix: String,
    /// Keys per page of a listing (S3's default, 1000, when None).
    page_size: Option<i32>,
    /// The account that must own the bucket (`x-amz-expected-bucket-owner`
    /// on every request): S3 refuses the request, rather than read or write
    /// the cluster's keys, if the bucket has passed to another account.
    expected_owner: Option<String>,
}

/// A held lock; release it with [`StateStore::unlock`].
#[derive(Debug, Clone)]
pub struct Lock {
    /// What was written.
    pub info: LockInfo,
}

/// A conditional write refused because the object exists (412).
fn precondition_failed(
    e: &aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::put_object::PutObjectError,
        aws_sdk_s3::config::http::HttpResponse,
    >,
) -> bool {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
        || e.as_service_error().and_then(|s| s.code()) == Some("PreconditionFailed")
}

fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host} (pid {})", std::process::id())
}

fn lock_id() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    let a: u64 = rng.random();
    let b: u64 = rng.random();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// One stored version of an object (or a delete marker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Name under the cluster's prefix.
    pub name: String,
    /// S3 version id ("null" where versioning was never on).
    pub version: String,
    /// The current version (or marker) of its key.
    pub latest: bool,
    /// A delete marker, not content.
    pub delete_marker: bool,
}

impl StateStore {
    /// The store of `cluster` at `bucket`/`prefix` (as the model computes it).
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> StateStore {
        StateStore {
            s3,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            page_size: None,
            expected_owner: None,
        }
    }

    /// Requests name `account` as the bucket's expected owner.
    pub fn with_expected_owner(mut self, account: Option<String>) -> StateStore {
        self.expected_owner = account;
        self
    }

    /// The bucket's expected owner, if known.
    pub fn expected_owner(&self) -> Option<&str> {
        self.expected_owner.as_deref()
    }

    /// Lists with pages of `n` keys (the tests page through small stores).
    pub fn with_page_size(mut self, n: i32) -> StateStore {
        self.page_size = Some(n);
        self
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    fn s3_err<E, R>(
        &self,
        op: &'static str,
        key: &str,
        e: &aws_sdk_s3::error::SdkError<E, R>,
    ) -> StateError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match e.as_service_error().and_then(|s| s.code()) {
            Some("NoSuchBucket") => {
                return StateError::NoBucket {
                    bucket: self.bucket.clone(),
                };
            }
            Some("AccessDenied") => {
                return StateError::Denied {
                    op,
                    bucket: self.bucket.clone(),
                    key: key.to_string(),
                    message: describe_error(e),
                };
            }
            _ => {}
        }
        StateError::S3 {
            op,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            message: describe_error(e),
        }
    }

    /// Reads an object; `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        let key = self.key(name);
        match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .key(&key)
            .send()
            .await
        {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_string();
                let body = out.body.collect().await.map_err(|e| StateError::S3 {
                    op: "GetObject",
                    bucket: self.bucket.clone(),
                    key: key.clone(),
                    message: e.to_string(),
                })?;
                Ok(Some((body.into_bytes().to_vec(), etag)))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.s3_err("GetObject", &key, &e)),
        }
    }

    /// Writes an object unconditionally.
    pub async fn put(&self, name: &str, body: Vec<u8>) -> Result<(), StateError> {
        let key = self.key(name);
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.s3_err("PutObject", &key, &e))
    }

    /// Writes an object only if it does not exist (If-None-Match: *);
    /// returns false, writing nothing, when it already does.
    pub async fn put_if_absent(&self, name: &str, body: Vec<u8>) -> Result<bool, StateError> {
        let key = self.key(name);
        match self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .key(&key)
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if precondition_failed(&e) => Ok(false),
            Err(e) => Err(self.s3_err("PutObject", &key, &e)),
        }
    }

    /// Deletes one object.
    pub async fn delete(&self, name: &str) -> Result<(), StateError> {
        let key = self.key(name);
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .key(&key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.s3_err("DeleteObject", &key, &e))
    }

    /// Deletes every object under `dir/` of the cluster's prefix; returns
    /// how many.
    pub async fn delete_dir(&self, dir: &str) -> Result<usize, StateError> {
        let dir = format!("{}/", dir.trim_end_matches('/'));
        let mut n = 0;
        for (name, _) in self.list().await? {
            if name.starts_with(&dir) {
                self.delete(&name).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Takes the lock for `operation`. When it is held, fails at once, or
    /// with `wait` retries until the lock is free or the time is up.
    pub async fn lock(&self, operation: &str, wait: Option<Duration>) -> Result<Lock, StateError> {
        let key = self.key("lock");
        let info = LockInfo {
            id: lock_id(),
            operation: operation.to_string(),
            who: who(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            path: format!("s3://{}/{key}", self.bucket),
        };
        let body = serde_json::to_vec_pretty(&info).unwrap_or_default();
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        let mut delay = Duration::from_millis(200);
        loop {
            match self.put_if_absent("lock", body.clone()).await? {
                true => {
                    tracing::info!(id = %info.id, operation, "state lock taken");
                    return Ok(Lock { info });
                }
                false => {
                    let holder = self.lock_holder().await?;
                    if holder.as_ref().is_some_and(|h| h.id == info.id) {
                        // Our put went through; the SDK retried it after a
                        // lost response and the retry found our own lock.
                        return Ok(Lock { info });
                    }
                    match (deadline, holder) {
                        (_, None) => continue, // released between the put and the read
                        (Some(d), Some(_)) if tokio::time::Instant::now() + delay < d => {
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                        (_, Some(h)) => return Err(StateError::Locked(Box::new(h))),
                    }
                }
            }
        }
    }

    /// The current lock, if any.
    pub async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError> {
        let Some((bytes, _)) = self.get("lock").await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                bucket: self.bucket.clone(),
                key: self.key("lock"),
                message: e.to_string(),
            })
    }

    /// Releases a lock this process holds.
    pub async fn unlock(&self, lock: &Lock) -> Result<(), StateError> {
        self.force_unlock(&lock.info.id).await
    }

    /// Removes the lock with this ID (for a run that died holding it).
    pub async fn force_unlock(&self, id: &str) -> Result<(), StateError> {
        let key = self.key("lock");
        let Some((bytes, etag)) = self.get("lock").await? else {
            return Err(StateError::LockMismatch {
                given: id.to_string(),
                held: "none".into(),
            });
        };
        let held: LockInfo = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            bucket: self.bucket.clone(),
            key: key.clone(),
            message: e.to_string(),
        })?;
        if held.id != id {
            return Err(StateError::LockMismatch {
                given: id.to_string(),
                held: held.id,
            });
        }
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .key(&key)
            .if_match(etag)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.s3_err("DeleteObject", &key, &e))
    }

    /// The current serial (0 for a new cluster).
    pub async fn serial(&self) -> Result<u64, StateError> {
        match self.get("serial").await? {
            None => Ok(0),
            Some((bytes, _)) => serde_json::from_slice::<Serial>(&bytes)
                .map(|s| s.serial)
                .map_err(|e| StateError::Corrupt {
                    bucket: self.bucket.clone(),
                    key: self.key("serial"),
                    message: e.to_string(),
                }),
        }
    }

    /// Records a successful apply: serial + 1. Returns the new serial.
    pub async fn bump_serial(&self) -> Result<u64, StateError> {
        let next = self.serial().await? + 1;
        self.put(
            "serial",
            serde_json::to_vec(&Serial { serial: next }).unwrap_or_default(),
        )
        .await?;
        Ok(next)
    }

    /// Refuses a store written by a newer clusterctl.
    pub async fn check_version(&self) -> Result<(), StateError> {
        let Some((bytes, _)) = self.get("clusterctl-version").await? else {
            return Ok(());
        };
        let stored = String::from_utf8_lossy(&bytes).trim().to_string();
        let ours = env!("CARGO_PKG_VERSION");
        match (
            semver::Version::parse(&stored),
            semver::Version::parse(ours),
        ) {
            (Ok(s), Ok(o)) if s > o => Err(StateError::TooNew {
                stored,
                ours: ours.to_string(),
            }),
            (Err(e), _) => Err(StateError::Corrupt {
                bucket: self.bucket.clone(),
                key: self.key("clusterctl-version"),
                message: e.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Every object of the cluster: key (relative to the prefix) and size.
    pub async fn list(&self) -> Result<Vec<(String, i64)>, StateError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let prefix = format!("{}/", self.prefix);
        loop {
            let r = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_expected_bucket_owner(self.expected_owner.clone())
                .prefix(&prefix)
                .set_max_keys(self.page_size)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| self.s3_err("ListObjectsV2", &prefix, &e))?;
            for o in r.contents() {
                if let Some(k) = o.key() {
                    out.push((
                        k.trim_start_matches(&prefix).to_string(),
                        o.size().unwrap_or(0),
                    ));
                }
            }
            match r.next_continuation_token() {
                Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every stored version and delete marker under `dir/` of the
    /// cluster's prefix. In a bucket that never had versioning each object
    /// has one version, "null".
    pub async fn versions(&self, dir: &str) -> Result<Vec<ObjectVersion>, StateError> {
        let prefix = format!("{}/", self.prefix);
        let dir_key = format!("{prefix}{}/", dir.trim_end_matches('/'));
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let r = self
                .s3
                .list_object_versions()
                .bucket(&self.bucket)
                .set_expected_bucket_owner(self.expected_owner.clone())
                .prefix(&dir_key)
                .set_max_keys(self.page_size)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| self.s3_err("ListObjectVersions", &dir_key, &e))?;
            let versions = r
                .versions()
                .iter()
                .map(|v| (v.key(), v.version_id(), v.is_latest(), false));
            let markers = r
                .delete_markers()
                .iter()
                .map(|m| (m.key(), m.version_id(), m.is_latest(), true));
            for (key, version, latest, marker) in versions.chain(markers) {
                if let Some(key) = key {
                    out.push(ObjectVersion {
                        name: key.trim_start_matches(&prefix).to_string(),
                        version: version.unwrap_or("null").to_string(),
                        latest: latest.unwrap_or(false),
                        delete_marker: marker,
                    });
                }
            }
            if r.is_truncated() != Some(true) {
                break;
            }
            key_marker = r.next_key_marker().map(str::to_string);
            version_marker = r.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(out)
    }

    /// Deletes one version of an object for good (no delete marker).
    pub async fn delete_version(&self, name: &str, version: &str) -> Result<(), StateError> {
        let key = self.key(name);
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .key(&key)
            .version_id(version)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.s3_err("DeleteObject", &key, &e))
    }
}
