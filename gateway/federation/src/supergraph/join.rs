//! Join metadata: reads `@join__graph`, `@join__type`, `@join__field`,
//! `@join__implements` and `@join__unionMember` into per-type indexes the planner
//! queries by name. One pass over the types; field sets stay unparsed until needed.
//!
//! The indexes are sized for supergraphs of tens of thousands of types: every vector is
//! allocated at its final length (a `Vec` grown by `push` starts at 4 elements, which
//! made a one-`@join__field` field cost 4 of these entries), and a field set is one
//! pointer until a field or key actually has one.

use super::links::Links;
use super::{SubgraphInfo, SupergraphError, line_of};
use crate::plan::operation::{Sel, parse_field_set};
use apollo_compiler::ast::Value;
use apollo_compiler::schema::{Component, Directive, ExtendedType};
use apollo_compiler::{Name, Node, Schema};
use std::collections::HashMap;
use std::sync::OnceLock;

/// A `join__FieldSet` string, parsed on first use. Boxed: one pointer in the
/// `FieldJoin`/`KeyJoin` entries that hold it (most `@join__field`s have none).
#[derive(Debug)]
pub(crate) struct FieldSet(Box<FieldSetInner>);

#[derive(Debug)]
struct FieldSetInner {
    source: Box<str>,
    parsed: OnceLock<Result<Vec<Sel>, String>>,
}

impl FieldSet {
    fn new(source: &str) -> Self {
        FieldSet(Box::new(FieldSetInner {
            source: source.into(),
            parsed: OnceLock::new(),
        }))
    }

    pub(crate) fn selections(&self) -> Result<&[Sel], String> {
        let inner = &*self.0;
        inner
            .parsed
            .get_or_init(|| parse_field_set(&inner.source))
            .as_deref()
            .map_err(|e| format!("field set {:?}: {e}", inner.source))
    }
}

#[derive(Debug)]
pub(crate) struct KeyJoin {
    pub(crate) fields: FieldSet,
    pub(crate) resolvable: bool,
}

/// One subgraph's view of a type (all `@join__type` of one graph merged).
#[derive(Debug)]
pub(crate) struct TypeInGraph {
    pub(crate) graph: usize,
    pub(crate) keys: Vec<KeyJoin>,
    pub(crate) interface_object: bool,
}

/// One `join__ContextArgument`: argument `name` (of GraphQL type `ty`) is filled with
/// `selection` read from the nearest ancestor carrying `@context(name: context)`.
#[derive(Debug, Clone)]
pub(crate) struct ContextArg {
    pub(crate) name: String,
    pub(crate) ty: String,
    pub(crate) context: String,
    pub(crate) selection: String,
}

fn context_args(d: &Directive) -> Vec<ContextArg> {
    let Some(Value::List(items)) = arg(d, "contextArguments") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Object(fields) = item.as_ref() else {
                return None;
            };
            let get = |key: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n.as_str() == key)
                    .and_then(|(_, v)| v.as_str())
                    .map(str::to_string)
            };
            Some(ContextArg {
                name: get("name")?,
                ty: get("type")?,
                context: get("context")?,
                selection: get("selection")?,
            })
        })
        .collect()
}

/// One `@join__field` application.
#[derive(Debug)]
pub(crate) struct FieldJoin {
    pub(crate) graph: Option<usize>,
    pub(crate) requires: Option<FieldSet>,
    pub(crate) provides: Option<FieldSet>,
    pub(crate) external: bool,
    pub(crate) override_from: Option<String>,
    pub(crate) override_label: Option<String>,
    pub(crate) used_overridden: bool,
    /// Has `contextArguments` (arguments filled by `@fromContext` from an ancestor's
    /// `@context`).
    pub(crate) context_arguments: bool,
    /// The `contextArguments` themselves.
    pub(crate) context_args: Vec<ContextArg>,
    /// Named type of the field in this subgraph (`type:`), when composition recorded one
    /// (it does when subgraphs disagree, e.g. `Book` here, `Media` in the supergraph).
    pub(crate) type_name: Option<Name>,
    /// The whole `type:` text (`String!`, `[ID]`), when recorded: a subgraph may declare
    /// a field non-null where the supergraph says nullable.
    pub(crate) type_text: Option<Box<str>>,
}

/// Join metadata of an object, interface or union type.
#[derive(Debug, Default)]
pub(crate) struct TypeMeta {
    /// Sorted by graph index.
    pub(crate) in_graphs: Vec<TypeInGraph>,
    /// Fields with at least one `@join__field`; others live in every graph of the type.
    pub(crate) fields: HashMap<Name, Vec<FieldJoin>>,
    /// For interfaces: `(graph, object type)` for each `@join__implements` naming it.
    /// For unions: `(graph, member)` for each `@join__unionMember`.
    pub(crate) possible: Vec<(usize, Name)>,
}

impl TypeMeta {
    pub(crate) fn in_graph(&self, graph: usize) -> Option<&TypeInGraph> {
        self.in_graphs
            .binary_search_by_key(&graph, |t| t.graph)
            .ok()
            .map(|i| &self.in_graphs[i])
    }
}

struct Names {
    graph_enum: String,
    graph: String,
    type_: String,
    field: String,
    implements: String,
    union_member: String,
}

fn arg<'a>(d: &'a Directive, name: &str) -> Option<&'a Value> {
    d.specified_argument_by_name(name).map(|v| v.as_ref())
}

fn str_arg(d: &Directive, name: &str) -> Option<String> {
    arg(d, name).and_then(|v| v.as_str()).map(str::to_string)
}

/// A string argument that must be a string when present.
fn field_set_arg(
    d: &Node<Directive>,
    name: &str,
    schema: &Schema,
) -> Result<Option<FieldSet>, SupergraphError> {
    match arg(d, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(FieldSet::new(s))),
        Some(other) => Err(SupergraphError::Join {
            line: line_of(schema, d.location()),
            message: format!(
                "@{}({name}:) must be a field set string, found {other}",
                d.name
            ),
        }),
    }
}

fn bool_arg(d: &Directive, name: &str) -> bool {
    arg(d, name).and_then(|v| v.to_bool()).unwrap_or(false)
}

type Extracted = (Vec<SubgraphInfo>, HashMap<Name, TypeMeta>);

pub(crate) fn extract(schema: &Schema, links: &Links) -> Result<Extracted, SupergraphError> {
    let join = links
        .get("join")
        .expect("links::resolve guarantees a join link");
    let names = Names {
        graph_enum: join.type_name("Graph"),
        graph: join.directive("graph"),
        type_: join.directive("type"),
        field: join.directive("field"),
        implements: join.directive("implements"),
        union_member: join.directive("unionMember"),
    };
    let err = |location, message: String| SupergraphError::Join {
        line: line_of(schema, location),
        message,
    };

    // Subgraphs.
    let Some(graph_enum) = schema.get_enum(&names.graph_enum) else {
        return Err(err(
            schema.schema_definition.location(),
            format!("enum {} (the subgraph list) is missing", names.graph_enum),
        ));
    };
    let mut subgraphs = Vec::new();
    let mut graph_index: HashMap<Name, usize> = HashMap::new();
    for (value_name, value) in &graph_enum.values {
        let d = value.directives.get(&names.graph).ok_or_else(|| {
            err(
                value.location(),
                format!("{}.{value_name} has no @{}", names.graph_enum, names.graph),
            )
        })?;
        let name = str_arg(d, "name")
            .ok_or_else(|| err(d.location(), format!("@{} without name", names.graph)))?;
        let url = str_arg(d, "url").unwrap_or_default();
        graph_index.insert(value_name.clone(), subgraphs.len());
        subgraphs.push(SubgraphInfo { name, url });
    }
    if subgraphs.is_empty() {
        return Err(err(
            graph_enum.location(),
            "the supergraph names no subgraph".into(),
        ));
    }
    let graph_of = |d: &Node<Directive>| -> Result<usize, SupergraphError> {
        match arg(d, "graph") {
            Some(Value::Enum(v)) => graph_index.get(v).copied().ok_or_else(|| {
                err(
                    d.location(),
                    format!("@{}(graph: {v}) names an unknown subgraph", d.name),
                )
            }),
            _ => Err(err(
                d.location(),
                format!("@{} without a graph argument", d.name),
            )),
        }
    };

    let mut types: HashMap<Name, TypeMeta> = HashMap::new();
    let mut implementers: Vec<(Name, usize, Name)> = Vec::new();
    for (type_name, ty) in &schema.types {
        let (directives, fields): (
            _,
            Option<
                &apollo_compiler::collections::IndexMap<
                    Name,
                    Component<apollo_compiler::schema::FieldDefinition>,
                >,
            >,
        ) = match ty {
            ExtendedType::Object(o) => (&o.directives, Some(&o.fields)),
            ExtendedType::Interface(i) => (&i.directives, Some(&i.fields)),
            ExtendedType::Union(u) => (&u.directives, None),
            _ => continue,
        };
        if ty.is_built_in() || links.is_spec_type(type_name) {
            continue;
        }
        let mut meta = TypeMeta::default();
        for d in directives.get_all(&names.type_) {
            let graph = graph_of(d)?;
            let pos = match meta.in_graphs.binary_search_by_key(&graph, |t| t.graph) {
                Ok(p) => p,
                Err(p) => {
                    meta.in_graphs.insert(
                        p,
                        TypeInGraph {
                            graph,
                            keys: Vec::new(),
                            interface_object: false,
                        },
                    );
                    p
                }
            };
            let entry = &mut meta.in_graphs[pos];
            if bool_arg(d, "isInterfaceObject") {
                entry.interface_object = true;
            }
            if let Some(fields) = field_set_arg(d, "key", schema)? {
                let resolvable = arg(d, "resolvable")
                    .and_then(|v| v.to_bool())
                    .unwrap_or(true);
                entry.keys.push(KeyJoin { fields, resolvable });
            }
        }
        if meta.in_graphs.is_empty() {
            // No @join__type: the type lives in every subgraph (value types of old
            // supergraphs, or hand-written ones).
            meta.in_graphs = (0..subgraphs.len())
                .map(|graph| TypeInGraph {
                    graph,
                    keys: Vec::new(),
                    interface_object: false,
                })
                .collect();
        }
        for d in directives.get_all(&names.implements) {
            let graph = graph_of(d)?;
            let interface = str_arg(d, "interface")
                .ok_or_else(|| err(d.location(), format!("@{} without interface", d.name)))?;
            let interface = Name::new(&interface).map_err(|_| {
                err(
                    d.location(),
                    format!("invalid interface name {interface:?}"),
                )
            })?;
            implementers.push((interface, graph, type_name.clone()));
        }
        for d in directives.get_all(&names.union_member) {
            let graph = graph_of(d)?;
            let member = str_arg(d, "member")
                .ok_or_else(|| err(d.location(), format!("@{} without member", d.name)))?;
            let member = Name::new(&member)
                .map_err(|_| err(d.location(), format!("invalid member name {member:?}")))?;
            meta.possible.push((graph, member));
        }
        if let Some(fields) = fields {
            let mut joined = Vec::new();
            for (field_name, field) in fields {
                let count = field.directives.get_all(&names.field).count();
                if count == 0 {
                    continue;
                }
                let mut joins = Vec::with_capacity(count);
                for d in field.directives.get_all(&names.field) {
                    let graph = match arg(d, "graph") {
                        None | Some(Value::Null) => None,
                        Some(_) => Some(graph_of(d)?),
                    };
                    joins.push(FieldJoin {
                        graph,
                        requires: field_set_arg(d, "requires", schema)?,
                        provides: field_set_arg(d, "provides", schema)?,
                        external: bool_arg(d, "external"),
                        override_from: str_arg(d, "override"),
                        override_label: str_arg(d, "overrideLabel"),
                        used_overridden: bool_arg(d, "usedOverridden"),
                        type_text: str_arg(d, "type")
                            .map(|t| t.split_whitespace().collect::<String>().into_boxed_str()),
                        type_name: str_arg(d, "type").and_then(|t| {
                            Name::new(t.trim_matches(|c: char| {
                                c == '[' || c == ']' || c == '!' || c.is_whitespace()
                            }))
                            .ok()
                        }),
                        context_args: context_args(d),
                        context_arguments: matches!(
                            arg(d, "contextArguments"),
                            Some(Value::List(items)) if !items.is_empty()
                        ),
                    });
                }
                joined.push((field_name.clone(), joins));
            }
            // Collected from an exact-size list: the map is allocated once, at its size.
            meta.fields = joined.into_iter().collect();
        }
        for t in &mut meta.in_graphs {
            t.keys.shrink_to_fit();
        }
        meta.in_graphs.shrink_to_fit();
        types.insert(type_name.clone(), meta);
    }
    for (interface, graph, object) in implementers {
        if let Some(meta) = types.get_mut(&interface) {
            meta.possible.push((graph, object));
        }
    }
    for meta in types.values_mut() {
        meta.possible.shrink_to_fit();
    }
    types.shrink_to_fit();
    Ok((subgraphs, types))
}
