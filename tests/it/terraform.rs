//! Checks on the rendered Terraform: `terraform fmt -check`, a structural
//! check that every reference points at something declared and every
//! `file()` exists, and `terraform init` + `validate` against a filesystem
//! mirror of the hashicorp/aws provider where the machine has one.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use hcl::expr::{Expression, TemplateExpr, TraversalOperator};
use hcl::template::{Directive, Element, Template};
use hcl::{Body, Structure};

use crate::support::{EXAMPLES, provider_mirror, render_example, tool};

#[test]
fn terraform_fmt_check_passes() {
    let Some(terraform) = tool("terraform") else {
        return;
    };
    for example in EXAMPLES {
        let dir = render_example(example);
        let out = Command::new(&terraform)
            .args(["fmt", "-check", "-recursive", "-diff"])
            .current_dir(dir.path().join("terraform"))
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{example}: terraform fmt -check:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[derive(Default)]
struct Declared {
    resources: BTreeSet<(String, String)>,
    data: BTreeSet<(String, String)>,
    variables: BTreeSet<String>,
    locals: BTreeSet<String>,
}

fn labels(b: &hcl::Block) -> Vec<String> {
    b.labels.iter().map(|l| l.as_str().to_string()).collect()
}

fn declare(body: &Body, d: &mut Declared) {
    for b in body.blocks() {
        let l = labels(b);
        match (b.identifier.as_str(), l.as_slice()) {
            ("resource", [t, n]) => assert!(
                d.resources.insert((t.clone(), n.clone())),
                "resource {t}.{n} declared twice"
            ),
            ("data", [t, n]) => assert!(
                d.data.insert((t.clone(), n.clone())),
                "data {t}.{n} declared twice"
            ),
            ("variable", [n]) => {
                d.variables.insert(n.clone());
            }
            ("locals", []) => {
                for a in b.body.attributes() {
                    d.locals.insert(a.key.as_str().to_string());
                }
            }
            _ => {}
        }
    }
}

struct Checker<'a> {
    d: &'a Declared,
    dir: &'a Path,
    refs: usize,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn body(&mut self, body: &Body) {
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => self.expr(&a.expr),
                Structure::Block(b) => self.body(&b.body),
            }
        }
    }

    fn template(&mut self, t: &TemplateExpr) {
        match Template::from_expr(t) {
            Ok(tpl) => self.elements(tpl.elements()),
            Err(e) => self.errors.push(format!("bad template {t}: {e}")),
        }
    }

    fn elements(&mut self, els: &[Element]) {
        for e in els {
            match e {
                Element::Literal(_) => {}
                Element::Interpolation(i) => self.expr(&i.expr),
                Element::Directive(d) => match d.as_ref() {
                    Directive::If(i) => {
                        self.expr(&i.cond_expr);
                        self.elements(i.true_template.elements());
                        if let Some(f) = &i.false_template {
                            self.elements(f.elements());
                        }
                    }
                    Directive::For(f) => {
                        self.expr(&f.collection_expr);
                        self.elements(f.template.elements());
                    }
                },
            }
        }
    }

    fn expr(&mut self, e: &Expression) {
        match e {
            Expression::Array(v) => v.iter().for_each(|x| self.expr(x)),
            Expression::Object(o) => o.values().for_each(|x| self.expr(x)),
            Expression::TemplateExpr(t) => self.template(t),
            Expression::Variable(v) => self.errors.push(format!("bare variable `{}`", v.as_str())),
            Expression::Traversal(t) => {
                let names: Vec<&str> = t
                    .operators
                    .iter()
                    .map(|op| match op {
                        TraversalOperator::GetAttr(id) => id.as_str(),
                        _ => "[]",
                    })
                    .collect();
                let Expression::Variable(root) = &t.expr else {
                    self.expr(&t.expr);
                    return;
                };
                self.refs += 1;
                let root = root.as_str();
                let ok = match (root, names.as_slice()) {
                    ("path" | "terraform" | "each" | "count" | "self", _) => true,
                    ("var", [n, ..]) => self.d.variables.contains(*n),
                    ("local", [n, ..]) => self.d.locals.contains(*n),
                    ("data", [t, n, _attr, ..]) => {
                        self.d.data.contains(&(t.to_string(), n.to_string()))
                    }
                    (t, [n, _attr, ..]) => {
                        self.d.resources.contains(&(t.to_string(), n.to_string()))
                    }
                    _ => false,
                };
                if !ok {
                    self.errors.push(format!(
                        "reference `{root}.{}` points at nothing declared",
                        names.join(".")
                    ));
                }
            }
            Expression::FuncCall(f) => {
                let name = f.name.to_string();
                if matches!(name.as_str(), "file" | "filebase64" | "filemd5")
                    && let Some(Expression::TemplateExpr(t)) = f.args.first()
                {
                    let path = t
                        .to_string()
                        .replace("${path.module}", &self.dir.to_string_lossy());
                    if !Path::new(&path).is_file() {
                        self.errors.push(format!("{name}() of missing file {path}"));
                    }
                }
                f.args.iter().for_each(|x| self.expr(x));
            }
            Expression::Parenthesis(x) => self.expr(x),
            Expression::Conditional(c) => {
                self.expr(&c.cond_expr);
                self.expr(&c.true_expr);
                self.expr(&c.false_expr);
            }
            _ => {}
        }
    }
}

/// Parses every .tf file of a directory and checks its references.
fn structural_check(dir: &Path) -> Result<usize, Vec<String>> {
    let mut bodies = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "tf") {
            let text = std::fs::read_to_string(&p).unwrap();
            let body: Body = hcl::parse(&text)
                .unwrap_or_else(|err| panic!("{} does not parse: {err}", p.display()));
            bodies.push(body);
        }
    }
    let mut d = Declared::default();
    bodies.iter().for_each(|b| declare(b, &mut d));
    let mut c = Checker {
        d: &d,
        dir,
        refs: 0,
        errors: Vec::new(),
    };
    bodies.iter().for_each(|b| c.body(b));
    if c.errors.is_empty() {
        Ok(c.refs)
    } else {
        Err(c.errors)
    }
}

#[test]
fn every_reference_points_at_something_declared() {
    for example in EXAMPLES {
        let dir = render_example(example);
        let refs = structural_check(&dir.path().join("terraform"))
            .unwrap_or_else(|e| panic!("{example}:\n{}", e.join("\n")));
        assert!(refs > 50, "{example}: only {refs} references checked");
    }
}

#[test]
fn structural_check_catches_dangling_references() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.tf"),
        "locals {\n  a = 1\n}\nresource \"aws_vpc\" \"v\" {\n  cidr_block = \"10.0.0.0/16\"\n}\nresource \"aws_subnet\" \"s\" {\n  vpc_id = aws_vpc.w.id\n  x = \"${local.b}\"\n  y = file(\"${path.module}/data/nope\")\n  z = local.a\n}\n",
    )
    .unwrap();
    let errors = structural_check(dir.path()).unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("aws_vpc.w.id")));
    assert!(errors.iter().any(|e| e.contains("local.b")));
    assert!(errors.iter().any(|e| e.contains("data/nope")));
}

/// The terraform binary with a CLI config that installs hashicorp/aws from
/// the machine's filesystem mirror; None (skipped, with the reason) when
/// either is missing.
pub(crate) struct Terraform {
    bin: std::path::PathBuf,
    work: tempfile::TempDir,
}

impl Terraform {
    pub(crate) fn new(what: &str) -> Option<Terraform> {
        let bin = tool("terraform")?;
        let Some(mirror) = provider_mirror() else {
            assert!(
                std::env::var_os("CLUSTERCTL_TF_PROVIDER_MIRROR").is_none(),
                "CLUSTERCTL_TF_PROVIDER_MIRROR has no hashicorp/aws provider"
            );
            eprintln!(
                "SKIPPED: {what}: no filesystem mirror of hashicorp/aws found (set CLUSTERCTL_TF_PROVIDER_MIRROR)"
            );
            return None;
        };
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(work.path().join("plugin-cache")).unwrap();
        std::fs::write(
            work.path().join("terraformrc"),
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n}}\nplugin_cache_dir = \"{}\"\n",
                mirror.display(),
                work.path().join("plugin-cache").display()
            ),
        )
        .unwrap();
        Some(Terraform { bin, work })
    }

    /// `terraform init` and `apply` of the rendered module in `tf` against
    /// moto_server. The rendered module has no provider block (the user's
    /// root module owns it); this adds one that points every service at the
    /// emulator. Returns apply's output.
    pub(crate) fn apply_to_moto(
        &self,
        moto: &crate::moto::Moto,
        region: &str,
        tf: &Path,
    ) -> String {
        let endpoint = &moto.endpoint;
        std::fs::write(
            tf.join("provider.tf"),
            format!(
                r#"provider "aws" {{
  region                      = "{region}"
  access_key                  = "test"
  secret_key                  = "test"
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  endpoints {{
    autoscaling = "{endpoint}"
    ec2         = "{endpoint}"
    elbv2       = "{endpoint}"
    iam         = "{endpoint}"
    route53     = "{endpoint}"
    s3          = "{endpoint}"
    sts         = "{endpoint}"
  }}
}}
"#
            ),
        )
        .unwrap();
        self.run(tf, &["init", "-input=false", "-no-color"]);
        self.run(tf, &["apply", "-auto-approve", "-input=false", "-no-color"])
    }

    /// Runs terraform in `dir`; panics with its output when it fails.
    pub(crate) fn run(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", self.work.path().join("terraformrc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: terraform {args:?}:\n{}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn terraform_validate_with_provider_mirror() {
    let Some(terraform) = Terraform::new("terraform validate") else {
        return;
    };
    for example in EXAMPLES {
        let dir = render_example(example);
        let tf = dir.path().join("terraform");
        terraform.run(
            &tf,
            &["init", "-input=false", "-backend=false", "-no-color"],
        );
        terraform.run(&tf, &["validate", "-no-color"]);
    }
}

/// The proof that one model drives both targets: Terraform applies the
/// rendered ha.yaml to moto_server, and `clusterctl plan` against the same
/// emulator finds nothing to do — every resource Terraform made is matched,
/// attribute for attribute, by the direct target's discovery.
#[tokio::test]
async fn terraform_apply_then_clusterctl_plan_reports_no_changes() {
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    let Some(terraform) = Terraform::new("terraform parity") else {
        return;
    };
    let region = "eu-west-1";
    aws_sdk_route53::Client::new(&moto.sdk_config(region).await)
        .create_hosted_zone()
        .name("example.com")
        .caller_reference("clusterctl-parity")
        .send()
        .await
        .unwrap();
    moto.bucket(region, "example-clusterctl-state").await;
    let dir = render_example("ha");
    let applied = terraform.apply_to_moto(&moto, region, &dir.path().join("terraform"));
    let n = clusterctl::model::build(
        &clusterctl::spec::Spec::load(&crate::support::root().join("examples/ha.yaml")).unwrap(),
    )
    .unwrap()
    .resources
    .len();
    assert!(
        applied.contains(&format!(
            "Apply complete! Resources: {n} added, 0 changed, 0 destroyed."
        )),
        "{applied}"
    );
    let out = moto
        .clusterctl(&["plan", "-f", "examples/ha.yaml", "--detailed-exitcode"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "clusterctl plan after terraform apply:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("No changes. Your infrastructure matches the configuration."),
        "{text}"
    );
}
