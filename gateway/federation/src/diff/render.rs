//! Renderings of a [`Report`]: human text, JSON, GitHub Actions annotations.

use super::{ChangeKind, Report, Totals};
use crate::compose::Diagnostic;

fn label(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Breaking => "breaking",
        ChangeKind::Dangerous => "dangerous",
        ChangeKind::Safe => "safe",
    }
}

/// Grouped by kind; in operation-aware mode each change says which operations use it
/// (breaking and dangerous ones also when none does; a safe one only when some does);
/// ends with a one-line summary.
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
            if report.operation_aware {
                if !c.operations.is_empty() {
                    out.push_str(&format!(" (used by: {})", c.operations.join(", ")));
                } else if kind != ChangeKind::Safe {
                    out.push_str(" (no operation uses it)");
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
    let t = report.totals();
    out.push_str(&format!(
        "{} breaking{}, {} dangerous, {} safe{}\n",
        t.breaking,
        if report.operation_aware {
            format!(" ({} used by operations)", t.blocking)
        } else {
            String::new()
        },
        t.dangerous,
        t.safe,
        if report.operation_aware {
            format!(", {} operation(s) broken", t.broken_operations)
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
/// operation_aware, broken_operations, skipped_operations, totals: {breaking, blocking,
/// dangerous, safe, broken_operations, skipped_operations}}`.
pub fn render_json(report: &Report) -> String {
    #[derive(serde::Serialize)]
    struct WithTotals<'a> {
        #[serde(flatten)]
        report: &'a Report,
        totals: Totals,
    }
    serde_json::to_string_pretty(&WithTotals {
        report,
        totals: report.totals(),
    })
    .expect("reports serialize: string keys, no maps of other keys")
}

/// GitHub Actions workflow commands: `::error` for blocking breaking changes and broken
/// operations, `::warning` for dangerous changes and unused breaking ones, `::notice` for
/// safe changes. With `new_file`, the path of the file the new schema was read from (as
/// the repository names it), each change carries `file=` and `line=` (`Change::line`) so
/// GitHub shows it on the pull request's diff of that file; without (a schema read from
/// a server), annotations name no file.
pub fn render_github(report: &Report, new_file: Option<&str>) -> String {
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
        let place = match (new_file, c.line) {
            (Some(file), Some(line)) => format!("file={},line={line},", escape_property(file)),
            (Some(file), None) => format!("file={},", escape_property(file)),
            (None, _) => String::new(),
        };
        out.push_str(&github_line(level, &place, &d));
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

fn escape_property(value: &str) -> String {
    crate::compose::diagnostic_escape(value, true)
}

/// `::level place title=…::message`; `place` is empty or `file=…,line=…,`.
fn github_line(level: &str, place: &str, d: &Diagnostic) -> String {
    let title = match &d.coordinate {
        Some(c) => format!("{} {c}", d.code),
        None => d.code.to_string(),
    };
    format!(
        "::{level} {place}title={}::{}\n",
        crate::compose::diagnostic_escape(&title, true),
        crate::compose::diagnostic_escape(&d.message, false)
    )
}
