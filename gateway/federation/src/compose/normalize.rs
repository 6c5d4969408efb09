//! A canonical text form of a supergraph for comparing compositions: the API schema and
//! the join metadata, sorted, with default arguments dropped and field sets
//! whitespace-normalised. Two supergraphs with the same form route the same way, whatever
//! tool composed them and whatever order it printed things in.

use crate::supergraph::{Supergraph, SupergraphError};
use apollo_compiler::ast::Value;
use apollo_compiler::schema::{Directive, ExtendedType};
use std::fmt::Write;

/// The normalised form of a supergraph SDL (API schema first, then join metadata).
pub fn normalize_supergraph(sdl: &str) -> Result<String, SupergraphError> {
    let supergraph = Supergraph::parse(sdl)?;
    let mut out = String::from("# API schema\n");
    out.push_str(&normalize_api(supergraph.api_schema()));
    out.push_str("\n# join metadata\n");
    for s in supergraph.subgraphs() {
        let _ = writeln!(out, "graph {} {}", s.name, s.url);
    }
    let schema = supergraph.supergraph_schema();
    // Graph enum value → subgraph name, so enum spellings do not matter.
    let graphs: std::collections::HashMap<String, String> = schema
        .get_enum("join__Graph")
        .map(|e| {
            e.values
                .iter()
                .filter_map(|(v, def)| {
                    def.directives
                        .get("join__graph")
                        .and_then(|d| d.specified_argument_by_name("name"))
                        .and_then(|n| n.as_str())
                        .map(|n| (v.to_string(), n.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let print = |d: &Directive| -> Option<String> {
        if !d.name.starts_with("join__") || d.name == "join__graph" {
            return None;
        }
        let mut args: Vec<String> = d
            .arguments
            .iter()
            .filter_map(|a| {
                let v = match (a.name.as_str(), a.value.as_ref()) {
                    // Whether a subgraph wrote `extend type` has no routing meaning, and
                    // compositions disagree on when to record it.
                    ("extension", _) => return None,
                    ("resolvable" | "isInterfaceObject", v) => {
                        let default = a.name != "resolvable";
                        if v.to_bool() == Some(!default) {
                            return None;
                        }
                        v.to_string()
                    }
                    ("graph", Value::Enum(g)) => graphs
                        .get(g.as_str())
                        .cloned()
                        .unwrap_or_else(|| g.to_string()),
                    ("key" | "requires" | "provides", Value::String(s)) => field_set(s),
                    (_, Value::Null) => return None,
                    (_, v) => v.to_string(),
                };
                Some(format!("{}: {v}", a.name))
            })
            .collect();
        args.sort();
        Some(format!("@{}({})", d.name, args.join(", ")))
    };
    let mut names: Vec<_> = schema
        .types
        .iter()
        .filter(|(n, t)| !t.is_built_in() && !n.contains("__"))
        .collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (name, ty) in names {
        let mut joins: Vec<String> = ty.directives().iter().filter_map(|d| print(d)).collect();
        joins.sort();
        let _ = writeln!(out, "{name} {}", joins.join(" "));
        let mut lines = Vec::new();
        match ty {
            ExtendedType::Object(o) => {
                for (f, def) in &o.fields {
                    let mut j: Vec<String> =
                        def.directives.iter().filter_map(|d| print(d)).collect();
                    j.sort();
                    lines.push(format!("  {f}: {} {}", def.ty, j.join(" ")));
                }
            }
            ExtendedType::Interface(i) => {
                for (f, def) in &i.fields {
                    let mut j: Vec<String> =
                        def.directives.iter().filter_map(|d| print(d)).collect();
                    j.sort();
                    lines.push(format!("  {f}: {} {}", def.ty, j.join(" ")));
                }
            }
            ExtendedType::Enum(e) => {
                for (v, def) in &e.values {
                    let mut j: Vec<String> =
                        def.directives.iter().filter_map(|d| print(d)).collect();
                    j.sort();
                    lines.push(format!("  {v} {}", j.join(" ")));
                }
            }
            ExtendedType::InputObject(io) => {
                for (f, def) in &io.fields {
                    let mut j: Vec<String> =
                        def.directives.iter().filter_map(|d| print(d)).collect();
                    j.sort();
                    lines.push(format!("  {f}: {} {}", def.ty, j.join(" ")));
                }
            }
            _ => {}
        }
        lines.sort();
        for l in lines {
            out.push_str(l.trim_end());
            out.push('\n');
        }
    }
    Ok(out)
}

/// A schema printed with types and fields sorted by name.
pub fn normalize_api(schema: &apollo_compiler::Schema) -> String {
    let mut schema = schema.clone();
    schema.types.sort_keys();
    for ty in schema.types.values_mut() {
        match ty {
            ExtendedType::Object(o) => o.make_mut().fields.sort_keys(),
            ExtendedType::Interface(i) => i.make_mut().fields.sort_keys(),
            ExtendedType::InputObject(i) => i.make_mut().fields.sort_keys(),
            ExtendedType::Enum(e) => e.make_mut().values.sort_keys(),
            _ => {}
        }
    }
    // Built-in directives may or may not be spelled out; they mean the same.
    schema.directive_definitions.retain(|name, _| {
        !matches!(
            name.as_str(),
            "skip" | "include" | "deprecated" | "specifiedBy" | "oneOf" | "defer" | "stream"
        )
    });
    schema.directive_definitions.sort_keys();
    schema.to_string()
}

/// Field set text with insignificant whitespace removed.
fn field_set(s: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut pending_space = false;
    for c in s.chars() {
        if in_string {
            out.push(c);
            if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c.is_whitespace() || c == ',' {
            pending_space = true;
            continue;
        }
        if pending_space
            && !out.is_empty()
            && !"{}():".contains(c)
            && !out.ends_with(['{', '}', '(', ':'])
            && !out.ends_with("...")
        {
            out.push(' ');
        }
        pending_space = false;
        if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    format!("{out:?}")
}
