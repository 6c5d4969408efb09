//! Stage 4b, `@inaccessible` consistency on the composed supergraph: an accessible field,
//! argument or input field may not reference an inaccessible type
//! (`REFERENCED_INACCESSIBLE`); a type may not have only inaccessible fields or values
//! (`ONLY_INACCESSIBLE_CHILDREN`); a required argument or input field may not be
//! inaccessible (`REQUIRED_INACCESSIBLE`); a root type may not be inaccessible; a
//! directive definition's arguments may be inaccessible only when the directive is
//! executable-only, not built in and not from a linked spec (`DISALLOWED_INACCESSIBLE`).

use super::{Diagnostic, Diagnostics};
use apollo_compiler::Schema;
use apollo_compiler::ast::DirectiveList;
use apollo_compiler::schema::ExtendedType;

pub(crate) fn check(schema: &Schema, diags: &mut Diagnostics) {
    let hidden_dirs = |d: &DirectiveList| d.get("inaccessible").is_some();
    let hidden_type = |name: &str| {
        schema
            .types
            .get(name)
            .is_some_and(|t| t.directives().get("inaccessible").is_some())
    };
    let mut push = |code: &'static str, coord: String, message: String| {
        diags.push(Diagnostic::error(code, message).at(coord));
    };
    for (name, ty) in &schema.types {
        if ty.is_built_in() || name.contains("__") || hidden_type(name) {
            continue;
        }
        let mut children = 0;
        let mut visible = 0;
        if let Some(fields) = super::validate::fields_of(ty) {
            for (f, def) in fields {
                children += 1;
                if hidden_dirs(&def.directives) {
                    continue;
                }
                visible += 1;
                let coord = format!("{name}.{f}");
                let target = def.ty.inner_named_type();
                if hidden_type(target) {
                    push(
                        "REFERENCED_INACCESSIBLE",
                        coord.clone(),
                        format!(
                            "Type \"{target}\" is @inaccessible but is referenced by \"{coord}\", which is in the API schema."
                        ),
                    );
                }
                for a in &def.arguments {
                    let acoord = format!("{coord}({}:)", a.name);
                    if hidden_dirs(&a.directives) {
                        if a.is_required() {
                            push(
                                "REQUIRED_INACCESSIBLE",
                                acoord.clone(),
                                format!(
                                    "Argument \"{acoord}\" is @inaccessible but is a required argument of its field."
                                ),
                            );
                        }
                        continue;
                    }
                    if hidden_type(a.ty.inner_named_type()) {
                        push(
                            "REFERENCED_INACCESSIBLE",
                            acoord.clone(),
                            format!(
                                "Type \"{}\" is @inaccessible but is referenced by \"{acoord}\", which is in the API schema.",
                                a.ty.inner_named_type()
                            ),
                        );
                    }
                }
            }
        }
        match ty {
            ExtendedType::InputObject(io) => {
                for (f, def) in &io.fields {
                    children += 1;
                    let coord = format!("{name}.{f}");
                    if hidden_dirs(&def.directives) {
                        if def.is_required() {
                            push(
                                "REQUIRED_INACCESSIBLE",
                                coord.clone(),
                                format!(
                                    "Input field \"{coord}\" is @inaccessible but is a required input field of its type."
                                ),
                            );
                        }
                        continue;
                    }
                    visible += 1;
                    if hidden_type(def.ty.inner_named_type()) {
                        push(
                            "REFERENCED_INACCESSIBLE",
                            coord.clone(),
                            format!(
                                "Type \"{}\" is @inaccessible but is referenced by \"{coord}\", which is in the API schema.",
                                def.ty.inner_named_type()
                            ),
                        );
                    }
                }
            }
            ExtendedType::Enum(e) => {
                for v in e.values.values() {
                    children += 1;
                    if !hidden_dirs(&v.directives) {
                        visible += 1;
                    }
                }
            }
            _ => {}
        }
        if children > 0 && visible == 0 {
            push(
                "ONLY_INACCESSIBLE_CHILDREN",
                name.to_string(),
                format!(
                    "Type \"{name}\" is in the API schema but all of its members are @inaccessible."
                ),
            );
        }
    }
    directives(schema, &mut push);
    for root in [
        &schema.schema_definition.query,
        &schema.schema_definition.mutation,
        &schema.schema_definition.subscription,
    ]
    .into_iter()
    .flatten()
    {
        if hidden_type(&root.name) {
            push(
                "QUERY_ROOT_TYPE_INACCESSIBLE",
                root.name.to_string(),
                format!(
                    "Type \"{}\" is @inaccessible but is the root type, which must be in the API schema.",
                    root.name
                ),
            );
        }
    }
}

/// `DISALLOWED_INACCESSIBLE` on directive definitions (Apollo's
/// `validateInaccessibleElements`): no `@inaccessible` argument on a built-in directive,
/// on one from a `@link`ed spec (composed directives included) or on one that may be
/// applied to type-system locations; an executable directive's required argument may
/// not be inaccessible (`REQUIRED_INACCESSIBLE`).
fn directives(schema: &Schema, push: &mut impl FnMut(&'static str, String, String)) {
    use apollo_compiler::schema::DirectiveLocation as L;
    let linked = linked_names(schema);
    for (name, def) in &schema.directive_definitions {
        let hidden: Vec<_> = def
            .arguments
            .iter()
            .filter(|a| a.directives.get("inaccessible").is_some())
            .collect();
        if hidden.is_empty() {
            continue;
        }
        let coord = format!("@{name}");
        let type_system: Vec<String> = def
            .locations
            .iter()
            .filter(|l| {
                !matches!(
                    l,
                    L::Query
                        | L::Mutation
                        | L::Subscription
                        | L::Field
                        | L::FragmentDefinition
                        | L::FragmentSpread
                        | L::InlineFragment
                        | L::VariableDefinition
                )
            })
            .map(|l| l.to_string())
            .collect();
        let message = if def.is_built_in() {
            format!("Built-in directive \"{coord}\" cannot use @inaccessible.")
        } else if linked.iter().any(|(prefix, imports)| {
            name.as_str() == prefix
                || name.starts_with(&format!("{prefix}__"))
                || imports.contains(&coord)
        }) {
            format!("Core feature directive \"{coord}\" cannot use @inaccessible.")
        } else if !type_system.is_empty() {
            format!(
                "Directive \"{coord}\" cannot use @inaccessible because it may be applied to these type-system locations: {}.",
                type_system.join(", ")
            )
        } else {
            for a in hidden.iter().filter(|a| a.is_required()) {
                let acoord = format!("{coord}({}:)", a.name);
                push(
                    "REQUIRED_INACCESSIBLE",
                    acoord.clone(),
                    format!(
                        "Argument \"{acoord}\" is @inaccessible but is a required argument of its directive."
                    ),
                );
            }
            continue;
        };
        push("DISALLOWED_INACCESSIBLE", coord, message);
    }
}

/// The schema's `@link`s: the name each spec is used under (`as:` or the URL's name)
/// and the directives it imports (`@name`, under their local names).
fn linked_names(schema: &Schema) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for link in schema.schema_definition.directives.get_all("link") {
        let Some(url) = link
            .specified_argument_by_name("url")
            .and_then(|v| v.as_str())
        else {
            continue;
        };
        let mut segments = url.trim_end_matches('/').rsplit('/');
        let _version = segments.next();
        let spec = link
            .specified_argument_by_name("as")
            .and_then(|v| v.as_str())
            .or_else(|| segments.next())
            .unwrap_or_default()
            .to_string();
        let imports = link
            .specified_argument_by_name("import")
            .and_then(|v| v.as_list())
            .unwrap_or_default()
            .iter()
            .filter_map(|i| {
                if let Some(s) = i.as_str() {
                    return Some(s.to_string());
                }
                let obj = i.as_object()?;
                let field = |k: &str| {
                    obj.iter()
                        .find(|(n, _)| n == k)
                        .and_then(|(_, v)| v.as_str())
                };
                field("as").or_else(|| field("name")).map(str::to_string)
            })
            .collect();
        out.push((spec, imports));
    }
    out
}
