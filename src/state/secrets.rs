//! The cluster's secrets in the state store, made on the first apply and
//! never replaced: the Kubernetes, front-proxy and etcd CAs (certificate
//! and key, the files kubeadm expects under /etc/kubernetes/pki), the
//! service-account signing key pair and the kubeadm bootstrap token.
//! Instances read them at boot with their instance role; rendered user data
//! and Terraform never hold them.
//!
//! Every object is written with a conditional put, so a second writer (or a
//! re-run after a crash) never replaces one. A key is written before its
//! certificate, and a missing certificate is made from the stored key, so
//! a crash between the two leaves a pair that still matches.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256,
};

use super::{StateError, StateStore};

/// The CAs: object path (without `.crt`/`.key`) and common name, as kubeadm
/// names them.
pub const CAS: [(&str, &str); 3] = [
    ("pki/ca", "kubernetes"),
    ("pki/front-proxy-ca", "front-proxy-ca"),
    ("pki/etcd/ca", "etcd-ca"),
];

/// Service-account signing key pair.
pub const SA_KEY: &str = "pki/sa.key";
/// Its public half.
pub const SA_PUB: &str = "pki/sa.pub";
/// The kubeadm bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
pub const BOOTSTRAP_TOKEN: &str = "secrets/bootstrap-token";
/// Written by the first control-plane instance to claim `kubeadm init`.
pub const INIT_MARKER: &str = "cluster-initialized";

/// Years a CA is valid (kubeadm's default).
const CA_YEARS: i32 = 10;

fn crypto(name: &str, e: rcgen::Error) -> StateError {
    StateError::Secret {
        name: name.to_string(),
        message: e.to_string(),
    }
}

fn new_key(name: &str) -> Result<KeyPair, StateError> {
    KeyPair::generate_for(&PKCS_RSA_SHA256).map_err(|e| crypto(name, e))
}

/// Reads a PEM private key (`name` is its object, for errors).
pub fn load_key(name: &str, pem: &str) -> Result<KeyPair, StateError> {
    KeyPair::from_pem(pem).map_err(|e| crypto(name, e))
}

/// The parameters of a CA named `common_name` (kubeadm's CA shape): also
/// the issuer of the certificates signed with its key, so its subject must
/// stay exactly what [`ca_certificate`] writes.
pub fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params
}

/// A self-signed CA certificate for `key`, valid from today for ten years.
pub fn ca_certificate(name: &str, common_name: &str, key: &KeyPair) -> Result<String, StateError> {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let mut params = ca_params(common_name);
    // Whole days, from yesterday: tolerates clocks a little behind ours.
    let from = today.pred_opt().unwrap_or(today);
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(
        today.year() + CA_YEARS,
        today.month() as u8,
        today.day().min(28) as u8,
    );
    params
        .self_signed(key)
        .map(|c| c.pem())
        .map_err(|e| crypto(name, e))
}

/// A fresh bootstrap token.
pub fn bootstrap_token() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let id = pick(6);
    format!("{id}.{}", pick(16))
}

/// Returns the stored object, or stores `make()` if there is none (a
/// conditional put: if another writer got there first, theirs is kept and
/// returned). The flag says whether this call wrote it.
async fn ensure_object(
    store: &StateStore,
    name: &str,
    make: impl FnOnce() -> Result<String, StateError>,
) -> Result<(String, bool), StateError> {
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|e| StateError::Secret {
            name: name.to_string(),
            message: format!("not UTF-8 PEM/text: {e}"),
        })
    };
    if let Some((bytes, _)) = store.get(name).await? {
        return Ok((text(bytes)?, false));
    }
    let made = make()?;
    if store.put_if_absent(name, made.clone().into_bytes()).await? {
        return Ok((made, true));
    }
    match store.get(name).await? {
        Some((bytes, _)) => Ok((text(bytes)?, false)),
        None => Err(StateError::Secret {
            name: name.to_string(),
            message: "a conditional put found the object, but it is gone; run apply again".into(),
        }),
    }
}

/// Every object [`ensure`] makes.
pub fn names() -> Vec<String> {
    let mut all: Vec<String> = CAS
        .iter()
        .flat_map(|(base, _)| [format!("{base}.key"), format!("{base}.crt")])
        .collect();
    all.extend([SA_KEY, SA_PUB, BOOTSTRAP_TOKEN].map(str::to_string));
    all
}

/// The secrets that are not in the store.
pub async fn missing(store: &StateStore) -> Result<Vec<String>, StateError> {
    let present: std::collections::BTreeSet<String> =
        store.list().await?.into_iter().map(|(k, _)| k).collect();
    Ok(names()
        .into_iter()
        .filter(|n| !present.contains(n))
        .collect())
}

/// Makes whatever of the cluster's secrets is missing; returns the names
/// written (empty when all exist).
pub async fn ensure(store: &StateStore) -> Result<Vec<String>, StateError> {
    let mut written = Vec::new();
    for (base, cn) in CAS {
        let key_name = format!("{base}.key");
        let crt_name = format!("{base}.crt");
        let (key_pem, made) =
            ensure_object(store, &key_name, || Ok(new_key(&key_name)?.serialize_pem())).await?;
        if made {
            written.push(key_name.clone());
        }
        let key = load_key(&key_name, &key_pem)?;
        let (_, made) =
            ensure_object(store, &crt_name, || ca_certificate(&crt_name, cn, &key)).await?;
        if made {
            written.push(crt_name);
        }
    }
    let (sa_pem, made) =
        ensure_object(store, SA_KEY, || Ok(new_key(SA_KEY)?.serialize_pem())).await?;
    if made {
        written.push(SA_KEY.to_string());
    }
    let sa = load_key(SA_KEY, &sa_pem)?;
    let (_, made) = ensure_object(store, SA_PUB, || Ok(sa.public_key_pem())).await?;
    if made {
        written.push(SA_PUB.to_string());
    }
    let (_, made) = ensure_object(store, BOOTSTRAP_TOKEN, || Ok(bootstrap_token())).await?;
    if made {
        written.push(BOOTSTRAP_TOKEN.to_string());
    }
    Ok(written)
}

/// Removes the secrets and the init marker (after a destroy); returns how
/// many objects went.
pub async fn remove(store: &StateStore) -> Result<usize, StateError> {
    // Certificates and public keys go before the keys they were made from:
    // a crash part way leaves keys whose halves `ensure` makes again, never
    // a certificate whose key was replaced.
    // Every version goes, not only the current one: in a versioned bucket
    // a plain delete only hides a private key behind a delete marker.
    let listed = match store.versions("pki").await {
        Ok(mut all) => store.versions("secrets").await.map(|s| {
            all.extend(s);
            all
        }),
        Err(e) => Err(e),
    };
    let all = match listed {
        Ok(all) => all,
        Err(StateError::Denied { .. }) => {
            // Without s3:ListBucketVersions: current versions only.
            tracing::warn!(
                "may not list object versions in the state bucket; deleting the current secrets only (older versions stay if the bucket is versioned)"
            );
            return remove_current(store).await;
        }
        Err(e) => Err(e)?,
    };
    let mut names = std::collections::BTreeSet::new();
    for v in removal_order(all) {
        store.delete_version(&v.name, &v.version).await?;
        if !v.delete_marker {
            names.insert(v.name);
        }
    }
    Ok(names.len() + remove_init_marker(store).await?)
}

/// The order secrets' versions are deleted in: certificates and public keys
/// before the keys they were made from, and within each, older versions
/// before the current one, so that a crash part way never makes an older
/// version current again.
fn removal_order(mut all: Vec<crate::state::ObjectVersion>) -> Vec<crate::state::ObjectVersion> {
    let derived = |name: &str| name.ends_with(".crt") || name.ends_with(".pub");
    all.sort_by_key(|v| (!derived(&v.name), v.latest));
    all
}

/// Deletes the current secrets (for credentials that may not list versions).
async fn remove_current(store: &StateStore) -> Result<usize, StateError> {
    let mut n = 0;
    for (name, _) in store.list().await? {
        if name.starts_with("pki/") && (name.ends_with(".crt") || name.ends_with(".pub")) {
            store.delete(&name).await?;
            n += 1;
        }
    }
    n += store.delete_dir("pki").await? + store.delete_dir("secrets").await?;
    Ok(n + remove_init_marker(store).await?)
}

/// Removes the marker that makes new control-plane instances join rather
/// than initialise; once no control plane is left it must go, or a re-apply
/// would have every new instance join a cluster that no longer exists.
pub async fn remove_init_marker(store: &StateStore) -> Result<usize, StateError> {
    if store.get(INIT_MARKER).await?.is_some() {
        store.delete(INIT_MARKER).await?;
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_objects_and_older_versions_go_first() {
        let v = |name: &str, version: &str, latest: bool| crate::state::ObjectVersion {
            name: name.into(),
            version: version.into(),
            latest,
            delete_marker: false,
        };
        let order: Vec<(String, String)> = removal_order(vec![
            v("pki/ca.key", "b", true),
            v("pki/ca.key", "a", false),
            v("pki/ca.crt", "d", true),
            v("pki/ca.crt", "c", false),
            v("secrets/bootstrap-token", "e", true),
        ])
        .into_iter()
        .map(|v| (v.name, v.version))
        .collect();
        // Each key's older version before its current one; all derived first.
        let pos = |n: &str, ver: &str| order.iter().position(|(a, b)| a == n && b == ver).unwrap();
        assert!(pos("pki/ca.crt", "c") < pos("pki/ca.crt", "d"));
        assert!(pos("pki/ca.key", "a") < pos("pki/ca.key", "b"));
        assert!(pos("pki/ca.crt", "d") < pos("pki/ca.key", "a"));
        assert_eq!(order.len(), 5);
        assert_eq!(order[4].0, "secrets/bootstrap-token");
    }

    #[test]
    fn bootstrap_tokens_have_kubeadms_format() {
        let t = bootstrap_token();
        let (id, secret) = t.split_once('.').unwrap();
        assert_eq!((id.len(), secret.len()), (6, 16), "{t}");
        assert!(
            t.chars()
                .all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{t}"
        );
        assert_ne!(t, bootstrap_token());
    }

    #[test]
    fn ca_certificates_are_pem() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = ca_certificate("x", "kubernetes", &key).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    }
}
