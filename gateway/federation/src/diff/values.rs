//! Semantic comparison of default values: two literals are the same default when they
//! coerce to the same input value for their type, not when they print the same.
//!
//! Canonical form (a string, only ever compared): list items in order, input object
//! fields sorted by name with omitted fields that have a default filled in, a single
//! value given for a list type wrapped in a list (input coercion), `Int` and `Float`
//! numbers as `f64` (`1`, `1.0` and `1e0` are the same `Float`), an `Int` given for an
//! `ID` as its string. Custom scalars compare structurally (object fields unordered,
//! numbers by their text).

use apollo_compiler::Schema;
use apollo_compiler::ast::{Type, Value};
use apollo_compiler::schema::ExtendedType;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Input object defaults may refer to other input objects with defaults; invalid
/// schemas could even cycle. Deeper than this, values compare structurally.
const MAX_DEPTH: usize = 32;

/// `true` when `a` (a default in `old`, of type `a_ty`) and `b` (in `new`, of type
/// `b_ty`) are the same value after input coercion.
pub(crate) fn same_default(
    old: &Schema,
    a_ty: &Type,
    a: &Value,
    new: &Schema,
    b_ty: &Type,
    b: &Value,
) -> bool {
    canonical(old, a_ty, a, 0) == canonical(new, b_ty, b, 0)
}

fn canonical(schema: &Schema, ty: &Type, value: &Value, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return structural(value);
    }
    if matches!(value, Value::Null) {
        return "null".into();
    }
    match ty {
        Type::List(item) | Type::NonNullList(item) => match value {
            Value::List(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|v| canonical(schema, item, v, depth + 1))
                    .collect();
                format!("[{}]", items.join(","))
            }
            // Input coercion: a single value for a list type is a list of one.
            single => format!("[{}]", canonical(schema, item, single, depth + 1)),
        },
        // Built-in scalars are only in `schema.types` when the schema uses them.
        Type::Named(name) | Type::NonNullNamed(name) => match (name.as_str(), value) {
            ("Int" | "Float", Value::Int(_) | Value::Float(_)) => match value.to_f64() {
                Some(f) => format!("n:{f:?}"),
                None => structural(value),
            },
            ("ID", Value::Int(i)) => format!("{:?}", i.as_str()),
            _ => match schema.types.get(name) {
                Some(ExtendedType::InputObject(io)) => match value {
                    Value::Object(fields) => {
                        let mut map = BTreeMap::new();
                        for (f, v) in fields {
                            let c = match io.fields.get(f) {
                                Some(def) => canonical(schema, &def.ty, v, depth + 1),
                                None => structural(v),
                            };
                            map.insert(f.to_string(), c);
                        }
                        for (f, def) in &io.fields {
                            if map.contains_key(f.as_str()) {
                                continue;
                            }
                            if let Some(d) = &def.default_value {
                                map.insert(f.to_string(), canonical(schema, &def.ty, d, depth + 1));
                            }
                        }
                        object(map)
                    }
                    other => structural(other),
                },
                _ => structural(value),
            },
        },
    }
}

fn object(map: BTreeMap<String, String>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}:{v}");
    }
    out.push('}');
    out
}

/// Without type information: object fields unordered, everything else as written.
fn structural(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Enum(n) => n.to_string(),
        Value::Variable(n) => format!("${n}"),
        Value::String(s) => format!("{s:?}"),
        Value::Float(f) => f.as_str().to_string(),
        Value::Int(i) => i.as_str().to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(|v| structural(v)).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(fields) => object(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), structural(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apollo_compiler::ast::Document;

    const SDL: &str = "type Query { a: Int }\ninput P { a: Int b: Int = 2 c: [Float] }\nenum E { X Y }\nscalar JSON\n";

    fn same(ty: &str, a: &str, b: &str) -> bool {
        let schema = Schema::parse_and_validate(SDL, "s.graphql").expect("schema");
        let doc = Document::parse(
            format!("type T {{ f(x: {ty} = {a}, y: {ty} = {b}): Int }}"),
            "t.graphql",
        )
        .expect("doc");
        let Some(apollo_compiler::ast::Definition::ObjectTypeDefinition(t)) =
            doc.definitions.first()
        else {
            panic!("object type");
        };
        let args = &t.fields[0].arguments;
        let (x, y) = (&args[0], &args[1]);
        same_default(
            &schema,
            &x.ty,
            x.default_value.as_ref().expect("x default"),
            &schema,
            &y.ty,
            y.default_value.as_ref().expect("y default"),
        )
    }

    #[test]
    fn semantic_equality() {
        assert!(same("[Int]", "[1,2]", "[1, 2]"));
        assert!(same("[Int]", "1", "[1]"));
        assert!(same("Float", "1", "1.0"));
        assert!(same("Float", "1e0", "1.0"));
        assert!(same("ID", "1", "\"1\""));
        assert!(same("P", "{a: 1, c: [1]}", "{c: 1.0, a: 1, b: 2}"));
        assert!(same("JSON", "{a: 1, b: 2}", "{b: 2, a: 1}"));
        assert!(!same("[Int]", "[1,2]", "[2,1]"));
        assert!(!same("Float", "1", "1.5"));
        assert!(!same("P", "{a: 1}", "{a: 1, b: 3}"));
        assert!(!same("P", "{a: 1}", "{a: 1, c: null}"));
        assert!(!same("E", "X", "Y"));
        assert!(!same("String", "\"X\"", "null"));
        assert!(!same("JSON", "1", "1.0"));
    }
}
