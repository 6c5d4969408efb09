//! Stage 4b, `@inaccessible` consistency on the composed supergraph: an accessible field,
//! argument or input field may not reference an inaccessible type
//! (`REFERENCED_INACCESSIBLE`); a type may not have only inaccessible fields or values
//! (`ONLY_INACCESSIBLE_CHILDREN`); a required argument or input field may not be
//! inaccessible (`REQUIRED_INACCESSIBLE`); a root type may not be inaccessible.

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
        let fields = match ty {
            ExtendedType::Object(o) => Some(&o.fields),
            ExtendedType::Interface(i) => Some(&i.fields),
            _ => None,
        };
        if let Some(fields) = fields {
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
