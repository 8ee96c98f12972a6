//! Progress of an apply: one line per finished change when the output is a
//! file or a pipe (CI logs, `| tee`), and on a terminal the same lines above
//! a live bar with the count, the elapsed time and what is in flight.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::plan::Action;

/// Receives apply events; calls come from many tasks at once.
pub trait Progress: Send + Sync {
    /// The apply begins with this many changes.
    fn begin(&self, _total: usize) {}
    /// A change starts (it holds a parallelism slot).
    fn started(&self, _action: Action, _address: &str) {}
    /// A change finished (ok or not).
    fn done(&self, action: Action, address: &str, result: &Result<(), String>);
    /// The apply is over; leave the terminal clean.
    fn finish(&self) {}
}

/// No progress output.
#[derive(Debug)]
pub struct Quiet;

impl Progress for Quiet {
    fn done(&self, _: Action, _: &str, _: &Result<(), String>) {}
}

fn past(action: Action) -> &'static str {
    match action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Replace => "replaced",
        Action::Delete => "destroyed",
    }
}

fn present(action: Action) -> &'static str {
    match action {
        Action::Create => "creating",
        Action::Update => "updating",
        Action::Replace => "replacing",
        Action::Delete => "destroying",
    }
}

/// The line printed when a change finishes.
pub fn finished_line(action: Action, address: &str, result: &Result<(), String>) -> String {
    match result {
        Ok(()) => format!("{address}: {}", past(action)),
        Err(e) => format!("{address}: FAILED: {e}"),
    }
}

/// One line per finished change on stdout.
#[derive(Debug)]
pub struct Lines;

impl Progress for Lines {
    fn done(&self, action: Action, address: &str, result: &Result<(), String>) {
        println!("{}", finished_line(action, address, result));
    }
}

/// A live bar (for terminals): finished changes scroll above it.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
    in_flight: Mutex<BTreeSet<(String, &'static str)>>,
}

impl Bar {
    /// A bar drawn on `target`; its length comes with [`Progress::begin`].
    pub fn new(target: ProgressDrawTarget) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Bar {
            bar,
            in_flight: Mutex::new(BTreeSet::new()),
        }
    }

    /// Changes finished so far.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Changes in all.
    pub fn length(&self) -> Option<u64> {
        self.bar.length()
    }

    /// The status text: what is in flight, first few by address.
    pub fn message(&self) -> String {
        self.bar.message()
    }

    fn refresh(&self, set: &BTreeSet<(String, &'static str)>) {
        let mut names: Vec<String> = set
            .iter()
            .take(3)
            .map(|(a, verb)| format!("{verb} {a}"))
            .collect();
        if set.len() > 3 {
            names.push(format!("+{} more", set.len() - 3));
        }
        self.bar.set_message(names.join(", "));
    }
}

impl Progress for Bar {
    fn begin(&self, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    fn started(&self, action: Action, address: &str) {
        let mut set = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        set.insert((address.to_string(), present(action)));
        self.refresh(&set);
    }

    fn done(&self, action: Action, address: &str, result: &Result<(), String>) {
        let mut set = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        set.retain(|(a, _)| a != address);
        self.bar.println(finished_line(action, address, result));
        self.bar.inc(1);
        self.refresh(&set);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A bar when stdout is a terminal (and TERM is not `dumb`), else lines.
pub fn for_stdout() -> Arc<dyn Progress> {
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    if std::io::stdout().is_terminal() && !dumb {
        Arc::new(Bar::new(ProgressDrawTarget::stdout()))
    } else {
        Arc::new(Lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_counts_finished_changes_and_names_what_is_in_flight() {
        let bar = Bar::new(ProgressDrawTarget::hidden());
        bar.begin(5);
        bar.started(Action::Create, "aws_vpc.a");
        bar.started(Action::Create, "aws_subnet.b");
        bar.started(Action::Delete, "aws_route.c");
        bar.started(Action::Update, "aws_autoscaling_group.d");
        assert_eq!(
            bar.message(),
            "updating aws_autoscaling_group.d, destroying aws_route.c, creating aws_subnet.b, +1 more"
        );
        bar.done(Action::Create, "aws_vpc.a", &Ok(()));
        bar.done(Action::Delete, "aws_route.c", &Err("boom".into()));
        assert_eq!(bar.position(), 2);
        assert_eq!(bar.length(), Some(5));
        assert_eq!(
            bar.message(),
            "updating aws_autoscaling_group.d, creating aws_subnet.b"
        );
        bar.finish();
    }

    #[test]
    fn finished_lines() {
        assert_eq!(
            finished_line(Action::Replace, "aws_x.y", &Ok(())),
            "aws_x.y: replaced"
        );
        assert_eq!(
            finished_line(Action::Create, "aws_x.y", &Err("denied".into())),
            "aws_x.y: FAILED: denied"
        );
    }
}
