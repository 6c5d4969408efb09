//! The config reference, generated from the config types: a JSON Schema (for editors
//! and validators of `gateway.toml` / `gateway.yaml`) and a Markdown page of every key
//! with its type, default and description (the doc comments). Both are committed
//! (`gateway/server/config.schema.json`, `docs/config.md`); a test fails when the types
//! change and they do not (`UPDATE_CONFIG_REFERENCE=1` rewrites them).

use std::fmt::Write as _;

use serde_json::Value;

use super::GatewayConfig;

/// The JSON Schema (draft 2020-12) of the gateway configuration.
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(GatewayConfig)).unwrap_or(Value::Null)
}

/// One row per key (sections first, in declaration order), from [`json_schema`].
pub fn markdown_reference() -> String {
    let schema = json_schema();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut out = String::from(
        "# Gateway configuration reference\n\n\
         Generated from the config types by `cargo test -p portico-gateway config_reference` \
         (`UPDATE_CONFIG_REFERENCE=1` rewrites it); do not edit. The same keys in JSON Schema: \
         [`gateway/server/config.schema.json`](../gateway/server/config.schema.json). A file \
         is TOML, or YAML when its name ends in `.yaml`/`.yml`; every key can also be set \
         from the environment as `PORTICO_<SECTION>__<KEY>`. Annotated example with every \
         default: [`gateway/server/gateway.example.toml`](../gateway/server/gateway.example.toml).\n\n\
         | key | type | default | description |\n|---|---|---|---|\n",
    );
    // An explicit work list (sections nest only as deep as the types do).
    let mut work: Vec<(String, Value)> = vec![(String::new(), schema.clone())];
    while let Some((prefix, node)) = work.pop() {
        let node = resolve(&node, &defs);
        let Some(props) = node.get("properties").and_then(Value::as_object) else {
            continue;
        };
        let mut sections = Vec::new();
        for (name, prop) in props {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let target = resolve(prop, &defs);
            if target.get("properties").is_some() {
                sections.push((key, target));
                continue;
            }
            // A map of sections (`subgraphs.<name>`): its row, then the entry's keys.
            if let Some(entry) = prop.get("additionalProperties") {
                let entry = resolve(entry, &defs);
                if entry.get("properties").is_some() {
                    sections.push((format!("{key}.<name>"), entry));
                }
            }
            let _ = writeln!(
                out,
                "| `{key}` | {} | {} | {} |",
                type_of(prop, &defs),
                prop.get("default")
                    .map(|d| format!("`{d}`"))
                    .unwrap_or_default(),
                description(prop, &target)
            );
        }
        // Sections after the keys of this level, in declaration order.
        for section in sections.into_iter().rev() {
            work.push(section);
        }
    }
    out
}

/// `node` with a `$ref` (direct, or the non-null branch of an optional) followed.
fn resolve(node: &Value, defs: &Value) -> Value {
    let follow = |r: &str| {
        r.strip_prefix("#/$defs/")
            .and_then(|name| defs.get(name))
            .cloned()
    };
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        return follow(r).unwrap_or_else(|| node.clone());
    }
    node.clone()
}

fn type_of(prop: &Value, defs: &Value) -> String {
    if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        let target = resolve(prop, defs);
        if let Some(values) = target.get("enum").and_then(Value::as_array) {
            return one_of(values);
        }
        if let Some(variants) = target.get("oneOf").and_then(Value::as_array) {
            let consts: Vec<Value> = variants
                .iter()
                .filter_map(|v| v.get("const").cloned())
                .collect();
            if consts.len() == variants.len() {
                return one_of(&consts);
            }
        }
        return format!("`{name}`");
    }
    if let Some(values) = prop.get("enum").and_then(Value::as_array) {
        return one_of(values);
    }
    let base = match prop.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => {
            if let Some(any) = prop.get("anyOf").and_then(Value::as_array) {
                return any
                    .iter()
                    .map(|v| type_of(v, defs))
                    .collect::<Vec<_>>()
                    .join(" or ");
            }
            return "any".into();
        }
    };
    match prop.get("items") {
        Some(items) if base.contains("array") => {
            base.replace("array", &format!("array of {}", type_of(items, defs)))
        }
        _ => match prop.get("additionalProperties") {
            Some(values) if base.contains("object") && values.is_object() => {
                base.replace("object", &format!("map of {}", type_of(values, defs)))
            }
            _ => base,
        },
    }
}

fn one_of(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(" \\| ")
}

fn description(prop: &Value, target: &Value) -> String {
    prop.get("description")
        .or_else(|| target.get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn config_reference_is_fresh() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = [
            (
                root.join("config.schema.json"),
                serde_json::to_string_pretty(&json_schema()).unwrap_or_default() + "\n",
            ),
            (root.join("../../docs/config.md"), markdown_reference()),
        ];
        for (path, generated) in files {
            if std::env::var_os("UPDATE_CONFIG_REFERENCE").is_some() {
                std::fs::write(&path, &generated).expect("write the reference");
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "{} is stale: run `UPDATE_CONFIG_REFERENCE=1 cargo test -p portico-gateway config_reference`",
                path.display()
            );
        }
    }

    #[test]
    fn the_reference_names_every_key_of_the_example() {
        let reference = markdown_reference();
        // Spot checks across sections, nesting and kinds of values.
        for key in [
            "`listen`",
            "`limits.max_depth`",
            "`batching.max_size`",
            "`rate_limit.backend`",
            "`circuit_breaker.cooldown_ms`",
            "`cost.max_cost`",
            "`subgraph_max_response_bytes`",
        ] {
            assert!(reference.contains(key), "{key} missing:\n{reference}");
        }
    }
}
