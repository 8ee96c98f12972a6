//! The janitor on the controller runtime: one pass (`--once`), its report
//! on stdout, a non-zero exit when any delete failed.

use std::io::Write as _;

use super::act::Pace;
use super::observe::Lister;
use super::rules::RuleSet;
use super::{execute, plan, report};
use crate::controllers::runtime::{Component, Context, LoopError};

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table.
    Table,
    /// JSON.
    Json,
}

/// The janitor.
pub struct Janitor {
    rules: RuleSet,
    scope: Vec<String>,
    pace: Pace,
    output: Output,
}

impl Janitor {
    /// A janitor with these rules, pace and output.
    /// `scope`: only these namespaces (empty: every one).
    pub fn new(rules: RuleSet, scope: Vec<String>, pace: Pace, output: Output) -> Janitor {
        Janitor {
            rules,
            scope,
            pace,
            output,
        }
    }
}

#[async_trait::async_trait]
impl Component for Janitor {
    fn name(&self) -> &'static str {
        "janitor"
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), LoopError> {
        let client = ctx.clients.client.clone();
        let lister = Lister::new(client.clone(), self.scope.clone());
        let now = k8s_openapi::jiff::Timestamp::now();
        let selection = plan(&lister, &self.rules, now)
            .await
            .map_err(|e| LoopError::from_kube("listing", e))?;
        let dry_run = ctx.dry_run || !ctx.may_act();
        let mut r = execute(&client, &ctx.events, selection, self.pace, dry_run).await;
        r.list_calls = lister.calls.load(std::sync::atomic::Ordering::Relaxed);
        let text = match self.output {
            Output::Table => report::text(&r),
            Output::Json => serde_json::to_string_pretty(&r).unwrap_or_default() + "\n",
        };
        let _ = std::io::stdout().write_all(text.as_bytes());
        if !r.errors.is_empty() {
            return Err(LoopError::Permanent {
                category: "delete",
                message: format!("{} of {} deletes failed", r.errors.len(), r.delete.len()),
            });
        }
        Ok(())
    }
}
