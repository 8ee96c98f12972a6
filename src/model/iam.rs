//! IAM policy documents, least privilege: nodes read only the CA and their
//! bootstrap token; the control plane reads its cluster's state prefix and
//! writes only the init marker; the node autoscaler may change only ASGs
//! tagged with this cluster.

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

/// Policy of the control-plane role; with the node autoscaler's rights when
/// it is enabled (it runs on the control plane).
pub fn control_plane(cluster: &str, bucket: &str, prefix: &str, autoscaler: bool) -> String {
    let mut statements = vec![
        // The bootstrap script: whether an init claim's instance still
        // runs, and the live control planes' addresses (etcd members).
        // Nothing else on the instance calls EC2 or ELB yet; the cloud
        // controller manager will bring its own permissions.
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
            true,
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
        let without: serde_json::Value =
            serde_json::from_str(&control_plane("c", "b", "p", false)).unwrap();
        assert!(!without.to_string().contains("SetDesiredCapacity"));
    }

    #[test]
    fn nodes_read_only_bootstrap_material() {
        let p = node("b", "p/c");
        assert!(p.contains("arn:aws:s3:::b/p/c/pki/ca.crt"));
        assert!(!p.contains("PutObject"));
        assert!(!p.contains("/*\""));
    }
}
