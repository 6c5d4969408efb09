//! Stage 1, operation normalisation: pick the operation, inline named fragments, keep
//! `@skip`/`@include` and the executable directives on fields (forwarded to subgraphs;
//! refused elsewhere, see [`forwarded`]), drop root introspection fields. Literal
//! conditions are decided here: `@skip(if: true)`/`@include(if: false)` prune the
//! selection (no fetch for it at all), `@skip(if: false)`/`@include(if: true)` are dropped;
//! only conditions on variables reach the walk. The
//! result is a small owned selection tree ([`Sel`]) that the walk consumes; field sets of
//! the supergraph (`key`, `requires`, `provides`) are parsed into the same tree.

use super::{Budget, OperationKind, PlanError};
use apollo_compiler::ast::{self, Argument, Directive};
use apollo_compiler::executable::{self, ExecutableDocument, Selection};
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node};

/// How deep fields and fragments may nest in a planned operation (apollo-compiler's
/// validation already refuses fields nested deeper than 128; fragments are capped here).
/// Deeper operations fail with [`PlanError::TooDeep`]
/// (`QUERY_PLAN_TOO_COMPLEX`) before the recursive stages run, so planning fits a
/// 2 MiB thread stack (`random_operations.rs` proves it in a debug build).
pub(crate) const MAX_OPERATION_DEPTH: usize = 128;

/// A field selection.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) alias: Option<Name>,
    pub(crate) name: Name,
    pub(crate) arguments: Vec<Node<Argument>>,
    /// `@skip` / `@include` left to decide at run time, then the other executable
    /// directives, which are forwarded to the subgraph with the field.
    pub(crate) directives: Vec<Node<Directive>>,
    pub(crate) selections: Vec<Sel>,
}

impl Field {
    pub(crate) fn response_key(&self) -> &Name {
        self.alias.as_ref().unwrap_or(&self.name)
    }
}

/// An inline fragment (named fragments are inlined into these).
#[derive(Debug, Clone)]
pub(crate) struct Fragment {
    pub(crate) type_condition: Option<Name>,
    pub(crate) directives: Vec<Node<Directive>>,
    pub(crate) selections: Vec<Sel>,
    /// `Some` when the fragment carries an active `@defer` (no `if: false`).
    pub(crate) defer: Option<Defer>,
}

/// A fragment's `@defer`. An `if:` on a variable counts as deferred: the plan then
/// fetches the fragment's fields after the primary part either way (the gateway turns
/// such conditions into literals before planning when it delivers incrementally).
#[derive(Debug, Clone)]
pub(crate) struct Defer {
    pub(crate) label: Option<String>,
}

/// The fragment's active `@defer`, if any.
fn defer_of(directives: &executable::DirectiveList) -> Option<Defer> {
    let d = directives.get("defer")?;
    if let Some(ast::Value::Boolean(false)) = d.specified_argument_by_name("if").map(|v| v.as_ref())
    {
        return None;
    }
    let label = match d.specified_argument_by_name("label").map(|v| v.as_ref()) {
        Some(ast::Value::String(s)) => Some(s.to_string()),
        _ => None,
    };
    Some(Defer { label })
}

#[derive(Debug, Clone)]
pub(crate) enum Sel {
    Field(Field),
    Fragment(Fragment),
}

/// The operation to plan, normalised.
#[derive(Debug)]
pub(crate) struct Operation {
    pub(crate) kind: OperationKind,
    /// The client's operation name: subgraph fetches are named after it.
    pub(crate) name: Option<Name>,
    pub(crate) root_type: Name,
    pub(crate) variables: Vec<Node<ast::VariableDefinition>>,
    pub(crate) selections: Vec<Sel>,
}

/// The `@skip`/`@include` conditions left to decide at run time, or `None` when a literal
/// condition excludes the selection.
fn conditions(directives: &executable::DirectiveList) -> Option<Vec<Node<Directive>>> {
    let mut out = Vec::new();
    for d in directives.iter() {
        let included_when = match d.name.as_str() {
            "include" => true,
            "skip" => false,
            _ => continue,
        };
        match d.specified_argument_by_name("if").map(|v| v.as_ref()) {
            Some(ast::Value::Boolean(b)) if *b == included_when => {}
            Some(ast::Value::Boolean(_)) => return None,
            _ => out.push(d.clone()),
        }
    }
    Some(out)
}

/// A selection set emptied by literal conditions still needs one field in a subgraph
/// request; `__typename` is free and never reaches the client.
/// Executable directives other than `@skip`/`@include` (composed from the subgraphs, which
/// all accept them). On a field they travel with it to the subgraph; elsewhere the planner
/// cannot place them faithfully (fragments are inlined and re-shaped per subgraph, one
/// client operation becomes several fetches), so it refuses rather than drop them.
fn forwarded(
    directives: &executable::DirectiveList,
    on: &str,
) -> Result<Vec<Node<Directive>>, PlanError> {
    let mut out = Vec::new();
    for d in directives.iter() {
        match d.name.as_str() {
            "include" | "skip" => {}
            "defer" if on != "field" => {}
            "defer" | "stream" => {
                return Err(PlanError::Unsupported {
                    coordinate: format!("@{}", d.name),
                    reason: "incremental delivery is not supported".into(),
                });
            }
            _ if on == "field" => out.push(d.clone()),
            _ => {
                return Err(PlanError::Unsupported {
                    coordinate: format!("@{}", d.name),
                    reason: format!(
                        "executable directives are forwarded to subgraphs on fields only, not on {on}"
                    ),
                });
            }
        }
    }
    Ok(out)
}

fn typename_only() -> Vec<Sel> {
    vec![Sel::Field(Field {
        alias: None,
        name: apollo_compiler::name!("__typename"),
        arguments: Vec::new(),
        directives: Vec::new(),
        selections: Vec::new(),
    })]
}

pub(crate) fn normalize(
    document: &Valid<ExecutableDocument>,
    operation_name: Option<&str>,
    budget: &mut Budget,
) -> Result<Operation, PlanError> {
    let op = document.operations.get(operation_name).map_err(|_| {
        PlanError::UnknownOperation(match operation_name {
            Some(n) => format!("unknown operation named \"{n}\""),
            None => "the document has several operations: an operation name is required".into(),
        })
    })?;
    let kind = match op.operation_type {
        ast::OperationType::Query => OperationKind::Query,
        ast::OperationType::Mutation => OperationKind::Mutation,
        ast::OperationType::Subscription => OperationKind::Subscription,
    };
    forwarded(&op.directives, "operations")?;
    for fragment in document.fragments.values() {
        forwarded(&fragment.directives, "fragment definitions")?;
    }
    let mut selections = convert(document, &op.selection_set, budget, 0)?;
    strip_root_introspection(&mut selections);
    Ok(Operation {
        kind,
        name: op.name.clone(),
        root_type: op.selection_set.ty.clone(),
        variables: op.variables.clone(),
        selections,
    })
}

fn strip_root_introspection(sels: &mut Vec<Sel>) {
    sels.retain_mut(|s| match s {
        Sel::Field(f) => !matches!(f.name.as_str(), "__schema" | "__type" | "__typename"),
        Sel::Fragment(fr) => {
            strip_root_introspection(&mut fr.selections);
            !fr.selections.is_empty()
        }
    });
}

fn convert(
    document: &ExecutableDocument,
    set: &executable::SelectionSet,
    budget: &mut Budget,
    depth: usize,
) -> Result<Vec<Sel>, PlanError> {
    if depth > MAX_OPERATION_DEPTH {
        return Err(PlanError::TooDeep {
            max_depth: MAX_OPERATION_DEPTH,
        });
    }
    let mut out = Vec::with_capacity(set.selections.len());
    for s in &set.selections {
        budget.tick()?;
        match s {
            Selection::Field(f) => {
                let Some(mut directives) = conditions(&f.directives) else {
                    continue;
                };
                directives.extend(forwarded(&f.directives, "field")?);
                let mut selections = convert(document, &f.selection_set, budget, depth + 1)?;
                if selections.is_empty() && !f.selection_set.selections.is_empty() {
                    selections = typename_only();
                }
                out.push(Sel::Field(Field {
                    alias: f.alias.clone(),
                    name: f.name.clone(),
                    arguments: f.arguments.clone(),
                    directives,
                    selections,
                }));
            }
            Selection::InlineFragment(i) => {
                let Some(directives) = conditions(&i.directives) else {
                    continue;
                };
                forwarded(&i.directives, "inline fragments")?;
                let selections = convert(document, &i.selection_set, budget, depth + 1)?;
                if selections.is_empty() {
                    continue;
                }
                out.push(Sel::Fragment(Fragment {
                    type_condition: i.type_condition.clone(),
                    directives,
                    selections,
                    defer: defer_of(&i.directives),
                }));
            }
            Selection::FragmentSpread(spread) => {
                let Some(directives) = conditions(&spread.directives) else {
                    continue;
                };
                forwarded(&spread.directives, "fragment spreads")?;
                let def = document
                    .fragments
                    .get(&spread.fragment_name)
                    .ok_or_else(|| {
                        PlanError::UnknownOperation(format!(
                            "unknown fragment {}",
                            spread.fragment_name
                        ))
                    })?;
                let selections = convert(document, &def.selection_set, budget, depth + 1)?;
                if selections.is_empty() {
                    continue;
                }
                out.push(Sel::Fragment(Fragment {
                    type_condition: Some(def.selection_set.ty.clone()),
                    directives,
                    selections,
                    defer: defer_of(&spread.directives),
                }));
            }
        }
    }
    Ok(out)
}

/// Parses a `join__FieldSet` (`"id"`, `"org { id } sku"`, `"comments(first: 3) { id }"`).
pub(crate) fn parse_field_set(source: &str) -> Result<Vec<Sel>, String> {
    let doc = ast::Document::parse(format!("{{ {source} }}"), "fieldset.graphql")
        .map_err(|e| e.errors.to_string())?;
    let Some(ast::Definition::OperationDefinition(op)) = doc.definitions.first() else {
        return Err("not a selection set".into());
    };
    convert_ast(&op.selection_set)
}

fn convert_ast(sels: &[ast::Selection]) -> Result<Vec<Sel>, String> {
    sels.iter()
        .map(|s| match s {
            ast::Selection::Field(f) => Ok(Sel::Field(Field {
                alias: f.alias.clone(),
                name: f.name.clone(),
                arguments: f.arguments.clone(),
                directives: Vec::new(),
                selections: convert_ast(&f.selection_set)?,
            })),
            ast::Selection::InlineFragment(i) => Ok(Sel::Fragment(Fragment {
                type_condition: i.type_condition.clone(),
                directives: Vec::new(),
                selections: convert_ast(&i.selection_set)?,
                defer: None,
            })),
            ast::Selection::FragmentSpread(_) => {
                Err("fragment spreads are not allowed in field sets".into())
            }
        })
        .collect()
}
