//! Response shaping: the client's operation, walked over the merged subgraph data.
//!
//! Fields come out in requested order under their response keys; fragments apply by
//! the object's concrete type (its `__typename`, checked against the API schema);
//! `@skip`/`@include` are honoured; `__typename` is the concrete type name; extra fields
//! the planner fetched never leak. A null in a non-null position raises a field error
//! (unless a subgraph error already explains it) and nulls the nearest nullable parent,
//! up to `data: null`, per the spec.

use apollo_compiler::ast::{self, Type};
use apollo_compiler::executable::{ExecutableDocument, Field, Operation, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Node, Schema};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::{ErrorCode, GraphQLError, Location, PathElem};

pub(super) struct Shaper<'a> {
    pub schema: &'a Valid<Schema>,
    pub document: &'a Valid<ExecutableDocument>,
    pub variables: &'a Map<String, Value>,
    /// Introspection results (`__schema`/`__type` root fields by response key).
    pub introspection: Option<&'a Map<String, Value>>,
    pub errors: &'a mut Vec<GraphQLError>,
    /// Paths a failed fetch should have filled (its error explains nulls under them).
    pub failed_paths: &'a [Vec<PathElem>],
}

type Grouped<'d> = IndexMap<&'d str, Vec<&'d Node<Field>>>;

impl<'a> Shaper<'a> {
    /// The response's `data`: an object, or null when a non-null root field is null.
    pub fn shape(&mut self, operation: &'a Operation, data: &Value) -> Value {
        let root = operation.object_type().as_str();
        let mut grouped = Grouped::new();
        self.collect_fields(root, &operation.selection_set, &mut grouped);
        let empty = Map::new();
        let object = data.as_object().unwrap_or(&empty);
        let mut path = Vec::new();
        match self.shape_object(root, &grouped, object, &mut path, true) {
            Some(map) => Value::Object(map),
            None => Value::Null,
        }
    }

    fn include(&self, directives: &ast::DirectiveList) -> bool {
        let flag = |name: &str| {
            directives
                .get(name)
                .and_then(|d| d.specified_argument_by_name("if"))
                .map(|v| match v.as_ref() {
                    ast::Value::Boolean(b) => *b,
                    ast::Value::Variable(var) => self
                        .variables
                        .get(var.as_str())
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    _ => false,
                })
        };
        flag("skip") != Some(true) && flag("include") != Some(false)
    }

    fn applies(&self, type_condition: Option<&str>, object_type: &str) -> bool {
        match type_condition {
            None => true,
            Some(c) => c == object_type || self.schema.is_subtype(c, object_type),
        }
    }

    /// CollectFields of the spec, for one concrete object type.
    fn collect_fields(
        &self,
        object_type: &str,
        selection_set: &'a SelectionSet,
        out: &mut Grouped<'a>,
    ) {
        for selection in &selection_set.selections {
            match selection {
                Selection::Field(field) => {
                    if self.include(&field.directives) {
                        out.entry(field.response_key().as_str())
                            .or_default()
                            .push(field);
                    }
                }
                Selection::FragmentSpread(spread) => {
                    if !self.include(&spread.directives) {
                        continue;
                    }
                    if let Some(fragment) = self.document.fragments.get(&spread.fragment_name)
                        && self.applies(Some(fragment.type_condition().as_str()), object_type)
                    {
                        self.collect_fields(object_type, &fragment.selection_set, out);
                    }
                }
                Selection::InlineFragment(inline) => {
                    if self.include(&inline.directives)
                        && self.applies(
                            inline.type_condition.as_ref().map(|n| n.as_str()),
                            object_type,
                        )
                    {
                        self.collect_fields(object_type, &inline.selection_set, out);
                    }
                }
            }
        }
    }

    /// `None` = a non-null field is null: the caller must null this object.
    fn shape_object(
        &mut self,
        type_name: &str,
        grouped: &Grouped<'a>,
        object: &Map<String, Value>,
        path: &mut Vec<PathElem>,
        is_root: bool,
    ) -> Option<Map<String, Value>> {
        let mut out = Map::with_capacity(grouped.len());
        for (key, fields) in grouped {
            let field = fields[0];
            let name = field.name.as_str();
            if name == "__typename" {
                out.insert((*key).to_string(), Value::String(type_name.to_string()));
                continue;
            }
            if is_root && (name == "__schema" || name == "__type") {
                let v = self
                    .introspection
                    .and_then(|i| i.get(*key))
                    .cloned()
                    .unwrap_or(Value::Null);
                out.insert((*key).to_string(), v);
                continue;
            }
            let raw = object.get(*key).unwrap_or(&Value::Null);
            path.push(PathElem::Key((*key).to_string()));
            let value = self.complete(&field.definition.ty, raw, fields, type_name, path);
            path.pop();
            out.insert((*key).to_string(), value?);
        }
        Some(out)
    }

    /// CompleteValue; `None` = null in a non-null position (propagate).
    fn complete(
        &mut self,
        ty: &Type,
        raw: &Value,
        fields: &[&'a Node<Field>],
        parent: &str,
        path: &mut Vec<PathElem>,
    ) -> Option<Value> {
        let value = match ty {
            Type::Named(name) | Type::NonNullNamed(name) => {
                self.complete_named(name.as_str(), raw, fields, path)
            }
            Type::List(item) | Type::NonNullList(item) => match raw {
                Value::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    let mut nulled = false;
                    for (i, item_raw) in items.iter().enumerate() {
                        path.push(PathElem::Index(i));
                        let v = self.complete(item, item_raw, fields, parent, path);
                        path.pop();
                        match v {
                            Some(v) => out.push(v),
                            None => {
                                nulled = true;
                                break;
                            }
                        }
                    }
                    if nulled {
                        Value::Null
                    } else {
                        Value::Array(out)
                    }
                }
                _ => Value::Null,
            },
        };
        if value.is_null() && ty.is_non_null() {
            // A null produced below (propagation) already has its error; only a null
            // that came from the data gets one here.
            if raw.is_null() {
                self.null_error(fields[0], parent, path);
            }
            return None;
        }
        Some(value)
    }

    fn complete_named(
        &mut self,
        type_name: &str,
        raw: &Value,
        fields: &[&'a Node<Field>],
        path: &mut Vec<PathElem>,
    ) -> Value {
        if raw.is_null() {
            return Value::Null;
        }
        let concrete = match self.schema.types.get(type_name) {
            Some(ExtendedType::Object(_)) => type_name,
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => {
                match raw.get("__typename").and_then(Value::as_str) {
                    Some(t)
                        if self.schema.is_subtype(type_name, t)
                            && matches!(
                                self.schema.types.get(t),
                                Some(ExtendedType::Object(_))
                            ) =>
                    {
                        t
                    }
                    other => {
                        let message = format!(
                            "abstract type {type_name} must resolve to one of its object types, got {}",
                            other.unwrap_or("no __typename")
                        );
                        self.errors.push(
                            GraphQLError::new(ErrorCode::InternalServerError, message)
                                .with_path(path.clone()),
                        );
                        return Value::Null;
                    }
                }
            }
            // Scalars and enums are passed through as the subgraph sent them.
            _ => return raw.clone(),
        };
        let Value::Object(object) = raw else {
            return Value::Null;
        };
        let mut grouped = Grouped::new();
        for field in fields {
            self.collect_fields(concrete, &field.selection_set, &mut grouped);
        }
        match self.shape_object(concrete, &grouped, object, path, false) {
            Some(map) => Value::Object(map),
            None => Value::Null,
        }
    }

    /// Record "non-null field is null" unless an error already covers this path.
    fn null_error(&mut self, field: &Node<Field>, parent: &str, path: &[PathElem]) {
        let covered = self.errors.iter().any(|e| match &e.path {
            Some(p) => p.starts_with(path) || path.starts_with(p),
            None => false,
        });
        if covered || self.failed_paths.iter().any(|p| path.starts_with(p)) {
            return;
        }
        let locations = field
            .location()
            .and_then(|l| l.line_column(&self.document.sources))
            .map(|lc| {
                vec![Location {
                    line: lc.line,
                    column: lc.column,
                }]
            })
            .unwrap_or_default();
        let message = format!(
            "Cannot return null for non-nullable field {}.{}",
            parent, field.name
        );
        self.errors.push(
            GraphQLError::new(ErrorCode::NullValueInNonNullField, message)
                .with_locations(locations)
                .with_path(path.to_vec()),
        );
    }
}
