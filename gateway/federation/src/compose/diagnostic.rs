//! Composition diagnostics: Apollo's stable codes, severity, subgraphs, coordinate,
//! message; and their text / JSON / GitHub-annotation renderings.

use serde::Serialize;

/// Error (composition fails) or hint (composition succeeds; worth a look).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Hint,
}

/// One composition problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Apollo's composition code (`INVALID_FIELD_SHARING`, `SATISFIABILITY_ERROR`, …).
    pub code: &'static str,
    pub severity: Severity,
    /// Subgraphs involved, in composition order.
    pub subgraphs: Vec<String>,
    /// Schema coordinate (`Type`, `Type.field`, `Type.field(arg:)`, `Enum.VALUE`).
    pub coordinate: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            subgraphs: Vec::new(),
            coordinate: None,
            message: message.into(),
        }
    }

    pub(crate) fn hint(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Hint,
            ..Diagnostic::error(code, message)
        }
    }

    pub(crate) fn subgraph(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.subgraphs.contains(&name) {
            self.subgraphs.push(name);
        }
        self
    }

    pub(crate) fn subgraphs<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        names: I,
    ) -> Self {
        for n in names {
            self = self.subgraph(n);
        }
        self
    }

    pub(crate) fn at(mut self, coordinate: impl Into<String>) -> Self {
        self.coordinate = Some(coordinate.into());
        self
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Hint => "hint",
        };
        write!(f, "{level}[{}]", self.code)?;
        if let Some(c) = &self.coordinate {
            write!(f, " {c}")?;
        }
        if !self.subgraphs.is_empty() {
            write!(f, " (subgraphs: {})", self.subgraphs.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One line per diagnostic: `error[CODE] Type.field (subgraphs: a, b): message`.
pub fn render_text(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}

/// A JSON array of `{code, severity, subgraphs, coordinate, message}`.
pub fn render_json(diagnostics: &[Diagnostic]) -> String {
    serde_json::to_string_pretty(diagnostics).expect("diagnostics serialize")
}

/// GitHub Actions workflow commands (`::error title=CODE::message`), one per line.
pub fn render_github(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Hint => "notice",
        };
        let title = match &d.coordinate {
            Some(c) => format!("{} {c}", d.code),
            None => d.code.to_string(),
        };
        out.push_str(&format!(
            "::{level} title={}::{}\n",
            github_escape(&title, true),
            github_escape(&d.message, false)
        ));
    }
    out
}

pub(crate) fn github_escape(s: &str, property: bool) -> String {
    let s = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        s.replace(':', "%3A").replace(',', "%2C")
    } else {
        s
    }
}
