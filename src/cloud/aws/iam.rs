//! IAM: the roles of the control plane and the nodes, their inline
//! policies and instance profiles. IAM names are account-wide, so nothing
//! is taken as ours by its name: a role is ours when it carries this
//! cluster's tags, an instance profile when its own tags say so (or, for a
//! profile AWS returns no tags for, when the role inside it is ours).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_iam::types::EntityType;

use super::{AwsCloud, Names, err};
use crate::cloud::{CloudError, IdMap};
use crate::model::Props;
use crate::model::Resource;
use crate::resource::attrs::{canonical_json, tags as tag_attrs};
use crate::resource::{Actual, AttrChange, Attrs, Kind};

fn iam_tags(r: &Resource) -> Vec<aws_sdk_iam::types::Tag> {
    r.tags
        .iter()
        .filter_map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

fn tag_map(t: &[aws_sdk_iam::types::Tag]) -> BTreeMap<String, String> {
    crate::cloud::tag_map(t.iter().map(|t| (Some(t.key()), Some(t.value()))))
}

/// Roles with their inline policies and instance profiles, in one
/// (paginated) GetAccountAuthorizationDetails call: roles that carry this
/// cluster's tags, and roles and profiles the model names (so that one
/// that exists without our tags shows, unowned, instead of being made again).
pub(super) async fn discover(
    cloud: &AwsCloud,
    names: &Names,
    by_id: &mut HashMap<String, String>,
) -> Result<Vec<Actual>, CloudError> {
    let mut out = Vec::new();
    let mut roles = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let r = cloud
            .iam
            .get_account_authorization_details()
            .filter(EntityType::Role)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| err("GetAccountAuthorizationDetails", "aws_iam_role", e))?;
        roles.extend(r.role_detail_list().iter().cloned());
        match r.marker() {
            Some(m) if r.is_truncated() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    let mut profiles_seen = std::collections::HashSet::new();
    for role in roles {
        let Some(name) = role.role_name().map(str::to_string) else {
            continue;
        };
        let tags = tag_map(role.tags());
        let owned = cloud.is_ours(&tags);
        if !owned && !names.wants(Kind::IamRole, &name) {
            continue;
        }
        let doc = role
            .assume_role_policy_document()
            .map(percent_decode)
            .unwrap_or_default();
        let mut a = Attrs::new();
        a.insert("name".into(), name.clone());
        a.insert("assume_role_policy".into(), canonical_json(&doc));
        tag_attrs(&mut a, "tags", &tags);
        let address = names.address(Kind::IamRole, &name);
        by_id.insert(name.clone(), address.clone());
        out.push(Actual {
            address: address.clone(),
            kind: Kind::IamRole,
            name: name.clone(),
            id: name.clone(),
            attrs: a,
            owned,
        });
        for p in role.role_policy_list() {
            let Some(pname) = p.policy_name() else {
                continue;
            };
            let mut a = Attrs::new();
            a.insert("name".into(), pname.to_string());
            a.insert("role".into(), address.clone());
            a.insert(
                "policy".into(),
                canonical_json(&percent_decode(p.policy_document().unwrap_or_default())),
            );
            out.push(Actual {
                address: names.address(Kind::IamRolePolicy, pname),
                kind: Kind::IamRolePolicy,
                name: pname.to_string(),
                id: format!("{name}|{pname}"),
                attrs: a,
                owned,
            });
        }
        for p in role.instance_profile_list() {
            let pname = p.instance_profile_name();
            if !profiles_seen.insert(pname.to_string()) {
                continue;
            }
            let ptags = tag_map(p.tags());
            let p_owned = if ptags.is_empty() {
                owned
            } else {
                cloud.is_ours(&ptags)
            };
            if !p_owned && !names.wants(Kind::IamInstanceProfile, pname) {
                continue;
            }
            let mut a = Attrs::new();
            a.insert("name".into(), pname.into());
            a.insert("role".into(), address.clone());
            tag_attrs(&mut a, "tags", &ptags);
            out.push(Actual {
                address: names.address(Kind::IamInstanceProfile, pname),
                kind: Kind::IamInstanceProfile,
                name: pname.into(),
                id: pname.into(),
                attrs: a,
                owned: p_owned,
            });
        }
    }
    Ok(out)
}

/// Checks the tags of the role (of a role's inline policy: its role) or
/// of the instance profile (without tags: of the role inside it).
pub(super) async fn ensure_owned(
    cloud: &AwsCloud,
    kind: Kind,
    address: &str,
    id: &str,
) -> Result<(), CloudError> {
    let role_owned = |role: String| async move {
        let r = cloud
            .iam
            .get_role()
            .role_name(&role)
            .send()
            .await
            .map_err(|e| err("GetRole", address, e))?;
        Ok::<bool, CloudError>(r.role().is_some_and(|r| cloud.is_ours(&tag_map(r.tags()))))
    };
    let owned = match kind {
        Kind::IamRolePolicy => {
            let role = id.split_once('|').map(|(r, _)| r).unwrap_or(id);
            role_owned(role.to_string()).await?
        }
        Kind::IamInstanceProfile => {
            let p = cloud
                .iam
                .get_instance_profile()
                .instance_profile_name(id)
                .send()
                .await
                .map_err(|e| err("GetInstanceProfile", address, e))?;
            let Some(p) = p.instance_profile() else {
                return cloud.refuse_unless(false, kind, address, id);
            };
            let tags = tag_map(p.tags());
            if !tags.is_empty() {
                cloud.is_ours(&tags)
            } else {
                match p.roles().first() {
                    Some(r) => role_owned(r.role_name().to_string()).await?,
                    None => false,
                }
            }
        }
        _ => role_owned(id.to_string()).await?,
    };
    cloud.refuse_unless(owned, kind, address, id)
}

/// Creates a role, an inline policy or an instance profile (with its role).
pub(super) async fn create(
    cloud: &AwsCloud,
    r: &Resource,
    ids: &IdMap,
) -> Result<String, CloudError> {
    let address = r.id.address();
    let a = address.as_str();
    match &r.props {
        Props::IamRole { assume_role_policy } => {
            let tags = iam_tags(r);
            match cloud
                .iam
                .create_role()
                .role_name(&r.name)
                .assume_role_policy_document(assume_role_policy)
                .set_tags(Some(tags))
                .send()
                .await
            {
                Ok(_) => Ok(r.name.clone()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_already_exists_exception()) =>
                {
                    Ok(r.name.clone())
                }
                Err(e) => Err(err("CreateRole", a, e)),
            }
        }
        Props::IamRolePolicy { role, policy } => {
            let role_name = ids.resolve(a, role)?;
            cloud
                .iam
                .put_role_policy()
                .role_name(&role_name)
                .policy_name(&r.name)
                .policy_document(policy)
                .send()
                .await
                .map_err(|e| err("PutRolePolicy", a, e))?;
            Ok(format!("{role_name}|{}", r.name))
        }
        Props::IamInstanceProfile { role } => {
            let role_name = ids.resolve(a, role)?;
            match cloud
                .iam
                .create_instance_profile()
                .instance_profile_name(&r.name)
                .set_tags(Some(iam_tags(r)))
                .send()
                .await
            {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_already_exists_exception()) => {}
                Err(e) => return Err(err("CreateInstanceProfile", a, e)),
            }
            match cloud
                .iam
                .add_role_to_instance_profile()
                .instance_profile_name(&r.name)
                .role_name(&role_name)
                .send()
                .await
            {
                Ok(_) => Ok(r.name.clone()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_limit_exceeded_exception()) =>
                {
                    Ok(r.name.clone())
                }
                Err(e) => Err(err("AddRoleToInstanceProfile", a, e)),
            }
        }
        other => Err(CloudError::WrongArea(other.kind())),
    }
}

/// Changes IAM resources in place: a role's trust policy and tags, a
/// policy's document (written again), a profile's tags.
pub(super) async fn update(
    cloud: &AwsCloud,
    r: &Resource,
    actual_id: &str,
    changes: &[AttrChange],
    ids: &IdMap,
) -> Result<(), CloudError> {
    let address = r.id.address();
    match &r.props {
        Props::IamRolePolicy { .. } => create(cloud, r, ids).await.map(|_| ()),
        Props::IamRole { assume_role_policy } => {
            for c in changes {
                if c.attr == "assume_role_policy" {
                    cloud
                        .iam
                        .update_assume_role_policy()
                        .role_name(actual_id)
                        .policy_document(assume_role_policy)
                        .send()
                        .await
                        .map_err(|e| err("UpdateAssumeRolePolicy", &address, e))?;
                } else if let Some(key) = c.attr.strip_prefix("tags.") {
                    match &c.new {
                        Some(v) => {
                            let tag = aws_sdk_iam::types::Tag::builder()
                                .key(key)
                                .value(v)
                                .build()
                                .map_err(|e| err("TagRole", &address, e))?;
                            cloud
                                .iam
                                .tag_role()
                                .role_name(actual_id)
                                .tags(tag)
                                .send()
                                .await
                                .map_err(|e| err("TagRole", &address, e))?;
                        }
                        None => {
                            cloud
                                .iam
                                .untag_role()
                                .role_name(actual_id)
                                .tag_keys(key)
                                .send()
                                .await
                                .map_err(|e| err("UntagRole", &address, e))?;
                        }
                    }
                }
            }
            Ok(())
        }
        Props::IamInstanceProfile { .. } => {
            let set: Vec<_> = changes
                .iter()
                .filter_map(|c| {
                    aws_sdk_iam::types::Tag::builder()
                        .key(c.attr.strip_prefix("tags.")?)
                        .value(c.new.as_ref()?)
                        .build()
                        .ok()
                })
                .collect();
            if !set.is_empty() {
                cloud
                    .iam
                    .tag_instance_profile()
                    .instance_profile_name(actual_id)
                    .set_tags(Some(set))
                    .send()
                    .await
                    .map_err(|e| err("TagInstanceProfile", &address, e))?;
            }
            let unset: Vec<String> = changes
                .iter()
                .filter(|c| c.new.is_none())
                .filter_map(|c| c.attr.strip_prefix("tags.").map(str::to_string))
                .collect();
            if !unset.is_empty() {
                cloud
                    .iam
                    .untag_instance_profile()
                    .instance_profile_name(actual_id)
                    .set_tag_keys(Some(unset))
                    .send()
                    .await
                    .map_err(|e| err("UntagInstanceProfile", &address, e))?;
            }
            Ok(())
        }
        other => Err(CloudError::WrongArea(other.kind())),
    }
}

/// Deletes an inline policy, an instance profile (its role removed first)
/// or a role.
pub(super) async fn delete(
    cloud: &AwsCloud,
    kind: Kind,
    address: &str,
    id: &str,
) -> Result<(), CloudError> {
    match kind {
        Kind::IamRolePolicy => {
            let (role, name) = id.split_once('|').unwrap_or((id, id));
            cloud
                .iam
                .delete_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteRolePolicy", address, e))
        }
        Kind::IamInstanceProfile => {
            let p = cloud
                .iam
                .get_instance_profile()
                .instance_profile_name(id)
                .send()
                .await
                .map_err(|e| err("GetInstanceProfile", address, e))?;
            let roles: Vec<String> = p
                .instance_profile()
                .map(|x| {
                    x.roles()
                        .iter()
                        .map(|r| r.role_name().to_string())
                        .collect()
                })
                .unwrap_or_default();
            for role in roles {
                cloud
                    .iam
                    .remove_role_from_instance_profile()
                    .instance_profile_name(id)
                    .role_name(role)
                    .send()
                    .await
                    .map_err(|e| err("RemoveRoleFromInstanceProfile", address, e))?;
            }
            cloud
                .iam
                .delete_instance_profile()
                .instance_profile_name(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err("DeleteInstanceProfile", address, e))
        }
        // Profiles and inline policies rank higher, so they are gone first.
        Kind::IamRole => cloud
            .iam
            .delete_role()
            .role_name(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("DeleteRole", address, e)),
        other => Err(CloudError::WrongArea(other)),
    }
}

/// IAM returns policy documents URL-encoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_iam_documents() {
        assert_eq!(percent_decode("%7B%22a%22%3A1%7D"), "{\"a\":1}");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%é"), "%é");
    }
}
