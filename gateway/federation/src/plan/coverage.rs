//! Coverage queries: for a schema (a supergraph's API schema), one query per reachable
//! (type, field): the shortest path from the query root, every abstract position
//! narrowed to the object type it goes through, required arguments filled with values
//! of their type. Built breadth-first (no recursion on schema depth). The planner's
//! generative tests plan every one of them on every fixture supergraph, and the
//! gateway's execute them against data-driven subgraphs ("it composes" implies "every
//! query on it plans and runs").

use apollo_compiler::Schema;
use apollo_compiler::ast::Type;
use apollo_compiler::schema::{ExtendedType, InputValueDefinition};
use std::collections::{BTreeSet, VecDeque};

/// A value literal for an input type (bounded depth: a deeper required input object
/// gives `None` and the field is skipped).
fn literal(schema: &Schema, ty: &Type, depth: usize) -> Option<String> {
    if depth > 8 {
        return None;
    }
    if let Type::List(inner) | Type::NonNullList(inner) = ty {
        return Some(format!("[{}]", literal(schema, inner, depth + 1)?));
    }
    let name = ty.inner_named_type();
    Some(match schema.types.get(name)? {
        ExtendedType::Scalar(_) => match name.as_str() {
            "Int" => "1".into(),
            "Float" => "1.5".into(),
            "Boolean" => "true".into(),
            _ => "\"1\"".into(),
        },
        ExtendedType::Enum(e) => e.values.keys().next()?.to_string(),
        ExtendedType::InputObject(io) => {
            let mut fields = Vec::new();
            for (n, f) in &io.fields {
                if f.ty.is_non_null() && f.default_value.is_none() {
                    fields.push(format!("{n}: {}", literal(schema, &f.ty, depth + 1)?));
                }
            }
            format!("{{{}}}", fields.join(", "))
        }
        _ => return None,
    })
}

fn arguments(
    schema: &Schema,
    args: &[apollo_compiler::Node<InputValueDefinition>],
) -> Option<String> {
    let mut out = Vec::new();
    for a in args {
        if a.ty.is_non_null() && a.default_value.is_none() {
            out.push(format!("{}: {}", a.name, literal(schema, &a.ty, 0)?));
        }
    }
    Some(if out.is_empty() {
        String::new()
    } else {
        format!("({})", out.join(", "))
    })
}

/// A step down from a type: a field (with its arguments) or a narrowing fragment.
#[derive(Clone)]
enum Step {
    Field(String),
    Narrow(String),
}

fn render(path: &[Step], leaf: &str) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for step in path {
        match step {
            Step::Field(f) => open.push_str(&format!("{f} {{ ")),
            Step::Narrow(t) => open.push_str(&format!("... on {t} {{ ")),
        }
        close.push_str(" }");
    }
    format!("{{ {open}{leaf}{close} }}")
}

/// Queries reaching every field of every type reachable from `Query`.
pub fn queries(schema: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let Some(root) = schema.schema_definition.query.as_ref() else {
        return out;
    };
    let mut seen: BTreeSet<String> = BTreeSet::from([root.name.to_string()]);
    let mut queue: VecDeque<(String, Vec<Step>)> =
        VecDeque::from([(root.name.to_string(), Vec::new())]);
    while let Some((ty, path)) = queue.pop_front() {
        let fields = match schema.types.get(ty.as_str()) {
            Some(ExtendedType::Object(o)) => &o.fields,
            Some(ExtendedType::Interface(i)) => &i.fields,
            Some(ExtendedType::Union(u)) => {
                for member in &u.members {
                    let mut p = path.clone();
                    p.push(Step::Narrow(member.to_string()));
                    out.push(render(&p, "__typename"));
                    if seen.insert(member.to_string()) {
                        queue.push_back((member.to_string(), p));
                    }
                }
                continue;
            }
            _ => continue,
        };
        for (name, def) in fields {
            if name.starts_with("__") {
                continue;
            }
            let Some(args) = arguments(schema, &def.arguments) else {
                continue;
            };
            let field = format!("{name}{args}");
            let inner = def.ty.inner_named_type().to_string();
            let composite = matches!(
                schema.types.get(inner.as_str()),
                Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_))
            );
            if composite {
                let mut p = path.clone();
                p.push(Step::Field(field.clone()));
                out.push(render(&p, "__typename"));
                if seen.insert(inner.clone()) {
                    queue.push_back((inner.clone(), p.clone()));
                }
                // Abstract: also go through each possible object type.
                if let Some(ExtendedType::Interface(_)) = schema.types.get(inner.as_str()) {
                    for (tn, t) in &schema.types {
                        if let ExtendedType::Object(o) = t
                            && o.implements_interfaces.contains(inner.as_str())
                        {
                            let mut q = p.clone();
                            q.push(Step::Narrow(tn.to_string()));
                            out.push(render(&q, "__typename"));
                            if seen.insert(tn.to_string()) {
                                queue.push_back((tn.to_string(), q));
                            }
                        }
                    }
                }
            } else {
                out.push(render(&path, &field));
            }
        }
    }
    out
}
