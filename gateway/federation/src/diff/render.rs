//! Renderings of a [`Report`]: human text, JSON, GitHub Actions annotations.

use super::{ChangeKind, Report};
use crate::compose::Diagnostic;

fn label(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Breaking => "breaking",
        ChangeKind::Dangerous => "dangerous",
        ChangeKind::Safe => "safe",
    }
}

/// Grouped by kind; in operation-aware mode breaking changes say which operations use
/// them (or that none does); ends with a one-line summary.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    for kind in [
        ChangeKind::Breaking,
        ChangeKind::Dangerous,
        ChangeKind::Safe,
    ] {
        let changes: Vec<_> = report.changes.iter().filter(|c| c.kind == kind).collect();
        if changes.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "{} changes ({}):\n",
            capitalise(label(kind)),
            changes.len()
        ));
        for c in changes {
            out.push_str(&format!("  [{}] {}: {}", c.code, c.coordinate, c.message));
            if report.operation_aware && kind == ChangeKind::Breaking {
                if c.operations.is_empty() {
                    out.push_str(" (no operation uses it)");
                } else {
                    out.push_str(&format!(" (used by: {})", c.operations.join(", ")));
                }
            }
            out.push('\n');
        }
    }
    if !report.broken_operations.is_empty() {
        out.push_str(&format!(
            "Operations that stop validating ({}):\n",
            report.broken_operations.len()
        ));
        for b in &report.broken_operations {
            out.push_str(&format!("  {}: {}\n", b.name, b.errors.join("; ")));
        }
    }
    if !report.skipped_operations.is_empty() {
        out.push_str(&format!(
            "Operations not checked: invalid against the old schema ({}):\n",
            report.skipped_operations.len()
        ));
        for b in &report.skipped_operations {
            out.push_str(&format!("  {}: {}\n", b.name, b.errors.join("; ")));
        }
    }
    let count = |k| report.changes.iter().filter(|c| c.kind == k).count();
    let breaking = count(ChangeKind::Breaking);
    let blocking = report.blocking().count();
    out.push_str(&format!(
        "{} breaking{}, {} dangerous, {} safe{}\n",
        breaking,
        if report.operation_aware {
            format!(" ({blocking} used by operations)")
        } else {
            String::new()
        },
        count(ChangeKind::Dangerous),
        count(ChangeKind::Safe),
        if report.operation_aware {
            format!(", {} operation(s) broken", report.broken_operations.len())
        } else {
            String::new()
        },
    ));
    out
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// The report as pretty JSON: `{changes: [{kind, code, coordinate, message, operations?}],
/// operation_aware, broken_operations, skipped_operations}`.
pub fn render_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("reports serialize")
}

/// GitHub Actions workflow commands: `::error` for blocking breaking changes and broken
/// operations, `::warning` for dangerous changes and unused breaking ones, `::notice` for
/// safe changes.
pub fn render_github(report: &Report) -> String {
    use crate::compose::Severity;
    let mut out = String::new();
    for c in &report.changes {
        let level = match c.kind {
            ChangeKind::Breaking if !report.operation_aware || !c.operations.is_empty() => "error",
            ChangeKind::Breaking | ChangeKind::Dangerous => "warning",
            ChangeKind::Safe => "notice",
        };
        let d = Diagnostic {
            code: c.code,
            severity: Severity::Hint,
            subgraphs: Vec::new(),
            coordinate: Some(c.coordinate.clone()),
            message: c.message.clone(),
        };
        out.push_str(&github_line(level, &d));
    }
    for b in &report.broken_operations {
        out.push_str(&format!(
            "::error title={}::{}\n",
            crate::compose::diagnostic_escape(&format!("operation {} breaks", b.name), true),
            crate::compose::diagnostic_escape(&b.errors.join("; "), false)
        ));
    }
    out
}

fn github_line(level: &str, d: &Diagnostic) -> String {
    let title = match &d.coordinate {
        Some(c) => format!("{} {c}", d.code),
        None => d.code.to_string(),
    };
    format!(
        "::{level} title={}::{}\n",
        crate::compose::diagnostic_escape(&title, true),
        crate::compose::diagnostic_escape(&d.message, false)
    )
}
