//! `@link` resolution: which local names the spec directives and types of a supergraph
//! have (`@link(url:, as:, import:)`), so the rest of the loader never hard-codes a
//! prefix. Unknown features that claim to matter for security or execution are refused.

use super::{SupergraphError, line_of};
use apollo_compiler::Schema;
use apollo_compiler::ast::Value;
use std::collections::{HashMap, HashSet};

const LINK_IDENTITY: &str = "https://specs.apollo.dev/link";
const CORE_IDENTITY: &str = "https://specs.apollo.dev/core";

/// One `@link` application.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// Last path segment of the URL without the version (`join`, `inaccessible`).
    pub(crate) name: String,
    /// Prefix for non-imported elements (`as:` or `name`).
    pub(crate) prefix: String,
    /// Imported element name (`@tag`, `Scope`) → local name (`@mytag`, `Scope`).
    pub(crate) imports: HashMap<String, String>,
}

impl Link {
    /// Local name of directive `name` of this feature (without `@`).
    pub(crate) fn directive(&self, name: &str) -> String {
        if let Some(local) = self.imports.get(&format!("@{name}")) {
            return local.trim_start_matches('@').to_string();
        }
        if name == self.name {
            self.prefix.clone()
        } else {
            format!("{}__{}", self.prefix, name)
        }
    }

    /// Local name of type `name` of this feature.
    pub(crate) fn type_name(&self, name: &str) -> String {
        if let Some(local) = self.imports.get(name) {
            return local.clone();
        }
        format!("{}__{}", self.prefix, name)
    }
}

/// Spec features Portico understands, with the directives each defines.
const KNOWN: &[(&str, &[&str])] = &[
    ("link", &["link"]),
    (
        "join",
        &[
            "graph",
            "type",
            "field",
            "implements",
            "unionMember",
            "enumValue",
            "directive",
            "owner",
        ],
    ),
    ("inaccessible", &["inaccessible"]),
    ("tag", &["tag"]),
    ("authenticated", &["authenticated"]),
    ("requiresScopes", &["requiresScopes"]),
    ("policy", &["policy"]),
    ("cost", &["cost", "listSize"]),
    ("listSize", &["listSize"]),
    ("context", &["context"]),
];

/// All links of a supergraph, and the sets of spec names to strip from the API schema.
#[derive(Debug, Clone)]
pub(crate) struct Links {
    pub(crate) links: Vec<Link>,
    /// Local directive names defined by linked features (removed from the API schema).
    pub(crate) spec_directives: HashSet<String>,
    /// Prefixes (`join`, `link`, …): types named `prefix__*` belong to features.
    pub(crate) spec_prefixes: Vec<String>,
    /// Imported type names (belong to features).
    pub(crate) spec_types: HashSet<String>,
}

impl Links {
    pub(crate) fn get(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub(crate) fn is_spec_type(&self, name: &str) -> bool {
        self.spec_types.contains(name)
            || self.spec_prefixes.iter().any(|p| {
                name.len() > p.len() + 2
                    && name.starts_with(p.as_str())
                    && name[p.len()..].starts_with("__")
            })
    }
}

fn parse_url(url: &str) -> Option<(String, String, (u32, u32))> {
    let (identity, version) = url.trim_end_matches('/').rsplit_once('/')?;
    let version = version.strip_prefix('v')?;
    let (major, minor) = version.split_once('.')?;
    let name = identity.rsplit('/').next()?.to_string();
    Some((
        identity.to_string(),
        name,
        (major.parse().ok()?, minor.parse().ok()?),
    ))
}

/// Reads the `@link` directives on the schema definition.
pub(crate) fn resolve(schema: &Schema) -> Result<Links, SupergraphError> {
    let directives = &schema.schema_definition.directives;
    // Bootstrap: the link spec's own directive may be renamed with `as:`.
    let mut link_directive = None;
    for d in directives.iter() {
        if let Some(url) = d.specified_argument_by_name("url").and_then(|v| v.as_str())
            && let Some((identity, _, _)) = parse_url(url)
            && identity == LINK_IDENTITY
        {
            let local = d
                .specified_argument_by_name("as")
                .and_then(|v| v.as_str())
                .unwrap_or("link");
            if d.name != local {
                return Err(SupergraphError::Link {
                    line: line_of(schema, d.location()),
                    message: format!("the link spec is applied as @{} but named {local}", d.name),
                });
            }
            link_directive = Some(d.name.to_string());
        }
        if let Some(feature) = d
            .specified_argument_by_name("feature")
            .and_then(|v| v.as_str())
            && feature.starts_with(CORE_IDENTITY)
        {
            return Err(SupergraphError::Link {
                line: line_of(schema, d.location()),
                message:
                    "this is a Federation 1 supergraph (@core); recompose it with Federation 2"
                        .into(),
            });
        }
    }
    let Some(link_directive) = link_directive else {
        return Err(SupergraphError::Link {
            line: line_of(schema, schema.schema_definition.location()),
            message: "no @link(url: \"https://specs.apollo.dev/link/v1.0\") on the schema definition: not a supergraph".into(),
        });
    };
    let mut links = Vec::new();
    for d in directives
        .iter()
        .filter(|d| d.name == link_directive.as_str())
    {
        // Computed only for an error: the first line lookup indexes the whole SDL's lines
        // (megabytes at 10,000 types) and keeps the index for the schema's lifetime.
        let line = || line_of(schema, d.location());
        let url = d
            .specified_argument_by_name("url")
            .and_then(|v| v.as_str())
            .ok_or_else(|| SupergraphError::Link {
                line: line(),
                message: "@link without a url".into(),
            })?;
        let (_identity, name, version) = parse_url(url).ok_or_else(|| SupergraphError::Link {
            line: line(),
            message: format!("malformed @link url {url:?}"),
        })?;
        let prefix = d
            .specified_argument_by_name("as")
            .and_then(|v| v.as_str())
            .unwrap_or(&name)
            .to_string();
        let mut imports = HashMap::new();
        if let Some(list) = d
            .specified_argument_by_name("import")
            .and_then(|v| v.as_list())
        {
            for item in list {
                match item.as_ref() {
                    Value::String(s) => {
                        imports.insert(s.clone(), s.clone());
                    }
                    Value::Object(fields) => {
                        let get = |k: &str| {
                            fields
                                .iter()
                                .find(|(n, _)| n == k)
                                .and_then(|(_, v)| v.as_str())
                                .map(str::to_string)
                        };
                        let Some(n) = get("name") else {
                            return Err(SupergraphError::Link {
                                line: line(),
                                message: "@link import entry without a name".into(),
                            });
                        };
                        let local = get("as").unwrap_or_else(|| n.clone());
                        imports.insert(n, local);
                    }
                    _ => {
                        return Err(SupergraphError::Link {
                            line: line(),
                            message: "@link import entries must be strings or {name, as} objects"
                                .into(),
                        });
                    }
                }
            }
        }
        let purpose = d
            .specified_argument_by_name("for")
            .and_then(|v| v.as_enum())
            .map(|n| n.to_string());
        let known =
            url.starts_with("https://specs.apollo.dev/") && KNOWN.iter().any(|(n, _)| *n == name);
        if !known && purpose.is_some() {
            return Err(SupergraphError::Link {
                line: line(),
                message: format!(
                    "unsupported feature {url} is required for {}",
                    purpose.as_deref().unwrap_or_default()
                ),
            });
        }
        if name == "join" && !(version.0 == 0 && (2..=5).contains(&version.1)) {
            return Err(SupergraphError::Link {
                line: line(),
                message: format!(
                    "unsupported join spec version v{}.{} (supported: v0.2 to v0.5)",
                    version.0, version.1
                ),
            });
        }
        if name == "link" && version.0 != 1 {
            return Err(SupergraphError::Link {
                line: line(),
                message: format!("unsupported link spec version v{}.{}", version.0, version.1),
            });
        }
        links.push(Link {
            name,
            prefix,
            imports,
        });
    }
    if !links.iter().any(|l| l.name == "join") {
        return Err(SupergraphError::Link {
            line: line_of(schema, schema.schema_definition.location()),
            message: "no join spec @link: not a supergraph".into(),
        });
    }
    refuse_subgraph_execution_features(schema, &links)?;
    let mut spec_directives = HashSet::new();
    let mut spec_prefixes = Vec::new();
    let mut spec_types = HashSet::new();
    for link in &links {
        spec_prefixes.push(link.prefix.clone());
        spec_directives.insert(link.prefix.clone());
        for (imported, local) in &link.imports {
            if imported.starts_with('@') {
                spec_directives.insert(local.trim_start_matches('@').to_string());
            } else {
                spec_types.insert(local.clone());
            }
        }
        if let Some((_, names)) = KNOWN.iter().find(|(n, _)| *n == link.name) {
            for n in *names {
                spec_directives.insert(link.directive(n));
            }
        }
    }
    // Directives defined as `prefix__x` belong to the feature too.
    for name in schema.directive_definitions.keys() {
        if spec_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()) && name[p.len()..].starts_with("__"))
        {
            spec_directives.insert(name.to_string());
        }
    }
    Ok(Links {
        links,
        spec_directives,
        spec_prefixes,
        spec_types,
    })
}

/// Features a subgraph may link (carried in the supergraph as `@join__directive(name:
/// "link", args: {url:})`) that change how its fields are resolved, which Portico does
/// not execute: serving such a supergraph would send GraphQL to a subgraph that is not
/// one. Apollo Connectors (`@connect`/`@source`) are the known case; Apollo's
/// composition also links them `for: EXECUTION` at the top, which the loop above
/// refuses, but a supergraph may carry only the per-subgraph link. Any other
/// `@join__directive` is metadata: `@cost`/`@listSize` are read by the cost model, the
/// rest is ignored.
const SUBGRAPH_EXECUTION_FEATURES: &[(&str, &str)] = &[(
    "https://specs.apollo.dev/connect",
    "Apollo Connectors (@connect, @source)",
)];

fn refuse_subgraph_execution_features(
    schema: &Schema,
    links: &[Link],
) -> Result<(), SupergraphError> {
    let Some(join) = links.iter().find(|l| l.name == "join") else {
        return Ok(());
    };
    let local = join.directive("directive");
    for d in schema
        .schema_definition
        .directives
        .iter()
        .filter(|d| d.name == local.as_str())
    {
        if d.specified_argument_by_name("name")
            .and_then(|v| v.as_str())
            != Some("link")
        {
            continue;
        }
        let url = d
            .specified_argument_by_name("args")
            .and_then(|v| match v.as_ref() {
                Value::Object(fields) => fields
                    .iter()
                    .find(|(n, _)| n == "url")
                    .and_then(|(_, v)| v.as_str()),
                _ => None,
            })
            .unwrap_or_default();
        if let Some((_, what)) = SUBGRAPH_EXECUTION_FEATURES
            .iter()
            .find(|(identity, _)| url.starts_with(identity))
        {
            let graphs: Vec<String> = d
                .specified_argument_by_name("graphs")
                .and_then(|v| v.as_list())
                .map(|l| l.iter().map(|g| g.to_string()).collect())
                .unwrap_or_default();
            return Err(SupergraphError::Link {
                line: line_of(schema, d.location()),
                message: format!(
                    "subgraph {} uses {what} ({url}), which Portico does not execute",
                    graphs.join(", ")
                ),
            });
        }
    }
    Ok(())
}
