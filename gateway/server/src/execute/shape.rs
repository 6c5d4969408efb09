//! Response shaping: the client's operation, walked over the merged subgraph data.
//!
//! Fields come out in requested order under their response keys; fragments apply by
//! the object's concrete type (its `__typename`, checked against the API schema);
//! `@skip`/`@include` are honoured; `__typename` is the concrete type name; extra fields
//! the planner fetched never leak. A null in a non-null position raises a field error
//! (unless a subgraph error already explains it) and nulls the nearest nullable parent,
//! up to `data: null`, per the spec.
//!
//! Values are checked against the API schema as the spec's value completion says: an
//! enum value the API schema lacks (`@inaccessible`, unknown), a mistyped built-in scalar
//! (`Int` outside 32 bits or with a fraction, a string for `Boolean`, ...), a list where
//! none is declared or the reverse, a non-object for an object type: the field is null
//! with a `SUBGRAPH_INVALID_VALUE` error at its path, and a non-null position propagates.
//! `Float` accepts integers, `Int` a float without fraction (sent as an integer), `ID`
//! strings and integers (an integer is sent as a string: `ID` serializes as `String`);
//! custom scalars pass through whatever JSON they are. The merged data is shaped in place
//! (fields reordered, extra ones dropped, leaves coerced where they stand): it becomes
//! the response, with no object, list or leaf copied; the fields of a selection are
//! collected once per concrete type (not once per object), and the response path is a
//! stack of borrowed keys that becomes owned only in an error.

use apollo_compiler::ast::{self, Type};
use apollo_compiler::executable::{ExecutableDocument, Field, Operation, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Node, Schema};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::value::{Key, Obj, Val};
use super::{Step, agree, owned};
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
    /// Collected fields by (the field list's storage, its length, concrete type).
    pub groups: GroupCache<'a>,
}

/// The fields of one response key, with what shaping needs of them resolved once per
/// grouping (not once per object): the output key and the field's named type.
pub(super) struct Group<'d> {
    fields: Vec<&'d Node<Field>>,
    key: Key,
    /// The field's named type in the API schema (`None`: a type it lacks, passed through).
    named: Option<&'d ExtendedType>,
}

type Grouped<'d> = IndexMap<&'d str, Group<'d>>;

/// Fields collected for one concrete type under one list of fields (every object at one
/// position of the response shares it). Keyed by the address of the field list, which
/// lives in a cached or the root [`Grouped`] for the whole shaping, so no two lists share
/// an address while it is in use.
///
/// FxHash: looked up once per object shaped, and its keys are the gateway's own (an
/// address, a length, a type name from the API schema), never chosen by a client or a
/// subgraph.
pub(super) type GroupCache<'a> =
    rustc_hash::FxHashMap<(usize, usize, &'a str), std::rc::Rc<Grouped<'a>>>;

impl<'a> Shaper<'a> {
    /// The response's `data`: an object, or null when a non-null root field is null.
    /// `data` is shaped in place and taken (it is left null).
    pub fn shape(&mut self, operation: &'a Operation, data: &mut Val) -> Val {
        let root = operation.object_type().as_str();
        let mut grouped = Grouped::new();
        self.collect_fields(root, &operation.selection_set, &mut grouped);
        self.resolve(&mut grouped);
        let mut shaped = std::mem::take(data);
        if !shaped.is_object() {
            shaped = Val::Object(Obj::new());
        }
        let mut path = Vec::new();
        let whole = match &mut shaped {
            Val::Object(object) => self.shape_object(root, &grouped, object, &mut path, true),
            _ => false,
        };
        if whole { shaped } else { Val::Null }
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

    /// Fills in each group's named type (after [`Self::collect_fields`]).
    fn resolve(&self, grouped: &mut Grouped<'a>) {
        let schema: &'a Schema = self.schema;
        for group in grouped.values_mut() {
            let name = group.fields[0].definition.ty.inner_named_type();
            group.named = schema.types.get(name);
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
                        let key = field.response_key().as_str();
                        out.entry(key)
                            .or_insert_with(|| Group {
                                fields: Vec::new(),
                                key: Key::new(key),
                                named: None,
                            })
                            .fields
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

    /// Shapes `object` in place: its fields become the selection's, in the requested
    /// order, and the others (keys and `@requires` inputs the planner fetched) are
    /// dropped. No object or list of the response is allocated anew: the merged tree
    /// becomes the response. `false` = a non-null field is null: the caller must null
    /// this object.
    fn shape_object(
        &mut self,
        type_name: &str,
        grouped: &Grouped<'a>,
        object: &mut Obj,
        path: &mut Vec<Step<'a>>,
        is_root: bool,
    ) -> bool {
        let slots = object.fields_mut();
        for (i, (key, group)) in grouped.iter().enumerate() {
            // Fields before `i` are in place; the first at or after it with this key
            // moves to `i` (the others keep their order, so of duplicate keys the first
            // one sent is always the one found), or a null is put there.
            match slots[i..].iter().position(|(k, _)| k == key) {
                Some(0) => {}
                Some(at) => slots[i..=i + at].rotate_right(1),
                None => slots.insert(i, (group.key.clone(), Val::Null)),
            }
            let fields = group.fields.as_slice();
            let field = fields[0];
            let name = field.name.as_str();
            let slot = &mut slots[i].1;
            if name == "__typename" {
                *slot = Val::String(Key::new(type_name));
                continue;
            }
            if is_root && (name == "__schema" || name == "__type") {
                *slot = self
                    .introspection
                    .and_then(|i| i.get(*key))
                    .map_or(Val::Null, |v| Val::from(v.clone()));
                continue;
            }
            path.push(Step::Key(key));
            let ok = self.complete(
                &field.definition.ty,
                group.named,
                slot,
                fields,
                type_name,
                path,
            );
            path.pop();
            if !ok {
                return false;
            }
        }
        slots.truncate(grouped.len());
        true
    }

    /// CompleteValue, in place; `false` = null in a non-null position (propagate).
    fn complete(
        &mut self,
        ty: &'a Type,
        named: Option<&'a ExtendedType>,
        slot: &mut Val,
        fields: &[&'a Node<Field>],
        parent: &str,
        path: &mut Vec<Step<'a>>,
    ) -> bool {
        let raw_is_null = slot.is_null();
        match ty {
            Type::Named(name) | Type::NonNullNamed(name) => {
                self.complete_named(name.as_str(), named, slot, fields, parent, path);
            }
            Type::List(item) | Type::NonNullList(item) => match &mut *slot {
                Val::Array(items) => {
                    let mut nulled = false;
                    for (i, item_slot) in items.iter_mut().enumerate() {
                        path.push(Step::Index(i));
                        let ok = self.complete(item, named, item_slot, fields, parent, path);
                        path.pop();
                        if !ok {
                            nulled = true;
                            break;
                        }
                    }
                    if nulled {
                        *slot = Val::Null;
                    }
                }
                Val::Null => {}
                other => {
                    let got = Got::of(other);
                    self.invalid_value(fields[0], parent, path, Expected::List, got);
                    *slot = Val::Null;
                }
            },
        }
        if slot.is_null() && ty.is_non_null() {
            // A null produced below (propagation) already has its error; only a null
            // that came from the data gets one here.
            if raw_is_null {
                self.null_error(fields[0], parent, path);
            }
            return false;
        }
        true
    }

    /// Completes a value of a named type in place (an invalid one becomes null).
    fn complete_named(
        &mut self,
        type_name: &'a str,
        ty: Option<&'a ExtendedType>,
        slot: &mut Val,
        fields: &[&'a Node<Field>],
        parent: &str,
        path: &mut Vec<Step<'a>>,
    ) {
        if slot.is_null() {
            return;
        }
        if let Some(ExtendedType::Scalar(_) | ExtendedType::Enum(_)) | None = ty {
            match coerce_leaf(type_name, ty, slot) {
                Ok(None) => {}
                Ok(Some(coerced)) => *slot = coerced,
                Err(got) => {
                    let expected = match ty {
                        Some(ExtendedType::Enum(_)) => Expected::Enum(type_name),
                        _ => Expected::Scalar(type_name),
                    };
                    self.invalid_value(fields[0], parent, path, expected, got);
                    *slot = Val::Null;
                }
            }
            return;
        }
        let Val::Object(object) = &mut *slot else {
            let got = Got::of(slot);
            self.invalid_value(fields[0], parent, path, Expected::Object(type_name), got);
            *slot = Val::Null;
            return;
        };
        let schema = self.schema;
        let concrete: &'a str = match ty {
            Some(ExtendedType::Object(_)) => type_name,
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => {
                let named = object.get("__typename").and_then(Val::as_str);
                // The schema's own name, so that it outlives the data.
                match named.and_then(|t| schema.types.get_key_value(t)) {
                    Some((t, ExtendedType::Object(_)))
                        if schema.is_subtype(type_name, t.as_str()) =>
                    {
                        t.as_str()
                    }
                    _ => {
                        let message = format!(
                            "abstract type {type_name} must resolve to one of its object types, got {}",
                            named.unwrap_or("no __typename")
                        );
                        self.errors.push(
                            GraphQLError::new(ErrorCode::InternalServerError, message)
                                .with_path(owned(path)),
                        );
                        *slot = Val::Null;
                        return;
                    }
                }
            }
            // Input objects cannot be output types in a valid schema.
            _ => {
                *slot = Val::Null;
                return;
            }
        };
        let key = (fields.as_ptr() as usize, fields.len(), concrete);
        let grouped = match self.groups.get(&key) {
            Some(g) => g.clone(),
            None => {
                let mut grouped = Grouped::new();
                for field in fields {
                    self.collect_fields(concrete, &field.selection_set, &mut grouped);
                }
                self.resolve(&mut grouped);
                let g = std::rc::Rc::new(grouped);
                self.groups.insert(key, g.clone());
                g
            }
        };
        if !self.shape_object(concrete, &grouped, object, path, false) {
            *slot = Val::Null;
        }
    }

    /// Record "non-null field is null" unless an error already covers this path.
    fn null_error(&mut self, field: &Node<Field>, parent: &str, path: &[Step<'a>]) {
        let covered = self.errors.iter().any(|e| match &e.path {
            // One path is a prefix of the other.
            Some(p) => agree(p, path),
            None => false,
        });
        if covered
            || self
                .failed_paths
                .iter()
                .any(|p| p.len() <= path.len() && agree(p, path))
        {
            return;
        }
        let message = format!(
            "Cannot return null for non-nullable field {}.{}",
            parent, field.name
        );
        self.errors.push(
            GraphQLError::new(ErrorCode::NullValueInNonNullField, message)
                .with_locations(self.locations(field))
                .with_path(owned(path)),
        );
    }

    /// Record a subgraph value that the field's type in the API schema does not allow
    /// (the caller answers null). The message names the field and the kind of value, not
    /// the value: it may be an `@inaccessible` enum value the API schema hides.
    fn invalid_value(
        &mut self,
        field: &Node<Field>,
        parent: &str,
        path: &[Step<'a>],
        expected: Expected<'_>,
        got: Got,
    ) {
        let message = match got {
            Got::NotInEnum => format!(
                "Invalid value for {parent}.{}: not a value of {expected}",
                field.name
            ),
            _ => format!(
                "Invalid value for {parent}.{}: expected {expected}, got {got}",
                field.name
            ),
        };
        self.errors.push(
            GraphQLError::new(ErrorCode::SubgraphInvalidValue, message)
                .with_locations(self.locations(field))
                .with_path(owned(path)),
        );
    }

    fn locations(&self, field: &Node<Field>) -> Vec<Location> {
        field
            .location()
            .and_then(|l| l.line_column(&self.document.sources))
            .map(|lc| {
                vec![Location {
                    line: lc.line,
                    column: lc.column,
                }]
            })
            .unwrap_or_default()
    }
}

/// Result coercion of a leaf value (spec "Scalars" and "Enums", Result Coercion) against
/// its type in the API schema (`ty` is `None` for a type the schema lacks: passed
/// through). `Ok(None)` keeps the subgraph's value as it is, `Ok(Some(v))` replaces it
/// (an `Int` sent as a float without fraction, an integer `ID`), `Err` says what the
/// subgraph sent instead.
fn coerce_leaf(type_name: &str, ty: Option<&ExtendedType>, raw: &Val) -> Result<Option<Val>, Got> {
    if let Some(ExtendedType::Enum(enum_type)) = ty {
        return match raw {
            Val::String(s) if enum_type.values.contains_key(s.as_str()) => Ok(None),
            Val::String(_) => Err(Got::NotInEnum),
            other => Err(Got::of(other)),
        };
    }
    match (type_name, raw) {
        ("Int", Val::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return match i32::try_from(i) {
                    Ok(_) => Ok(None),
                    Err(_) => Err(Got::OutOfRange),
                };
            }
            if n.is_u64() {
                return Err(Got::OutOfRange);
            }
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 || f.is_nan() {
                Err(Got::NonInteger)
            } else if f < f64::from(i32::MIN) || f > f64::from(i32::MAX) {
                Err(Got::OutOfRange)
            } else {
                // In range and integral: the cast is exact.
                Ok(Some(Val::Number((f as i32).into())))
            }
        }
        ("Float", Val::Number(_))
        | ("String", Val::String(_))
        | ("Boolean", Val::Bool(_))
        | ("ID", Val::String(_)) => Ok(None),
        ("ID", Val::Number(n)) => {
            if n.is_i64() || n.is_u64() {
                Ok(Some(Val::String(Key::new(n.to_string()))))
            } else {
                Err(Got::NonInteger)
            }
        }
        ("Int" | "Float" | "String" | "Boolean" | "ID", other) => Err(Got::of(other)),
        // A custom scalar (or a type the schema lacks) is whatever JSON it is.
        _ => Ok(None),
    }
}

/// What the API schema declares where a subgraph's value is invalid (for the message).
#[derive(Clone, Copy)]
enum Expected<'s> {
    Scalar(&'s str),
    Enum(&'s str),
    Object(&'s str),
    List,
}

impl std::fmt::Display for Expected<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expected::Scalar(name) => f.write_str(name),
            Expected::Enum(name) => write!(f, "enum {name}"),
            Expected::Object(name) => write!(f, "an object ({name})"),
            Expected::List => f.write_str("a list"),
        }
    }
}

/// What a subgraph sent instead: the kind of value, never the value itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    Boolean,
    Number,
    NonInteger,
    OutOfRange,
    String,
    NotInEnum,
    List,
    Object,
    Null,
}

impl Got {
    fn of(value: &Val) -> Got {
        match value {
            Val::Null => Got::Null,
            Val::Bool(_) => Got::Boolean,
            Val::Number(_) => Got::Number,
            Val::String(_) => Got::String,
            Val::Array(_) => Got::List,
            Val::Object(_) => Got::Object,
        }
    }
}

impl std::fmt::Display for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Got::Boolean => "a boolean",
            Got::Number => "a number",
            Got::NonInteger => "a number with a fraction",
            Got::OutOfRange => "a number outside the 32-bit range",
            Got::String => "a string",
            Got::NotInEnum => "a string that is not a value of the enum",
            Got::List => "a list",
            Got::Object => "an object",
            Got::Null => "null",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SDL: &str = r#"
        type Query {
            order: Order
            orders: [Order]
            strict: Order!
            ints: [Int!]
            item: Item
            custom: Json
            customList: Json
        }
        type Order {
            id: ID
            status: Status
            priority: Priority!
            count: Int
            total: Float
            name: String
            open: Boolean
            tags: [String]
            owner: Owner
        }
        type Owner { name: String }
        type Book { title: String }
        union Item = Book
        scalar Json
        enum Status { OPEN SHIPPED }
        enum Priority { LOW HIGH }
    "#;

    /// Shape `data` for `query` over [`SDL`]: the response's `data` and its errors.
    fn shape_raw(query: &str, mut data: Val) -> (Val, Vec<GraphQLError>) {
        let schema = Schema::parse_and_validate(SDL, "s.graphql").expect("schema");
        let doc = ExecutableDocument::parse_and_validate(&schema, query, "q.graphql")
            .expect("valid operation");
        let operation = doc.operations.get(None).expect("one operation");
        let mut errors = Vec::new();
        let shaped = Shaper {
            schema: &schema,
            document: &doc,
            variables: &Map::new(),
            introspection: None,
            errors: &mut errors,
            failed_paths: &[],
            groups: Default::default(),
        }
        .shape(operation, &mut data);
        (shaped, errors)
    }

    /// Shape `data` for `query` over [`SDL`]: the response's `data` and its errors as
    /// `(path, code)`.
    fn check(query: &str, data: Value) -> (Value, Vec<(Value, String)>) {
        let (shaped, errors) = shape_raw(query, Val::from(data));
        let shaped = shaped.into_json();
        let errors = errors
            .iter()
            .map(|e| {
                (
                    serde_json::to_value(&e.path).expect("path"),
                    e.code().expect("code").to_string(),
                )
            })
            .collect();
        (shaped, errors)
    }

    fn invalid(path: Value) -> Vec<(Value, String)> {
        vec![(path, "SUBGRAPH_INVALID_VALUE".to_string())]
    }

    /// Shaping in place: the merged object's fields are reordered to the operation's,
    /// aliases and missing fields added, fields the planner fetched for itself dropped,
    /// and the first of duplicate keys kept, with the same bytes as a fresh object.
    #[test]
    fn fields_come_out_in_requested_order_without_the_extra_ones() {
        let data = json!({ "orders": [
            { "__typename": "Order", "total": 2, "id": "o1", "k": "key", "name": "n" },
            { "name": "m", "id": "o2" },
        ], "order": { "owner": { "x": 1, "name": "a" }, "count": 3 } });
        let (shaped, errors) = check(
            "{ order { count owner { name } t: __typename } orders { name id tags total } }",
            data,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            serde_json::to_string(&shaped).expect("ser"),
            r#"{"order":{"count":3,"owner":{"name":"a"},"t":"Order"},"orders":[{"name":"n","id":"o1","tags":null,"total":2},{"name":"m","id":"o2","tags":null,"total":null}]}"#
        );
        for sent in [
            r#"{"order":{"name":"first","id":"x","name":"second"}}"#,
            r#"{"order":{"name":"first","name":"second","id":"x"}}"#,
        ] {
            let duplicated: Val = serde_json::from_str(sent).expect("parse");
            let (shaped, _) = shape_raw("{ order { id name } }", duplicated);
            assert_eq!(
                serde_json::to_string(&shaped).expect("ser"),
                r#"{"order":{"id":"x","name":"first"}}"#,
                "{sent}"
            );
        }
    }

    /// The deepest value a subgraph can send (serde_json refuses more than 128 levels
    /// while parsing), a custom scalar, is parsed, shaped, written and dropped on a
    /// thread with a tokio worker's 2 MiB stack; one level more is refused, not parsed.
    #[test]
    fn the_deepest_subgraph_value_is_shaped_and_written_on_a_two_mib_stack() {
        let deepest = |levels: usize| {
            format!(
                r#"{{"custom":{}1{}}}"#,
                "[{\"k\":".repeat(levels),
                "}]".repeat(levels)
            )
        };
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let text = deepest(63); // 1 + 2 × 63 = 127 levels
                let data: Val = serde_json::from_str(&text).expect("127 levels parse");
                let (shaped, errors) = shape_raw("{ custom }", data);
                assert!(errors.is_empty(), "{errors:?}");
                let mut out = Vec::new();
                shaped.write_json(&mut out);
                assert_eq!(String::from_utf8_lossy(&out), text);
                drop(shaped);
                assert!(serde_json::from_str::<Val>(&deepest(64)).is_err());
            })
            .expect("thread spawns")
            .join()
            .expect("no overflow, no panic");
    }

    #[test]
    fn valid_leaves_pass_through_unchanged() {
        let order = json!({
            "id": "o1", "status": "OPEN", "priority": "LOW", "count": -2147483648,
            "total": 2, "name": "n", "open": false, "tags": ["a", null]
        });
        let (data, errors) = check(
            "{ order { id status priority count total name open tags } }",
            json!({ "order": order.clone() }),
        );
        assert_eq!(data, json!({ "order": order }));
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn an_enum_value_missing_from_the_api_schema_is_null_with_an_error() {
        let (data, errors) = check(
            "{ order { status } }",
            json!({ "order": { "status": "LEGACY_HOLD" } }),
        );
        assert_eq!(data, json!({ "order": { "status": null } }));
        assert_eq!(errors, invalid(json!(["order", "status"])));
    }

    #[test]
    fn an_invalid_non_null_enum_nulls_the_nearest_nullable_parent_with_one_error() {
        let (data, errors) = check(
            "{ orders { priority } }",
            json!({ "orders": [{ "priority": "HIGH" }, { "priority": "INTERNAL" }] }),
        );
        assert_eq!(data, json!({ "orders": [{ "priority": "HIGH" }, null] }));
        assert_eq!(errors, invalid(json!(["orders", 1, "priority"])));
    }

    #[test]
    fn an_enum_given_a_non_string_is_invalid() {
        let (data, errors) = check("{ order { status } }", json!({ "order": { "status": 1 } }));
        assert_eq!(data, json!({ "order": { "status": null } }));
        assert_eq!(errors, invalid(json!(["order", "status"])));
    }

    #[test]
    fn int_rejects_strings_fractions_out_of_range_and_composites() {
        for bad in [
            json!("3"),
            json!(1.5),
            json!(2147483648_i64),
            json!(-2147483649_i64),
            json!(u64::MAX),
            json!(1e20),
            json!(true),
            json!([1]),
            json!({ "n": 1 }),
        ] {
            let (data, errors) = check("{ order { count } }", json!({ "order": { "count": bad } }));
            assert_eq!(data, json!({ "order": { "count": null } }), "{bad}");
            assert_eq!(errors, invalid(json!(["order", "count"])), "{bad}");
        }
    }

    #[test]
    fn int_accepts_a_float_without_fraction_and_sends_an_integer() {
        let (data, errors) = check("{ order { count } }", json!({ "order": { "count": 3.0 } }));
        assert_eq!(data, json!({ "order": { "count": 3 } }));
        assert!(data["order"]["count"].is_i64());
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn float_accepts_integers_and_rejects_strings() {
        let (data, errors) = check("{ order { total } }", json!({ "order": { "total": 7 } }));
        assert_eq!(data, json!({ "order": { "total": 7 } }));
        assert!(errors.is_empty(), "{errors:?}");
        let (data, errors) = check(
            "{ order { total } }",
            json!({ "order": { "total": "7.5" } }),
        );
        assert_eq!(data, json!({ "order": { "total": null } }));
        assert_eq!(errors, invalid(json!(["order", "total"])));
    }

    #[test]
    fn boolean_and_string_accept_only_their_own_json_type() {
        let (data, errors) = check(
            "{ order { open name } }",
            json!({ "order": { "open": "yes", "name": 5 } }),
        );
        assert_eq!(data, json!({ "order": { "open": null, "name": null } }));
        assert_eq!(
            errors,
            [
                invalid(json!(["order", "open"])),
                invalid(json!(["order", "name"]))
            ]
            .concat()
        );
    }

    #[test]
    fn id_accepts_strings_and_integers_and_sends_integers_as_strings() {
        let (data, errors) = check("{ order { id } }", json!({ "order": { "id": 42 } }));
        assert_eq!(data, json!({ "order": { "id": "42" } }));
        assert!(errors.is_empty(), "{errors:?}");
        for bad in [json!(4.5), json!(false), json!({ "id": 1 })] {
            let (data, errors) = check("{ order { id } }", json!({ "order": { "id": bad } }));
            assert_eq!(data, json!({ "order": { "id": null } }), "{bad}");
            assert_eq!(errors, invalid(json!(["order", "id"])), "{bad}");
        }
    }

    #[test]
    fn custom_scalars_pass_through_whatever_json_they_are() {
        let value = json!({ "deep": [1, "two", { "three": null }] });
        let (data, errors) = check(
            "{ custom customList }",
            json!({ "custom": value.clone(), "customList": [1, 2] }),
        );
        assert_eq!(data, json!({ "custom": value, "customList": [1, 2] }));
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn a_single_value_where_a_list_is_declared_is_invalid() {
        let (data, errors) = check("{ order { tags } }", json!({ "order": { "tags": "a" } }));
        assert_eq!(data, json!({ "order": { "tags": null } }));
        assert_eq!(errors, invalid(json!(["order", "tags"])));
    }

    #[test]
    fn a_list_where_a_single_value_is_declared_is_invalid() {
        let (data, errors) = check(
            "{ order { name owner { name } } }",
            json!({ "order": { "name": ["a"], "owner": [{ "name": "x" }] } }),
        );
        assert_eq!(data, json!({ "order": { "name": null, "owner": null } }));
        assert_eq!(
            errors,
            [
                invalid(json!(["order", "name"])),
                invalid(json!(["order", "owner"]))
            ]
            .concat()
        );
    }

    #[test]
    fn a_scalar_where_an_object_or_union_is_declared_is_invalid() {
        let (data, errors) = check(
            "{ order { owner { name } } item { ... on Book { title } } }",
            json!({ "order": { "owner": "x" }, "item": 3 }),
        );
        assert_eq!(data, json!({ "order": { "owner": null }, "item": null }));
        assert_eq!(
            errors,
            [invalid(json!(["order", "owner"])), invalid(json!(["item"]))].concat()
        );
    }

    #[test]
    fn an_invalid_item_in_a_list_of_non_null_nulls_the_list() {
        let (data, errors) = check("{ ints }", json!({ "ints": [1, "2", 3] }));
        assert_eq!(data, json!({ "ints": null }));
        assert_eq!(errors, invalid(json!(["ints", 1])));
    }

    #[test]
    fn an_invalid_value_under_a_non_null_root_field_nulls_data() {
        let (data, errors) = check(
            "{ strict { priority } }",
            json!({ "strict": { "priority": "MEDIUM" } }),
        );
        assert_eq!(data, Value::Null);
        assert_eq!(errors, invalid(json!(["strict", "priority"])));
    }

    #[test]
    fn a_non_list_for_a_non_null_position_gets_the_invalid_value_error_only() {
        let (data, errors) = check("{ strict { id } }", json!({ "strict": [] }));
        assert_eq!(data, Value::Null);
        assert_eq!(errors, invalid(json!(["strict"])));
    }

    #[test]
    fn the_message_names_the_field_and_the_kind_of_value_not_the_value() {
        let (_, errors) = shape_raw(
            "{ order { status count } }",
            Val::from(json!({ "order": { "status": "LEGACY_HOLD", "count": "many" } })),
        );
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "Invalid value for Order.status: not a value of enum Status",
                "Invalid value for Order.count: expected Int, got a string",
            ]
        );
        assert_eq!(
            errors[0].locations,
            [Location {
                line: 1,
                column: 11
            }]
        );
    }
}
