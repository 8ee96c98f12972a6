//! Model → Terraform files, through the tera templates in
//! `terraform-templates/` (embedded in the binary). Large values (user data,
//! policies, state objects) go to `data/` files read with `file()`, as kops
//! does. No provider or backend block is written, so the output can be used
//! as a module.

use std::collections::{BTreeMap, HashMap};

use include_dir::{Dir, include_dir};
use serde_json::Value;
use tera::{Context, Tera};

use super::{RenderError, hclfmt};
use crate::model::{Image, Model, Props};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/terraform-templates");

/// Quotes a string as an HCL string literal, escaping interpolation markers.
pub fn hcl_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn q_filter(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(Value::String(hcl_quote(&s)))
}

/// The parsed templates, once per process.
static PARSED: std::sync::LazyLock<Result<Tera, String>> = std::sync::LazyLock::new(|| {
    templates().map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))
});

fn templates() -> Result<Tera, RenderError> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    tera.register_filter("q", q_filter);
    let mut files = Vec::new();
    for f in TEMPLATES.files() {
        let name = f.path().to_string_lossy().to_string();
        let text = f.contents_utf8().ok_or_else(|| RenderError::Template {
            template: name.clone(),
            source: tera::Error::msg("not UTF-8"),
        })?;
        files.push((name, text));
    }
    tera.add_raw_templates(files)
        .map_err(|source| RenderError::Template {
            template: "terraform-templates".into(),
            source,
        })?;
    Ok(tera)
}

/// Renders `terraform/*.tf` and `terraform/data/*`: path → content.
pub fn render(model: &Model) -> Result<BTreeMap<String, String>, RenderError> {
    let tera = PARSED.as_ref().map_err(|e| RenderError::Template {
        template: "terraform-templates".into(),
        source: tera::Error::msg(e.clone()),
    })?;
    let mut by_kind: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let mut amis: BTreeMap<String, Value> = BTreeMap::new();
    let mut zones: BTreeMap<String, String> = BTreeMap::new();
    for r in &model.resources {
        let mut v = serde_json::to_value(r).map_err(RenderError::Serialize)?;
        let data = |suffix: &str| format!("data/{}_{}_{suffix}", r.id.kind, r.label);
        match &r.props {
            Props::LaunchTemplate {
                user_data, image, ..
            } => {
                let path = data("user_data");
                out.insert(format!("terraform/{path}"), user_data.clone());
                v["user_data_file"] = path.into();
                // One `aws_ami` data source per image, a fixed id too: the
                // launch template takes the root device name from it, as
                // the direct target does from DescribeImages.
                let (label, ami) = match image {
                    Image::Lookup { label, owner, name } => (
                        label.clone(),
                        serde_json::json!({ "label": label, "owner": owner, "name": name }),
                    ),
                    Image::Ami { id } => {
                        let label = crate::model::naming::tf_label(id);
                        (
                            label.clone(),
                            serde_json::json!({ "label": label, "id": id }),
                        )
                    }
                };
                v["ami_label"] = label.clone().into();
                amis.insert(label, ami);
            }
            Props::IamRole {
                assume_role_policy, ..
            } => {
                let path = data("policy");
                out.insert(format!("terraform/{path}"), assume_role_policy.clone());
                v["policy_file"] = path.into();
            }
            Props::IamRolePolicy { policy, .. } => {
                let path = data("policy");
                out.insert(format!("terraform/{path}"), policy.clone());
                v["policy_file"] = path.into();
            }
            Props::S3Object { content, .. } => {
                let path = data("content");
                out.insert(format!("terraform/{path}"), content.clone());
                v["content_file"] = path.into();
            }
            Props::DnsRecord {
                zone_label,
                zone_name,
                ..
            } => {
                zones.insert(zone_label.clone(), zone_name.clone());
            }
            _ => {}
        }
        by_kind.entry(r.id.kind.tf_type()).or_default().push(v);
    }
    let mut ctx = Context::new();
    ctx.insert("cluster_name", &model.cluster_name);
    ctx.insert(
        "elb_health_check_grace",
        &crate::model::attrs::ELB_HEALTH_CHECK_GRACE,
    );
    ctx.insert(
        "state_store",
        &format!("s3://{}/{}", model.state_bucket, model.state_prefix),
    );
    ctx.insert("region", &model.region);
    ctx.insert("zones", &model.zones);
    ctx.insert("r", &by_kind);
    ctx.insert("amis", &amis.values().collect::<Vec<_>>());
    ctx.insert("dns_zones", &zones);
    let mut names: Vec<&str> = tera
        .get_template_names()
        .filter(|n| n.ends_with(".tf.tera"))
        .collect();
    names.sort_unstable();
    for name in names {
        let text = tera
            .render(name, &ctx)
            .map_err(|source| RenderError::Template {
                template: name.to_string(),
                source,
            })?;
        let formatted = hclfmt::format(&text);
        if formatted.trim().is_empty() {
            continue;
        }
        out.insert(
            format!("terraform/{}", name.trim_end_matches(".tera")),
            formatted,
        );
    }
    let readme = tera
        .render("README.md.tera", &ctx)
        .map_err(|source| RenderError::Template {
            template: "README.md.tera".into(),
            source,
        })?;
    out.insert("terraform/README.md".into(), readme);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_interpolation() {
        assert_eq!(hcl_quote("a\"b${c}%{d}$e"), r#""a\"b$${c}%%{d}$e""#);
    }
}
