//! Schema from an introspection result, so `portico check` can compare against a running
//! gateway (`--old-url`/`--new-url`): the standard introspection query's JSON is printed
//! back as SDL (types, fields, arguments with defaults, input fields, enum values,
//! interfaces, union members, descriptions, deprecations, custom directive definitions).
//! Built-in scalars, introspection types and built-in directives are left out.

use std::fmt::Write as _;

use serde_json::Value;

/// The standard introspection query (with descriptions, deprecations, defaults).
pub const INTROSPECTION_QUERY: &str = r#"query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) { name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue isDeprecated deprecationReason }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }"#;

/// Why an introspection result could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid introspection result: {0}")]
pub struct IntrospectionError(pub String);

const BUILTIN_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];
const BUILTIN_DIRECTIVES: [&str; 6] = [
    "skip",
    "include",
    "deprecated",
    "specifiedBy",
    "oneOf",
    "defer",
];

fn err(msg: impl Into<String>) -> IntrospectionError {
    IntrospectionError(msg.into())
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn type_ref(v: &Value) -> Result<String, IntrospectionError> {
    match str_of(v, "kind") {
        Some("NON_NULL") => Ok(format!(
            "{}!",
            type_ref(
                v.get("ofType")
                    .ok_or_else(|| err("NON_NULL without ofType"))?
            )?
        )),
        Some("LIST") => Ok(format!(
            "[{}]",
            type_ref(v.get("ofType").ok_or_else(|| err("LIST without ofType"))?)?
        )),
        Some(_) => str_of(v, "name")
            .map(str::to_string)
            .ok_or_else(|| err("named type without a name")),
        None => Err(err("type reference without a kind")),
    }
}

fn description(out: &mut String, v: &Value, indent: &str) {
    if let Some(d) = str_of(v, "description").filter(|d| !d.is_empty()) {
        let escaped = d.replace("\"\"\"", "\\\"\"\"");
        let _ = writeln!(out, "{indent}\"\"\"{escaped}\"\"\"");
    }
}

fn deprecation(v: &Value) -> String {
    if v.get("isDeprecated").and_then(Value::as_bool) != Some(true) {
        return String::new();
    }
    match str_of(v, "deprecationReason") {
        Some(r) => format!(
            " @deprecated(reason: {})",
            serde_json::to_string(r).unwrap_or_default()
        ),
        None => " @deprecated".to_string(),
    }
}

fn input_values(args: &[Value]) -> Result<String, IntrospectionError> {
    let mut parts = Vec::new();
    for a in args {
        let name = str_of(a, "name").ok_or_else(|| err("argument without a name"))?;
        let ty = type_ref(
            a.get("type")
                .ok_or_else(|| err("argument without a type"))?,
        )?;
        let default = str_of(a, "defaultValue")
            .map(|d| format!(" = {d}"))
            .unwrap_or_default();
        let mut desc = String::new();
        if let Some(d) = str_of(a, "description").filter(|d| !d.is_empty()) {
            desc = format!("{} ", serde_json::to_string(d).unwrap_or_default());
        }
        parts.push(format!("{desc}{name}: {ty}{default}{}", deprecation(a)));
    }
    Ok(parts.join(", "))
}

/// Print the schema described by an introspection result (`{ "__schema": … }`, or a whole
/// response `{ "data": { "__schema": … } }`) as SDL.
pub fn sdl_from_introspection(result: &Value) -> Result<String, IntrospectionError> {
    let schema = result
        .pointer("/data/__schema")
        .or_else(|| result.get("__schema"))
        .ok_or_else(|| err("no __schema"))?;
    let mut out = String::new();
    let root = |key: &str| schema.get(key).and_then(|t| str_of(t, "name"));
    let (q, m, s) = (
        root("queryType"),
        root("mutationType"),
        root("subscriptionType"),
    );
    if q.is_some_and(|n| n != "Query")
        || m.is_some_and(|n| n != "Mutation")
        || s.is_some_and(|n| n != "Subscription")
    {
        out.push_str("schema {\n");
        for (op, name) in [("query", q), ("mutation", m), ("subscription", s)] {
            if let Some(n) = name {
                let _ = writeln!(out, "  {op}: {n}");
            }
        }
        out.push_str("}\n\n");
    }
    for d in list(schema, "directives") {
        let name = str_of(d, "name").ok_or_else(|| err("directive without a name"))?;
        if BUILTIN_DIRECTIVES.contains(&name) {
            continue;
        }
        description(&mut out, d, "");
        let args = input_values(list(d, "args"))?;
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({args})")
        };
        let repeatable = if d.get("isRepeatable").and_then(Value::as_bool) == Some(true) {
            " repeatable"
        } else {
            ""
        };
        let locations: Vec<&str> = list(d, "locations")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            out,
            "directive @{name}{args}{repeatable} on {}\n",
            locations.join(" | ")
        );
    }
    for t in list(schema, "types") {
        let name = str_of(t, "name").ok_or_else(|| err("type without a name"))?;
        if name.starts_with("__") || BUILTIN_SCALARS.contains(&name) {
            continue;
        }
        description(&mut out, t, "");
        let kind = str_of(t, "kind").ok_or_else(|| err(format!("{name} has no kind")))?;
        let interfaces = || -> Result<String, IntrospectionError> {
            let names = list(t, "interfaces")
                .iter()
                .map(type_ref)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if names.is_empty() {
                String::new()
            } else {
                format!(" implements {}", names.join(" & "))
            })
        };
        match kind {
            "SCALAR" => {
                let by = str_of(t, "specifiedByURL")
                    .map(|u| {
                        format!(
                            " @specifiedBy(url: {})",
                            serde_json::to_string(u).unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                let _ = writeln!(out, "scalar {name}{by}\n");
            }
            "OBJECT" | "INTERFACE" => {
                let keyword = if kind == "OBJECT" {
                    "type"
                } else {
                    "interface"
                };
                let _ = writeln!(out, "{keyword} {name}{} {{", interfaces()?);
                for f in list(t, "fields") {
                    description(&mut out, f, "  ");
                    let fname = str_of(f, "name").ok_or_else(|| err("field without a name"))?;
                    let args = input_values(list(f, "args"))?;
                    let args = if args.is_empty() {
                        String::new()
                    } else {
                        format!("({args})")
                    };
                    let ty = type_ref(f.get("type").ok_or_else(|| err("field without type"))?)?;
                    let _ = writeln!(out, "  {fname}{args}: {ty}{}", deprecation(f));
                }
                out.push_str("}\n\n");
            }
            "UNION" => {
                let members = list(t, "possibleTypes")
                    .iter()
                    .map(type_ref)
                    .collect::<Result<Vec<_>, _>>()?;
                let _ = writeln!(out, "union {name} = {}\n", members.join(" | "));
            }
            "ENUM" => {
                let _ = writeln!(out, "enum {name} {{");
                for v in list(t, "enumValues") {
                    description(&mut out, v, "  ");
                    let vname = str_of(v, "name").ok_or_else(|| err("enum value without name"))?;
                    let _ = writeln!(out, "  {vname}{}", deprecation(v));
                }
                out.push_str("}\n\n");
            }
            "INPUT_OBJECT" => {
                let _ = writeln!(out, "input {name} {{");
                for f in list(t, "inputFields") {
                    description(&mut out, f, "  ");
                    let _ = writeln!(out, "  {}", input_values(std::slice::from_ref(f))?);
                }
                out.push_str("}\n\n");
            }
            other => return Err(err(format!("{name} has unknown kind {other}"))),
        }
    }
    Ok(out)
}
