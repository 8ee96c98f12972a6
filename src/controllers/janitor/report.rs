//! The janitor's report: a table for people (what would be or was deleted
//! and why, then a summary per kind) or JSON (`-o json`).

use std::fmt::Write as _;

use super::Report;
use super::act::Outcome;

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}   ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s >= 86400 => format!("{}d", s / 86400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let mut rows = vec![vec![
        "KIND".to_string(),
        "NAMESPACE".into(),
        "NAME".into(),
        "AGE".into(),
        if r.dry_run { "WOULD" } else { "RESULT" }.into(),
        "WHY".into(),
    ]];
    for (i, c) in r.delete.iter().enumerate() {
        let result = if r.dry_run {
            "delete".to_string()
        } else {
            match r.outcomes.get(i) {
                Some(Outcome::Deleted) => "deleted",
                Some(Outcome::Gone) => "gone",
                Some(Outcome::Replaced) => "kept (replaced)",
                Some(Outcome::Failed) => "error",
                None => "?",
            }
            .to_string()
        };
        rows.push(vec![
            c.kind.clone(),
            c.namespace.clone().unwrap_or_else(|| "-".into()),
            c.name.clone(),
            age(c.age_seconds),
            result,
            c.reason.clone(),
        ]);
    }
    let mut out = if r.delete.is_empty() {
        format!(
            "nothing to delete{}\n",
            if r.dry_run { " (dry run)" } else { "" }
        )
    } else {
        table(&rows)
    };
    out.push('\n');
    let mut sum = vec![vec![
        "KIND".to_string(),
        if r.dry_run { "WOULD DELETE" } else { "DELETED" }.into(),
        "KEPT".into(),
        "GONE".into(),
        "ERRORS".into(),
    ]];
    for (kind, t) in &r.summary {
        let would = r.delete.iter().filter(|c| &c.kind == kind).count();
        sum.push(vec![
            kind.clone(),
            if r.dry_run { would } else { t.deleted }.to_string(),
            t.kept.to_string(),
            t.gone.to_string(),
            t.errors.to_string(),
        ]);
    }
    out.push_str(&table(&sum));
    for p in &r.problems {
        let _ = writeln!(out, "warning: {p}");
    }
    for e in &r.errors {
        let _ = writeln!(out, "error: {e}");
    }
    out
}
