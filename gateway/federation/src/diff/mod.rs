//! Schema diff (`portico check`): compares two API schemas and classifies every change as
//! breaking, dangerous or safe, with its schema coordinate; optionally against a set of
//! client operations, naming the operations each change touches and those that stop
//! validating.
//!
//! Stages: parse both schemas ([`diff`]) → compare types, fields, arguments, input
//! fields, enum values, union members, interfaces, directives, root types ([`compare`])
//! → with operations, collect the coordinates each one uses and validate it against the
//! new schema ([`operations`]), and name on each change the operations it touches
//! ([`attribute`]) → find each change's line in the new schema ([`locate`]) → render as
//! text, JSON or GitHub annotations ([`render`]).

mod compare;
pub mod introspection;
mod locate;
mod operations;
mod render;
mod values;

pub use render::{render_github, render_json, render_text};

use apollo_compiler::ast::{DirectiveDefinition, DirectiveLocation};
use apollo_compiler::validation::{Valid, WithErrors};
use apollo_compiler::{Node, Schema};
use serde::Serialize;
use std::collections::HashSet;

/// How a change affects existing clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Existing operations may stop validating or get different results.
    Breaking,
    /// Valid operations keep validating but clients may see something new
    /// (a new enum value, a new union member, a changed default).
    Dangerous,
    /// No client can notice.
    Safe,
}

/// One change between the old and the new schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// Stable code: `FIELD_REMOVED`, `ENUM_VALUE_ADDED`, `ARG_CHANGED_TYPE`, …
    pub code: &'static str,
    /// Schema coordinate: `Type`, `Type.field`, `Type.field(arg:)`, `Enum.VALUE`, `@dir`.
    pub coordinate: String,
    pub message: String,
    /// Operation-aware mode: the operations that use what changed (sorted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// What an operation must use to be touched by this change (a type or coordinate).
    #[serde(skip)]
    pub(crate) touches: String,
    /// The line (from 1) of the new schema's text where the change shows: the changed
    /// definition's name, or for a removal the line right after where it was (see
    /// `locate.rs`). GitHub annotations point there.
    #[serde(skip)]
    pub line: Option<usize>,
}

/// An operation that validates against the old schema but not against the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenOperation {
    pub name: String,
    pub errors: Vec<String>,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub changes: Vec<Change>,
    /// Whether operations were given (then `Change::operations` is meaningful).
    pub operation_aware: bool,
    /// Operations that stop validating against the new schema.
    pub broken_operations: Vec<BrokenOperation>,
    /// Operations that do not validate against the old schema either (not checked).
    pub skipped_operations: Vec<BrokenOperation>,
}

impl Report {
    /// Plain diff, no operations.
    pub fn from_changes(changes: Vec<Change>) -> Report {
        Report {
            changes,
            operation_aware: false,
            broken_operations: Vec::new(),
            skipped_operations: Vec::new(),
        }
    }

    /// Breaking changes that should fail a check: all of them, or in operation-aware mode
    /// those used by an operation.
    pub fn blocking(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| {
            c.kind == ChangeKind::Breaking && (!self.operation_aware || !c.operations.is_empty())
        })
    }

    /// `true` when the check should fail (blocking breaking changes or broken operations).
    pub fn is_breaking(&self) -> bool {
        self.blocking().next().is_some() || !self.broken_operations.is_empty()
    }

    /// How many changes of each kind, blocking ones and broken operations.
    pub fn totals(&self) -> Totals {
        let count = |k| self.changes.iter().filter(|c| c.kind == k).count();
        Totals {
            breaking: count(ChangeKind::Breaking),
            blocking: self.blocking().count(),
            dangerous: count(ChangeKind::Dangerous),
            safe: count(ChangeKind::Safe),
            broken_operations: self.broken_operations.len(),
            skipped_operations: self.skipped_operations.len(),
        }
    }
}

/// The counts of a [`Report`] (`"totals"` in its JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub breaking: usize,
    /// Breaking changes that fail the check: all of them, or in operation-aware mode
    /// those an operation uses.
    pub blocking: usize,
    pub dangerous: usize,
    pub safe: usize,
    pub broken_operations: usize,
    pub skipped_operations: usize,
}

/// Why a diff could not be computed.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DiffError {
    #[error("the old schema is invalid: {0}")]
    OldSchema(String),
    #[error("the new schema is invalid: {0}")]
    NewSchema(String),
}

/// `@oneOf` is a built-in directive since the September 2025 GraphQL spec, and schemas
/// printed by servers that know it (graphql-js 16.9+, async-graphql 7) use it without
/// declaring it. apollo-compiler 1.33 does not know it yet, so a schema that uses it
/// without a definition gets this one (added to the parsed schema, not to its text:
/// source lines stay those of the file). The comparison skips `@oneOf`'s definition like
/// the other built-ins, so declaring it on one side only is no change.
fn one_of_definition() -> Node<DirectiveDefinition> {
    Node::new(DirectiveDefinition {
        description: Some(Node::new_str(
            "Indicates exactly one field must be supplied and this field must not be `null`.",
        )),
        name: apollo_compiler::name!("oneOf"),
        arguments: Vec::new(),
        repeatable: false,
        locations: vec![DirectiveLocation::InputObject],
    })
}

fn load(sdl: &str, name: &str) -> Result<Valid<Schema>, String> {
    let messages = |e: WithErrors<Schema>| {
        e.errors
            .iter()
            .map(|d| d.error.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut schema = Schema::parse(sdl, name).map_err(messages)?;
    if !schema.directive_definitions.contains_key("oneOf") {
        let def = one_of_definition();
        schema.directive_definitions.insert(def.name.clone(), def);
    }
    schema.validate().map_err(messages)
}

/// Every change from `old_api_sdl` to `new_api_sdl`, breaking first, then by coordinate,
/// each with its line in `new_api_sdl`.
pub fn diff(old_api_sdl: &str, new_api_sdl: &str) -> Result<Vec<Change>, DiffError> {
    let old = load(old_api_sdl, "old.graphql").map_err(DiffError::OldSchema)?;
    let new = load(new_api_sdl, "new.graphql").map_err(DiffError::NewSchema)?;
    let mut changes = compare::compare(&old, &new);
    locate::locate(&mut changes, &old, &new, new_api_sdl);
    Ok(changes)
}

/// [`diff`], plus which operations (`(name, text)`) each change touches and which
/// operations stop validating against the new schema.
pub fn diff_with_operations(
    old_api_sdl: &str,
    new_api_sdl: &str,
    operations: &[(String, String)],
) -> Result<Report, DiffError> {
    let old = load(old_api_sdl, "old.graphql").map_err(DiffError::OldSchema)?;
    let new = load(new_api_sdl, "new.graphql").map_err(DiffError::NewSchema)?;
    let mut changes = compare::compare(&old, &new);
    locate::locate(&mut changes, &old, &new, new_api_sdl);
    let (usage, skipped) = operations::usage(&old, operations);
    let broken = operations::broken(&new, operations, &skipped);
    attribute(&mut changes, &usage, &broken);
    Ok(Report {
        changes,
        operation_aware: true,
        broken_operations: broken,
        skipped_operations: skipped,
    })
}

/// Name on each change the operations (sorted) it touches: those whose usage holds what
/// it touches. So that the labels agree with the verdict even where the usage walk
/// misses what validation catches, each validation error of an operation that stops
/// validating also names the breaking changes it speaks of: those whose coordinate's
/// names all appear in the message (`User` and `name` for `User.name` in "type `User`
/// does not have a field `name`"), keeping the most specific (`@cached(scope:)` rather
/// than `@cached` for "the argument `scope` is not supported by `@cached`").
fn attribute(
    changes: &mut [Change],
    usage: &[(String, HashSet<String>)],
    broken: &[BrokenOperation],
) {
    for change in changes.iter_mut() {
        change.operations = usage
            .iter()
            .filter(|(_, used)| used.contains(&change.touches))
            .map(|(name, _)| name.clone())
            .collect();
    }
    let parts: Vec<HashSet<String>> = changes
        .iter()
        .map(|c| match c.kind {
            ChangeKind::Breaking => words(&c.coordinate).map(str::to_string).collect(),
            _ => HashSet::new(),
        })
        .collect();
    let mut named: Vec<(usize, &str)> = Vec::new();
    for b in broken {
        for error in &b.errors {
            let said: HashSet<&str> = words(error).collect();
            let matching: Vec<usize> = (0..parts.len())
                .filter(|&i| {
                    !parts[i].is_empty() && parts[i].iter().all(|p| said.contains(p.as_str()))
                })
                .collect();
            for &i in &matching {
                let less_specific = matching
                    .iter()
                    .any(|&j| parts[j].len() > parts[i].len() && parts[i].is_subset(&parts[j]));
                if !less_specific {
                    named.push((i, &b.name));
                }
            }
        }
    }
    for (i, name) in named {
        if let Some(change) = changes.get_mut(i) {
            change.operations.push(name.to_string());
        }
    }
    for change in changes.iter_mut() {
        change.operations.sort();
        change.operations.dedup();
    }
}

/// The GraphQL names in a text (runs of letters, digits and `_`).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind, coordinate: &str, touches: &str) -> Change {
        Change {
            kind,
            code: "FIELD_REMOVED",
            coordinate: coordinate.into(),
            message: String::new(),
            operations: Vec::new(),
            touches: touches.into(),
            line: None,
        }
    }

    /// Usage collection that misses a coordinate validation catches must not leave the
    /// breaking change unattributed while the operation is reported broken.
    #[test]
    fn a_broken_operation_is_attributed_to_the_change_its_errors_name() {
        let usage = vec![
            (
                "GetUser".to_string(),
                HashSet::from(["Query.user".to_string()]),
            ),
            (
                "Feed".to_string(),
                HashSet::from(["Query.feed".to_string()]),
            ),
        ];
        let broken = vec![BrokenOperation {
            name: "GetUser".into(),
            errors: vec!["type `User` does not have a field `name`".into()],
        }];
        let mut changes = vec![
            // What broke GetUser, though its usage (as given here) misses it.
            change(ChangeKind::Breaking, "User.name", "User.name"),
            // Not all its names are in the error.
            change(ChangeKind::Breaking, "User.email", "User.email"),
            // Less specific than `User.name`, which the error names.
            change(ChangeKind::Breaking, "User", "Node"),
            // Only breaking changes break operations.
            change(ChangeKind::Safe, "User.name", "User.name"),
            // Operations that validate are named by usage only.
            change(ChangeKind::Breaking, "Query.feed", "Query.feed"),
        ];
        attribute(&mut changes, &usage, &broken);
        let named: Vec<_> = changes.iter().map(|c| c.operations.clone()).collect();
        assert_eq!(
            named,
            [
                vec!["GetUser".to_string()],
                vec![],
                vec![],
                vec![],
                vec!["Feed".to_string()]
            ]
        );
    }
}
