//! `@defer`: incremental delivery. An operation whose fragments carry an active `@defer`
//! (no `if: false`) is split into documents ([`split`]):
//!
//! - `planned`: the operation with its active `@defer`s kept (their `if:` settled to a
//!   literal), and a `__typename` aliased [`TYPENAME`] beside each typed deferred
//!   fragment, to tell which objects it applies to. The planner plans it into a `Defer`
//!   node: the primary part's fetches, then each deferred fragment's own fetches, which
//!   start from the primary part's data (entity keys) and never fetch it again;
//! - `initial`: the deferred fragments removed (a selection set left empty keeps one
//!   placeholder `__typename`, aliased [`EMPTY`], removed from the data): the shape of
//!   the initial payload;
//! - `full`: the `@defer` directives removed: the whole operation in one response, for
//!   a client that does not take `multipart/mixed`.
//!
//! With multipart, the gateway runs `planned` once through every stage (limits,
//! authorization, cost: the deferred fields are checked and charged as the rest); the
//! executor shapes the initial payload for `initial` once the primary part has run and
//! sends it (`hasNext: true`), then runs the deferred fetches and shapes the whole; each
//! deferred fragment's fields are then sent at each place it applies ([`increments`]:
//! one `incremental` item with its `path` and `label` per object, lists walked into).
//! Only the outermost `@defer` of a branch splits; nested ones arrive with it (the spec
//! lets a server deliver deferred data early).
//!
//! The transforms recurse over one definition's nesting, which the operation limits have
//! bounded (`limits.max_depth`) before they run; [`MAX_DEPTH`] bounds them regardless.
//! The walk over the response is iterative.

use apollo_compiler::Name;
use apollo_compiler::Node;
use apollo_compiler::ast::{self, Definition, Selection};
use serde_json::{Map, Value};

use crate::error::PathElem;

/// Alias of the `__typename` that fills a selection set emptied by the split.
pub(crate) const EMPTY: &str = "portico__deferred";
/// Alias of the `__typename` that tells which objects a typed deferred fragment covers.
pub(crate) const TYPENAME: &str = "portico__typename";
/// Deepest selection nesting the transforms walk (beyond: no split, `@defer` ignored).
const MAX_DEPTH: usize = 256;

/// Label given to each active `@defer` of the planned document (numbered): the plan's
/// deferred nodes carry it, so each part can be delivered when its fetches are done.
const LABEL: &str = "portico_defer_";

/// An operation split for incremental delivery.
pub(crate) struct Split {
    pub(crate) initial: String,
    pub(crate) full: String,
    /// `full` with its active `@defer`s kept (`if:` settled, labelled [`LABEL`]`<n>`):
    /// what the planner plans into a `Defer` node when the client takes incremental
    /// delivery.
    pub(crate) planned_text: String,
    /// That document (one operation and its fragments) and its operation.
    planned: ast::Document,
    planned_operation: Node<ast::OperationDefinition>,
    /// The client's label of each `@defer` of `planned`, by number.
    labels: Vec<Option<String>>,
}

/// `Some(label)` when `directives` hold an active `@defer`.
fn deferred(
    directives: &ast::DirectiveList,
    variables: &Map<String, Value>,
) -> Option<Option<String>> {
    let defer = directives.get("defer")?;
    let active = match defer.specified_argument_by_name("if").map(|v| v.as_ref()) {
        None => true,
        Some(ast::Value::Boolean(b)) => *b,
        Some(ast::Value::Variable(v)) => variables
            .get(v.as_str())
            .and_then(Value::as_bool)
            .unwrap_or(true),
        Some(_) => true,
    };
    if !active {
        return None;
    }
    let label = match defer
        .specified_argument_by_name("label")
        .map(|v| v.as_ref())
    {
        Some(ast::Value::String(s)) => Some(s.to_string()),
        _ => None,
    };
    Some(label)
}

fn name(s: &str) -> Option<Name> {
    Name::new(s).ok()
}

fn typename_field(alias: &str) -> Option<Selection> {
    Some(Selection::Field(Node::new(ast::Field {
        alias: Some(name(alias)?),
        name: name("__typename")?,
        arguments: Vec::new(),
        directives: ast::DirectiveList::default(),
        selection_set: Vec::new(),
    })))
}

/// Removes active deferred fragments from `selections` (and below); fills emptied sets.
/// `false` when nested deeper than [`MAX_DEPTH`].
fn remove_deferred(
    selections: &mut Vec<Selection>,
    removed: &dyn Fn(&ast::DirectiveList) -> bool,
    depth: usize,
) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    selections.retain(|s| match s {
        Selection::InlineFragment(f) => !removed(&f.directives),
        Selection::FragmentSpread(f) => !removed(&f.directives),
        Selection::Field(_) => true,
    });
    for s in selections.iter_mut() {
        let ok = match s {
            Selection::Field(f) if !f.selection_set.is_empty() => {
                let f = f.make_mut();
                let ok = remove_deferred(&mut f.selection_set, removed, depth + 1);
                if f.selection_set.is_empty() {
                    f.selection_set.extend(typename_field(EMPTY));
                }
                ok
            }
            Selection::InlineFragment(f) => {
                let f = f.make_mut();
                let ok = remove_deferred(&mut f.selection_set, removed, depth + 1);
                if f.selection_set.is_empty() {
                    f.selection_set.extend(typename_field(EMPTY));
                }
                ok
            }
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Settles the `@defer` of `directives`: removed, or with `labels` and when active,
/// kept without its `if:` (a literal for the planner, which never sees variables) and
/// labelled [`LABEL`]`<n>`, the client's own label (if any) kept as `labels[n]`.
fn settle(
    directives: &mut ast::DirectiveList,
    variables: &Map<String, Value>,
    labels: Option<&mut Vec<Option<String>>>,
) {
    match (labels, deferred(directives, variables)) {
        (Some(labels), Some(label)) => {
            let ours = ast::Value::String(format!("{LABEL}{}", labels.len()));
            labels.push(label);
            for d in directives.0.iter_mut().filter(|d| d.name == "defer") {
                let d = d.make_mut();
                d.arguments.retain(|a| a.name != "if" && a.name != "label");
                d.arguments.push(Node::new(ast::Argument {
                    name: apollo_compiler::name!("label"),
                    value: Node::new(ours.clone()),
                }));
            }
        }
        _ => directives.0.retain(|d| d.name != "defer"),
    }
}

/// Removes `@defer` from `selections` (and below), or with `keep` settles each one (see
/// [`settle`]); adds [`TYPENAME`] beside each typed deferred fragment, to tell which
/// objects it applies to. `false` when nested deeper than [`MAX_DEPTH`].
fn strip_defer(
    selections: &mut Vec<Selection>,
    variables: &Map<String, Value>,
    depth: usize,
    mut keep: Option<&mut Vec<Option<String>>>,
) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let mut marks = false;
    for s in selections.iter_mut() {
        let ok = match s {
            Selection::Field(f) => {
                if f.selection_set.is_empty() {
                    true
                } else {
                    strip_defer(
                        &mut f.make_mut().selection_set,
                        variables,
                        depth + 1,
                        keep.as_deref_mut(),
                    )
                }
            }
            Selection::InlineFragment(f) => {
                // Only a typed fragment needs to know the object's type.
                marks |= f.type_condition.is_some() && deferred(&f.directives, variables).is_some();
                let f = f.make_mut();
                settle(&mut f.directives, variables, keep.as_deref_mut());
                strip_defer(
                    &mut f.selection_set,
                    variables,
                    depth + 1,
                    keep.as_deref_mut(),
                )
            }
            Selection::FragmentSpread(f) => {
                marks |= deferred(&f.directives, variables).is_some();
                settle(&mut f.make_mut().directives, variables, keep.as_deref_mut());
                true
            }
        };
        if !ok {
            return false;
        }
    }
    if marks {
        selections.extend(typename_field(TYPENAME));
    }
    true
}

/// Fragments `selections` spread, directly or not, in `document` (iterative).
fn reachable(
    document: &ast::Document,
    operation: &ast::OperationDefinition,
) -> std::collections::HashSet<Name> {
    let fragments: std::collections::HashMap<&Name, &Node<ast::FragmentDefinition>> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::FragmentDefinition(f) => Some((&f.name, f)),
            _ => None,
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<&Vec<Selection>> = vec![&operation.selection_set];
    while let Some(selections) = stack.pop() {
        for s in selections {
            match s {
                Selection::Field(f) => stack.push(&f.selection_set),
                Selection::InlineFragment(f) => stack.push(&f.selection_set),
                Selection::FragmentSpread(f) => {
                    if seen.insert(f.fragment_name.clone())
                        && let Some(def) = fragments.get(&f.fragment_name)
                    {
                        stack.push(&def.selection_set);
                    }
                }
            }
        }
    }
    seen
}

/// Does any selection reachable from `operation` carry an active `@defer`?
fn has_defer(
    document: &ast::Document,
    operation: &ast::OperationDefinition,
    variables: &Map<String, Value>,
) -> bool {
    let used = reachable(document, operation);
    let mut stack: Vec<&Vec<Selection>> = vec![&operation.selection_set];
    for d in &document.definitions {
        if let Definition::FragmentDefinition(f) = d
            && used.contains(&f.name)
        {
            stack.push(&f.selection_set);
        }
    }
    while let Some(selections) = stack.pop() {
        for s in selections {
            match s {
                Selection::Field(f) => stack.push(&f.selection_set),
                Selection::InlineFragment(f) => {
                    if deferred(&f.directives, variables).is_some() {
                        return true;
                    }
                    stack.push(&f.selection_set);
                }
                Selection::FragmentSpread(f) => {
                    if deferred(&f.directives, variables).is_some() {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// `operation` and the fragments it uses (no other operation, no unused fragment).
fn only(document: &ast::Document, operation: &Node<ast::OperationDefinition>) -> ast::Document {
    let used = reachable(document, operation);
    let mut out = ast::Document::new();
    out.definitions
        .push(Definition::OperationDefinition(operation.clone()));
    for d in &document.definitions {
        if let Definition::FragmentDefinition(f) = d
            && used.contains(&f.name)
        {
            out.definitions.push(d.clone());
        }
    }
    out
}

/// `document` with `edit` applied to the selection set of each definition; `None` when an
/// edit gives up (too deep).
fn transform(
    document: &ast::Document,
    mut edit: impl FnMut(&mut Vec<Selection>) -> bool,
) -> Option<ast::Document> {
    let mut out = document.clone();
    for d in out.definitions.iter_mut() {
        let ok = match d {
            Definition::OperationDefinition(o) => edit(&mut o.make_mut().selection_set),
            Definition::FragmentDefinition(f) => edit(&mut f.make_mut().selection_set),
            _ => true,
        };
        if !ok {
            return None;
        }
    }
    Some(out)
}

/// Splits `query`'s operation `operation_name` when it defers something; `None` when it
/// does not (or cannot be split: then `@defer` is simply not honoured by a split).
pub(crate) fn split(
    query: &str,
    operation_name: Option<&str>,
    variables: &Map<String, Value>,
) -> Option<Split> {
    if !query.contains("defer") {
        return None;
    }
    let document = ast::Document::parse(query, "query.graphql").ok()?;
    let operation = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::OperationDefinition(o) => Some(o),
            _ => None,
        })
        .find(|o| match operation_name {
            Some(n) => o.name.as_ref().is_some_and(|name| name == n),
            None => true,
        })?
        .clone();
    if !has_defer(&document, &operation, variables) {
        return None;
    }
    let document = only(&document, &operation);
    // Initial: deferred fragments removed everywhere, then unused fragments dropped.
    let active = |d: &ast::DirectiveList| deferred(d, variables).is_some();
    let initial = without_deferred(&document, &active)?;
    let full = transform(&document, |set| strip_defer(set, variables, 0, None))?;
    let mut labels = Vec::new();
    let planned = transform(&document, |set| {
        strip_defer(set, variables, 0, Some(&mut labels))
    })?;
    let planned_operation = operation_of(&planned)?;
    Some(Split {
        initial,
        full: full.to_string(),
        planned_text: planned.to_string(),
        planned,
        planned_operation,
        labels,
    })
}

/// The operation of a document of one operation.
fn operation_of(document: &ast::Document) -> Option<Node<ast::OperationDefinition>> {
    document.definitions.iter().find_map(|d| match d {
        Definition::OperationDefinition(o) => Some(o.clone()),
        _ => None,
    })
}

/// `document` (one operation and its fragments) without the deferred fragments
/// `removed` picks, printed; unused fragments dropped.
fn without_deferred(
    document: &ast::Document,
    removed: &dyn Fn(&ast::DirectiveList) -> bool,
) -> Option<String> {
    let out = transform(document, |set| remove_deferred(set, removed, 0))?;
    let operation = operation_of(&out)?;
    Some(only(&out, &operation).to_string())
}

impl Split {
    /// The deferred fragments of `planned`, by the label given to each (`portico_defer_<n>`).
    pub(crate) fn labels(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.labels.len()).map(|n| format!("{LABEL}{n}"))
    }

    /// `plan` (of `planned`) with each deferred part's label the client's (or none),
    /// for showing it (`portico-include-plan`, explain).
    pub(crate) fn with_client_labels(
        &self,
        plan: &portico_federation::plan::QueryPlan,
    ) -> portico_federation::plan::QueryPlan {
        let mut plan = plan.clone();
        if let Some(portico_federation::plan::PlanNode::Defer { deferred, .. }) = &mut plan.node {
            for d in deferred {
                if let Some(client) = d.label.as_deref().and_then(|l| self.client_label(l)) {
                    d.label.clone_from(client);
                }
            }
        }
        plan
    }

    /// The client's label (or none) of the deferred fragment labelled `ours`
    /// ([`LABEL`]`<n>`); `None` for a label that is not one of ours.
    fn client_label(&self, ours: &str) -> Option<&Option<String>> {
        let n: usize = ours.strip_prefix(LABEL)?.parse().ok()?;
        self.labels.get(n)
    }

    /// The operation with the initial payload's fields and deferred fragment `label`'s:
    /// the shape of the part that delivers that fragment.
    pub(crate) fn part(&self, label: &str) -> Option<String> {
        let others = |d: &ast::DirectiveList| {
            deferred(d, &Map::new()).is_some_and(|l| l.as_deref() != Some(label))
        };
        without_deferred(&self.planned, &others)
    }
}

type Fragments<'a> = std::collections::HashMap<&'a Name, &'a Node<ast::FragmentDefinition>>;

/// `value` reduced to what `selections` select (through fragments whose type condition
/// the object meets; lists mapped). Recursion follows the selections' nesting, bounded
/// by [`MAX_DEPTH`] (deeper data is cut).
fn project(
    value: &Value,
    selections: &[Selection],
    fragments: &Fragments<'_>,
    is_subtype: &dyn Fn(&str, &str) -> bool,
    depth: usize,
) -> Value {
    match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| project(v, selections, fragments, is_subtype, depth + 1))
                .collect(),
        ),
        Value::Object(fields) if depth <= MAX_DEPTH => {
            let mut out = Map::new();
            project_into(&mut out, fields, selections, fragments, is_subtype, depth);
            Value::Object(out)
        }
        Value::Object(_) => Value::Null,
        other => other.clone(),
    }
}

fn project_into(
    out: &mut Map<String, Value>,
    fields: &Map<String, Value>,
    selections: &[Selection],
    fragments: &Fragments<'_>,
    is_subtype: &dyn Fn(&str, &str) -> bool,
    depth: usize,
) {
    let object = fields.get(TYPENAME).and_then(Value::as_str);
    let applies = |condition: &Name| match object {
        Some(t) => t == condition.as_str() || is_subtype(condition.as_str(), t),
        None => true,
    };
    for s in selections {
        match s {
            Selection::Field(f) => {
                let key = f.alias.as_ref().unwrap_or(&f.name).as_str();
                let Some(child) = fields.get(key) else {
                    continue;
                };
                let projected = if f.selection_set.is_empty() {
                    child.clone()
                } else {
                    project(child, &f.selection_set, fragments, is_subtype, depth + 1)
                };
                merge(out, key, projected);
            }
            Selection::InlineFragment(f) => {
                if f.type_condition.as_ref().is_none_or(applies) {
                    project_into(
                        out,
                        fields,
                        &f.selection_set,
                        fragments,
                        is_subtype,
                        depth + 1,
                    );
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(def) = fragments.get(&spread.fragment_name)
                    && applies(&def.type_condition)
                    && depth <= MAX_DEPTH
                {
                    project_into(
                        out,
                        fields,
                        &def.selection_set,
                        fragments,
                        is_subtype,
                        depth + 1,
                    );
                }
            }
        }
    }
}

/// Puts `value` at `key`, merging objects (two fragments selecting parts of one field).
fn merge(out: &mut Map<String, Value>, key: &str, value: Value) {
    match (out.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(more)) => {
            for (k, v) in more {
                merge(existing, &k, v);
            }
        }
        (Some(Value::Array(existing)), Value::Array(more)) if existing.len() == more.len() => {
            for (e, m) in existing.iter_mut().zip(more) {
                if let (Value::Object(e), Value::Object(m)) = (e, m) {
                    for (k, v) in m {
                        merge(e, &k, v);
                    }
                }
            }
        }
        (_, value) => {
            out.insert(key.to_string(), value);
        }
    }
}

/// The `incremental` items of response `data`: each outermost deferred fragment's
/// fields (only fragment `only`'s, when given, by its [`LABEL`] label), at each object
/// it applies to, with the client's label; each beside the fragment's [`LABEL`] label.
/// `is_subtype(abstract, object)` decides typed fragments on abstract types.
pub(crate) fn increments(
    split: &Split,
    data: &Value,
    only: Option<&str>,
    is_subtype: &dyn Fn(&str, &str) -> bool,
) -> Vec<(String, Value)> {
    let fragments: Fragments<'_> = split
        .planned
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::FragmentDefinition(f) => Some((&f.name, f)),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    // (selections, the object they apply to, its path, inside a deferred fragment)
    let mut stack: Vec<(&[Selection], &Value, Vec<PathElem>, bool)> = vec![(
        &split.planned_operation.selection_set,
        data,
        Vec::new(),
        false,
    )];
    // The planned document's `@defer`s are settled: no variable is needed.
    let none = Map::new();
    let wanted = |label: &Option<String>| only.is_none_or(|o| label.as_deref() == Some(o));
    let client_label = |label: &Option<String>| split.client_label(label.as_deref()?)?.clone();
    let applies = |condition: Option<&Name>, object: &Value| match condition {
        None => true,
        Some(c) => match object.get(TYPENAME).and_then(Value::as_str) {
            Some(t) => t == c.as_str() || is_subtype(c.as_str(), t),
            None => true,
        },
    };
    while let Some((selections, object, path, inside)) = stack.pop() {
        let Some(fields) = object.as_object() else {
            continue;
        };
        for s in selections {
            match s {
                Selection::Field(f) => {
                    if f.selection_set.is_empty() {
                        continue;
                    }
                    let key = f.alias.as_ref().unwrap_or(&f.name).as_str();
                    let Some(child) = fields.get(key) else {
                        continue;
                    };
                    // Lists (of lists) walked into, each object with its index path.
                    let mut values: Vec<(&Value, Vec<PathElem>)> = vec![(child, {
                        let mut p = path.clone();
                        p.push(PathElem::Key(key.to_string()));
                        p
                    })];
                    while let Some((value, p)) = values.pop() {
                        match value {
                            Value::Array(items) => {
                                for (i, item) in items.iter().enumerate().rev() {
                                    let mut ip = p.clone();
                                    ip.push(PathElem::Index(i));
                                    values.push((item, ip));
                                }
                            }
                            Value::Object(_) => stack.push((&f.selection_set, value, p, inside)),
                            _ => {}
                        }
                    }
                }
                Selection::InlineFragment(f) => {
                    if !applies(f.type_condition.as_ref(), object) {
                        continue;
                    }
                    let label = deferred(&f.directives, &none);
                    if !inside
                        && let Some(label) = &label
                        && wanted(label)
                    {
                        let data = project(object, &f.selection_set, &fragments, is_subtype, 0);
                        out.push((
                            label.clone().unwrap_or_default(),
                            item(data, &path, client_label(label).as_deref()),
                        ));
                    }
                    stack.push((
                        &f.selection_set,
                        object,
                        path.clone(),
                        inside || label.is_some(),
                    ));
                }
                Selection::FragmentSpread(spread) => {
                    let Some(def) = fragments.get(&spread.fragment_name) else {
                        continue;
                    };
                    if !applies(Some(&def.type_condition), object) {
                        continue;
                    }
                    let label = deferred(&spread.directives, &none);
                    if !inside
                        && let Some(label) = &label
                        && wanted(label)
                    {
                        let data = project(object, &def.selection_set, &fragments, is_subtype, 0);
                        out.push((
                            label.clone().unwrap_or_default(),
                            item(data, &path, client_label(label).as_deref()),
                        ));
                    }
                    stack.push((
                        &def.selection_set,
                        object,
                        path.clone(),
                        inside || label.is_some(),
                    ));
                }
            }
        }
    }
    out
}

/// What the parts of one `@defer` response sent so far carried: errors (as JSON, each
/// sent once) and the deferred fragments (their [`LABEL`] labels).
#[derive(Default)]
pub(crate) struct Delivered {
    errors: Vec<Value>,
    labels: std::collections::HashSet<String>,
}

impl Delivered {
    /// The errors of `errors` not sent yet, now counted as sent.
    pub(crate) fn new_errors(&mut self, errors: &[crate::error::GraphQLError]) -> Vec<Value> {
        let mut fresh = Vec::new();
        for e in errors {
            let e = serde_json::json!(e);
            if !self.errors.contains(&e) {
                self.errors.push(e.clone());
                fresh.push(e);
            }
        }
        fresh
    }

    /// The part that delivers `response`: fragment `only`'s items (`hasNext: true`), or,
    /// without `only`, the last part (`hasNext: false`) with every fragment not delivered
    /// yet and the response's `extensions`; errors not sent yet in either.
    pub(crate) fn part(
        &mut self,
        split: &Split,
        response: crate::error::GraphQLResponse,
        only: Option<&str>,
        is_subtype: &dyn Fn(&str, &str) -> bool,
    ) -> Value {
        let items: Vec<Value> = response
            .data
            .map(crate::execute::Val::into_json)
            .map(|data| increments(split, &data, only, is_subtype))
            .unwrap_or_default()
            .into_iter()
            .filter(|(label, _)| only.is_some() || !self.labels.contains(label))
            .map(|(_, item)| item)
            .collect();
        if let Some(label) = only {
            self.labels.insert(label.to_string());
        }
        let mut part = Map::new();
        part.insert("hasNext".into(), Value::Bool(only.is_some()));
        if only.is_some() || !items.is_empty() {
            part.insert("incremental".into(), Value::Array(items));
        }
        let errors = self.new_errors(&response.errors);
        if !errors.is_empty() {
            part.insert("errors".into(), Value::Array(errors));
        }
        if !response.extensions.is_empty() {
            part.insert("extensions".into(), Value::Object(response.extensions));
        }
        Value::Object(part)
    }
}

fn item(mut data: Value, path: &[PathElem], label: Option<&str>) -> Value {
    strip_placeholders(&mut data);
    let mut item = Map::new();
    item.insert("data".into(), data);
    item.insert(
        "path".into(),
        Value::Array(
            path.iter()
                .map(|p| match p {
                    PathElem::Key(k) => Value::String(k.clone()),
                    PathElem::Index(i) => Value::from(*i),
                })
                .collect(),
        ),
    );
    if let Some(label) = label {
        item.insert("label".into(), Value::String(label.to_string()));
    }
    Value::Object(item)
}

/// Removes the split's placeholder keys ([`EMPTY`], [`TYPENAME`]) everywhere in `value`
/// (iterative).
pub(crate) fn strip_placeholders(value: &mut Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                map.remove(EMPTY);
                map.remove(TYPENAME);
                stack.extend(map.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_deferred_fragment_gets_a_label_of_its_own_and_a_part_shape() {
        let query = r#"query Q($later: Boolean!, $never: Boolean!) {
            a
            ... @defer(label: "mine") { b }
            ... @defer(if: $later) { c }
            ... @defer(if: $never) { d }
        }"#;
        let variables = json!({"later": true, "never": false});
        let Value::Object(variables) = variables else {
            unreachable!()
        };
        let split = split(query, None, &variables).expect("it defers");
        // Active `@defer`s numbered, `if:` settled; the inactive one is no `@defer`.
        assert!(
            split
                .planned_text
                .contains(r#"@defer(label: "portico_defer_0")"#)
        );
        assert!(
            split
                .planned_text
                .contains(r#"@defer(label: "portico_defer_1")"#)
        );
        assert!(!split.planned_text.contains("if:"));
        assert_eq!(
            split.labels().collect::<Vec<_>>(),
            ["portico_defer_0", "portico_defer_1"]
        );
        let part = split.part("portico_defer_0").expect("a part");
        assert!(
            part.contains(" b") && !part.contains(" c") && part.contains(" d"),
            "{part}"
        );
        assert!(!split.initial.contains(" b") && split.initial.contains(" d"));
        // Items carry the client's label (or none), each beside its fragment's own.
        let data = json!({"a": 1, "b": 2, "c": 3, "d": 4});
        let all = increments(&split, &data, None, &|_, _| false);
        assert_eq!(
            all,
            vec![
                (
                    "portico_defer_0".to_string(),
                    json!({"data": {"b": 2}, "path": [], "label": "mine"})
                ),
                (
                    "portico_defer_1".to_string(),
                    json!({"data": {"c": 3}, "path": []})
                ),
            ]
        );
        let one = increments(&split, &data, Some("portico_defer_1"), &|_, _| false);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].1["data"], json!({"c": 3}));
        // A plan shown to the client carries its labels.
        use portico_federation::plan::{DeferredNode, PlanNode, QueryPlan};
        let deferred = |label: &str| DeferredNode {
            label: Some(label.to_string()),
            path: Vec::new(),
            node: None,
        };
        let plan = QueryPlan {
            node: Some(PlanNode::Defer {
                primary: None,
                deferred: vec![deferred("portico_defer_0"), deferred("portico_defer_1")],
            }),
        };
        let Some(PlanNode::Defer { deferred, .. }) = split.with_client_labels(&plan).node else {
            unreachable!()
        };
        let labels: Vec<_> = deferred.iter().map(|d| d.label.clone()).collect();
        assert_eq!(labels, [Some("mine".to_string()), None]);
    }
}
