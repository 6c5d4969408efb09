//! API schema derivation: the supergraph minus the `@link`/join machinery, minus every
//! spec directive that is not for clients, minus `@inaccessible` elements (types, fields,
//! arguments, enum values, input fields, union members, interface implementations).
//! One pass over the types; the result is validated again.
//!
//! The API schema shares every node it does not change with the supergraph schema
//! (`Node` is reference-counted, `make_mut` copies): a field without spec directives or
//! hidden arguments is not copied.

use super::links::Links;
use super::{SupergraphError, first_diagnostic};
use apollo_compiler::ast::{DirectiveList, InputValueDefinition};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node, Schema};
use std::collections::HashSet;

pub(crate) fn derive(
    supergraph: &Valid<Schema>,
    links: &Links,
) -> Result<Valid<Schema>, SupergraphError> {
    let mut schema: Schema = supergraph.as_ref().clone();
    let inaccessible = links
        .get("inaccessible")
        .map(|l| l.directive("inaccessible"))
        .unwrap_or_default();
    let spec = &links.spec_directives;
    let is_hidden = |d: &DirectiveList| !inaccessible.is_empty() && d.get(&inaccessible).is_some();

    // Types to remove: spec types and inaccessible types.
    let removed: HashSet<Name> = schema
        .types
        .iter()
        .filter(|(name, ty)| {
            !ty.is_built_in()
                && (links.is_spec_type(name)
                    || (!inaccessible.is_empty() && ty.directives().get(&inaccessible).is_some()))
        })
        .map(|(name, _)| name.clone())
        .collect();
    schema.types.retain(|name, _| !removed.contains(name));

    let keep_directive = |name: &Name| !spec.contains(name.as_str());
    let args_need_cleaning = |args: &[Node<InputValueDefinition>]| {
        args.iter().any(|a| {
            is_hidden(&a.directives)
                || removed.contains(a.ty.inner_named_type())
                || a.directives.iter().any(|d| !keep_directive(&d.name))
        })
    };
    let clean_args = |args: &mut Vec<Node<InputValueDefinition>>| {
        args.retain(|a| !is_hidden(&a.directives) && !removed.contains(a.ty.inner_named_type()));
        for a in args.iter_mut() {
            if a.directives.iter().any(|d| !keep_directive(&d.name)) {
                a.make_mut().directives.retain(|d| keep_directive(&d.name));
            }
        }
    };

    for ty in schema.types.values_mut() {
        match ty {
            ExtendedType::Object(o) => {
                let o = o.make_mut();
                o.directives.retain(|d| keep_directive(&d.name));
                o.implements_interfaces
                    .retain(|i| !removed.contains(&i.name));
                o.fields.retain(|_, f| {
                    !is_hidden(&f.directives) && !removed.contains(f.ty.inner_named_type())
                });
                for f in o.fields.values_mut() {
                    if f.directives.iter().any(|d| !keep_directive(&d.name))
                        || args_need_cleaning(&f.arguments)
                    {
                        let f = f.make_mut();
                        f.directives.retain(|d| keep_directive(&d.name));
                        clean_args(&mut f.arguments);
                    }
                }
            }
            ExtendedType::Interface(i) => {
                let i = i.make_mut();
                i.directives.retain(|d| keep_directive(&d.name));
                i.implements_interfaces
                    .retain(|n| !removed.contains(&n.name));
                i.fields.retain(|_, f| {
                    !is_hidden(&f.directives) && !removed.contains(f.ty.inner_named_type())
                });
                for f in i.fields.values_mut() {
                    if f.directives.iter().any(|d| !keep_directive(&d.name))
                        || args_need_cleaning(&f.arguments)
                    {
                        let f = f.make_mut();
                        f.directives.retain(|d| keep_directive(&d.name));
                        clean_args(&mut f.arguments);
                    }
                }
            }
            ExtendedType::Union(u) => {
                let u = u.make_mut();
                u.directives.retain(|d| keep_directive(&d.name));
                u.members.retain(|m| !removed.contains(&m.name));
            }
            ExtendedType::Enum(e) => {
                let e = e.make_mut();
                e.directives.retain(|d| keep_directive(&d.name));
                e.values.retain(|_, v| !is_hidden(&v.directives));
                for v in e.values.values_mut() {
                    if v.directives.iter().any(|d| !keep_directive(&d.name)) {
                        v.make_mut().directives.retain(|d| keep_directive(&d.name));
                    }
                }
            }
            ExtendedType::InputObject(io) => {
                let io = io.make_mut();
                io.directives.retain(|d| keep_directive(&d.name));
                io.fields.retain(|_, f| {
                    !is_hidden(&f.directives) && !removed.contains(f.ty.inner_named_type())
                });
                for f in io.fields.values_mut() {
                    if f.directives.iter().any(|d| !keep_directive(&d.name)) {
                        f.make_mut().directives.retain(|d| keep_directive(&d.name));
                    }
                }
            }
            ExtendedType::Scalar(s) => {
                if s.directives.iter().any(|d| !keep_directive(&d.name)) {
                    s.make_mut().directives.retain(|d| keep_directive(&d.name));
                }
            }
        }
    }

    schema
        .directive_definitions
        .retain(|name, _| keep_directive(name));
    for def in schema.directive_definitions.values_mut() {
        if def.arguments.iter().any(|a| {
            is_hidden(&a.directives) || a.directives.iter().any(|d| !keep_directive(&d.name))
        }) {
            clean_args(&mut def.make_mut().arguments);
        }
    }
    let sd = schema.schema_definition.make_mut();
    sd.directives.retain(|d| keep_directive(&d.name));
    for root in [&mut sd.query, &mut sd.mutation, &mut sd.subscription] {
        if root.as_ref().is_some_and(|r| removed.contains(&r.name)) {
            *root = None;
        }
    }

    // Clients may send `@defer` (the gateway delivers incrementally); it is not a
    // built-in of apollo-compiler's, so operations would not validate without it.
    // `Supergraph::api_schema_sdl` leaves it out of the printed schema.
    if !schema.directive_definitions.contains_key("defer")
        && let Some(defer) = defer_definition()
    {
        schema
            .directive_definitions
            .insert(defer.name.clone(), defer);
    }
    schema.validate().map_err(|e| {
        let (line, message, others) = first_diagnostic(&e.errors);
        SupergraphError::ApiSchema {
            line,
            message,
            others,
        }
    })
}

/// `directive @defer(label: String, if: Boolean! = true) on FRAGMENT_SPREAD | INLINE_FRAGMENT`,
/// as the incremental delivery RFC defines it.
pub(crate) fn defer_definition()
-> Option<apollo_compiler::Node<apollo_compiler::ast::DirectiveDefinition>> {
    const SDL: &str =
        "directive @defer(label: String, if: Boolean! = true) on FRAGMENT_SPREAD | INLINE_FRAGMENT";
    let schema = Schema::builder()
        .adopt_orphan_extensions()
        .parse(SDL, "defer.graphql")
        .build()
        .ok()?;
    schema.directive_definitions.get("defer").cloned()
}
