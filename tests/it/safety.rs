//! Deletion safety and crash safety of the direct target, each check one
//! that failed before its fix: the AWS implementation refuses to delete
//! what does not carry the cluster's mark, whatever its caller says; a
//! panic inside apply fails it and leaves the serial where it was; an
//! object whose ETag is not an MD5 plans clean.

use std::sync::Arc;

use clusterctl::cloud::aws::AwsCloud;
use clusterctl::cloud::fake::{FakeCatalog, FakeCloud};
use clusterctl::cloud::{Cloud, CloudError};
use clusterctl::direct::{Direct, DirectError, Operation};
use clusterctl::resource::Kind;
use clusterctl::spec::Spec;
use clusterctl::state::StateStore;

use crate::moto::Moto;
use crate::support::root;

const REGION: &str = "us-east-1";
const BUCKET: &str = "example-clusterctl-state";

async fn dev_cloud(moto: &Moto) -> (AwsCloud, clusterctl::cloud::Clients) {
    let clients = clusterctl::cloud::Clients::from_sdk(&moto.sdk_config(REGION).await, true);
    moto.bucket(REGION, BUCKET).await;
    let cloud = AwsCloud::new(
        &clients,
        "dev.example.com",
        BUCKET,
        "clusters/dev.example.com",
    );
    (cloud, clients)
}

fn refused(r: Result<(), CloudError>, what: &str) {
    match r {
        Err(CloudError::NotOwned { .. }) => {}
        other => panic!("{what}: expected NotOwned, got {other:?}"),
    }
}

fn ec2_tags(pairs: &[(&str, &str)]) -> aws_sdk_ec2::types::TagSpecification {
    let mut t = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Vpc);
    for (k, v) in pairs {
        t = t.tags(aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build());
    }
    t.build()
}

async fn vpc_exists(ec2: &aws_sdk_ec2::Client, id: &str) -> bool {
    ec2.describe_vpcs()
        .vpc_ids(id)
        .send()
        .await
        .is_ok_and(|r| !r.vpcs().is_empty())
}

/// Called directly, as if the plan's own filter had let them through, the
/// AWS implementation refuses every delete of what is not this cluster's:
/// checked with a call of its own, by tags, parent tags, key or TXT record.
#[tokio::test]
async fn aws_delete_refuses_what_is_not_owned() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, clients) = dev_cloud(&moto).await;
    let ec2 = &clients.ec2;
    let mk_vpc = |tags: Vec<(&'static str, &'static str)>| {
        let ec2 = ec2.clone();
        async move {
            ec2.create_vpc()
                .cidr_block("10.99.0.0/16")
                .tag_specifications(ec2_tags(&tags))
                .send()
                .await
                .unwrap()
                .vpc()
                .unwrap()
                .vpc_id()
                .unwrap()
                .to_string()
        }
    };
    let bare = mk_vpc(vec![("Name", "someone-elses")]).await;
    let half = mk_vpc(vec![("KubernetesCluster", "dev.example.com")]).await;
    let neighbour = mk_vpc(vec![
        ("KubernetesCluster", "b.dev.example.com"),
        ("kubernetes.io/cluster/b.dev.example.com", "owned"),
    ])
    .await;
    let ours = mk_vpc(vec![
        ("KubernetesCluster", "dev.example.com"),
        ("kubernetes.io/cluster/dev.example.com", "owned"),
    ])
    .await;
    for id in [&bare, &half, &neighbour] {
        refused(cloud.delete(Kind::Vpc, "aws_vpc.x", id).await, id);
        assert!(vpc_exists(ec2, id).await, "{id} was deleted");
    }
    // A route in someone else's route table is judged by that table.
    let rt = ec2
        .create_route_table()
        .vpc_id(&bare)
        .send()
        .await
        .unwrap()
        .route_table()
        .unwrap()
        .route_table_id()
        .unwrap()
        .to_string();
    refused(
        cloud
            .delete(Kind::Route, "aws_route.x", &format!("{rt}|0.0.0.0/0"))
            .await,
        "route",
    );
    // The neighbour's IAM role and instance profile.
    let iam = &clients.iam;
    let b_tag = aws_sdk_iam::types::Tag::builder()
        .key("kubernetes.io/cluster/b.dev.example.com")
        .value("owned")
        .build()
        .unwrap();
    iam.create_role()
        .role_name("nodes.b.dev.example.com")
        .assume_role_policy_document("{}")
        .tags(b_tag.clone())
        .send()
        .await
        .unwrap();
    iam.create_instance_profile()
        .instance_profile_name("nodes.b.dev.example.com")
        .tags(b_tag)
        .send()
        .await
        .unwrap();
    refused(
        cloud
            .delete(Kind::IamRole, "aws_iam_role.x", "nodes.b.dev.example.com")
            .await,
        "role",
    );
    refused(
        cloud
            .delete(
                Kind::IamRolePolicy,
                "aws_iam_role_policy.x",
                "nodes.b.dev.example.com|nodes.b.dev.example.com",
            )
            .await,
        "role policy",
    );
    refused(
        cloud
            .delete(
                Kind::IamInstanceProfile,
                "aws_iam_instance_profile.x",
                "nodes.b.dev.example.com",
            )
            .await,
        "instance profile",
    );
    assert!(
        iam.get_role()
            .role_name("nodes.b.dev.example.com")
            .send()
            .await
            .is_ok()
    );
    // State objects outside the cluster's managed keys.
    for key in [
        "clusters/b.dev.example.com/config",
        "clusters/dev.example.com/pki/private/ca/keyset.yaml",
        "clusters/dev.example.com/addons/../serial",
    ] {
        refused(
            cloud.delete(Kind::S3Object, "aws_s3_object.x", key).await,
            key,
        );
    }
    // The control: what carries both marks is deleted.
    cloud
        .delete(Kind::Vpc, "aws_vpc.ours", &ours)
        .await
        .unwrap();
    assert!(!vpc_exists(ec2, &ours).await);
}

/// A change that panics (a bug in a cloud implementation) fails apply;
/// its dependents are not attempted; the lock is released and the serial
/// does not move. Before, the panic was dropped and apply bumped the serial.
#[tokio::test]
async fn a_panic_inside_apply_leaves_the_serial_unchanged() {
    let Some(moto) = Moto::start() else { return };
    moto.bucket(REGION, BUCKET).await;
    let spec = Spec::load(&root().join("examples/dev.yaml")).unwrap();
    let model = clusterctl::model::build(&spec).unwrap();
    let store = StateStore::new(moto.s3(REGION).await, BUCKET, "clusters/dev.example.com");
    let cloud = Arc::new(FakeCloud::default());
    let vpc = model.of_kind(Kind::Vpc).next().unwrap().id.address();
    *cloud.panic_on.lock().unwrap() = Some(vpc.clone());
    let mut catalog = FakeCatalog::region(&["us-east-1a"], &["t3.medium", "t3.large"], &["ami-1"]);
    catalog.dns_zones.insert("example.com".into());
    for lookup in model.image_lookups() {
        catalog.lookups.insert(lookup, "ami-1".into());
    }
    let mut d = Direct::with(
        &spec,
        model,
        store.clone(),
        cloud.clone(),
        Arc::new(catalog),
    );
    d.resolve_images().await.unwrap();
    let before = store.serial().await.unwrap();
    let quiet = Arc::new(clusterctl::apply::Quiet);
    let err = d
        .run(Operation::Apply, None, 4, None, quiet.clone())
        .await
        .unwrap_err();
    let DirectError::Apply { error, .. } = &err else {
        panic!("expected an apply failure, got {err:?}");
    };
    assert!(error.to_string().contains("injected panic"), "{error}");
    assert!(error.failed_kinds().contains(&Kind::Subnet), "{error}");
    assert_eq!(store.serial().await.unwrap(), before);
    assert!(store.lock_holder().await.unwrap().is_none());
    // Without the bug, the same apply completes and moves the serial once.
    *cloud.panic_on.lock().unwrap() = None;
    let done = d.run(Operation::Apply, None, 4, None, quiet).await.unwrap();
    assert_eq!(done.serial, before + 1);
}

/// With SSE-KMS or a multipart upload the ETag is not the content's MD5.
/// Such an object with the same content plans clean (the SHA-256 clusterctl
/// stores in its metadata decides); without that digest it shows as one
/// change, which writing it again mends.
#[tokio::test]
async fn an_object_whose_etag_is_not_an_md5_plans_clean() {
    let Some(moto) = Moto::start() else { return };
    crate::direct::account(&moto, REGION).await;
    let run_ok = |args: &[&str]| {
        let out = moto.clusterctl(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    run_ok(&["apply", "-f", "examples/dev.yaml", "--yes"]);
    let s3 = moto.s3(REGION).await;
    let key = "clusters/dev.example.com/cluster-completed.spec";
    let body = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    let multipart = |digest: Option<String>| {
        let (s3, body) = (s3.clone(), body.clone());
        async move {
            let up = s3
                .create_multipart_upload()
                .bucket(BUCKET)
                .key(key)
                .set_metadata(digest.map(|d| [("clusterctl-sha256".to_string(), d)].into()))
                .send()
                .await
                .unwrap();
            let id = up.upload_id().unwrap();
            let part = s3
                .upload_part()
                .bucket(BUCKET)
                .key(key)
                .upload_id(id)
                .part_number(1)
                .body(aws_sdk_s3::primitives::ByteStream::from(body))
                .send()
                .await
                .unwrap();
            let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build();
            // moto answers with a CompleteMultipartUploadResponse root
            // element where S3 sends CompleteMultipartUploadResult, which the
            // SDK cannot parse: the upload is complete all the same (200), so
            // the ETag is read back with a HeadObject.
            let _ = s3
                .complete_multipart_upload()
                .bucket(BUCKET)
                .key(key)
                .upload_id(id)
                .multipart_upload(done)
                .send()
                .await;
            let head = s3
                .head_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap();
            let etag = head.e_tag().unwrap().to_string();
            assert!(etag.contains("-1"), "not a multipart ETag: {etag}");
        }
    };
    let plan = |args: &[&str]| {
        moto.clusterctl(&[&["plan", "-f", "examples/dev.yaml"], args].concat())
            .output()
            .unwrap()
    };
    multipart(Some(sha)).await;
    let out = plan(&["--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    multipart(None).await;
    let out = plan(&["-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = v["plan"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["name"], key);
    assert_eq!(changes[0]["action"], "update");
    run_ok(&["apply", "-f", "examples/dev.yaml", "--yes"]);
    assert_eq!(plan(&["--detailed-exitcode"]).status.code(), Some(0));
}

/// A role with the name the spec gives, made by someone else (no tags):
/// plan and apply refuse, naming it, and leave it as it was.
#[tokio::test]
async fn a_role_of_the_specs_name_that_is_not_ours_is_refused() {
    let Some(moto) = Moto::start() else { return };
    crate::direct::account(&moto, REGION).await;
    let iam = aws_sdk_iam::Client::new(&moto.sdk_config(REGION).await);
    iam.create_role()
        .role_name("nodes.dev.example.com")
        .assume_role_policy_document("{}")
        .send()
        .await
        .unwrap();
    for args in [
        &["plan", "-f", "examples/dev.yaml"][..],
        &["apply", "-f", "examples/dev.yaml", "--yes"][..],
    ] {
        let out = moto.clusterctl(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("without the ownership mark of cluster dev.example.com: aws_iam_role.nodes-dev-example-com"),
            "{args:?}: {err}"
        );
    }
    let role = iam
        .get_role()
        .role_name("nodes.dev.example.com")
        .send()
        .await
        .unwrap();
    assert!(role.role().unwrap().tags().is_empty());
    // Nothing else was made either: apply refused before any change.
    assert_eq!(moto.tagged_counts(REGION, "dev.example.com").await, [0; 5]);
}
