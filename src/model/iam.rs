//! IAM policy documents, least privilege: nodes read only the CA and their
//! bootstrap token; the control plane reads its cluster's state prefix and
//! writes only the init marker; the node autoscaler may change only ASGs
//! tagged with this cluster; the cloud controller manager and the EBS CSI
//! driver (both on the control planes) create only what they tag with the
//! cluster and change only what carries that tag, as kops scopes them
//! (`pkg/model/iam/iam_builder.go`: AddCCMPermissions,
//! AddAWSEBSCSIDriverPermissions); preview gc deletes only records under
//! its preview domain and ledgers under its prefix.

use serde_json::json;

fn pretty(v: serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// Trust policy that lets EC2 instances assume a role.
pub fn assume_role_ec2() -> String {
    pretty(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "ec2.amazonaws.com" },
            "Action": "sts:AssumeRole"
        }]
    }))
}

/// Policy of the node role.
pub fn node(bucket: &str, prefix: &str) -> String {
    pretty(json!({
        "Version": "2012-10-17",
        // A worker reads the CA and the token at boot, and nothing else:
        // its kubelet runs without a cloud provider (no EC2 calls).
        "Statement": [
            {
                "Sid": "ReadBootstrapMaterial",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [
                    format!("arn:aws:s3:::{bucket}/{prefix}/pki/ca.crt"),
                    format!("arn:aws:s3:::{bucket}/{prefix}/secrets/bootstrap-token")
                ]
            }
        ]
    }))
}

/// `aws:ResourceTag/KubernetesCluster = <cluster>`: changes only to what
/// carries the cluster's tag.
fn tagged(cluster: &str) -> serde_json::Value {
    json!({ "StringEquals": { "aws:ResourceTag/KubernetesCluster": cluster } })
}

/// `aws:RequestTag/KubernetesCluster = <cluster>`: creates only with the tag.
fn tagging(cluster: &str) -> serde_json::Value {
    json!({ "StringEquals": { "aws:RequestTag/KubernetesCluster": cluster } })
}

/// The AWS cloud controller manager: node initialisation (reads) and
/// Services of type LoadBalancer (ELB/NLB and their security groups).
/// Without cloud routes (the pod network routes), so no route-table writes.
fn cloud_controller_manager(cluster: &str) -> Vec<serde_json::Value> {
    vec![
        json!({
            "Sid": "CloudControllerDescribe",
            "Effect": "Allow",
            "Action": [
                "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeTags",
                "ec2:DescribeAvailabilityZones", "ec2:DescribeInstanceTopology", "ec2:DescribeInstances",
                "ec2:DescribeRegions", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets", "ec2:DescribeVpcs",
                "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancerAttributes",
                "elasticloadbalancing:DescribeLoadBalancerPolicies", "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetHealth",
                "kms:DescribeKey"
            ],
            "Resource": "*"
        }),
        // The first ELB of an account needs its service-linked role.
        json!({
            "Sid": "CloudControllerElbServiceLinkedRole",
            "Effect": "Allow",
            "Action": ["iam:CreateServiceLinkedRole"],
            "Resource": "arn:aws:iam::*:role/aws-service-role/elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing",
            "Condition": { "StringEquals": { "iam:AWSServiceName": "elasticloadbalancing.amazonaws.com" } }
        }),
        json!({
            "Sid": "CloudControllerCreateTagged",
            "Effect": "Allow",
            "Action": [
                "ec2:CreateSecurityGroup",
                "elasticloadbalancing:CreateListener", "elasticloadbalancing:CreateLoadBalancer",
                "elasticloadbalancing:CreateTargetGroup"
            ],
            "Resource": "*",
            "Condition": tagging(cluster)
        }),
        // A security group is created in a VPC, which carries no request tag.
        json!({
            "Sid": "CloudControllerSecurityGroupInVpc",
            "Effect": "Allow",
            "Action": ["ec2:CreateSecurityGroup"],
            "Resource": "arn:aws:ec2:*:*:vpc/*"
        }),
        json!({
            "Sid": "CloudControllerTagNewSecurityGroups",
            "Effect": "Allow",
            "Action": ["ec2:CreateTags"],
            "Resource": "arn:aws:ec2:*:*:security-group/*",
            "Condition": { "StringEquals": {
                "aws:RequestTag/KubernetesCluster": cluster,
                "ec2:CreateAction": "CreateSecurityGroup"
            } }
        }),
        // Other tags of its own security groups, never the cluster tag.
        json!({
            "Sid": "CloudControllerRetagOwnSecurityGroups",
            "Effect": "Allow",
            "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
            "Resource": "arn:aws:ec2:*:*:security-group/*",
            "Condition": {
                "Null": { "aws:RequestTag/KubernetesCluster": "true" },
                "StringEquals": { "aws:ResourceTag/KubernetesCluster": cluster }
            }
        }),
        json!({
            "Sid": "CloudControllerChangeTagged",
            "Effect": "Allow",
            "Action": [
                "ec2:AuthorizeSecurityGroupIngress", "ec2:DeleteSecurityGroup",
                "ec2:ModifyInstanceAttribute", "ec2:RevokeSecurityGroupIngress",
                "elasticloadbalancing:AddTags", "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer",
                "elasticloadbalancing:AttachLoadBalancerToSubnets", "elasticloadbalancing:ConfigureHealthCheck",
                "elasticloadbalancing:CreateLoadBalancerListeners", "elasticloadbalancing:CreateLoadBalancerPolicy",
                "elasticloadbalancing:DeleteListener", "elasticloadbalancing:DeleteLoadBalancer",
                "elasticloadbalancing:DeleteLoadBalancerListeners", "elasticloadbalancing:DeleteTargetGroup",
                "elasticloadbalancing:DeregisterInstancesFromLoadBalancer", "elasticloadbalancing:DeregisterTargets",
                "elasticloadbalancing:DetachLoadBalancerFromSubnets", "elasticloadbalancing:ModifyListener",
                "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:ModifyTargetGroup",
                "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
                "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer",
                "elasticloadbalancing:SetLoadBalancerPoliciesOfListener"
            ],
            "Resource": "*",
            "Condition": tagged(cluster)
        }),
    ]
}

/// The EBS CSI driver's controller: volumes it creates carry the cluster
/// tag (`--extra-tags`), and it attaches, detaches, resizes and deletes
/// only volumes (on instances) that carry it. No snapshots (no snapshot
/// controller is installed).
fn ebs_csi_driver(cluster: &str) -> Vec<serde_json::Value> {
    vec![
        json!({
            "Sid": "EbsCsiDescribe",
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeAvailabilityZones", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
                "ec2:DescribeTags", "ec2:DescribeVolumeStatus", "ec2:DescribeVolumes",
                "ec2:DescribeVolumesModifications"
            ],
            "Resource": "*"
        }),
        json!({
            "Sid": "EbsCsiCreateTagged",
            "Effect": "Allow",
            "Action": ["ec2:CopyVolumes", "ec2:CreateVolume"],
            "Resource": "*",
            "Condition": tagging(cluster)
        }),
        json!({
            "Sid": "EbsCsiTagNewVolumes",
            "Effect": "Allow",
            "Action": ["ec2:CreateTags"],
            "Resource": "arn:aws:ec2:*:*:volume/*",
            "Condition": {
                "StringEquals": { "aws:RequestTag/KubernetesCluster": cluster },
                "StringEqualsIfExists": { "ec2:CreateAction": ["CopyVolumes", "CreateVolume"] }
            }
        }),
        json!({
            "Sid": "EbsCsiRetagOwnVolumes",
            "Effect": "Allow",
            "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
            "Resource": "arn:aws:ec2:*:*:volume/*",
            "Condition": {
                "Null": { "aws:RequestTag/KubernetesCluster": "true" },
                "StringEquals": { "aws:ResourceTag/KubernetesCluster": cluster }
            }
        }),
        // Attach and detach are checked against the instance too: both
        // carry the cluster tag.
        json!({
            "Sid": "EbsCsiChangeTagged",
            "Effect": "Allow",
            "Action": ["ec2:AttachVolume", "ec2:DeleteVolume", "ec2:DetachVolume", "ec2:ModifyVolume"],
            "Resource": "*",
            "Condition": tagged(cluster)
        }),
        // Encrypted volumes with a customer key: only through EC2.
        json!({
            "Sid": "EbsCsiKmsGrantsForEc2",
            "Effect": "Allow",
            "Action": ["kms:CreateGrant"],
            "Resource": "*",
            "Condition": { "Bool": { "kms:GrantIsForAWSResource": "true" } }
        }),
        json!({
            "Sid": "EbsCsiKmsViaEc2",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
            "Resource": "*",
            "Condition": { "StringLike": { "kms:ViaService": "ec2.*.amazonaws.com" } }
        }),
    ]
}

/// Preview gc (a CronJob on the control planes): deletes DNS records only
/// under the preview domain (Route53 checks the normalized names of every
/// change) and ledgers only under `<prefix>/previews/`.
fn preview_gc(bucket: &str, prefix: &str, domain: &str) -> Vec<serde_json::Value> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    vec![
        json!({
            "Sid": "PreviewGcFindRecords",
            "Effect": "Allow",
            "Action": ["route53:GetChange", "route53:ListHostedZonesByName", "route53:ListResourceRecordSets"],
            "Resource": "*"
        }),
        json!({
            "Sid": "PreviewGcDeleteRecordsUnderItsDomain",
            "Effect": "Allow",
            "Action": ["route53:ChangeResourceRecordSets"],
            "Resource": "arn:aws:route53:::hostedzone/*",
            "Condition": {
                "ForAllValues:StringLike": {
                    "route53:ChangeResourceRecordSetsNormalizedRecordNames": [format!("*.{domain}")]
                },
                "ForAllValues:StringEquals": { "route53:ChangeResourceRecordSetsActions": ["DELETE"] }
            }
        }),
        json!({
            "Sid": "PreviewGcListLedgers",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": format!("arn:aws:s3:::{bucket}"),
            "Condition": { "StringLike": { "s3:prefix": [format!("{prefix}/previews/*")] } }
        }),
        json!({
            "Sid": "PreviewGcReadAndDeleteLedgers",
            "Effect": "Allow",
            "Action": ["s3:DeleteObject", "s3:GetObject"],
            "Resource": format!("arn:aws:s3:::{bucket}/{prefix}/previews/*")
        }),
    ]
}

/// What runs on the control planes besides the bootstrap, for their role.
#[derive(Debug, Clone, Default)]
pub struct ControlPlaneRights {
    /// The node autoscaler is enabled.
    pub autoscaler: bool,
    /// Preview gc is enabled, for this preview domain.
    pub preview_domain: Option<String>,
}

/// Policy of the control-plane role: the bootstrap, the cloud controller
/// manager and the EBS CSI driver (always), and the node autoscaler's and
/// preview gc's rights when they are enabled (they run on the control
/// planes, the only pods with the instance role's credentials).
pub fn control_plane(
    cluster: &str,
    bucket: &str,
    prefix: &str,
    rights: &ControlPlaneRights,
) -> String {
    let autoscaler = rights.autoscaler;
    let mut statements = vec![
        // The bootstrap script: whether an init claim's instance still
        // runs, and the live control planes' addresses (etcd members).
        json!({
            "Sid": "DescribeInstancesForBootstrap",
            "Effect": "Allow",
            "Action": ["ec2:DescribeInstances"],
            "Resource": "*"
        }),
        json!({
            "Sid": "ListStatePrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": format!("arn:aws:s3:::{bucket}"),
            "Condition": { "StringLike": { "s3:prefix": [format!("{prefix}/*")] } }
        }),
        json!({
            "Sid": "ReadState",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": format!("arn:aws:s3:::{bucket}/{prefix}/*")
        }),
        // The init claim, etcd snapshots, and the next bootstrap token
        // (the rotation CronJob runs here; nodes may only read the token).
        json!({
            "Sid": "WriteInitClaimEtcdBackupsAndToken",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [
                format!("arn:aws:s3:::{bucket}/{prefix}/cluster-initialized"),
                format!("arn:aws:s3:::{bucket}/{prefix}/backups/etcd/*"),
                format!("arn:aws:s3:::{bucket}/{prefix}/secrets/bootstrap-token")
            ]
        }),
    ];
    if autoscaler {
        statements.push(json!({
            "Sid": "NodeAutoscalerDescribe",
            "Effect": "Allow",
            "Action": [
                "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeScalingActivities",
                "autoscaling:DescribeTags", "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplateVersions"
            ],
            "Resource": "*"
        }));
        statements.push(json!({
            "Sid": "NodeAutoscalerActOnOwnGroups",
            "Effect": "Allow",
            "Action": [
                "autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup",
                "autoscaling:DetachInstances"
            ],
            "Resource": "*",
            // Only the groups the node autoscaler manages: the control-plane
            // groups carry the cluster tag too, but not this one.
            "Condition": { "StringEquals": {
                "autoscaling:ResourceTag/KubernetesCluster": cluster,
                (format!("autoscaling:ResourceTag/{}", super::naming::TAG_AUTOSCALER_ENABLED)): "true"
            } }
        }));
    }
    statements.extend(cloud_controller_manager(cluster));
    statements.extend(ebs_csi_driver(cluster));
    if let Some(domain) = &rights.preview_domain {
        statements.extend(preview_gc(bucket, prefix, domain));
    }
    pretty(json!({ "Version": "2012-10-17", "Statement": statements }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoscaler_rights_are_tag_limited() {
        let p: serde_json::Value = serde_json::from_str(&control_plane(
            "c.example.com",
            "b",
            "p/c.example.com",
            &ControlPlaneRights {
                autoscaler: true,
                preview_domain: None,
            },
        ))
        .unwrap();
        let st = p["Statement"].as_array().unwrap();
        let act = st
            .iter()
            .find(|s| s["Sid"] == "NodeAutoscalerActOnOwnGroups")
            .unwrap();
        assert_eq!(
            act["Condition"]["StringEquals"]["autoscaling:ResourceTag/KubernetesCluster"],
            "c.example.com"
        );
        let without: serde_json::Value = serde_json::from_str(&control_plane(
            "c",
            "b",
            "p",
            &ControlPlaneRights::default(),
        ))
        .unwrap();
        assert!(!without.to_string().contains("SetDesiredCapacity"));
    }

    /// Every action that creates or changes something is either scoped by
    /// the cluster tag (on the request or on the resource), or by resource
    /// ARN, or is one of the few AWS cannot scope.
    #[test]
    fn cloud_addon_writes_are_scoped_by_the_cluster_tag() {
        let p: serde_json::Value = serde_json::from_str(&control_plane(
            "c.example.com",
            "b",
            "p/c.example.com",
            &ControlPlaneRights {
                autoscaler: false,
                preview_domain: Some("preview.example.com.".into()),
            },
        ))
        .unwrap();
        let reads = ["Describe", "List", "Get"];
        for st in p["Statement"].as_array().unwrap() {
            let actions: Vec<&str> = st["Action"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let writes: Vec<&&str> = actions
                .iter()
                .filter(|a| {
                    let op = a.split(':').nth(1).unwrap();
                    !reads.iter().any(|r| op.starts_with(r))
                })
                .collect();
            if writes.is_empty() || st["Sid"] == "WriteInitClaimEtcdBackupsAndToken" {
                continue;
            }
            let scoped = st.get("Condition").is_some() || st["Resource"] != "*";
            assert!(scoped, "{} writes on every resource: {writes:?}", st["Sid"]);
        }
        let text = p.to_string();
        for needle in [
            "\"aws:ResourceTag/KubernetesCluster\":\"c.example.com\"",
            "\"aws:RequestTag/KubernetesCluster\":\"c.example.com\"",
            "\"*.preview.example.com\"",
            "arn:aws:s3:::b/p/c.example.com/previews/*",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
        // Without previews, no Route53 rights.
        let plain = control_plane("c", "b", "p", &ControlPlaneRights::default());
        assert!(!plain.contains("route53:"));
    }

    #[test]
    fn nodes_read_only_bootstrap_material() {
        let p = node("b", "p/c");
        assert!(p.contains("arn:aws:s3:::b/p/c/pki/ca.crt"));
        assert!(!p.contains("PutObject"));
        assert!(!p.contains("/*\""));
    }
}
