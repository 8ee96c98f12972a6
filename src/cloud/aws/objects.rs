//! The state store's managed objects: the spec as given and completed,
//! each instance group, the version file and the addons. Never the lock,
//! the serial, `pki/` or `secrets/`, which `state` owns.
//!
//! An S3 ETag is the MD5 of the content only for a single-part upload
//! without SSE-KMS. So an object is unchanged when its ETag is the MD5 of
//! the content wanted (conclusive: nothing else gives that value), and
//! otherwise when the SHA-256 that clusterctl stores in its metadata
//! matches; an object that has neither differs, and writing it again
//! stores the digest.

use super::{AwsCloud, err};
use crate::cloud::CloudError;
use crate::model::{Model, Props, Resource};
use crate::resource::{Actual, Attrs, Kind};

/// The object metadata key (`x-amz-meta-…`) that holds the content's SHA-256.
pub const DIGEST_METADATA: &str = "clusterctl-sha256";

/// `key` is a managed object of the cluster whose state lives under
/// `prefix/`: a fixed name or under `instancegroup/` or `addons/`, with no
/// `..` or empty segment that could lead elsewhere.
pub fn is_managed_key(prefix: &str, key: &str) -> bool {
    let Some(rel) = key.strip_prefix(&format!("{prefix}/")) else {
        return false;
    };
    if rel
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return false;
    }
    ["config", "cluster-completed.spec", "clusterctl-version"].contains(&rel)
        || rel.starts_with("instancegroup/")
        || rel.starts_with("addons/")
}

fn md5_hex(s: &str) -> String {
    hex::encode(<md5::Md5 as md5::Digest>::digest(s.as_bytes()))
}

/// The comparable content of an object: the wanted digest when the ETag
/// proves it, else what its metadata says, else its ETag.
pub(crate) fn content_attr(
    etag: &str,
    wanted: Option<(&str, &str)>,
    stored: Option<&str>,
) -> String {
    match (wanted, stored) {
        (Some((content, sha256)), _) if md5_hex(content) == etag => format!("sha256:{sha256}"),
        (_, Some(digest)) => format!("sha256:{digest}"),
        _ => format!("etag:{etag}"),
    }
}

/// The managed objects that exist: one paginated listing, plus a
/// HeadObject for each object whose ETag is not the MD5 of what the model
/// wants (none in the steady state of a plain bucket).
pub(super) async fn discover(cloud: &AwsCloud, model: &Model) -> Result<Vec<Actual>, CloudError> {
    let wanted: std::collections::HashMap<&str, (&str, &str)> = model
        .resources
        .iter()
        .filter_map(|r| match &r.props {
            Props::S3Object {
                key,
                content,
                sha256,
                ..
            } => Some((key.as_str(), (content.as_str(), sha256.as_str()))),
            _ => None,
        })
        .collect();
    let prefix = format!("{}/", cloud.prefix);
    let pages = cloud
        .s3
        .list_objects_v2()
        .bucket(&cloud.bucket)
        .set_expected_bucket_owner(cloud.expected_owner.clone())
        .prefix(&prefix)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    let mut listed = Vec::new();
    for page in pages {
        match page {
            Ok(p) => listed.extend(p.contents().iter().cloned()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_bucket()) => {
                return Ok(vec![]);
            }
            Err(e) => return Err(err("ListObjectsV2", "aws_s3_object", e)),
        }
    }
    let mut out = Vec::new();
    for o in &listed {
        let Some(key) = o.key() else { continue };
        if !wanted.contains_key(key) && !is_managed_key(&cloud.prefix, key) {
            continue;
        }
        let etag = o.e_tag().unwrap_or_default().trim_matches('"');
        let want = wanted.get(key).copied();
        let proven = want.is_some_and(|(c, _)| md5_hex(c) == etag);
        let stored = if want.is_some() && !proven {
            let head = cloud
                .s3
                .head_object()
                .bucket(&cloud.bucket)
                .set_expected_bucket_owner(cloud.expected_owner.clone())
                .key(key)
                .send()
                .await
                .map_err(|e| err("HeadObject", key, e))?;
            head.metadata()
                .and_then(|m| m.get(DIGEST_METADATA))
                .cloned()
        } else {
            None
        };
        let mut a = Attrs::new();
        a.insert("bucket".into(), cloud.bucket.clone());
        a.insert("key".into(), key.into());
        a.insert(
            "content".into(),
            content_attr(etag, want, stored.as_deref()),
        );
        out.push(Actual {
            address: format!("aws_s3_object.{}", crate::model::naming::tf_label(key)),
            kind: Kind::S3Object,
            name: key.into(),
            id: key.into(),
            attrs: a,
            owned: true,
        });
    }
    Ok(out)
}

/// Writes an object, with its content's SHA-256 in its metadata.
pub(super) async fn create(cloud: &AwsCloud, r: &Resource) -> Result<String, CloudError> {
    let Props::S3Object {
        bucket,
        key,
        content,
        sha256,
    } = &r.props
    else {
        return Err(CloudError::WrongArea(r.id.kind));
    };
    cloud
        .s3
        .put_object()
        .bucket(bucket)
        .set_expected_bucket_owner(cloud.expected_owner.clone())
        .key(key)
        .metadata(DIGEST_METADATA, sha256)
        .body(aws_sdk_s3::primitives::ByteStream::from(
            content.clone().into_bytes(),
        ))
        .send()
        .await
        .map_err(|e| err("PutObject", &r.id.address(), e))?;
    Ok(key.clone())
}

/// Deletes an object (its key was checked to be a managed one).
pub(super) async fn delete(cloud: &AwsCloud, address: &str, id: &str) -> Result<(), CloudError> {
    cloud
        .s3
        .delete_object()
        .bucket(&cloud.bucket)
        .set_expected_bucket_owner(cloud.expected_owner.clone())
        .key(id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err("DeleteObject", address, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_keys_stay_inside_the_clusters_prefix() {
        let p = "clusters/dev.example.com";
        assert!(is_managed_key(p, "clusters/dev.example.com/config"));
        assert!(is_managed_key(
            p,
            "clusters/dev.example.com/instancegroup/nodes"
        ));
        assert!(is_managed_key(
            p,
            "clusters/dev.example.com/addons/bootstrap-channel.yaml"
        ));
        // The neighbour whose name ends like ours.
        assert!(!is_managed_key(p, "clusters/b.dev.example.com/config"));
        assert!(!is_managed_key(p, "clusters/dev.example.com.b/config"));
        // What `state` owns, and keys that climb out.
        assert!(!is_managed_key(p, "clusters/dev.example.com/pki/ca.key"));
        assert!(!is_managed_key(p, "clusters/dev.example.com/serial"));
        assert!(!is_managed_key(
            p,
            "clusters/dev.example.com/addons/../pki/ca.key"
        ));
        assert!(!is_managed_key(p, "clusters/dev.example.com/addons//x"));
    }

    #[test]
    fn content_is_compared_by_digest_when_the_etag_is_not_an_md5() {
        let content = "hello";
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content.as_bytes()));
        let want = Some((content, sha.as_str()));
        let wanted = format!("sha256:{sha}");
        // A single-part upload: the ETag is the MD5.
        assert_eq!(content_attr(&md5_hex(content), want, None), wanted);
        // Multipart or SSE-KMS: the ETag is not, the stored digest decides.
        assert_eq!(
            content_attr("3858f62230ac3c915f300c664312c11f-2", want, Some(&sha)),
            wanted
        );
        assert_ne!(
            content_attr("3858f62230ac3c915f300c664312c11f-2", want, Some("00")),
            wanted
        );
        // Neither: a difference, which writing again mends.
        assert_eq!(content_attr("abc-2", want, None), "etag:abc-2");
    }
}
