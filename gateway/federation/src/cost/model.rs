//! The cost model: per-coordinate weights and list sizes from the supergraph's
//! `@cost`/`@listSize` (under their `@link` names, or as `@join__directive`), overlaid
//! with the configured [`CostSettings`], indexed once by type and field name.

use super::{CostError, CostSettings, FieldCost};
use crate::Supergraph;
use crate::plan::operation::Sel;
use apollo_compiler::ast::{Directive, Value};
use apollo_compiler::collections::{IndexMap, IndexSet};
use apollo_compiler::schema::{ExtendedType, FieldDefinition};
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node, Schema};
use std::collections::HashMap;

const COST_SPEC: &str = "https://specs.apollo.dev/cost/";
const JOIN_SPEC: &str = "https://specs.apollo.dev/join/";

/// `@listSize` of one field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListSizeRule {
    pub(crate) assumed_size: Option<f64>,
    pub(crate) slicing_arguments: Vec<Name>,
    pub(crate) sized_fields: Vec<Name>,
    pub(crate) require_one: bool,
}

/// Cost rules of one field (output or input field).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldRule {
    pub(crate) weight: Option<f64>,
    pub(crate) list_size: Option<ListSizeRule>,
    /// Argument name → weight.
    pub(crate) arguments: HashMap<Name, f64>,
    /// What the field's `@requires` selections cost (the gateway fetches them from
    /// other subgraphs for each object the field is resolved on), priced statically.
    pub(crate) requires: f64,
}

/// Cost rules of one type and its fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct TypeRules {
    pub(crate) weight: Option<f64>,
    pub(crate) fields: HashMap<Name, FieldRule>,
}

/// Everything needed to price operations against one supergraph, built once.
#[derive(Debug, Clone)]
pub struct CostModel {
    /// The API schema the priced documents were validated against.
    pub(crate) api: Valid<Schema>,
    pub(crate) rules: HashMap<Name, TypeRules>,
    /// Interface or union → possible object types, in schema order.
    pub(crate) possible: HashMap<Name, IndexSet<Name>>,
    pub(crate) default_list_size: f64,
    pub(crate) mutation_base: f64,
    pub(crate) introspection_weight: f64,
}

/// Local names of the cost directives in the supergraph.
struct DirectiveNames {
    cost: Option<String>,
    list_size: Option<String>,
    join_directive: Option<String>,
}

impl CostModel {
    /// Indexes the supergraph's cost directives and the settings. Fails on settings keys
    /// that name nothing in the API schema and on malformed directive applications.
    pub fn new(supergraph: &Supergraph, settings: &CostSettings) -> Result<CostModel, CostError> {
        let api = supergraph.api_schema();
        let full = supergraph.supergraph_schema();
        let names = directive_names(full);
        let mut rules: HashMap<Name, TypeRules> = HashMap::new();
        for (type_name, api_type) in &api.types {
            if type_name.starts_with("__") {
                continue;
            }
            let Some(full_type) = full.types.get(type_name) else {
                continue;
            };
            let mut type_rules = TypeRules {
                weight: names.weight(full_type.directives().iter().map(|d| &*d.node), type_name)?,
                fields: HashMap::new(),
            };
            match (api_type, full_type) {
                (ExtendedType::Object(_) | ExtendedType::Interface(_), _) => {
                    for (field_name, field) in output_fields(api_type) {
                        let Some(full_field) = output_fields(full_type).get(field_name) else {
                            continue;
                        };
                        let rule = names.field_rule(type_name, full_field, field)?;
                        if rule != FieldRule::default() {
                            type_rules.fields.insert(field_name.clone(), rule);
                        }
                    }
                }
                (ExtendedType::InputObject(api_input), ExtendedType::InputObject(full_input)) => {
                    for field_name in api_input.fields.keys() {
                        let Some(full_field) = full_input.fields.get(field_name) else {
                            continue;
                        };
                        let coordinate = format!("{type_name}.{field_name}");
                        let weight = names
                            .weight(full_field.directives.iter().map(|d| &**d), &coordinate)?;
                        if weight.is_some() {
                            type_rules.fields.insert(
                                field_name.clone(),
                                FieldRule {
                                    weight,
                                    ..FieldRule::default()
                                },
                            );
                        }
                    }
                }
                _ => {}
            }
            if type_rules.weight.is_some() || !type_rules.fields.is_empty() {
                rules.insert(type_name.clone(), type_rules);
            }
        }
        apply_settings(api, settings, &mut rules)?;
        let implementers = api.implementers_map();
        inherit_interface_rules(&implementers, &mut rules);
        let mut possible: HashMap<Name, IndexSet<Name>> = HashMap::new();
        for (name, ty) in &api.types {
            match ty {
                ExtendedType::Interface(_) => {
                    let objects = implementers
                        .get(name)
                        .map(|i| i.objects.clone())
                        .unwrap_or_default();
                    possible.insert(name.clone(), objects);
                }
                ExtendedType::Union(u) => {
                    let members = u.members.iter().map(|m| m.name.clone()).collect();
                    possible.insert(name.clone(), members);
                }
                _ => {}
            }
        }
        for setting in [
            ("default_list_size", f64::from(settings.default_list_size)),
            ("mutation_base", f64::from(settings.mutation_base)),
            ("introspection_weight", settings.introspection_weight),
        ] {
            check_finite(setting.0, setting.1)?;
        }
        let mut model = CostModel {
            api: api.clone(),
            rules,
            possible,
            default_list_size: f64::from(settings.default_list_size),
            mutation_base: f64::from(settings.mutation_base),
            introspection_weight: settings.introspection_weight,
        };
        model.price_requires(supergraph);
        Ok(model)
    }

    /// Sets [`FieldRule::requires`] for every field with `@requires`: the most costly of
    /// its `@join__field(requires:)` selections (a subgraph's field set that does not
    /// parse, which composition prevents, prices as nothing).
    fn price_requires(&mut self, supergraph: &Supergraph) {
        let mut priced = Vec::new();
        for type_name in self.api.types.keys() {
            let Some(meta) = supergraph.type_meta(type_name) else {
                continue;
            };
            for (field, joins) in &meta.fields {
                let cost = joins
                    .iter()
                    .filter_map(|j| j.requires.as_ref()?.selections().ok())
                    .map(|selections| self.selection_cost(type_name, selections))
                    .fold(0.0, f64::max);
                if cost > 0.0 {
                    priced.push((type_name.clone(), field.clone(), cost));
                }
            }
        }
        for (type_name, field, cost) in priced {
            self.rules
                .entry(type_name)
                .or_default()
                .fields
                .entry(field)
                .or_default()
                .requires = cost;
        }
    }

    /// The static cost of `selections` on `type_name`: each field's weight times its list
    /// size (assumed, else the default), nested selections multiplied in. Iterative.
    fn selection_cost(&self, type_name: &Name, selections: &[Sel]) -> f64 {
        let mut total = 0.0;
        let mut stack: Vec<(&[Sel], Name, f64)> = vec![(selections, type_name.clone(), 1.0)];
        while let Some((selections, parent, multiplier)) = stack.pop() {
            for selection in selections {
                match selection {
                    Sel::Field(field) => {
                        let Some(def) = self.output_field(&parent, &field.name) else {
                            continue;
                        };
                        let rule = self.field_rule(&parent, &field.name);
                        let returned = def.ty.inner_named_type();
                        let weight = rule
                            .and_then(|r| r.weight)
                            .or_else(|| self.type_weight(returned))
                            .unwrap_or(if self.is_composite(returned) {
                                1.0
                            } else {
                                0.0
                            });
                        let size = if def.ty.is_list() {
                            rule.and_then(|r| r.list_size.as_ref())
                                .and_then(|l| l.assumed_size)
                                .unwrap_or(self.default_list_size)
                        } else {
                            1.0
                        };
                        total += multiplier * size * weight;
                        if !field.selections.is_empty() {
                            stack.push((&field.selections, returned.clone(), multiplier * size));
                        }
                    }
                    Sel::Fragment(fragment) => {
                        let on = fragment
                            .type_condition
                            .clone()
                            .unwrap_or_else(|| parent.clone());
                        stack.push((&fragment.selections, on, multiplier));
                    }
                }
            }
        }
        total
    }

    pub(crate) fn field_rule(&self, type_name: &str, field: &str) -> Option<&FieldRule> {
        self.rules.get(type_name)?.fields.get(field)
    }

    pub(crate) fn type_weight(&self, type_name: &str) -> Option<f64> {
        self.rules.get(type_name)?.weight
    }

    /// Objects, interfaces and unions weigh 1 by default; scalars and enums 0.
    pub(crate) fn is_composite(&self, type_name: &str) -> bool {
        matches!(
            self.api.types.get(type_name),
            Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_))
        )
    }

    /// The definition of `field` on `type_name` (an object or interface).
    pub(crate) fn output_field(&self, type_name: &str, field: &str) -> Option<&FieldDefinition> {
        match self.api.types.get(type_name)? {
            ExtendedType::Object(o) => o.fields.get(field).map(|f| &f.node),
            ExtendedType::Interface(i) => i.fields.get(field).map(|f| &f.node),
            _ => None,
        }
        .map(|n| &**n)
    }

    /// Whether an object of type `runtime` matches a fragment on `condition`.
    pub(crate) fn applies(&self, condition: &str, runtime: &str) -> bool {
        condition == runtime
            || self
                .possible
                .get(condition)
                .is_some_and(|set| set.contains(runtime))
    }
}

type Fields = IndexMap<Name, apollo_compiler::schema::Component<FieldDefinition>>;

fn output_fields(ty: &ExtendedType) -> &Fields {
    static EMPTY: std::sync::OnceLock<Fields> = std::sync::OnceLock::new();
    match ty {
        ExtendedType::Object(o) => &o.fields,
        ExtendedType::Interface(i) => &i.fields,
        _ => EMPTY.get_or_init(Fields::default),
    }
}

fn check_finite(key: &str, value: f64) -> Result<(), CostError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(CostError::Settings {
            key: key.into(),
            message: format!("{value} is not a finite number"),
        })
    }
}

/// Reads the `@link`s of the schema definition: the cost spec's local directive names
/// (`import: [{name: "@cost", as: "@weight"}]`, `as:` prefixes) and the join prefix.
/// Without a cost link, directives defined as `@cost`/`@listSize` are taken as such.
fn directive_names(schema: &Schema) -> DirectiveNames {
    let mut names = DirectiveNames {
        cost: None,
        list_size: None,
        join_directive: None,
    };
    for d in schema.schema_definition.directives.iter() {
        let Some(url) = d.specified_argument_by_name("url").and_then(|v| v.as_str()) else {
            continue;
        };
        let prefix = |default: &str| {
            d.specified_argument_by_name("as")
                .and_then(|v| v.as_str())
                .unwrap_or(default)
                .to_string()
        };
        if url.starts_with(JOIN_SPEC) {
            names.join_directive = Some(format!("{}__directive", prefix("join")));
        } else if url.starts_with(COST_SPEC) {
            let prefix = prefix("cost");
            let imports = imports(d);
            names.cost = Some(imports.get("@cost").cloned().unwrap_or(prefix.clone()));
            names.list_size = Some(
                imports
                    .get("@listSize")
                    .cloned()
                    .unwrap_or(format!("{prefix}__listSize")),
            );
        }
    }
    if names.cost.is_none() && schema.directive_definitions.contains_key("cost") {
        names.cost = Some("cost".into());
    }
    if names.list_size.is_none() && schema.directive_definitions.contains_key("listSize") {
        names.list_size = Some("listSize".into());
    }
    names
}

/// `@link(import:)` entries: imported name (`@cost`) → local name without `@`.
fn imports(link: &Directive) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(list) = link
        .specified_argument_by_name("import")
        .and_then(|v| v.as_list())
    else {
        return out;
    };
    for item in list {
        let (name, local) = match item.as_ref() {
            Value::String(s) => (s.clone(), s.clone()),
            Value::Object(fields) => {
                let get = |k: &str| {
                    fields
                        .iter()
                        .find(|(n, _)| n == k)
                        .and_then(|(_, v)| v.as_str())
                        .map(str::to_string)
                };
                let Some(name) = get("name") else { continue };
                let local = get("as").unwrap_or_else(|| name.clone());
                (name, local)
            }
            _ => continue,
        };
        out.insert(name, local.trim_start_matches('@').to_string());
    }
    out
}

/// Arguments of a cost directive, applied directly or through `@join__directive(name:,
/// args:)`.
enum Args<'a> {
    Direct(&'a Directive),
    Joined(&'a [(Name, Node<Value>)]),
}

impl<'a> Args<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        match self {
            Args::Direct(d) => d.specified_argument_by_name(name).map(|v| &**v),
            Args::Joined(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| &**v),
        }
    }
}

impl DirectiveNames {
    /// Applications of the directive whose local name is `local` (or, in a
    /// `@join__directive`, whose name is `local` or `spec_name`).
    fn applications<'a>(
        &self,
        directives: impl Iterator<Item = &'a Directive>,
        local: Option<&str>,
        spec_name: &str,
    ) -> Vec<Args<'a>> {
        let mut out = Vec::new();
        for d in directives {
            if Some(d.name.as_str()) == local {
                out.push(Args::Direct(d));
            } else if Some(d.name.as_str()) == self.join_directive.as_deref()
                && let Some(name) = d
                    .specified_argument_by_name("name")
                    .and_then(|v| v.as_str())
                && (Some(name) == local || name == spec_name)
                && let Some(Value::Object(fields)) =
                    d.specified_argument_by_name("args").map(|v| &**v)
            {
                out.push(Args::Joined(fields));
            }
        }
        out
    }

    /// The `@cost(weight:)` of an element (the largest when several subgraphs set one).
    fn weight<'a>(
        &self,
        directives: impl Iterator<Item = &'a Directive>,
        coordinate: &str,
    ) -> Result<Option<f64>, CostError> {
        let mut weight: Option<f64> = None;
        for args in self.applications(directives, self.cost.as_deref(), "cost") {
            let w = args
                .get("weight")
                .and_then(number)
                .ok_or_else(|| CostError::Directive {
                    coordinate: coordinate.into(),
                    message: "@cost(weight:) must be a number".into(),
                })?;
            weight = Some(weight.map_or(w, |old| old.max(w)));
        }
        Ok(weight)
    }

    fn list_size<'a>(
        &self,
        directives: impl Iterator<Item = &'a Directive>,
        coordinate: &str,
    ) -> Result<Option<ListSizeRule>, CostError> {
        let Some(args) = self
            .applications(directives, self.list_size.as_deref(), "listSize")
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let bad = |message: &str| CostError::Directive {
            coordinate: coordinate.into(),
            message: message.into(),
        };
        let names = |arg: &str| -> Result<Vec<Name>, CostError> {
            let Some(value) = args.get(arg) else {
                return Ok(Vec::new());
            };
            let items: Vec<&Value> = match value {
                Value::Null => Vec::new(),
                Value::List(items) => items.iter().map(|i| &**i).collect(),
                other => vec![other],
            };
            items
                .into_iter()
                .map(|i| {
                    i.as_str()
                        .and_then(|s| Name::new(s).ok())
                        .ok_or_else(|| bad(&format!("@listSize({arg}:) must list field names")))
                })
                .collect()
        };
        let assumed_size = match args.get("assumedSize") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.to_f64()
                    .filter(|n| *n >= 0.0)
                    .ok_or_else(|| bad("@listSize(assumedSize:) must be a non-negative Int"))?,
            ),
        };
        let require_one = match args.get("requireOneSlicingArgument") {
            None | Some(Value::Null) => true,
            Some(v) => v
                .to_bool()
                .ok_or_else(|| bad("@listSize(requireOneSlicingArgument:) must be a Boolean"))?,
        };
        Ok(Some(ListSizeRule {
            assumed_size,
            slicing_arguments: names("slicingArguments")?,
            sized_fields: names("sizedFields")?,
            require_one,
        }))
    }

    fn field_rule(
        &self,
        type_name: &Name,
        full: &FieldDefinition,
        api: &FieldDefinition,
    ) -> Result<FieldRule, CostError> {
        let coordinate = format!("{type_name}.{}", full.name);
        let mut rule = FieldRule {
            weight: self.weight(full.directives.iter().map(|d| &**d), &coordinate)?,
            list_size: self.list_size(full.directives.iter().map(|d| &**d), &coordinate)?,
            arguments: HashMap::new(),
            requires: 0.0,
        };
        for arg in &full.arguments {
            if api.argument_by_name(&arg.name).is_none() {
                continue;
            }
            let arg_coordinate = format!("{coordinate}({}:)", arg.name);
            if let Some(w) = self.weight(arg.directives.iter().map(|d| &**d), &arg_coordinate)? {
                rule.arguments.insert(arg.name.clone(), w);
            }
        }
        Ok(rule)
    }
}

/// A directive argument as a number: Int, Float, or a String holding one (the IBM spec
/// declares `weight: String!`).
fn number(value: &Value) -> Option<f64> {
    value
        .to_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n: &f64| n.is_finite())
}

/// Overlays the configured settings on the rules read from the supergraph.
fn apply_settings(
    api: &Schema,
    settings: &CostSettings,
    rules: &mut HashMap<Name, TypeRules>,
) -> Result<(), CostError> {
    for (key, weight) in &settings.types {
        check_finite(key, *weight)?;
        let Some((name, _)) = api.types.get_key_value(key.as_str()) else {
            return Err(CostError::Settings {
                key: key.clone(),
                message: "no such type in the API schema".into(),
            });
        };
        rules.entry(name.clone()).or_default().weight = Some(*weight);
    }
    for (key, cost) in &settings.fields {
        let err = |message: String| CostError::Settings {
            key: key.clone(),
            message,
        };
        if let Some(w) = cost.weight {
            check_finite(key, w)?;
        }
        let (path, argument) = match key.split_once('(') {
            Some((path, rest)) => {
                let arg = rest
                    .strip_suffix(":)")
                    .ok_or_else(|| err("expected `Type.field(argument:)`".into()))?;
                (path, Some(arg))
            }
            None => (key.as_str(), None),
        };
        let (type_name, field_name) = path
            .split_once('.')
            .ok_or_else(|| err("expected a coordinate `Type.field`".into()))?;
        let Some((type_key, ty)) = api.types.get_key_value(type_name) else {
            return Err(err(format!("no type {type_name} in the API schema")));
        };
        let has_list_size = cost.assumed_size.is_some()
            || !cost.slicing_arguments.is_empty()
            || !cost.sized_fields.is_empty()
            || cost.require_one_slicing_argument.is_some();
        let field_def = match ty {
            ExtendedType::Object(o) => o.fields.get(field_name).map(|f| &f.node),
            ExtendedType::Interface(i) => i.fields.get(field_name).map(|f| &f.node),
            ExtendedType::InputObject(input) => {
                let Some((input_field, _)) = input.fields.get_key_value(field_name) else {
                    return Err(err(format!("no input field {path} in the API schema")));
                };
                if has_list_size || argument.is_some() {
                    return Err(err("only `weight` applies to an input field".into()));
                }
                let rule = rules
                    .entry(type_key.clone())
                    .or_default()
                    .fields
                    .entry(input_field.clone())
                    .or_default();
                rule.weight = cost.weight.or(rule.weight);
                continue;
            }
            _ => None,
        };
        let Some(field_def) = field_def else {
            return Err(err(format!("no field {path} in the API schema")));
        };
        let rule = rules
            .entry(type_key.clone())
            .or_default()
            .fields
            .entry(field_def.name.clone())
            .or_default();
        if let Some(argument) = argument {
            let Some(arg) = field_def.argument_by_name(argument) else {
                return Err(err(format!("{path} has no argument {argument}")));
            };
            if has_list_size {
                return Err(err("only `weight` applies to an argument".into()));
            }
            if let Some(w) = cost.weight {
                rule.arguments.insert(arg.name.clone(), w);
            }
            continue;
        }
        rule.weight = cost.weight.or(rule.weight);
        if has_list_size {
            merge_list_size(api, field_def, cost, rule).map_err(err)?;
        }
    }
    Ok(())
}

fn merge_list_size(
    api: &Schema,
    field: &FieldDefinition,
    cost: &FieldCost,
    rule: &mut FieldRule,
) -> Result<(), String> {
    let list_size = rule.list_size.get_or_insert(ListSizeRule {
        assumed_size: None,
        slicing_arguments: Vec::new(),
        sized_fields: Vec::new(),
        require_one: false,
    });
    if let Some(size) = cost.assumed_size {
        list_size.assumed_size = Some(f64::from(size));
    }
    if let Some(require_one) = cost.require_one_slicing_argument {
        list_size.require_one = require_one;
    }
    if !cost.slicing_arguments.is_empty() {
        list_size.slicing_arguments = cost
            .slicing_arguments
            .iter()
            .map(|a| match field.argument_by_name(a) {
                Some(def) => Ok(def.name.clone()),
                None => Err(format!(
                    "slicing argument {a} is not an argument of the field"
                )),
            })
            .collect::<Result<_, _>>()?;
    }
    if !cost.sized_fields.is_empty() {
        let returned = field.ty.inner_named_type();
        let fields = api.types.get(returned).map(output_fields);
        list_size.sized_fields = cost
            .sized_fields
            .iter()
            .map(
                |f| match fields.and_then(|fields| fields.get_key_value(f.as_str())) {
                    Some((name, _)) => Ok(name.clone()),
                    None => Err(format!("sized field {f} is not a field of {returned}")),
                },
            )
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

/// A rule on an interface field applies to the same field of every implementation that
/// does not set that value itself (a selection on an interface is priced per possible
/// type).
fn inherit_interface_rules(
    implementers: &apollo_compiler::collections::HashMap<
        Name,
        apollo_compiler::schema::Implementers,
    >,
    rules: &mut HashMap<Name, TypeRules>,
) {
    let mut inherited: Vec<(Name, Name, FieldRule)> = Vec::new();
    for (interface, impls) in implementers {
        let Some(interface_rules) = rules.get(interface) else {
            continue;
        };
        for (field, rule) in &interface_rules.fields {
            for implementer in impls.objects.iter().chain(&impls.interfaces) {
                inherited.push((implementer.clone(), field.clone(), rule.clone()));
            }
        }
    }
    for (type_name, field, from_interface) in inherited {
        let rule = rules
            .entry(type_name)
            .or_default()
            .fields
            .entry(field)
            .or_default();
        if rule.weight.is_none() {
            rule.weight = from_interface.weight;
        }
        if rule.list_size.is_none() {
            rule.list_size = from_interface.list_size;
        }
        for (arg, weight) in from_interface.arguments {
            rule.arguments.entry(arg).or_insert(weight);
        }
    }
}
