//! Schema from an introspection result, so `portico check` can compare against a running
//! gateway (`--old-url`/`--new-url`): the standard introspection query's JSON is printed
//! back as SDL (types, fields, arguments with defaults, input fields, enum values,
//! interfaces, union members, descriptions, deprecations, custom directive definitions,
//! `@specifiedBy`, and `@oneOf` when the server answers `isOneOf`). Built-in scalars,
//! introspection types and built-in directives (`@oneOf` included) are left out.

use std::fmt::Write as _;

use serde_json::Value;

/// The standard introspection query (with descriptions, deprecations, defaults), asking
/// each type for `isOneOf` (GraphQL spec 2025, graphql-js 16.9+). Servers that predate it
/// refuse the whole query as invalid (Portico's own gateway among them, through
/// apollo-compiler 1.33): ask those [`INTROSPECTION_QUERY_WITHOUT_ONE_OF`] instead and
/// know that `@oneOf` could not be compared ([`mentions_is_one_of`]).
pub const INTROSPECTION_QUERY: &str = r#"query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL isOneOf
  fields(includeDeprecated: true) { name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue isDeprecated deprecationReason }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }"#;

/// [`INTROSPECTION_QUERY`] without `isOneOf`, for servers that do not know it.
pub const INTROSPECTION_QUERY_WITHOUT_ONE_OF: &str = r#"query IntrospectionQuery {
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
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }"#;

/// `true` when a GraphQL response refused [`INTROSPECTION_QUERY`] because of `isOneOf`:
/// it has errors, no `__schema`, and an error message names `isOneOf` (graphql-js:
/// `Cannot query field "isOneOf" on type "__Type".`, apollo-compiler: ``type `__Type`
/// does not have a field `isOneOf` ``).
pub fn mentions_is_one_of(response: &Value) -> bool {
    response
        .pointer("/data/__schema")
        .is_none_or(Value::is_null)
        && response
            .get("errors")
            .and_then(Value::as_array)
            .is_some_and(|errors| {
                errors.iter().any(|e| {
                    e.get("message")
                        .and_then(Value::as_str)
                        .is_some_and(|m| m.contains("isOneOf"))
                })
            })
}

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

/// List and non-null wrappers a type reference may have: the query asks for 7 levels of
/// `ofType` (`[[[String!]!]!]!` needs them all); a result nesting deeper is refused.
const MAX_TYPE_WRAPPERS: usize = 7;

/// `[String!]!` from `{kind: NON_NULL, ofType: {kind: LIST, ofType: …}}`, walked in a
/// loop (the nesting comes from the server).
fn type_ref(v: &Value) -> Result<String, IntrospectionError> {
    let mut wrappers = Vec::new();
    let mut current = v;
    let name = loop {
        if wrappers.len() > MAX_TYPE_WRAPPERS {
            return Err(err("type reference nested too deep"));
        }
        match str_of(current, "kind") {
            Some(kind @ ("NON_NULL" | "LIST")) => {
                wrappers.push(kind);
                current = current
                    .get("ofType")
                    .filter(|t| !t.is_null())
                    .ok_or_else(|| err(format!("{kind} without ofType")))?;
            }
            Some(_) => {
                break str_of(current, "name").ok_or_else(|| err("named type without a name"))?;
            }
            None => return Err(err("type reference without a kind")),
        }
    };
    let mut out = name.to_string();
    for kind in wrappers.iter().rev() {
        out = if *kind == "LIST" {
            format!("[{out}]")
        } else {
            format!("{out}!")
        };
    }
    Ok(out)
}

/// A description as a GraphQL string literal. JSON string escapes are GraphQL string
/// escapes; a block string would change the value (block strings drop common
/// indentation and blank first/last lines) and could not end with `"`.
fn string_literal(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

fn description(out: &mut String, v: &Value, indent: &str) {
    if let Some(d) = str_of(v, "description").filter(|d| !d.is_empty()) {
        let _ = writeln!(out, "{indent}{}", string_literal(d));
    }
}

fn deprecation(v: &Value) -> String {
    if v.get("isDeprecated").and_then(Value::as_bool) != Some(true) {
        return String::new();
    }
    match str_of(v, "deprecationReason") {
        Some(r) => format!(" @deprecated(reason: {})", string_literal(r)),
        None => " @deprecated".to_string(),
    }
}

/// `name: Type = default @deprecated(…)`, without the description.
fn input_value(a: &Value) -> Result<String, IntrospectionError> {
    let name = str_of(a, "name").ok_or_else(|| err("input value without a name"))?;
    let ty = type_ref(
        a.get("type")
            .ok_or_else(|| err(format!("input value {name} without a type")))?,
    )?;
    let default = str_of(a, "defaultValue")
        .map(|d| format!(" = {d}"))
        .unwrap_or_default();
    Ok(format!("{name}: {ty}{default}{}", deprecation(a)))
}

/// Arguments on one line, each preceded by its description as a string literal.
fn arguments(args: &[Value]) -> Result<String, IntrospectionError> {
    let mut parts = Vec::new();
    for a in args {
        let desc = str_of(a, "description")
            .filter(|d| !d.is_empty())
            .map(|d| format!("{} ", string_literal(d)))
            .unwrap_or_default();
        parts.push(format!("{desc}{}", input_value(a)?));
    }
    Ok(if parts.is_empty() {
        String::new()
    } else {
        format!("({})", parts.join(", "))
    })
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
        let args = arguments(list(d, "args"))?;
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
                    .map(|u| format!(" @specifiedBy(url: {})", string_literal(u)))
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
                    let args = arguments(list(f, "args"))?;
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
                // `@oneOf` is built in: printed without a definition, which the diff
                // accepts (`super::one_of_definition`).
                let one_of = if t.get("isOneOf").and_then(Value::as_bool) == Some(true) {
                    " @oneOf"
                } else {
                    ""
                };
                let _ = writeln!(out, "input {name}{one_of} {{");
                for f in list(t, "inputFields") {
                    description(&mut out, f, "  ");
                    let _ = writeln!(out, "  {}", input_value(f)?);
                }
                out.push_str("}\n\n");
            }
            other => return Err(err(format!("{name} has unknown kind {other}"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn named(kind: &str, name: &str) -> Value {
        json!({"kind": kind, "name": name, "ofType": null})
    }

    fn non_null(of: Value) -> Value {
        json!({"kind": "NON_NULL", "name": null, "ofType": of})
    }

    fn list_of(of: Value) -> Value {
        json!({"kind": "LIST", "name": null, "ofType": of})
    }

    fn input_field(name: &str, description: Option<&str>, ty: Value) -> Value {
        json!({"name": name, "description": description, "type": ty, "defaultValue": null,
               "isDeprecated": false, "deprecationReason": null})
    }

    /// `{ __schema }` with `Query { find(by: Lookup): Int }` and the input `Lookup`
    /// (`isOneOf` as given: `None` leaves the key out, as the query without it does).
    fn schema_with_lookup(is_one_of: Option<bool>, field_description: &str) -> Value {
        let mut lookup = json!({
            "kind": "INPUT_OBJECT", "name": "Lookup", "description": "How to find one",
            "inputFields": [
                input_field("id", Some(field_description), named("SCALAR", "ID")),
                input_field("email", None, named("SCALAR", "String")),
            ],
        });
        if let Some(b) = is_one_of {
            lookup["isOneOf"] = json!(b);
        }
        json!({"data": {"__schema": {
            "queryType": {"name": "Query"}, "mutationType": null, "subscriptionType": null,
            "directives": [],
            "types": [
                {"kind": "OBJECT", "name": "Query", "description": null, "interfaces": [],
                 "fields": [{"name": "find", "description": null, "isDeprecated": false,
                             "deprecationReason": null, "type": named("SCALAR", "Int"),
                             "args": [input_field("by", Some("the \"key\""), named("INPUT_OBJECT", "Lookup"))]}]},
                lookup,
                named("SCALAR", "ID"), named("SCALAR", "Int"), named("SCALAR", "String"),
            ],
        }}})
    }

    #[test]
    fn an_input_field_with_a_description_is_printed_once_and_parses() {
        let sdl = sdl_from_introspection(&schema_with_lookup(None, "The id")).expect("sdl");
        assert_eq!(
            sdl,
            "type Query {\n  find(\"the \\\"key\\\"\" by: Lookup): Int\n}\n\n\
             \"How to find one\"\ninput Lookup {\n  \"The id\"\n  id: ID\n  email: String\n}\n\n"
        );
        let original = "type Query { find(\"the \\\"key\\\"\" by: Lookup): Int }\n\
                        \"How to find one\" input Lookup { \"The id\" id: ID email: String }";
        assert_eq!(crate::diff::diff(original, &sdl), Ok(Vec::new()));
    }

    /// Block strings would strip the indentation and could not end with `"`.
    #[test]
    fn descriptions_keep_their_exact_text() {
        let text = "  indented\n\"quoted\" and \"\"\" ending with a quote\"";
        let sdl = sdl_from_introspection(&schema_with_lookup(None, text)).expect("sdl");
        let schema = apollo_compiler::Schema::parse_and_validate(&sdl, "s.graphql").expect("valid");
        let Some(apollo_compiler::schema::ExtendedType::InputObject(lookup)) =
            schema.types.get("Lookup")
        else {
            panic!("Lookup: {sdl}");
        };
        assert_eq!(
            lookup.fields["id"].description.as_deref(),
            Some(text),
            "{sdl}"
        );
    }

    #[test]
    fn is_one_of_prints_at_one_of_and_the_diff_sees_it() {
        let one_of = sdl_from_introspection(&schema_with_lookup(Some(true), "d")).expect("sdl");
        assert!(one_of.contains("input Lookup @oneOf {\n"), "{one_of}");
        let plain = sdl_from_introspection(&schema_with_lookup(Some(false), "d")).expect("sdl");
        assert!(plain.contains("input Lookup {\n"), "{plain}");
        let changes = crate::diff::diff(&plain, &one_of).expect("both parse");
        let codes: Vec<_> = changes
            .iter()
            .map(|c| (c.code, c.coordinate.as_str()))
            .collect();
        assert_eq!(codes, [("INPUT_ONE_OF_ADDED", "Lookup")]);
    }

    #[test]
    fn type_references_unwrap_in_a_loop_with_a_bound() {
        let string = named("SCALAR", "String");
        let deep = non_null(list_of(non_null(list_of(non_null(list_of(non_null(
            string.clone(),
        )))))));
        assert_eq!(type_ref(&deep), Ok("[[[String!]!]!]!".to_string()));
        let mut too_deep = string;
        for _ in 0..=MAX_TYPE_WRAPPERS {
            too_deep = list_of(too_deep);
        }
        assert!(type_ref(&too_deep).is_err());
        assert!(type_ref(&json!({"kind": "LIST", "ofType": null})).is_err());
        assert!(type_ref(&json!({"name": "String"})).is_err());
    }

    #[test]
    fn a_refusal_naming_is_one_of_is_recognised() {
        let graphql_js =
            json!({"errors": [{"message": "Cannot query field \"isOneOf\" on type \"__Type\"."}]});
        assert!(mentions_is_one_of(&graphql_js));
        let apollo = json!({"data": null, "errors": [{"message": "type `__Type` does not have a field `isOneOf`"}]});
        assert!(mentions_is_one_of(&apollo));
        let disabled = json!({"errors": [{"message": "introspection is disabled"}]});
        assert!(!mentions_is_one_of(&disabled));
        assert!(!mentions_is_one_of(&schema_with_lookup(Some(true), "d")));
        assert!(!INTROSPECTION_QUERY_WITHOUT_ONE_OF.contains("isOneOf"));
        assert!(INTROSPECTION_QUERY.contains("isOneOf"));
    }
}
