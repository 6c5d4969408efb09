//! The planner's questions to the supergraph: can subgraph S resolve `T.f` (given the
//! active override labels)? which keys can jump into S? which object types can S return
//! for an abstract type? Answers come from the per-type join indexes, so planning only
//! looks at the types an operation touches.

use super::PlanError;
use super::operation::Sel;
use crate::supergraph::join_field_set::FieldSet;
use crate::supergraph::{FieldJoin, KeyJoin, Supergraph, TypeMeta};
use apollo_compiler::ast::Type;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{Name, Schema};
use std::collections::BTreeSet;

pub(crate) struct Graph<'a> {
    pub(crate) supergraph: &'a Supergraph,
    pub(crate) schema: &'a Schema,
    labels: &'a BTreeSet<String>,
}

/// A field resolvable in a subgraph.
#[derive(Clone, Copy)]
pub(crate) struct Local<'a> {
    pub(crate) requires: Option<&'a FieldSet>,
    pub(crate) provides: Option<&'a FieldSet>,
    /// Some arguments come from an ancestor's `@context` (`@fromContext`).
    pub(crate) context: bool,
    pub(crate) context_args: &'a [crate::supergraph::ContextArg],
}

/// A subgraph that can resolve a field, possibly through an `@interfaceObject` interface.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) subgraph: usize,
    pub(crate) via: Option<Name>,
}

pub(crate) fn field_set(
    fs: &FieldSet,
    coordinate: impl FnOnce() -> String,
) -> Result<&[Sel], PlanError> {
    fs.selections()
        .map_err(|message| PlanError::InvalidFieldSet {
            coordinate: coordinate(),
            message,
        })
}

impl<'a> Graph<'a> {
    pub(crate) fn new(supergraph: &'a Supergraph, labels: &'a BTreeSet<String>) -> Self {
        Graph {
            supergraph,
            schema: supergraph.supergraph_schema(),
            labels,
        }
    }

    pub(crate) fn subgraph_name(&self, s: usize) -> &str {
        &self.supergraph.subgraphs()[s].name
    }

    fn meta(&self, ty: &str) -> Option<&'a TypeMeta> {
        self.supergraph.type_meta(ty)
    }

    fn join_active(&self, j: &FieldJoin) -> bool {
        // `usedOverridden` without a label: the old subgraph keeps the field only for its
        // own keys/requires/interfaces. With a progressive label, it still resolves the
        // field while the label is inactive.
        if j.external || (j.used_overridden && j.override_label.is_none()) {
            return false;
        }
        match (&j.override_from, &j.override_label) {
            (Some(_), Some(label)) => self.labels.contains(label),
            (None, Some(label)) => !self.labels.contains(label),
            _ => true,
        }
    }

    /// `Some` when subgraph `s` resolves `ty.field` itself.
    pub(crate) fn field_local(&self, s: usize, ty: &str, field: &str) -> Option<Local<'a>> {
        let meta = self.meta(ty)?;
        meta.in_graph(s)?;
        match meta.fields.get(field) {
            None => Some(Local {
                requires: None,
                provides: None,
                context: false,
                context_args: &[],
            }),
            Some(joins) => joins
                .iter()
                .find(|j| j.graph == Some(s) && self.join_active(j))
                .map(|j| Local {
                    requires: j.requires.as_ref(),
                    provides: j.provides.as_ref(),
                    context: j.context_arguments,
                    context_args: &j.context_args,
                }),
        }
    }

    /// Is `field` a top-level field of one of `s`'s own keys for `ty`?
    pub(crate) fn own_key_field(&self, s: usize, ty: &str, field: &str) -> bool {
        self.meta(ty).and_then(|m| m.in_graph(s)).is_some_and(|tg| {
            tg.keys.iter().any(|k| {
                k.fields.selections().is_ok_and(|sels| {
                    sels.iter()
                        .any(|sel| matches!(sel, Sel::Field(f) if f.name == field))
                })
            })
        })
    }

    /// Can `s` return `ty.field` as part of a representation (resolvable, or an external
    /// field of one of its own keys)?
    fn key_field_available(&self, s: usize, ty: &str, field: &str) -> bool {
        if self.field_local(s, ty, field).is_some() {
            return true;
        }
        self.own_key_field(s, ty, field)
    }

    /// Are all fields of `sels` (a key) available from subgraph `s` on `ty`?
    pub(crate) fn obtainable(&self, s: usize, ty: &str, sels: &[Sel]) -> bool {
        sels.iter().all(|sel| match sel {
            Sel::Field(f) => {
                f.name == "__typename"
                    || (self.key_field_available(s, ty, &f.name)
                        && (f.selections.is_empty()
                            || self.field_type(ty, &f.name).is_some_and(|(inner, _)| {
                                self.obtainable(s, &inner, &f.selections)
                            })))
            }
            Sel::Fragment(fr) => self.obtainable(
                s,
                fr.type_condition.as_deref().unwrap_or(ty),
                &fr.selections,
            ),
        })
    }

    /// Keys usable to jump into `s` for `ty` (not `resolvable: false`).
    pub(crate) fn resolvable_keys(&self, s: usize, ty: &str) -> impl Iterator<Item = &'a KeyJoin> {
        self.meta(ty)
            .and_then(|m| m.in_graph(s))
            .into_iter()
            .flat_map(|tg| tg.keys.iter().filter(|k| k.resolvable))
    }

    /// Subgraphs that define `ty` (in graph order).
    pub(crate) fn type_graphs(&self, ty: &str) -> Vec<usize> {
        self.meta(ty)
            .map(|m| m.in_graphs.iter().map(|t| t.graph).collect())
            .unwrap_or_default()
    }

    /// Does `ty` have a key in any subgraph (is it an entity)?
    pub(crate) fn has_keys(&self, ty: &str) -> bool {
        self.meta(ty)
            .is_some_and(|m| m.in_graphs.iter().any(|t| !t.keys.is_empty()))
    }

    pub(crate) fn is_interface_object(&self, s: usize, ty: &str) -> bool {
        self.meta(ty)
            .and_then(|m| m.in_graph(s))
            .is_some_and(|t| t.interface_object)
    }

    /// Subgraphs that can resolve `ty.field`: directly, or via an `@interfaceObject`.
    pub(crate) fn candidates(&self, ty: &str, field: &str) -> Vec<Candidate> {
        let mut out = Vec::new();
        if let Some(meta) = self.meta(ty) {
            for tg in &meta.in_graphs {
                if !tg.interface_object && self.field_local(tg.graph, ty, field).is_some() {
                    out.push(Candidate {
                        subgraph: tg.graph,
                        via: None,
                    });
                }
            }
        }
        if let Some(object) = self.schema.get_object(ty) {
            for interface in &object.implements_interfaces {
                let Some(imeta) = self.meta(interface) else {
                    continue;
                };
                for tg in imeta.in_graphs.iter().filter(|t| t.interface_object) {
                    if self.field_local(tg.graph, interface, field).is_some()
                        && !out.iter().any(|c: &Candidate| c.subgraph == tg.graph)
                    {
                        out.push(Candidate {
                            subgraph: tg.graph,
                            via: Some(interface.name.clone()),
                        });
                    }
                }
            }
        }
        out
    }

    pub(crate) fn is_abstract(&self, ty: &str) -> bool {
        matches!(
            self.schema.types.get(ty),
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_))
        )
    }

    /// Is object type `object` a possible type of `abstract_or_object`?
    pub(crate) fn applies(&self, condition: &str, object: &str) -> bool {
        if condition == object {
            return true;
        }
        match self.schema.types.get(condition) {
            Some(ExtendedType::Interface(_)) => {
                self.schema
                    .get_object(object)
                    .is_some_and(|o| o.implements_interfaces.contains(condition))
                    || self
                        .schema
                        .get_interface(object)
                        .is_some_and(|o| o.implements_interfaces.contains(condition))
            }
            Some(ExtendedType::Union(u)) => u.members.contains(object),
            _ => false,
        }
    }

    /// Object types subgraph `s` may return for abstract type `ty`, sorted by name.
    pub(crate) fn possible_types(&self, s: usize, ty: &str) -> Vec<Name> {
        let mut out: Vec<Name> = self
            .meta(ty)
            .map(|m| {
                m.possible
                    .iter()
                    .filter(|(g, _)| *g == s)
                    .map(|(_, n)| n.clone())
                    .collect()
            })
            .unwrap_or_default();
        if out.is_empty() {
            // Old join versions have no @join__implements/@join__unionMember.
            out = self
                .schema
                .types
                .iter()
                .filter(|(name, t)| {
                    t.is_object()
                        && self.applies(ty, name)
                        && self.meta(name).is_some_and(|m| m.in_graph(s).is_some())
                })
                .map(|(n, _)| n.clone())
                .collect();
        }
        out.retain(|n| self.schema.get_object(n).is_some());
        out.sort();
        out.dedup();
        out
    }

    /// Named type of `ty.field` as subgraph `s` declares it, when it differs from the
    /// supergraph's (a subtype: `Book` where the supergraph says `Media`).
    pub(crate) fn subgraph_field_type(&self, s: usize, ty: &str, field: &str) -> Option<Name> {
        let own = self
            .meta(ty)?
            .fields
            .get(field)?
            .iter()
            .find(|j| j.graph == Some(s) && j.type_name.is_some())?
            .type_name
            .clone()?;
        let (general, _) = self.field_type(ty, field)?;
        (own != general && self.schema.types.contains_key(&own)).then_some(own)
    }

    /// The whole type of `ty.field` as subgraph `s` declares it (`String!`), for the
    /// "fields can merge" rule of the subgraph request.
    pub(crate) fn field_type_text(&self, s: usize, ty: &str, field: &str) -> String {
        let recorded = self
            .meta(ty)
            .and_then(|m| m.fields.get(field))
            .and_then(|joins| joins.iter().find(|j| j.graph == Some(s)))
            .and_then(|j| j.type_text.as_deref());
        if let Some(text) = recorded {
            return text.to_string();
        }
        let def = match self.schema.types.get(ty) {
            Some(ExtendedType::Object(o)) => o.fields.get(field).map(|f| f.ty.to_string()),
            Some(ExtendedType::Interface(i)) => i.fields.get(field).map(|f| f.ty.to_string()),
            _ => None,
        };
        def.unwrap_or_default()
    }

    /// Context names (`@context(name:)` as the supergraph spells them) set on `ty`.
    pub(crate) fn contexts_of(&self, ty: &str) -> Vec<String> {
        self.schema
            .types
            .get(ty)
            .map(|t| {
                t.directives()
                    .iter()
                    .filter(|d| d.name == "context")
                    .filter_map(|d| {
                        d.specified_argument_by_name("name")?
                            .as_str()
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Named type of `ty.field` and how many list levels wrap it.
    pub(crate) fn field_type(&self, ty: &str, field: &str) -> Option<(Name, usize)> {
        let def = match self.schema.types.get(ty)? {
            ExtendedType::Object(o) => o.fields.get(field)?,
            ExtendedType::Interface(i) => i.fields.get(field)?,
            _ => return None,
        };
        let mut depth = 0;
        let mut t: &Type = &def.ty;
        loop {
            match t {
                Type::Named(n) | Type::NonNullNamed(n) => return Some((n.clone(), depth)),
                Type::List(inner) | Type::NonNullList(inner) => {
                    depth += 1;
                    t = inner;
                }
            }
        }
    }
}
