//! The examples every command's `--help` ends with, as kubectl's do: one
//! table, attached to the clap command tree in [`with_examples`], so that
//! a test can check that no command is without them.

use clap::Command;

/// (command path, examples). A command that sets its own `after_help`
/// keeps it.
const EXAMPLES: &[(&[&str], &[&str])] = &[
    (
        &["validate"],
        &[
            "clusterctl validate -f cluster.yaml",
            "clusterctl validate -f cluster.yaml -o yaml   # the spec with every default filled in",
        ],
    ),
    (
        &["render"],
        &[
            "clusterctl render -f cluster.yaml -o out/",
            "clusterctl render -f cluster.yaml -o out/ --check   # in CI: fail when out/ is stale",
        ],
    ),
    (
        &["plan"],
        &[
            "clusterctl plan -f cluster.yaml",
            "clusterctl plan -f cluster.yaml --out plan.json --detailed-exitcode",
        ],
    ),
    (
        &["apply"],
        &[
            "clusterctl apply -f cluster.yaml --yes",
            "clusterctl apply plan.json   # a plan saved by `clusterctl plan --out`",
        ],
    ),
    (&["destroy"], &["clusterctl destroy -f cluster.yaml --yes"]),
    (
        &["preview"],
        &[
            "clusterctl preview up --tag 3f2c1ab",
            "clusterctl preview list",
        ],
    ),
    (
        &["node-autoscaler"],
        &[
            "clusterctl node-autoscaler --cluster-name prod.example.com --region eu-west-1",
            "clusterctl node-autoscaler simulate --snapshot snapshot.yaml",
        ],
    ),
    (
        &["node-autoscaler", "simulate"],
        &[
            "clusterctl node-autoscaler simulate --snapshot snapshot.yaml",
            "clusterctl node-autoscaler simulate --snapshot snapshot.json -o json",
        ],
    ),
    (
        &["queue-autoscaler"],
        &[
            "clusterctl queue-autoscaler --server default=http://rabbitmq:15672 --credentials-dir /etc/clusterctl/rabbitmq",
            "clusterctl queue-autoscaler --server default=https://mq.example.com:15671 --ca-file ca.crt --dry-run",
        ],
    ),
    (
        &["janitor"],
        &[
            "clusterctl janitor --dry-run",
            "clusterctl janitor --job-ttl 24h --kinds configmaps,deployments.apps -o json",
        ],
    ),
    (
        &["node-cleanup"],
        &[
            "clusterctl node-cleanup --once --dry-run",
            "clusterctl node-cleanup --unused-images --disk-threshold 80",
        ],
    ),
    (&["state"], &["clusterctl state show -f cluster.yaml"]),
    (
        &["state", "show"],
        &[
            "clusterctl state show -f cluster.yaml",
            "clusterctl state show -f cluster.yaml -o json",
        ],
    ),
    (
        &["state", "pull"],
        &["clusterctl state pull -f cluster.yaml --dir state/"],
    ),
    (&["secrets"], &["clusterctl secrets create -f cluster.yaml"]),
    (
        &["secrets", "create"],
        &["clusterctl secrets create -f cluster.yaml   # before terraform apply"],
    ),
    (
        &["secrets", "delete"],
        &["clusterctl secrets delete -f cluster.yaml --yes   # after terraform destroy"],
    ),
    (
        &["addons"],
        &[
            "clusterctl addons plan -f cluster.yaml",
            "clusterctl addons apply -f cluster.yaml",
        ],
    ),
    (
        &["addons", "apply"],
        &[
            "clusterctl addons apply -f cluster.yaml",
            "clusterctl addons apply -f cluster.yaml --kubeconfig ~/.kube/prod",
        ],
    ),
    (
        &["addons", "plan"],
        &["clusterctl addons plan -f cluster.yaml"],
    ),
    (
        &["bootstrap-token"],
        &[
            "clusterctl bootstrap-token rotate --state-store s3://example-state/clusters --cluster prod.example.com --region eu-west-1",
        ],
    ),
    (
        &["bootstrap-token", "rotate"],
        &[
            "clusterctl bootstrap-token rotate --state-store s3://example-state/clusters --cluster prod.example.com --region eu-west-1",
            "clusterctl bootstrap-token rotate --state-store s3://example-state/clusters --cluster prod.example.com --region eu-west-1 --dry-run",
        ],
    ),
    (
        &["force-unlock"],
        &["clusterctl force-unlock 6f1c0f3e-0000-4000-8000-000000000000 -f cluster.yaml"],
    ),
    (
        &["completions"],
        &[
            "clusterctl completions bash > /etc/bash_completion.d/clusterctl",
            "clusterctl completions zsh > ~/.zfunc/_clusterctl",
        ],
    ),
];

fn text(examples: &[&str]) -> String {
    let head = if examples.len() == 1 {
        "Example:"
    } else {
        "Examples:"
    };
    let mut s = head.to_string();
    for e in examples {
        s.push_str("\n  ");
        s.push_str(e);
    }
    s
}

fn attach(cmd: Command, path: &[&str], examples: &[&str]) -> Command {
    match path {
        [] => {
            if cmd.get_after_help().is_some() {
                cmd
            } else {
                cmd.after_help(text(examples))
            }
        }
        [first, rest @ ..] => {
            let (first, rest) = (first.to_string(), rest.to_vec());
            let examples: Vec<String> = examples.iter().map(|s| s.to_string()).collect();
            cmd.mut_subcommand(first, move |sub| {
                let ex: Vec<&str> = examples.iter().map(String::as_str).collect();
                attach(sub, &rest, &ex)
            })
        }
    }
}

/// The command tree with every command's examples.
pub fn with_examples(mut cmd: Command) -> Command {
    for (path, examples) in EXAMPLES {
        cmd = attach(cmd, path, examples);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    fn walk(cmd: &Command, path: String, missing: &mut Vec<String>) {
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let p = format!("{path} {}", sub.get_name());
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !help.contains("Example") {
                missing.push(p.clone());
            }
            walk(sub, p, missing);
        }
    }

    #[test]
    fn every_command_has_examples() {
        let cmd = with_examples(crate::cli::Cli::command());
        let mut missing = Vec::new();
        walk(&cmd, "clusterctl".into(), &mut missing);
        assert!(missing.is_empty(), "commands without examples: {missing:?}");
        // Each example runs its own command, with flags that parse.
        for (path, examples) in EXAMPLES {
            for e in *examples {
                assert!(
                    e.starts_with(&format!("clusterctl {}", path.join(" "))),
                    "{e}"
                );
                let line = e.split("  #").next().unwrap_or(e);
                let line = line.split(" > ").next().unwrap_or(line);
                let words: Vec<&str> = line.split_whitespace().collect();
                if let Err(err) = crate::cli::Cli::try_parse_from(&words) {
                    panic!("{e}: {err}");
                }
            }
        }
    }
}
