//! Stage 3b, rules on the merged supergraph (Apollo's post-merge validations), run on
//! the printed supergraph before it is loaded:
//! - `INTERFACE_FIELD_NO_IMPLEM`: a type implementing an interface has every field of the
//!   merged interface (a field the interface gets from another subgraph must be defined
//!   on each implementation too).
//! - `MISSING_TRANSITIVE_AUTH_REQUIREMENTS`: a field with `@requires` (or an argument
//!   with `@fromContext`) carries, with its parent type, at least the `@authenticated`,
//!   `@requiresScopes` and `@policy` requirements of the data it selects: selected
//!   fields, their output types, type conditions and context types (as merged). The
//!   requirements are DNFs; those of the field must imply those of the data, as Apollo
//!   checks.

use super::subgraph::Subgraph;
use super::{Diagnostic, Diagnostics};
use apollo_compiler::ast::Directive;
use apollo_compiler::executable::{FieldSet, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Schema};
use std::collections::{BTreeSet, HashMap};

pub(crate) fn check(schema: &Schema, loaded: &[Subgraph], diags: &mut Diagnostics) {
    interface_fields(schema, loaded, diags);
    transitive_auth(schema, diags);
}

fn interface_fields(schema: &Schema, loaded: &[Subgraph], diags: &mut Diagnostics) {
    for (name, ty) in &schema.types {
        let (interfaces, fields) = match ty {
            ExtendedType::Object(o) => (&o.implements_interfaces, &o.fields),
            ExtendedType::Interface(i) => (&i.implements_interfaces, &i.fields),
            _ => continue,
        };
        for itf in interfaces {
            let Some(ExtendedType::Interface(idef)) = schema.types.get(&itf.name) else {
                continue;
            };
            for field in idef.fields.keys() {
                if fields.contains_key(field) {
                    continue;
                }
                let with_field: Vec<String> = loaded
                    .iter()
                    .filter(|s| {
                        matches!(s.schema.types.get(&itf.name),
                            Some(ExtendedType::Interface(i)) if i.fields.contains_key(field))
                    })
                    .map(|s| s.name.clone())
                    .collect();
                let implementing: Vec<String> = loaded
                    .iter()
                    .filter(|s| {
                        s.schema.types.iter().any(|(n, t)| {
                            s.merged_name(n) == *name
                                && match t {
                                    ExtendedType::Object(o) => {
                                        o.implements_interfaces.contains(&itf.name)
                                    }
                                    ExtendedType::Interface(i) => {
                                        i.implements_interfaces.contains(&itf.name)
                                    }
                                    _ => false,
                                }
                        })
                    })
                    .map(|s| s.name.clone())
                    .collect();
                let mut involved = with_field.clone();
                involved.extend(
                    implementing
                        .iter()
                        .filter(|s| !with_field.contains(s))
                        .cloned(),
                );
                diags.push(
                    Diagnostic::error(
                        "INTERFACE_FIELD_NO_IMPLEM",
                        format!(
                            "Interface field \"{}.{field}\" is declared in {} but type \"{name}\", which implements \"{}\" only in {} does not have field \"{field}\".",
                            itf.name,
                            super::across::subgraph_names(&with_field),
                            itf.name,
                            super::across::subgraph_names(&implementing),
                        ),
                    )
                    .subgraphs(involved)
                    .at(name.to_string()),
                );
            }
        }
    }
}

/// A disjunction of conjunctions; `[]` (and a missing directive) mean "always true".
type Dnf = BTreeSet<BTreeSet<String>>;

#[derive(Clone, Default)]
struct Reqs {
    authenticated: bool,
    scopes: Option<Dnf>,
    policies: Option<Dnf>,
}

fn always() -> Dnf {
    BTreeSet::from([BTreeSet::new()])
}

fn dnf(d: &Directive, arg: &str) -> Dnf {
    let out: Dnf = d
        .specified_argument_by_name(arg)
        .and_then(|v| v.as_list())
        .map(|groups| {
            groups
                .iter()
                .map(|g| {
                    g.as_list()
                        .map(|c| {
                            c.iter()
                                .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    if out.is_empty() { always() } else { out }
}

/// Requirements of an element, `None` when it has none.
fn reqs<'a>(dirs: impl IntoIterator<Item = &'a Directive>) -> Option<Reqs> {
    let mut r = Reqs::default();
    let mut any = false;
    for d in dirs {
        match d.name.as_str() {
            "authenticated" => r.authenticated = true,
            "requiresScopes" if r.scopes.is_none() => r.scopes = Some(dnf(d, "scopes")),
            "policy" if r.policies.is_none() => r.policies = Some(dnf(d, "policies")),
            _ => continue,
        }
        any = true;
    }
    any.then_some(r)
}

fn type_reqs(schema: &Schema, name: &str) -> Option<Reqs> {
    schema
        .types
        .get(name)
        .and_then(|t| reqs(t.directives().iter().map(|d| &***d)))
}

fn and(a: Option<Dnf>, b: Option<Dnf>) -> Option<Dnf> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(
            a.iter()
                .flat_map(|x| b.iter().map(move |y| x.union(y).cloned().collect()))
                .collect(),
        ),
    }
}

/// Whether `provided` implies `required` (every provided alternative contains some
/// required alternative).
fn implies(provided: &Option<Dnf>, required: &Option<Dnf>) -> bool {
    let t = always();
    let p = provided.as_ref().unwrap_or(&t);
    let r = required.as_ref().unwrap_or(&t);
    p.iter().all(|pi| r.iter().any(|ri| pi.is_superset(ri)))
}

fn satisfies(provided: &Reqs, required: &Option<Reqs>) -> bool {
    required.as_ref().is_none_or(|r| {
        (provided.authenticated || !r.authenticated)
            && implies(&provided.scopes, &r.scopes)
            && implies(&provided.policies, &r.policies)
    })
}

/// The first selected field (or type condition) whose requirements `provided` lacks.
fn lacking(schema: &Schema, set: &SelectionSet, provided: &Reqs) -> Option<String> {
    for sel in &set.selections {
        match sel {
            Selection::Field(f) => {
                if f.name == "__typename" {
                    continue;
                }
                let own = reqs(f.definition.directives.iter().map(|d| &**d));
                let output = type_reqs(schema, f.definition.ty.inner_named_type());
                if !satisfies(provided, &own) || !satisfies(provided, &output) {
                    return Some(format!("{}.{}", set.ty, f.name));
                }
                if let Some(c) = lacking(schema, &f.selection_set, provided) {
                    return Some(c);
                }
            }
            Selection::InlineFragment(i) => {
                if let Some(tc) = &i.type_condition
                    && !satisfies(provided, &type_reqs(schema, tc))
                {
                    return Some(tc.to_string());
                }
                if let Some(c) = lacking(schema, &i.selection_set, provided) {
                    return Some(c);
                }
            }
            Selection::FragmentSpread(_) => {}
        }
    }
    None
}

fn transitive_auth(schema: &Schema, diags: &mut Diagnostics) {
    let valid = Valid::assume_valid_ref(schema);
    // join__Graph value → subgraph name.
    let mut graphs: HashMap<String, String> = HashMap::new();
    if let Some(ExtendedType::Enum(e)) = schema.types.get("join__Graph") {
        for (value, def) in &e.values {
            if let Some(n) = def
                .directives
                .get("join__graph")
                .and_then(|d| d.specified_argument_by_name("name"))
                .and_then(|v| v.as_str())
            {
                graphs.insert(value.to_string(), n.to_string());
            }
        }
    }
    // Context name → types that set it.
    let mut contexts: HashMap<String, Vec<Name>> = HashMap::new();
    for (name, ty) in &schema.types {
        for d in ty.directives().get_all("context") {
            if let Some(c) = d
                .specified_argument_by_name("name")
                .and_then(|v| v.as_str())
            {
                contexts
                    .entry(c.to_string())
                    .or_default()
                    .push(name.clone());
            }
        }
    }
    for (type_name, ty) in &schema.types {
        let fields = match ty {
            ExtendedType::Object(o) => &o.fields,
            ExtendedType::Interface(i) => &i.fields,
            _ => continue,
        };
        let parent = type_reqs(schema, type_name).unwrap_or_default();
        for (field_name, def) in fields {
            let own = reqs(def.directives.iter().map(|d| &**d)).unwrap_or_default();
            let provided = Reqs {
                authenticated: parent.authenticated || own.authenticated,
                scopes: and(parent.scopes.clone(), own.scopes.clone()),
                policies: and(parent.policies.clone(), own.policies.clone()),
            };
            let coord = format!("{type_name}.{field_name}");
            for join in def.directives.get_all("join__field") {
                let graph = join
                    .specified_argument_by_name("graph")
                    .and_then(|v| v.as_enum())
                    .and_then(|g| graphs.get(g.as_str()))
                    .cloned()
                    .unwrap_or_default();
                let mut push = |message: String| {
                    diags.push(
                        Diagnostic::error(
                            "MISSING_TRANSITIVE_AUTH_REQUIREMENTS",
                            format!("[{graph}] Field \"{coord}\" does not specify necessary @authenticated, @requiresScopes and/or @policy auth requirements to access the transitive {message}"),
                        )
                        .subgraph(graph.clone())
                        .at(coord.clone()),
                    );
                };
                if let Some(src) = join
                    .specified_argument_by_name("requires")
                    .and_then(|v| v.as_str())
                    && let Ok(fs) =
                        FieldSet::parse_and_validate(valid, type_name.clone(), src, "requires")
                    && let Some(c) = lacking(schema, &fs.selection_set, &provided)
                {
                    push(format!("field \"{c}\" data from @requires selection set."));
                }
                let args = join
                    .specified_argument_by_name("contextArguments")
                    .and_then(|v| v.as_list())
                    .unwrap_or_default();
                for arg in args {
                    let Some(obj) = arg.as_object() else { continue };
                    let get = |k: &str| {
                        obj.iter()
                            .find(|(n, _)| n == k)
                            .and_then(|(_, v)| v.as_str())
                    };
                    let (Some(context), Some(selection)) = (get("context"), get("selection"))
                    else {
                        continue;
                    };
                    let selection = selection.trim();
                    let selection = selection
                        .strip_prefix('{')
                        .and_then(|s| s.strip_suffix('}'))
                        .unwrap_or(selection);
                    for target in contexts.get(context).into_iter().flatten() {
                        if !satisfies(&provided, &type_reqs(schema, target)) {
                            push(format!(
                                "data in context {context} from @fromContext selection set."
                            ));
                        } else if let Ok(fs) = FieldSet::parse_and_validate(
                            valid,
                            target.clone(),
                            selection,
                            "context",
                        ) && let Some(c) = lacking(schema, &fs.selection_set, &provided)
                        {
                            push(format!(
                                "field \"{c}\" data from @fromContext selection set."
                            ));
                        }
                    }
                }
            }
        }
    }
}
