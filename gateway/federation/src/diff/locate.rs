//! Where each change shows in the new schema's text (its line), so GitHub annotations
//! attach to the pull request's diff of the schema file.
//!
//! A change to something the new schema has (added, changed, deprecated, …) is at the
//! line of its name there. A removal has no line in the new file, and GitHub places an
//! annotation on the new side of a file only (a line number of the old file would point
//! at an unrelated line) and shows it inline only on lines in the diff. So a removal
//! points at the first line after the removed text in the new file: the next sibling
//! (field, argument, enum value, input field; or, for a type or directive, the next
//! top-level definition) of the old file that the new file still has, else the end of
//! the parent (its closing `}` or `)`), else the file's last line. That line is the
//! context line right below the deleted lines, so the annotation sits at the deletion.
//! Its parent's line would be simpler, but for a type of many fields it falls outside
//! the diff's hunk and GitHub would not show the annotation on the diff.
//!
//! Lines are counted in the SDL text given (`\n`-separated, from 1), which is the file's
//! text when the schema came from a file.

use super::Change;
use apollo_compiler::ast::{FieldDefinition, InputValueDefinition};
use apollo_compiler::parser::{FileId, SourceSpan};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{Name, Node, Schema};

/// What a change's coordinate names.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    /// `query`, `mutation`, `subscription` (`ROOT_TYPE_*` changes).
    Root(&'a str),
    Type(&'a str),
    /// A field, enum value or input field: `Type.member`.
    Member(&'a str, &'a str),
    /// `Type.field(arg:)`.
    Arg(&'a str, &'a str, &'a str),
    Directive(&'a str),
    /// `@dir(arg:)`.
    DirectiveArg(&'a str, &'a str),
}

fn target<'a>(code: &str, coordinate: &'a str) -> Option<Target<'a>> {
    if code.starts_with("ROOT_TYPE_") {
        return Some(Target::Root(coordinate));
    }
    let arg = |s: &'a str| -> Option<(&'a str, &'a str)> {
        let (head, rest) = s.split_once('(')?;
        Some((head, rest.strip_suffix(":)")?))
    };
    if let Some(d) = coordinate.strip_prefix('@') {
        return Some(match arg(d) {
            Some((d, a)) => Target::DirectiveArg(d, a),
            None => Target::Directive(d),
        });
    }
    if let Some((head, a)) = arg(coordinate) {
        let (t, f) = head.split_once('.')?;
        return Some(Target::Arg(t, f, a));
    }
    Some(match coordinate.split_once('.') {
        Some((t, m)) => Target::Member(t, m),
        None => Target::Type(coordinate),
    })
}

/// A span in the schema's own source (not the built-in definitions, not one made up).
fn parsed(span: Option<SourceSpan>) -> Option<SourceSpan> {
    span.filter(|s| s.file_id() != FileId::BUILT_IN)
}

fn start(span: Option<SourceSpan>) -> Option<usize> {
    parsed(span).map(|s| s.offset())
}

/// The offset of a span's last character (its closing `}` or `)`).
fn last(span: Option<SourceSpan>) -> Option<usize> {
    parsed(span).map(|s| s.end_offset().saturating_sub(1))
}

/// A definition that has siblings: its name's span and its whole span.
struct Member {
    name: Name,
    whole: Option<SourceSpan>,
}

/// Fields, enum values or input fields of a type, in source order.
fn members(ty: &ExtendedType) -> Vec<Member> {
    fn fields<'a>(
        defs: impl Iterator<Item = (&'a Name, &'a Node<FieldDefinition>)>,
    ) -> Vec<Member> {
        defs.map(|(name, def)| Member {
            name: name.clone(),
            whole: def.location(),
        })
        .collect()
    }
    let mut out = match ty {
        ExtendedType::Object(t) => fields(t.fields.iter().map(|(n, c)| (n, &c.node))),
        ExtendedType::Interface(t) => fields(t.fields.iter().map(|(n, c)| (n, &c.node))),
        ExtendedType::Enum(t) => t
            .values
            .iter()
            .map(|(name, v)| Member {
                name: name.clone(),
                whole: v.location(),
            })
            .collect(),
        ExtendedType::InputObject(t) => t
            .fields
            .iter()
            .map(|(name, f)| Member {
                name: name.clone(),
                whole: f.location(),
            })
            .collect(),
        ExtendedType::Scalar(_) | ExtendedType::Union(_) => Vec::new(),
    };
    out.sort_by_key(|m| start(m.whole).unwrap_or(usize::MAX));
    out
}

/// The name of a member of `ty` (its line is the change's line).
fn member_name(ty: &ExtendedType, member: &str) -> Option<SourceSpan> {
    match ty {
        ExtendedType::Object(t) => t.fields.get(member)?.name.location(),
        ExtendedType::Interface(t) => t.fields.get(member)?.name.location(),
        ExtendedType::Enum(t) => t.values.get(member)?.value.location(),
        ExtendedType::InputObject(t) => t.fields.get(member)?.name.location(),
        ExtendedType::Scalar(_) | ExtendedType::Union(_) => None,
    }
}

fn field<'s>(schema: &'s Schema, ty: &str, field: &str) -> Option<&'s Node<FieldDefinition>> {
    match schema.types.get(ty)? {
        ExtendedType::Object(t) => t.fields.get(field).map(|c| &c.node),
        ExtendedType::Interface(t) => t.fields.get(field).map(|c| &c.node),
        _ => None,
    }
}

/// The first of `old_siblings` after `removed` (by their position in the old source)
/// whose counterpart `in_new` finds: where the removed one's text was, in the new file.
fn next_surviving<T>(
    old_siblings: &[T],
    removed: &str,
    name: impl Fn(&T) -> &str,
    old_start: impl Fn(&T) -> Option<usize>,
    in_new: impl Fn(&str) -> Option<usize>,
) -> Option<usize> {
    let at = old_siblings
        .iter()
        .find(|s| name(s) == removed)
        .and_then(&old_start)?;
    let mut after: Vec<&T> = old_siblings
        .iter()
        .filter(|s| old_start(s).is_some_and(|o| o > at))
        .collect();
    after.sort_by_key(|s| old_start(s));
    after.into_iter().find_map(|s| in_new(name(s)))
}

fn arguments_offset(
    old_args: &[Node<InputValueDefinition>],
    new_args: &[Node<InputValueDefinition>],
    arg: &str,
    parent_end: Option<usize>,
) -> Option<usize> {
    if let Some(a) = new_args.iter().find(|a| a.name == arg) {
        return start(a.name.location());
    }
    next_surviving(
        old_args,
        arg,
        |a| a.name.as_str(),
        |a| start(a.location()),
        |n| {
            new_args
                .iter()
                .find(|a| a.name == n)
                .and_then(|a| start(a.location()))
        },
    )
    .or(parent_end)
}

/// Top-level definitions (types and directives, not built in) and where they start.
fn top_level(schema: &Schema) -> Vec<(String, Option<usize>)> {
    let types = schema
        .types
        .iter()
        .filter(|(_, t)| !t.is_built_in())
        .map(|(n, t)| (n.to_string(), start(t.location())));
    let directives = schema
        .directive_definitions
        .iter()
        .filter(|(_, d)| !d.is_built_in())
        .map(|(n, d)| (format!("@{n}"), start(d.location())));
    types.chain(directives).collect()
}

/// A type (`Name`) or directive (`@name`) the new schema does not have.
fn removed_top_level(old: &Schema, new: &Schema, key: &str) -> Option<usize> {
    let new_top = top_level(new);
    next_surviving(
        &top_level(old),
        key,
        |(n, _)| n.as_str(),
        |(_, o)| *o,
        |n| new_top.iter().find(|(k, _)| k == n).and_then(|(_, o)| *o),
    )
}

/// The offset in the new schema's source where `change` shows.
fn offset(change: &Change, old: &Schema, new: &Schema) -> Option<usize> {
    match target(change.code, &change.coordinate)? {
        Target::Root(root) => {
            let of = |s: &Schema| match root {
                "query" => s.schema_definition.query.clone(),
                "mutation" => s.schema_definition.mutation.clone(),
                _ => s.schema_definition.subscription.clone(),
            };
            match of(new).and_then(|n| new.types.get(&n.name).map(|t| t.name().clone())) {
                Some(name) => start(name.location()),
                None => removed_top_level(old, new, of(old)?.name.as_str()),
            }
        }
        Target::Type(t) => match new.types.get(t) {
            Some(ty) => start(ty.name().location()),
            None => removed_top_level(old, new, t),
        },
        Target::Member(t, m) => {
            let Some(new_ty) = new.types.get(t) else {
                return removed_top_level(old, new, t);
            };
            if let Some(span) = member_name(new_ty, m) {
                return start(Some(span));
            }
            let new_members = members(new_ty);
            old.types
                .get(t)
                .and_then(|old_ty| {
                    next_surviving(
                        &members(old_ty),
                        m,
                        |s| s.name.as_str(),
                        |s| start(s.whole),
                        |n| {
                            new_members
                                .iter()
                                .find(|s| s.name == n)
                                .and_then(|s| start(s.whole))
                        },
                    )
                })
                .or_else(|| last(new_ty.location()))
        }
        Target::Arg(t, f, a) => {
            let Some(new_field) = field(new, t, f) else {
                return match new.types.get(t) {
                    Some(ty) => last(ty.location()),
                    None => removed_top_level(old, new, t),
                };
            };
            let old_args = field(old, t, f).map(|d| d.arguments.as_slice());
            arguments_offset(
                old_args.unwrap_or_default(),
                &new_field.arguments,
                a,
                last(new_field.location()),
            )
        }
        Target::Directive(d) => match new.directive_definitions.get(d) {
            Some(def) => start(def.name.location()),
            None => removed_top_level(old, new, &format!("@{d}")),
        },
        Target::DirectiveArg(d, a) => {
            let Some(new_def) = new.directive_definitions.get(d) else {
                return removed_top_level(old, new, &format!("@{d}"));
            };
            let old_args = old
                .directive_definitions
                .get(d)
                .map(|def| def.arguments.as_slice());
            arguments_offset(
                old_args.unwrap_or_default(),
                &new_def.arguments,
                a,
                last(new_def.location()),
            )
        }
    }
}

/// The line (from 1) of byte `offset` in `text`; past the end, the last line that is not
/// blank.
fn line_at(text: &str, offset: usize) -> usize {
    let end = text.trim_end().len();
    let head = text.get(..offset.min(end)).unwrap_or(text);
    head.matches('\n').count() + 1
}

/// Set `Change::line` of every change: its line in `new_sdl`, the new schema's text.
pub(crate) fn locate(changes: &mut [Change], old: &Schema, new: &Schema, new_sdl: &str) {
    for change in changes {
        let offset = offset(change, old, new).unwrap_or(usize::MAX);
        change.line = Some(line_at(new_sdl, offset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_name_their_target() {
        assert_eq!(target("TYPE_ADDED", "User"), Some(Target::Type("User")));
        assert_eq!(
            target("FIELD_REMOVED", "User.name"),
            Some(Target::Member("User", "name"))
        );
        assert_eq!(
            target("ARG_REMOVED", "Query.user(id:)"),
            Some(Target::Arg("Query", "user", "id"))
        );
        assert_eq!(
            target("DIRECTIVE_REMOVED", "@cached"),
            Some(Target::Directive("cached"))
        );
        assert_eq!(
            target("ARG_REMOVED", "@cached(ttl:)"),
            Some(Target::DirectiveArg("cached", "ttl"))
        );
        assert_eq!(
            target("ROOT_TYPE_ADDED", "mutation"),
            Some(Target::Root("mutation"))
        );
        assert_eq!(target("ARG_REMOVED", "Query(id:)"), None);
    }

    #[test]
    fn lines_count_from_one_and_stop_at_the_last_line() {
        assert_eq!(line_at("a\nb\nc\n", 0), 1);
        assert_eq!(line_at("a\nb\nc\n", 2), 2);
        assert_eq!(line_at("a\nb\nc\n\n", usize::MAX), 3);
        assert_eq!(line_at("", 5), 1);
        // Not a character boundary: the whole text's line count, never a panic.
        assert_eq!(line_at("é\nx", 1), 2);
    }
}
