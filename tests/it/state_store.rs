//! The S3 state store against moto_server: the conditional-put lock, its
//! holder in errors, waiting, force-unlock, the serial and the version guard.

use std::time::Duration;

use clusterctl::state::{StateError, StateStore};

use crate::moto::Moto;

async fn store(moto: &Moto) -> StateStore {
    moto.bucket("eu-west-1", "state").await;
    StateStore::new(
        moto.s3("eu-west-1").await,
        "state",
        "clusters/c.example.com",
    )
}

#[tokio::test]
async fn lock_is_exclusive_and_names_its_holder() {
    let Some(moto) = Moto::start() else { return };
    let s = store(&moto).await;
    let held = s.lock("apply", None).await.unwrap();
    let err = s.lock("apply", None).await.unwrap_err();
    let msg = err.to_string();
    match err {
        StateError::Locked(info) => assert_eq!(info.id, held.info.id),
        other => panic!("expected Locked, got {other}"),
    }
    assert!(
        msg.contains(&held.info.id) && msg.contains(&held.info.who) && msg.contains("apply"),
        "{msg}"
    );
    s.unlock(&held).await.unwrap();
    let again = s.lock("destroy", None).await.unwrap();
    assert_ne!(again.info.id, held.info.id);
    assert_eq!(s.lock_holder().await.unwrap().unwrap().operation, "destroy");
}

#[tokio::test]
async fn concurrent_lockers_exactly_one_wins() {
    let Some(moto) = Moto::start_serialised() else {
        return;
    };
    let s = store(&moto).await;
    let tries = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.lock("apply", None).await })
    });
    let results = futures::future::join_all(tries).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    assert_eq!(won, 1, "exactly one of 8 concurrent lockers holds the lock");
    // The 8 conditional puts (and the losers' reads) went through the
    // serialising proxy.
    assert!(moto.proxied_requests().unwrap() >= 15);
}

#[tokio::test]
async fn lock_timeout_waits_for_release() {
    let Some(moto) = Moto::start() else { return };
    let s = store(&moto).await;
    let held = s.lock("apply", None).await.unwrap();
    let s2 = s.clone();
    let waiter = tokio::spawn(async move { s2.lock("apply", Some(Duration::from_secs(20))).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter waits while the lock is held"
    );
    s.unlock(&held).await.unwrap();
    let got = waiter.await.unwrap().unwrap();
    assert_ne!(got.info.id, held.info.id);
    // A short timeout gives up with the holder's name.
    let err = s
        .lock("apply", Some(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::Locked(_)));
}

#[tokio::test]
async fn force_unlock_needs_the_right_id() {
    let Some(moto) = Moto::start() else { return };
    let s = store(&moto).await;
    let held = s.lock("apply", None).await.unwrap();
    assert!(matches!(
        s.force_unlock("wrong").await,
        Err(StateError::LockMismatch { .. })
    ));
    assert!(s.lock_holder().await.unwrap().is_some());
    s.force_unlock(&held.info.id).await.unwrap();
    assert!(s.lock_holder().await.unwrap().is_none());
}

#[tokio::test]
async fn serial_grows_and_version_guard_refuses_newer_stores() {
    let Some(moto) = Moto::start() else { return };
    let s = store(&moto).await;
    assert_eq!(s.serial().await.unwrap(), 0);
    assert_eq!(s.bump_serial().await.unwrap(), 1);
    assert_eq!(s.bump_serial().await.unwrap(), 2);
    assert_eq!(s.serial().await.unwrap(), 2);
    s.check_version().await.unwrap();
    s.put("clusterctl-version", b"99.0.0\n".to_vec())
        .await
        .unwrap();
    assert!(matches!(
        s.check_version().await,
        Err(StateError::TooNew { .. })
    ));
    let keys: Vec<String> = s
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["clusterctl-version", "serial"]);
}

#[tokio::test]
async fn cli_state_show_and_force_unlock() {
    let Some(moto) = Moto::start() else { return };
    moto.bucket("us-east-1", "example-clusterctl-state").await;
    let s3 = moto.s3("us-east-1").await;
    let s = StateStore::new(s3, "example-clusterctl-state", "clusters/dev.example.com");
    let held = s.lock("apply", None).await.unwrap();
    let run = |args: &[&str]| moto.clusterctl(args).output().unwrap();
    let out = run(&["state", "show", "-f", "examples/dev.yaml", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lock"]["ID"], held.info.id.as_str());
    let bad = run(&["force-unlock", "nope", "-f", "examples/dev.yaml"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does not match"));
    let ok = run(&["force-unlock", &held.info.id, "-f", "examples/dev.yaml"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(s.lock_holder().await.unwrap().is_none());
}

/// Runs openssl on stdin; its stdout.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let bin = crate::support::tool("openssl").expect("openssl");
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

async fn object(s: &StateStore, name: &str) -> Vec<u8> {
    s.get(name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} missing"))
        .0
}

/// The CAs, service-account key pair and bootstrap token: made once, as
/// kubeadm reads them (checked with openssl, including the CA public-key
/// hash nodes compute for `kubeadm join`), never replaced, and after a crash
/// between a key and its certificate the certificate is made from the
/// stored key.
#[tokio::test]
async fn secrets_are_made_once_match_their_keys_and_survive_a_crash() {
    use clusterctl::state::secrets;
    let Some(moto) = Moto::start_serialised() else {
        return;
    };
    if crate::support::tool("openssl").is_none() {
        return;
    }
    let s = store(&moto).await;
    let mut written = secrets::ensure(&s).await.unwrap();
    written.sort();
    assert_eq!(
        written,
        [
            "pki/ca.crt",
            "pki/ca.key",
            "pki/etcd/ca.crt",
            "pki/etcd/ca.key",
            "pki/front-proxy-ca.crt",
            "pki/front-proxy-ca.key",
            "pki/sa.key",
            "pki/sa.pub",
            "secrets/bootstrap-token"
        ]
    );
    for (base, cn) in secrets::CAS {
        let crt = object(&s, &format!("{base}.crt")).await;
        let key = object(&s, &format!("{base}.key")).await;
        let text = String::from_utf8(openssl(&["x509", "-noout", "-text"], &crt))
            .unwrap()
            .replace(" = ", "=");
        assert!(text.contains(&format!("Subject: CN={cn}")), "{text}");
        assert!(text.contains("CA:TRUE"), "{text}");
        assert!(text.contains("Certificate Sign"), "{text}");
        assert!(text.contains("rsaEncryption"), "{text}");
        assert_eq!(
            openssl(&["x509", "-noout", "-pubkey"], &crt),
            openssl(&["pkey", "-pubout"], &key),
            "{base}: certificate and key match"
        );
        // Self-signed and usable as a trust anchor.
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &crt).unwrap();
        let path = file.path().to_str().unwrap();
        openssl(&["verify", "-CAfile", path, path], b"");
    }
    // The discovery hash of `kubeadm join`, as the node bootstrap script computes it.
    let ca = object(&s, "pki/ca.crt").await;
    let der = openssl(
        &["rsa", "-pubin", "-outform", "der"],
        &openssl(&["x509", "-pubkey", "-noout"], &ca),
    );
    assert!(der.len() > 256, "an RSA-2048 public key");
    assert_eq!(
        openssl(&["pkey", "-pubout"], &object(&s, "pki/sa.key").await),
        object(&s, "pki/sa.pub").await
    );
    let token = String::from_utf8(object(&s, "secrets/bootstrap-token").await).unwrap();
    assert_eq!(token.len(), 23, "{token}");

    // Idempotent: nothing is written again, nothing changes.
    let before = s.list().await.unwrap();
    assert!(secrets::ensure(&s).await.unwrap().is_empty());
    assert_eq!(object(&s, "pki/ca.crt").await, ca);
    assert_eq!(s.list().await.unwrap(), before);

    // A crash after the key was written but before its certificate: the
    // certificate is made again from the stored key.
    let key = object(&s, "pki/front-proxy-ca.key").await;
    s.delete("pki/front-proxy-ca.crt").await.unwrap();
    assert_eq!(
        secrets::ensure(&s).await.unwrap(),
        ["pki/front-proxy-ca.crt"]
    );
    assert_eq!(object(&s, "pki/front-proxy-ca.key").await, key);
    assert_eq!(
        openssl(
            &["x509", "-noout", "-pubkey"],
            &object(&s, "pki/front-proxy-ca.crt").await
        ),
        openssl(&["pkey", "-pubout"], &key)
    );

    // Concurrent writers: each object exists once, all agree on it.
    let other = StateStore::new(
        moto.s3("eu-west-1").await,
        "state",
        "clusters/other.example.com",
    );
    let results = futures::future::join_all((0..4).map(|_| secrets::ensure(&other))).await;
    let total: usize = results.into_iter().map(|r| r.unwrap().len()).sum();
    assert_eq!(total, 9, "each object written by exactly one writer");
    let key = object(&other, "pki/ca.key").await;
    assert_eq!(
        openssl(
            &["x509", "-noout", "-pubkey"],
            &object(&other, "pki/ca.crt").await
        ),
        openssl(&["pkey", "-pubout"], &key)
    );

    // Destroy removes them (and the init marker).
    s.put(secrets::INIT_MARKER, b"ip-10-0-0-1".to_vec())
        .await
        .unwrap();
    assert_eq!(secrets::remove(&s).await.unwrap(), 10);
    assert!(
        s.list()
            .await
            .unwrap()
            .iter()
            .all(|(k, _)| !k.starts_with("pki/")
                && !k.starts_with("secrets/")
                && k != "cluster-initialized")
    );
}

/// In a versioned state bucket a plain delete only hides an object behind
/// a delete marker; destroy removes every version of every secret.
#[tokio::test]
async fn secrets_leave_no_version_behind_in_a_versioned_bucket() {
    use clusterctl::state::secrets;
    let Some(moto) = Moto::start() else { return };
    moto.bucket("eu-west-1", "versioned").await;
    let s3 = moto.s3("eu-west-1").await;
    s3.put_bucket_versioning()
        .bucket("versioned")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Pages of 2 keys: every listing takes several pages.
    let s = StateStore::new(s3, "versioned", "clusters/v.example.com").with_page_size(2);
    assert_eq!(secrets::ensure(&s).await.unwrap().len(), 9);
    // A certificate lost and made again: two versions and a delete marker.
    s.delete("pki/ca.crt").await.unwrap();
    assert_eq!(secrets::ensure(&s).await.unwrap(), ["pki/ca.crt"]);
    let versions = s.versions("pki").await.unwrap();
    // moto pages versions as S3 does, so the loop above went page by page.
    let page = moto
        .s3("eu-west-1")
        .await
        .list_object_versions()
        .bucket("versioned")
        .max_keys(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(
        versions.len(),
        10,
        "7 objects, 2 more versions of ca.crt: {versions:?}"
    );
    let ca: Vec<_> = versions.iter().filter(|v| v.name == "pki/ca.crt").collect();
    assert_eq!(ca.len(), 3, "{versions:?}");
    assert_eq!(ca.iter().filter(|v| v.delete_marker).count(), 1);
    assert_eq!(ca.iter().filter(|v| v.latest).count(), 1);
    // Another secret whose current version is a delete marker.
    s.delete("secrets/bootstrap-token").await.unwrap();
    s.put("state-serial-like", b"kept".to_vec()).await.unwrap();
    assert_eq!(secrets::remove(&s).await.unwrap(), 9);
    assert_eq!(s.versions("pki").await.unwrap(), vec![]);
    assert_eq!(s.versions("secrets").await.unwrap(), vec![]);
    // Objects outside pki/ and secrets/ are not touched.
    assert_eq!(
        s.list().await.unwrap(),
        vec![("state-serial-like".to_string(), 4)]
    );
}

/// `state pull` holds the CA keys and bootstrap token: every file 0600,
/// every directory 0700; a key that would leave the target directory
/// refuses the pull before anything is written.
#[tokio::test]
async fn pull_writes_owner_only_and_refuses_keys_that_leave_the_directory() {
    use std::os::unix::fs::PermissionsExt;
    let Some(moto) = Moto::start() else { return };
    let s = store(&moto).await;
    clusterctl::state::secrets::ensure(&s).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pulled");
    let n = s.pull(&out).await.unwrap();
    let mut files = 0;
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", p.display());
                files += 1;
            }
        }
    }
    assert_eq!(files, n);
    assert!(out.join("pki").is_dir() && out.join("secrets").is_dir());

    // A key that climbs out of the cluster's prefix.
    let hostile = "clusters/c.example.com/../../evil";
    moto.s3("eu-west-1")
        .await
        .put_object()
        .bucket("state")
        .key(hostile)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let listed: Vec<String> = s
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(listed.contains(&"../../evil".to_string()), "{listed:?}");
    let second = dir.path().join("second");
    match s.pull(&second).await {
        Err(StateError::UnsafeKeys { keys, .. }) => assert_eq!(keys, [hostile]),
        other => panic!("expected UnsafeKeys, got {other:?}"),
    }
    assert!(!second.exists());
    assert!(!dir.path().join("evil").exists());
}
