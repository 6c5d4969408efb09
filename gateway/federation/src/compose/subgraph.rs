//! Stage 1, subgraph loading: one subgraph SDL → a validated schema plus the local names
//! of the federation directives (`@link(url: ".../federation/v2.x", as:, import:)`, or the
//! plain Federation 1 names when the subgraph has no federation `@link`). Definitions of
//! the federation directives are added when the SDL does not carry them, so subgraphs
//! exported by any framework validate the same way. `_service`/`_entities` and their
//! types are dropped: they are transport, not schema.

use super::{Diagnostic, Diagnostics, SubgraphInput};
use apollo_compiler::ast::{self, Definition, Value};
use apollo_compiler::schema::{Directive, DirectiveList, ExtendedType};
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node, Schema};
use std::collections::{HashMap, HashSet};

const FEDERATION_IDENTITY: &str = "https://specs.apollo.dev/federation";
const LINK_IDENTITY: &str = "https://specs.apollo.dev/link";
/// Newest federation spec minor version understood (`v2.x`).
const MAX_MINOR: u32 = 9;

/// Federation directives: canonical name, minimum `v2.x` minor, definition template
/// (`{n}` = local name, `{FieldSet}`/`{Scope}`/`{Policy}` = local type names).
const DIRECTIVES: &[(&str, u32, &str)] = &[
    (
        "key",
        0,
        "directive @{n}(fields: {FieldSet}!, resolvable: Boolean = true) repeatable on OBJECT | INTERFACE",
    ),
    (
        "requires",
        0,
        "directive @{n}(fields: {FieldSet}!) on FIELD_DEFINITION",
    ),
    (
        "provides",
        0,
        "directive @{n}(fields: {FieldSet}!) on FIELD_DEFINITION",
    ),
    (
        "external",
        0,
        "directive @{n}(reason: String) on OBJECT | FIELD_DEFINITION",
    ),
    (
        "shareable",
        0,
        "directive @{n} repeatable on OBJECT | FIELD_DEFINITION",
    ),
    ("extends", 0, "directive @{n} on OBJECT | INTERFACE"),
    (
        "override",
        0,
        "directive @{n}(from: String!, label: String) on FIELD_DEFINITION",
    ),
    (
        "inaccessible",
        0,
        "directive @{n} on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION",
    ),
    (
        "tag",
        0,
        "directive @{n}(name: String!) repeatable on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION | SCHEMA",
    ),
    (
        "composeDirective",
        1,
        "directive @{n}(name: String!) repeatable on SCHEMA",
    ),
    ("interfaceObject", 3, "directive @{n} on OBJECT"),
    (
        "authenticated",
        5,
        "directive @{n} on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM",
    ),
    (
        "requiresScopes",
        5,
        "directive @{n}(scopes: [[{Scope}!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM",
    ),
    (
        "policy",
        6,
        "directive @{n}(policies: [[{Policy}!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM",
    ),
    (
        "cost",
        9,
        "directive @{n}(weight: Int!) on ARGUMENT_DEFINITION | ENUM | FIELD_DEFINITION | INPUT_FIELD_DEFINITION | OBJECT | SCALAR",
    ),
    (
        "listSize",
        9,
        "directive @{n}(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION",
    ),
    (
        "context",
        8,
        "directive @{n}(name: String!) repeatable on INTERFACE | OBJECT | UNION",
    ),
    (
        "fromContext",
        8,
        "directive @{n}(field: {ContextFieldValue}) on ARGUMENT_DEFINITION",
    ),
];
/// Federation types: canonical name, minimum minor.
const TYPES: &[(&str, u32)] = &[
    ("FieldSet", 0),
    ("Scope", 5),
    ("Policy", 6),
    ("ContextFieldValue", 8),
];
/// Directives a Federation 1 subgraph may use without any `@link`.
const FED1_DIRECTIVES: &[&str] = &[
    "key",
    "requires",
    "provides",
    "external",
    "extends",
    "tag",
    "inaccessible",
    "shareable",
    "override",
];

/// A `@link` to something other than the link and federation specs (kept for
/// `@composeDirective`).
#[derive(Debug, Clone)]
pub(crate) struct OtherLink {
    pub(crate) url: String,
    /// Imported directive local names (without `@`), and the feature's own directive name.
    pub(crate) directives: Vec<(String, String)>,
}

/// One loaded subgraph.
pub(crate) struct Subgraph {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) schema: Valid<Schema>,
    /// No federation `@link`: Federation 1 semantics.
    pub(crate) fed1: bool,
    /// canonical federation directive name → local name.
    names: HashMap<&'static str, Name>,
    /// Types that belong to the federation or link specs (not merged).
    pub(crate) spec_types: HashSet<Name>,
    /// Local root type name → `Query`/`Mutation`/`Subscription`.
    pub(crate) roots: HashMap<Name, Name>,
    pub(crate) other_links: Vec<OtherLink>,
    /// An empty `Query`: every subgraph has a query root in federation (`_entities`,
    /// `_service`), so it takes part in `Query` even without fields of its own.
    pub(crate) empty_query: ExtendedType,
}

impl Subgraph {
    /// Local name of a federation directive, if this subgraph can use it.
    pub(crate) fn local(&self, canonical: &str) -> Option<&Name> {
        self.names.get(canonical)
    }

    pub(crate) fn all<'a>(&self, list: &'a impl Dirs, canonical: &str) -> Vec<&'a Node<Directive>> {
        match self.local(canonical) {
            Some(local) => list.named(local),
            None => Vec::new(),
        }
    }

    /// Whether `local` names a federation directive or one imported from another `@link`.
    pub(crate) fn is_spec_directive(&self, local: &str) -> bool {
        self.names.values().any(|n| n == local)
            || self
                .other_links
                .iter()
                .any(|l| l.directives.iter().any(|(n, _)| n == local))
    }

    pub(crate) fn has(&self, list: &impl Dirs, canonical: &str) -> bool {
        !self.all(list, canonical).is_empty()
    }

    /// The name this subgraph's type has in the supergraph (root types are renamed).
    pub(crate) fn merged_name(&self, local: &Name) -> Name {
        self.roots
            .get(local)
            .cloned()
            .unwrap_or_else(|| local.clone())
    }

    /// Whether `name` is a user type to merge (not built-in, not spec machinery).
    pub(crate) fn is_user_type(&self, name: &Name, ty: &ExtendedType) -> bool {
        !ty.is_built_in() && !self.spec_types.contains(name)
    }
}

/// Either kind of directive list (schema components or AST nodes).
pub(crate) trait Dirs {
    fn named<'a>(&'a self, name: &str) -> Vec<&'a Node<Directive>>;
    fn every(&self) -> Vec<&Node<Directive>>;
}

impl Dirs for DirectiveList {
    fn named<'a>(&'a self, name: &str) -> Vec<&'a Node<Directive>> {
        self.get_all(name).map(|c| &c.node).collect()
    }
    fn every(&self) -> Vec<&Node<Directive>> {
        self.iter().map(|c| &c.node).collect()
    }
}

impl Dirs for ast::DirectiveList {
    fn named<'a>(&'a self, name: &str) -> Vec<&'a Node<Directive>> {
        self.get_all(name).collect()
    }
    fn every(&self) -> Vec<&Node<Directive>> {
        self.iter().collect()
    }
}

fn parse_version(url: &str) -> Option<(String, String, u32, u32)> {
    let (identity, version) = url.trim_end_matches('/').rsplit_once('/')?;
    let version = version.strip_prefix('v')?;
    let (major, minor) = version.split_once('.')?;
    let name = identity.rsplit('/').next()?.to_string();
    Some((
        identity.to_string(),
        name,
        major.parse().ok()?,
        minor.parse().ok()?,
    ))
}

struct RawLink {
    url: String,
    prefix: Option<String>,
    imports: Vec<(String, String)>,
}

fn read_links(doc: &ast::Document) -> Vec<RawLink> {
    let mut out = Vec::new();
    for def in &doc.definitions {
        let directives = match def {
            Definition::SchemaDefinition(s) => &s.directives,
            Definition::SchemaExtension(s) => &s.directives,
            _ => continue,
        };
        for d in directives.iter().filter(|d| d.name == "link") {
            let Some(url) = d.specified_argument_by_name("url").and_then(|v| v.as_str()) else {
                continue;
            };
            let prefix = d
                .specified_argument_by_name("as")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let mut imports = Vec::new();
            if let Some(list) = d
                .specified_argument_by_name("import")
                .and_then(|v| v.as_list())
            {
                for item in list {
                    match item.as_ref() {
                        Value::String(s) => imports.push((s.clone(), s.clone())),
                        Value::Object(fields) => {
                            let get = |k: &str| {
                                fields
                                    .iter()
                                    .find(|(n, _)| n == k)
                                    .and_then(|(_, v)| v.as_str())
                                    .map(str::to_string)
                            };
                            if let Some(name) = get("name") {
                                let local = get("as").unwrap_or_else(|| name.clone());
                                imports.push((name, local));
                            }
                        }
                        _ => {}
                    }
                }
            }
            out.push(RawLink {
                url: url.to_string(),
                prefix,
                imports,
            });
        }
    }
    out
}

const LINK_DEFINITIONS: &str = "directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA\nscalar link__Import\nenum link__Purpose { SECURITY EXECUTION }\n";

/// Loads one subgraph; problems are pushed to `diags` and `None` returned when the
/// subgraph cannot be used at all.
pub(crate) fn load(input: &SubgraphInput, diags: &mut Diagnostics) -> Option<Subgraph> {
    let sg = input.name.as_str();
    let err = |code: &'static str, message: String| {
        Diagnostic::error(code, message).subgraph(sg.to_string())
    };
    if input.name.is_empty() || input.name == "_" {
        diags.push(err(
            "INVALID_SUBGRAPH_NAME",
            format!("[{sg}] Invalid name {:?} for a subgraph", input.name),
        ));
        return None;
    }
    let doc = match ast::Document::parse(input.sdl.as_str(), format!("{sg}.graphql")) {
        Ok(doc) => doc,
        Err(e) => {
            for d in e.errors.iter() {
                diags.push(err("INVALID_GRAPHQL", format!("[{sg}] {}", d.error)));
            }
            return None;
        }
    };
    let links = read_links(&doc);
    let mut fed_link = None;
    let mut other_links = Vec::new();
    for link in &links {
        match parse_version(&link.url) {
            Some((identity, _, major, minor)) if identity == FEDERATION_IDENTITY => {
                if major != 2 || minor > MAX_MINOR {
                    diags.push(err(
                        "UNKNOWN_FEDERATION_LINK_VERSION",
                        format!("[{sg}] Invalid version v{major}.{minor} for the federation feature in @link directive on schema"),
                    ));
                    return None;
                }
                fed_link = Some((link, minor));
            }
            Some((identity, _, _, _)) if identity == LINK_IDENTITY => {}
            Some((_, name, _, _)) => {
                let prefix = link.prefix.clone().unwrap_or(name.clone());
                let mut directives = vec![(prefix.clone(), name.clone())];
                for (imported, local) in &link.imports {
                    if let (Some(i), Some(l)) =
                        (imported.strip_prefix('@'), local.strip_prefix('@'))
                    {
                        directives.push((l.to_string(), i.to_string()));
                    }
                }
                other_links.push(OtherLink {
                    url: link.url.clone(),
                    directives,
                });
            }
            None => {
                diags.push(err(
                    "INVALID_LINK_IDENTIFIER",
                    format!("[{sg}] Invalid url {:?} in @link", link.url),
                ));
                return None;
            }
        }
    }

    let defined_directives: HashSet<String> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::DirectiveDefinition(d) => Some(d.name.to_string()),
            _ => None,
        })
        .collect();
    let defined_types: HashSet<String> = doc
        .definitions
        .iter()
        .filter_map(|d| d.name().map(|n| n.to_string()))
        .collect();

    let mut names: HashMap<&'static str, Name> = HashMap::new();
    let mut type_names: HashMap<&'static str, String> = HashMap::new();
    let fed1 = fed_link.is_none();
    let mut ok = true;
    match fed_link {
        Some((link, minor)) => {
            let prefix = link.prefix.clone().unwrap_or_else(|| "federation".into());
            for (imported, local) in &link.imports {
                let known = match imported.strip_prefix('@') {
                    Some(d) => DIRECTIVES.iter().find(|(n, _, _)| *n == d).map(|x| x.1),
                    None => TYPES.iter().find(|(n, _)| n == imported).map(|x| x.1),
                };
                match known {
                    Some(min) if min <= minor => {}
                    _ => {
                        ok = false;
                        diags.push(err(
                            "INVALID_LINK_DIRECTIVE_USAGE",
                            format!("[{sg}] Cannot import unknown element {imported:?}."),
                        ));
                    }
                }
                if imported.starts_with('@') != local.starts_with('@') {
                    ok = false;
                    diags.push(err(
                        "INVALID_LINK_DIRECTIVE_USAGE",
                        format!("[{sg}] Invalid @link import renaming: {imported:?} cannot be imported as {local:?}"),
                    ));
                }
            }
            let imported = |element: &str| {
                link.imports
                    .iter()
                    .find(|(i, _)| i == element)
                    .map(|(_, l)| l.trim_start_matches('@').to_string())
            };
            for (canonical, min, _) in DIRECTIVES {
                if *min <= minor {
                    let local = imported(&format!("@{canonical}"))
                        .unwrap_or_else(|| format!("{prefix}__{canonical}"));
                    if let Ok(n) = Name::new(&local) {
                        names.insert(canonical, n);
                    }
                }
            }
            for (canonical, min) in TYPES {
                if *min <= minor {
                    let local =
                        imported(canonical).unwrap_or_else(|| format!("{prefix}__{canonical}"));
                    type_names.insert(canonical, local);
                }
            }
        }
        None => {
            for canonical in FED1_DIRECTIVES {
                names.insert(canonical, Name::new(canonical).expect("valid name"));
            }
            type_names.insert("FieldSet", "_FieldSet".into());
        }
    }
    if !ok {
        return None;
    }

    // Prelude: definitions the SDL does not carry.
    let mut prelude = String::new();
    if !defined_directives.contains("link") {
        prelude.push_str(LINK_DEFINITIONS);
    }
    for (canonical, local) in &type_names {
        if !defined_types.contains(local) {
            let _ = canonical;
            prelude.push_str(&format!("scalar {local}\n"));
        }
    }
    for (canonical, _, template) in DIRECTIVES {
        let Some(local) = names.get(canonical) else {
            continue;
        };
        if defined_directives.contains(local.as_str()) {
            continue;
        }
        let get = |t: &str| type_names.get(t).cloned().unwrap_or_default();
        prelude.push_str(
            &template
                .replace("{n}", local)
                .replace("{FieldSet}", &get("FieldSet"))
                .replace("{Scope}", &get("Scope"))
                .replace("{Policy}", &get("Policy"))
                .replace("{ContextFieldValue}", &get("ContextFieldValue")),
        );
        prelude.push('\n');
    }
    let built = Schema::builder()
        .adopt_orphan_extensions()
        .parse(prelude, "federation-prelude.graphql")
        .parse(input.sdl.as_str(), format!("{sg}.graphql"))
        .build();
    let mut schema = match built {
        Ok(s) => s,
        Err(e) => {
            for d in e.errors.iter() {
                diags.push(err("INVALID_GRAPHQL", format!("[{sg}] {}", d.error)));
            }
            return None;
        }
    };
    // Transport fields and types.
    for t in ["_Service", "_Any", "_Entity"] {
        schema.types.shift_remove(t);
    }
    let query_name = schema
        .schema_definition
        .query
        .as_ref()
        .map(|q| q.name.clone())
        .or_else(|| {
            schema
                .types
                .contains_key("Query")
                .then(|| Name::new("Query").expect("valid"))
        });
    if let Some(q) = &query_name
        && let Some(ExtendedType::Object(o)) = schema.types.get_mut(q)
    {
        let o = o.make_mut();
        o.fields.shift_remove("_service");
        o.fields.shift_remove("_entities");
        if o.fields.is_empty() {
            schema.types.shift_remove(q);
            schema.schema_definition.make_mut().query = None;
        }
    }
    let schema = match schema.validate() {
        Ok(s) => s,
        Err(e) => {
            // A subgraph may contribute only entities: no query root is fine.
            let real: Vec<_> = e
                .errors
                .iter()
                .map(|d| d.error.to_string())
                .filter(|m| !m.contains("missing query root operation type"))
                .collect();
            if !real.is_empty() {
                for m in real {
                    diags.push(err("INVALID_GRAPHQL", format!("[{sg}] {m}")));
                }
                return None;
            }
            Valid::assume_valid(e.partial)
        }
    };

    let mut roots = HashMap::new();
    let sd = &schema.schema_definition;
    for (root, canonical) in [
        (&sd.query, "Query"),
        (&sd.mutation, "Mutation"),
        (&sd.subscription, "Subscription"),
    ] {
        let canonical = Name::new(canonical).expect("valid");
        match root {
            Some(r) => {
                if r.name != canonical && schema.types.contains_key(&canonical) {
                    let code = match canonical.as_str() {
                        "Query" => "ROOT_QUERY_USED",
                        "Mutation" => "ROOT_MUTATION_USED",
                        _ => "ROOT_SUBSCRIPTION_USED",
                    };
                    diags.push(err(code, format!("[{sg}] The schema has a type named \"{canonical}\" but it is not set as the {} root type (\"{}\" is instead): this is not supported by federation. If a root type does not use its default name, there should be no other type with that default name.", canonical.as_str().to_lowercase(), r.name)));
                    ok = false;
                }
                roots.insert(r.name.clone(), canonical);
            }
            None => {
                if schema.types.contains_key(&canonical) {
                    roots.insert(canonical.clone(), canonical);
                }
            }
        }
    }
    if !ok {
        return None;
    }
    let mut spec_types: HashSet<Name> = HashSet::new();
    for local in type_names.values() {
        if let Ok(n) = Name::new(local) {
            spec_types.insert(n);
        }
    }
    for t in [
        "link__Import",
        "link__Purpose",
        "federation__FieldSet",
        "federation__Scope",
        "federation__Policy",
        "federation__ContextFieldValue",
        "_FieldSet",
        "FieldSet",
    ] {
        if let Ok(n) = Name::new(t)
            && (fed1 || t != "FieldSet" || type_names.values().any(|v| v == t))
        {
            spec_types.insert(n);
        }
    }
    Some(Subgraph {
        name: input.name.clone(),
        url: input.url.clone(),
        schema,
        fed1,
        names,
        spec_types,
        roots,
        other_links,
        empty_query: ExtendedType::Object(Node::new(apollo_compiler::schema::ObjectType {
            description: None,
            name: Name::new("Query").expect("valid"),
            implements_interfaces: Default::default(),
            directives: Default::default(),
            fields: Default::default(),
        })),
    })
}
