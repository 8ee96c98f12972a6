//! Credentials for the cluster's API: a short-lived admin client
//! certificate minted from the cluster CA in the state store, as `kops
//! export kubeconfig --admin` does, written as a kubeconfig and turned into
//! a `kube::Client`. Or, for tests and for users who bring their own, a
//! kubeconfig file.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

use crate::state::secrets::{ca_params, load_key};
use crate::state::{StateError, StateStore};

/// The admin identity: `system:masters`, the group the API server itself
/// grants everything (kops' admin kubeconfig uses it too). It needs no
/// RBAC binding, so it works from the first second the API answers;
/// the certificate is short-lived to make up for it.
pub const ADMIN_USER: &str = "clusterctl-admin";
/// The admin group.
pub const ADMIN_GROUP: &str = "system:masters";

/// Errors building a client.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The cluster CA is not in the state store.
    #[error(
        "the cluster CA ({0}) is not in the state store; was the cluster applied, or `clusterctl secrets create` run?"
    )]
    NoCa(String),
    /// Signing failed.
    #[error("minting the admin certificate: {0}")]
    Mint(String),
    /// The kubeconfig is unreadable or unusable.
    #[error("kubeconfig {path}")]
    Config {
        /// Where it came from.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A client certificate and key (PEM) for `user` in `groups`, signed by the
/// CA, valid from five minutes ago (clock skew) for `ttl`.
pub fn mint_client_cert(
    ca_key_pem: &str,
    user: &str,
    groups: &[&str],
    ttl: Duration,
) -> Result<(String, String), KubeconfigError> {
    let mint = |e: rcgen::Error| KubeconfigError::Mint(e.to_string());
    let ca_key = load_key("pki/ca.key", ca_key_pem)?;
    let issuer = rcgen::Issuer::new(ca_params("kubernetes"), ca_key);
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, user);
    for g in groups {
        params.distinguished_name.push(DnType::OrganizationName, *g);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time_now();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(ttl.as_secs() as i64);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial()));
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(mint)?;
    let cert = params.signed_by(&key, &issuer).map_err(mint)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn serial() -> [u8; 16] {
    use rand::RngExt;
    let mut s: [u8; 16] = rand::rng().random();
    s[0] &= 0x7f; // positive
    s
}

/// A kubeconfig (YAML) for `server` with a client certificate.
pub fn kubeconfig_yaml(
    cluster: &str,
    server: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let kc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": cluster, "cluster": {
            "server": server, "certificate-authority-data": b64(ca_pem) } }],
        "users": [{ "name": format!("{ADMIN_USER}@{cluster}"), "user": {
            "client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem) } }],
        "contexts": [{ "name": cluster, "context": {
            "cluster": cluster, "user": format!("{ADMIN_USER}@{cluster}") } }],
        "current-context": cluster,
    });
    crate::spec::to_yaml(&kc)
}

/// An admin kubeconfig for the cluster at `server`, with a certificate
/// valid for `ttl`, from the CA in the state store.
pub async fn admin_kubeconfig(
    store: &StateStore,
    cluster: &str,
    server: &str,
    ttl: Duration,
) -> Result<String, KubeconfigError> {
    let text = |name: &str, bytes: Option<(Vec<u8>, String)>| {
        bytes
            .and_then(|(b, _)| String::from_utf8(b).ok())
            .ok_or_else(|| KubeconfigError::NoCa(name.to_string()))
    };
    let ca_crt = text("pki/ca.crt", store.get("pki/ca.crt").await?)?;
    let ca_key = text("pki/ca.key", store.get("pki/ca.key").await?)?;
    let (cert, key) = mint_client_cert(&ca_key, ADMIN_USER, &[ADMIN_GROUP], ttl)?;
    Ok(kubeconfig_yaml(cluster, server, &ca_crt, &cert, &key))
}

/// A client from kubeconfig text (`origin` names it in errors).
pub async fn client_from_yaml(text: &str, origin: &str) -> Result<kube::Client, KubeconfigError> {
    let bad = |e: Box<dyn std::error::Error + Send + Sync>| KubeconfigError::Config {
        path: origin.to_string(),
        source: e,
    };
    let kc = kube::config::Kubeconfig::from_yaml(text).map_err(|e| bad(e.into()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| bad(e.into()))?;
    kube::Client::try_from(config).map_err(|e| bad(e.into()))
}

/// Whether the current context of `kc` talks to `cluster`'s API: its server
/// is `api.<cluster>` or `api.internal.<cluster>` (any scheme and port).
pub fn names_cluster(kc: &kube::config::Kubeconfig, cluster: &str) -> bool {
    let server = (|| {
        let current = kc.current_context.as_deref()?;
        let ctx = kc
            .contexts
            .iter()
            .find(|c| c.name == current)?
            .context
            .as_ref()?;
        kc.clusters
            .iter()
            .find(|c| c.name == ctx.cluster)?
            .cluster
            .as_ref()?
            .server
            .clone()
    })();
    let Some(server) = server else {
        return false;
    };
    let host = server
        .split_once("://")
        .map_or(server.as_str(), |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    host == format!("api.{cluster}") || host == format!("api.internal.{cluster}")
}

/// A client from the usual kubeconfig (`KUBECONFIG`, else
/// `~/.kube/config`) when its current context talks to `cluster`'s API;
/// None when there is none, or it names another cluster (never act on
/// whatever cluster happens to be current).
pub async fn usual_client_for(cluster: &str) -> Option<kube::Client> {
    let kc = kube::config::Kubeconfig::read().ok()?;
    if !names_cluster(&kc, cluster) {
        return None;
    }
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .ok()?;
    kube::Client::try_from(config).ok()
}

/// A client from a kubeconfig file.
pub async fn client_from_file(path: &Path) -> Result<kube::Client, KubeconfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| KubeconfigError::Config {
        path: origin.clone(),
        source: e.into(),
    })?;
    client_from_yaml(&text, &origin).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_kubeconfig_is_used_only_for_its_own_cluster() {
        let kc = |server: &str| {
            kube::config::Kubeconfig::from_yaml(&format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user: {{}}\n"
            ))
            .unwrap()
        };
        assert!(names_cluster(
            &kc("https://api.dev.example.com"),
            "dev.example.com"
        ));
        assert!(names_cluster(
            &kc("https://API.internal.dev.example.com:8443/"),
            "dev.example.com"
        ));
        assert!(!names_cluster(
            &kc("https://api.prod.example.com"),
            "dev.example.com"
        ));
        assert!(!names_cluster(
            &kc("https://127.0.0.1:6443"),
            "dev.example.com"
        ));
        assert!(!names_cluster(
            &kc("https://api.dev.example.com.evil.net"),
            "dev.example.com"
        ));
        let mut none = kc("https://api.dev.example.com");
        none.current_context = None;
        assert!(!names_cluster(&none, "dev.example.com"));
    }

    #[test]
    fn minted_certificates_name_the_admin_and_chain_to_the_ca() {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let ca =
            crate::state::secrets::ca_certificate("pki/ca.crt", "kubernetes", &ca_key).unwrap();
        let (cert, key) = mint_client_cert(
            &ca_key.serialize_pem(),
            ADMIN_USER,
            &[ADMIN_GROUP],
            Duration::from_secs(3600),
        )
        .unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        // openssl, when present, checks the chain, the subject and the usage.
        let dir = tempfile_dir();
        let (ca_path, cert_path) = (dir.join("ca.crt"), dir.join("admin.crt"));
        std::fs::write(&ca_path, &ca).unwrap();
        std::fs::write(&cert_path, &cert).unwrap();
        let Ok(out) = std::process::Command::new("openssl")
            .args(["verify", "-purpose", "sslclient", "-CAfile"])
            .arg(&ca_path)
            .arg(&cert_path)
            .output()
        else {
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let subject = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(&cert_path)
            .output()
            .unwrap();
        let subject = String::from_utf8_lossy(&subject.stdout).to_string();
        assert!(subject.contains("CN = clusterctl-admin"), "{subject}");
        assert!(subject.contains("O = system:masters"), "{subject}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("clusterctl-kc-{}", hex::encode(serial())));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn kubeconfig_yaml_parses_as_a_kubeconfig() {
        let y = kubeconfig_yaml(
            "c.example.com",
            "https://api.c.example.com:443",
            "ca",
            "c",
            "k",
        );
        let kc = kube::config::Kubeconfig::from_yaml(&y).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("c.example.com"));
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://api.c.example.com:443")
        );
    }
}
