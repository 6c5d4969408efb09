//! Stage 2, the walk: visit the operation's selection tree keeping the current subgraph.
//! A field the current subgraph resolves stays in its fetch group; otherwise the walk opens
//! (or reuses) an entity fetch group for (target subgraph, response path, type), adds the
//! key fields and `__typename` to the parent group so representations can be built, plans
//! `@requires` inputs first (possibly in other subgraphs), and continues in the target.
//! Abstract types stay unexploded when the current subgraph resolves everything selected
//! on them, and are exploded into one `... on Object` per possible type otherwise.
//! Groups and their dependencies form a DAG handed to the scheduler.

use super::graph::{Candidate, Graph, field_set};
use super::operation::{Field, Fragment, Operation, Sel};
use super::{Budget, OperationKind, PathSegment, PlanError, Selection};
use crate::supergraph::join_field_set::FieldSet;
use apollo_compiler::ast::{Argument, Directive};
use apollo_compiler::{Name, Node};
use indexmap::IndexMap;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

/// What a node of a group's selection tree is.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Root,
    Field {
        alias: Option<Name>,
        name: Name,
        arguments: Vec<Node<Argument>>,
        directives: Vec<Node<Directive>>,
    },
    Fragment {
        type_condition: Option<Name>,
        directives: Vec<Node<Directive>>,
    },
}

/// A node in the arena shared by all groups' selection trees.
#[derive(Debug, Clone)]
pub(crate) struct SelNode {
    pub(crate) item: Item,
    pub(crate) children: IndexMap<String, usize>,
}

/// Entity-fetch specifics of a group.
#[derive(Debug, Clone)]
pub(crate) struct Entity {
    pub(crate) path: Vec<PathSegment>,
    /// Type in the target's `_entities` fragment (an interface for `@interfaceObject`).
    pub(crate) view_type: Name,
    /// Concrete type → representation projection (`__typename`, key, `@requires` inputs).
    pub(crate) requires: IndexMap<Name, Vec<Selection>>,
    /// Concrete types whose `__typename` is rewritten to `view_type` before sending.
    pub(crate) rewrite_types: BTreeSet<Name>,
    /// Every representation's `__typename` is rewritten to `view_type` (a jump between
    /// two `@interfaceObject` subgraphs: whatever concrete type is known by then).
    pub(crate) rewrite_all: bool,
}

/// One subgraph fetch of the plan.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) subgraph: usize,
    /// Mutation root fields run in order: each run of same-subgraph fields is a segment.
    pub(crate) segment: usize,
    pub(crate) root: usize,
    pub(crate) entity: Option<Entity>,
    pub(crate) deps: BTreeSet<usize>,
    /// Set when `merge_siblings` folded this group into another.
    pub(crate) merged: bool,
    /// Fields aliased for the "fields can merge" rule, renamed back in the response.
    pub(crate) renames: Vec<super::Rewrite>,
    /// `@fromContext` arguments of this (entity) fetch.
    pub(crate) context_args: Vec<super::ContextArgument>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Groups {
    pub(crate) groups: Vec<Group>,
    pub(crate) nodes: Vec<SelNode>,
    /// The deferred fragments met (outermost `@defer`s): fragment `i`'s own fetches are
    /// the groups of segment [`DEFER_SEGMENTS`]` + i`.
    pub(crate) defers: Vec<Deferred>,
}

/// A deferred fragment of the plan (see [`Groups::defers`]).
#[derive(Debug, Clone)]
pub(crate) struct Deferred {
    pub(crate) label: Option<String>,
    /// Where it applies (type conditions left out).
    pub(crate) path: Vec<PathSegment>,
}

/// Segments from here on are deferred fragments' (`@defer`): groups of segment
/// `DEFER_SEGMENTS + i` are fetched after every group below it, for fragment `i`.
/// Mutation segments (one per run of root fields) never get near it.
pub(crate) const DEFER_SEGMENTS: usize = usize::MAX / 2;

impl Groups {
    /// Does every deferred group wait only for primary groups and its own fragment's,
    /// and no primary group for a deferred one? (Otherwise the plan cannot deliver the
    /// primary part first; the caller plans without `@defer` then.)
    pub(crate) fn defers_are_separable(&self) -> bool {
        self.groups.iter().filter(|g| !g.merged).all(|g| {
            g.deps.iter().all(|&d| {
                let ds = self.groups[d].segment;
                ds < DEFER_SEGMENTS || ds == g.segment
            })
        })
    }
}

impl Groups {
    pub(crate) fn entity_node(&self, g: usize) -> usize {
        *self.nodes[self.groups[g].root]
            .children
            .values()
            .next()
            .expect("entity groups have an entity fragment")
    }
}

/// Where the walk stands.
#[derive(Debug, Clone)]
struct Ctx {
    group: usize,
    subgraph: usize,
    /// Where selections go (inside conditional fragments, if any).
    node: usize,
    /// The object's own selection set (key fields and `__typename` go here).
    object_node: usize,
    path: RPath,
    /// The type as the current subgraph sees it (`@interfaceObject`), if not the real one.
    view: Option<Name>,
    /// Directives of conditional fragments between `object_node` and `node`.
    pending: Vec<Vec<Node<Directive>>>,
    /// `@provides` selections available at this position.
    provided: Option<Vec<Sel>>,
    /// The nearest enclosing entity (or root) position and the way down from it, so a
    /// field of a key-less value type that another subgraph resolves can be reached by
    /// going back there in that subgraph and selecting down again.
    anchor: Option<Rc<Anchor>>,
    /// Enclosing positions whose type sets an `@context`, nearest first.
    frames: Option<Rc<Frame>>,
}

/// An enclosing object position whose type carries `@context(name:)`: `@fromContext`
/// arguments below read their value there.
#[derive(Debug)]
struct Frame {
    names: Vec<String>,
    /// The object position (its own selection).
    ctx: Ctx,
    ty: Name,
    parent: Option<Rc<Frame>>,
}

impl Frame {
    fn find(frames: &Option<Rc<Frame>>, name: &str) -> Option<Rc<Frame>> {
        let mut at = frames.clone();
        while let Some(f) = at {
            if f.names.iter().any(|n| n == name) {
                return Some(f);
            }
            at = f.parent.clone();
        }
        None
    }
}

/// An entity or root position, and the fields and type conditions from it down to a
/// position inside value types.
#[derive(Debug)]
struct Anchor {
    /// The anchor position itself (its object selection).
    ctx: Ctx,
    ty: Name,
    /// `Some` when the anchor is the operation root (re-entered by a root fetch).
    root: bool,
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    /// A field (without its sub-selections).
    Field(Field),
    /// A narrowing to an object type of an abstract position.
    Narrow(Name),
}

impl Anchor {
    fn at(ctx: &Ctx, ty: &Name, root: bool) -> Rc<Anchor> {
        Rc::new(Anchor {
            ctx: Ctx {
                anchor: None,
                frames: None,
                ..ctx.clone()
            },
            ty: ty.clone(),
            root,
            steps: Vec::new(),
        })
    }

    fn then(self: &Rc<Anchor>, step: Step) -> Rc<Anchor> {
        let mut steps = self.steps.clone();
        steps.push(step);
        Rc::new(Anchor {
            ctx: self.ctx.clone(),
            ty: self.ty.clone(),
            root: self.root,
            steps,
        })
    }
}

/// A response path with its text forms computed once, as it grows: `key` (every
/// segment, as [`path_key`] prints it) and `scope` (without type conditions: one
/// selection set of a subgraph request). Cloning is three reference counts.
#[derive(Debug, Clone, Default)]
struct RPath {
    segs: Rc<Vec<PathSegment>>,
    key: Rc<str>,
    scope: Rc<str>,
}

impl RPath {
    fn join(base: &str, part: &str) -> Rc<str> {
        if base.is_empty() {
            Rc::from(part)
        } else {
            Rc::from(format!("{base}.{part}"))
        }
    }

    /// The path below field `key`, through `lists` list levels.
    fn field(&self, key: &str, lists: usize) -> RPath {
        let mut segs = (*self.segs).clone();
        segs.push(PathSegment::Key(key.to_string()));
        segs.extend(std::iter::repeat_n(PathSegment::List, lists));
        let mut tail = key.to_string();
        for _ in 0..lists {
            tail.push_str(".@");
        }
        RPath {
            segs: Rc::new(segs),
            key: Self::join(&self.key, &tail),
            scope: Self::join(&self.scope, &tail),
        }
    }

    /// The same position narrowed to object type `p`.
    fn narrow(&self, p: &str) -> RPath {
        let mut segs = (*self.segs).clone();
        let segment = PathSegment::TypeCondition(vec![p.to_string()]);
        let key = Self::join(&self.key, &segment.to_string());
        segs.push(segment);
        RPath {
            segs: Rc::new(segs),
            key,
            scope: self.scope.clone(),
        }
    }
}

impl std::ops::Deref for RPath {
    type Target = [PathSegment];
    fn deref(&self) -> &[PathSegment] {
        &self.segs
    }
}

pub(crate) fn path_key(path: &[PathSegment]) -> String {
    path.iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

fn directives_text(dirs: &[Node<Directive>]) -> String {
    dirs.iter().map(|d| format!(" {d}")).collect()
}

fn signature(f: &Field) -> String {
    let args: Vec<String> = f
        .arguments
        .iter()
        .map(|a| format!("{}:{}", a.name, a.value))
        .collect();
    format!("{}({})", f.name, args.join(","))
}

struct Walker<'g, 'a> {
    graph: &'g Graph<'a>,
    budget: &'g mut Budget,
    out: Groups,
    index: HashMap<(usize, usize, String, Name), Vec<usize>>,
    root_groups: HashMap<(usize, usize), usize>,
    /// Response keys in use per response path: key → field signature.
    registry: HashMap<String, IndexMap<Name, String>>,
    /// Every group a field was added to, in order (for `@requires` dependencies).
    touched: Vec<usize>,
    segment: usize,
    aliases: usize,
    /// Type-condition fragment nodes whose enclosing field already selects `__typename`.
    typed: BTreeSet<usize>,
    /// Jumps in progress (response path, type, field): planning a key or `@requires`
    /// input may jump again, and a jump that needs itself is a cycle, not a deeper search.
    jumping: Vec<(Rc<str>, Name, Name)>,
    /// Nesting of `walk_selections` calls (bounded: see [`MAX_NESTING`]).
    nesting: usize,
    /// Type (as the subgraph declares it) of each response key per (subgraph, response
    /// path without type conditions): one subgraph selection set must obey GraphQL's
    /// "fields can merge" rule, so a second field under that key with another type
    /// (`String` vs `String!` under `... on User` / `... on Admin`) gets an alias.
    shapes: HashMap<(usize, Rc<str>, Name), String>,
    /// Aliases given so far per (subgraph, path, response key, type).
    shape_aliases: HashMap<(usize, Rc<str>, Name, String), Name>,
    /// `@fromContext` variables named so far.
    context_vars: usize,
    /// Set while planning fields the planner needs (keys, `@requires` inputs, context
    /// selections), as opposed to the client's selections.
    planner_fields: usize,
    /// Object positions by response path (unconditional ones only): a key jump takes its
    /// key from the earliest fetch that already has the object, not necessarily from the
    /// fetch it jumps from, so it need not wait for the latter.
    positions: HashMap<Rc<str>, Vec<Ctx>>,
    /// Set while an option is being tried (see [`Walker::choose`]): options inside it are
    /// taken by the heuristic order, not tried in turn.
    speculating: bool,
    /// Set when the current trial stopped at its depth (see [`TRIAL_DEPTH`]): its
    /// success says nothing about the selections below.
    truncated: bool,
    /// `nesting` when the current trial started: a trial looks [`TRIAL_DEPTH`] levels
    /// below its decision, not further.
    trial_floor: usize,
    /// Steps spent trying options so far, and the most allowed per plan.
    spec_used: usize,
    spec_max: usize,
    /// Whether `@defer` is planned at all (not in subscriptions).
    defer_enabled: bool,
    /// The deferred fragment id of each (fragment, response path without type
    /// conditions): the fragment exploded over several object types is one deferred part.
    defer_ids: HashMap<(usize, Rc<str>), usize>,
    /// While walking a deferred fragment's own selections: its position (response path
    /// and group). Fields selected there leave that group by a key jump (to the same
    /// subgraph, if need be), so they are fetched after the primary part.
    force: Option<(Rc<str>, usize)>,
}

/// How deep the walk may nest (operation depth plus the depth of key and `@requires`
/// field sets it plans along the way). Far above any operation the gateway's depth limit
/// admits; beyond it planning fails with a typed error instead of growing the stack.
pub(crate) const MAX_NESTING: usize = 256;

/// Walks `op` into fetch groups; `defer`: plan `@defer` (deferred fragments' fields in
/// fetches of their own, see [`DEFER_SEGMENTS`]), or treat it as absent.
pub(crate) fn walk(
    graph: &Graph<'_>,
    op: &Operation,
    budget: &mut Budget,
    defer: bool,
) -> Result<Groups, PlanError> {
    // Trying options may take as many steps again as the plan itself may.
    let spec_max = budget.max;
    let mut w = Walker {
        graph,
        budget,
        out: Groups::default(),
        index: HashMap::new(),
        root_groups: HashMap::new(),
        registry: HashMap::new(),
        touched: Vec::new(),
        segment: 0,
        aliases: 0,
        typed: BTreeSet::new(),
        jumping: Vec::new(),
        nesting: 0,
        shapes: HashMap::new(),
        shape_aliases: HashMap::new(),
        context_vars: 0,
        planner_fields: 0,
        positions: HashMap::new(),
        speculating: false,
        truncated: false,
        trial_floor: 0,
        spec_used: 0,
        spec_max,
        defer_enabled: defer && op.kind != OperationKind::Subscription,
        defer_ids: HashMap::new(),
        force: None,
    };
    let mut roots = Vec::new();
    let mut root = RootWalk {
        conditions: Vec::new(),
        // Root fields of a mutation run in order, all of them before the response.
        defer_enabled: w.defer_enabled && op.kind == OperationKind::Query,
        deferred: None,
    };
    flatten_root(&op.selections, &mut root, &mut roots, &mut w.out.defers);
    w.register("", &op.selections);
    let mut previous: Option<usize> = None;
    for (field, conditions, deferred) in &roots {
        // A deferred root field gets root fetches of its own, in its fragment's segment.
        let segment = w.segment;
        if let Some(id) = deferred {
            w.segment = DEFER_SEGMENTS + id;
        }
        let (options, dominant) = w.root_options(&op.root_type, field, op.kind, previous)?;
        let chosen = w.choose(&options, dominant, |w, &s| {
            w.plan_root_field(op, field, conditions, s, previous)
        })?;
        if deferred.is_some() {
            w.segment = segment;
        } else {
            previous = Some(options[chosen]);
        }
    }
    Ok(w.out)
}

/// A root field, the conditional fragments around it, and its deferred fragment's id.
type RootField = (Field, Vec<Vec<Node<Directive>>>, Option<usize>);

struct RootWalk {
    conditions: Vec<Vec<Node<Directive>>>,
    defer_enabled: bool,
    /// The deferred fragment being flattened, if any (nested `@defer`s are part of it).
    deferred: Option<usize>,
}

fn flatten_root(
    sels: &[Sel],
    at: &mut RootWalk,
    out: &mut Vec<RootField>,
    defers: &mut Vec<Deferred>,
) {
    for sel in sels {
        match sel {
            Sel::Field(f) => out.push((f.clone(), at.conditions.clone(), at.deferred)),
            Sel::Fragment(fr) => {
                let pushed = !fr.directives.is_empty();
                if pushed {
                    at.conditions.push(fr.directives.clone());
                }
                let opened = match &fr.defer {
                    Some(d) if at.defer_enabled && at.deferred.is_none() => {
                        defers.push(Deferred {
                            label: d.label.clone(),
                            path: Vec::new(),
                        });
                        at.deferred = Some(defers.len() - 1);
                        true
                    }
                    _ => false,
                };
                flatten_root(&fr.selections, at, out, defers);
                if opened {
                    at.deferred = None;
                }
                if pushed {
                    at.conditions.pop();
                }
            }
        }
    }
}

/// Score (new fetches, fields still elsewhere, candidate order), candidate, route.
type Choice<'a> = ((usize, usize, usize), Candidate, Vec<Hop<'a>>);

/// Most steps one trial of an option may take (see [`Walker::choose`]); a trial that
/// needs more counts as unknown, and the heuristic order decides.
const TRIAL_STEPS: usize = 4_000;

/// What copying one selection node or group of the walk's state counts as, in steps.
const COPY_STEPS: usize = 8;

/// Steps every plan may spend on trials, whatever its size (see
/// [`Walker::trial_allowance`]).
const TRIAL_FLOOR: usize = 5_000;

/// How many levels of selections below a decision its trials plan (see
/// [`Walker::choose`]): options are compared on what they cost that far.
const TRIAL_DEPTH: usize = 6;

/// What a plan costs, compared in this order: subgraph requests, then the longest
/// sequence of dependent requests, then the data asked for (selection nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cost {
    fetches: usize,
    depth: usize,
    data: usize,
}

/// The walk's decisions so far (see [`Walker::snapshot`]).
#[derive(Clone)]
struct Snapshot {
    out: Groups,
    index: HashMap<(usize, usize, String, Name), Vec<usize>>,
    root_groups: HashMap<(usize, usize), usize>,
    registry: HashMap<String, IndexMap<Name, String>>,
    touched: Vec<usize>,
    segment: usize,
    aliases: usize,
    typed: BTreeSet<usize>,
    jumping: Vec<(Rc<str>, Name, Name)>,
    nesting: usize,
    shapes: HashMap<(usize, Rc<str>, Name), String>,
    shape_aliases: HashMap<(usize, Rc<str>, Name, String), Name>,
    context_vars: usize,
    planner_fields: usize,
    positions: HashMap<Rc<str>, Vec<Ctx>>,
    defer_ids: HashMap<(usize, Rc<str>), usize>,
}

#[derive(Clone)]
struct Hop<'a> {
    subgraph: usize,
    via: Option<Name>,
    key: &'a FieldSet,
}

impl<'g, 'a> Walker<'g, 'a> {
    // ---- group and node bookkeeping ------------------------------------------------

    fn new_node(&mut self, item: Item) -> usize {
        self.out.nodes.push(SelNode {
            item,
            children: IndexMap::new(),
        });
        self.out.nodes.len() - 1
    }

    fn new_group(&mut self, subgraph: usize, entity: Option<Entity>) -> usize {
        let root = self.new_node(Item::Root);
        let g = self.out.groups.len();
        let view = entity.as_ref().map(|e| e.view_type.clone());
        self.out.groups.push(Group {
            subgraph,
            segment: self.segment,
            root,
            entity,
            deps: BTreeSet::new(),
            merged: false,
            renames: Vec::new(),
            context_args: Vec::new(),
        });
        if let Some(view) = view {
            self.add_fragment(g, root, Some(&view), &[]);
        }
        g
    }

    fn add_child(&mut self, parent: usize, key: String, item: Item) -> usize {
        if let Some(&id) = self.out.nodes[parent].children.get(&key) {
            return id;
        }
        let id = self.new_node(item);
        self.out.nodes[parent].children.insert(key, id);
        id
    }

    fn add_field(&mut self, group: usize, parent: usize, f: &Field) -> usize {
        self.touched.push(group);
        let key = format!("{}{}", f.response_key(), directives_text(&f.directives));
        self.add_child(
            parent,
            key,
            Item::Field {
                alias: f.alias.clone(),
                name: f.name.clone(),
                arguments: f.arguments.clone(),
                directives: f.directives.clone(),
            },
        )
    }

    /// When `ty` sets an `@context`, the object position `c` becomes the nearest frame.
    fn push_frame(&self, c: &mut Ctx, ty: &Name) {
        let names = self.graph.contexts_of(ty);
        if names.is_empty() {
            return;
        }
        c.frames = Some(Rc::new(Frame {
            names,
            ctx: Ctx {
                frames: None,
                anchor: None,
                node: c.object_node,
                pending: Vec::new(),
                ..c.clone()
            },
            ty: ty.clone(),
            parent: c.frames.clone(),
        }));
    }

    /// Records an object position (see `positions`).
    fn remember(&mut self, c: &Ctx) {
        if c.view.is_some() || !c.pending.is_empty() {
            return;
        }
        let at = Ctx {
            node: c.object_node,
            provided: None,
            anchor: None,
            frames: None,
            ..c.clone()
        };
        self.positions
            .entry(c.path.key.clone())
            .or_default()
            .push(at);
    }

    /// The earliest fetch `object`'s fetch depends on that has the same object (same
    /// path) and can give every field of `key` itself.
    fn earlier_provider(&self, object: &Ctx, ty: &Name, key: &[Sel]) -> Option<Ctx> {
        if object.view.is_some() {
            return None;
        }
        self.positions
            .get(&*object.path.key)?
            .iter()
            .filter(|p| {
                p.group != object.group
                    && self.depends_on(object.group, p.group)
                    && self.graph.obtainable(p.subgraph, ty, key)
            })
            .min_by_key(|p| p.group)
            .cloned()
    }

    /// Adds field `f` of `ty` at `ctx`, aliased when its response key already holds a
    /// field of another type in this subgraph selection (renamed back on receipt).
    fn add_checked(&mut self, ctx: &Ctx, ty: &Name, f: &Field) -> Result<usize, PlanError> {
        if f.name == "__typename" {
            return Ok(self.add_field(ctx.group, ctx.node, f));
        }
        let view = ctx.view.as_ref().unwrap_or(ty);
        let text = self.graph.field_type_text(ctx.subgraph, view, &f.name);
        let scope = ctx.path.scope.clone();
        let key = f.response_key().clone();
        let slot = (ctx.subgraph, scope.clone(), key.clone());
        match self.shapes.get(&slot) {
            None => {
                self.shapes.insert(slot, text);
                return Ok(self.add_field(ctx.group, ctx.node, f));
            }
            Some(t) if *t == text => return Ok(self.add_field(ctx.group, ctx.node, f)),
            Some(_) => {}
        }
        let alias_slot = (ctx.subgraph, scope, key.clone(), text);
        let alias = match self.shape_aliases.get(&alias_slot) {
            Some(a) => a.clone(),
            None => {
                self.aliases += 1;
                let a = Name::new(&format!("_portico{}_{}", self.aliases, key))
                    .map_err(|e| PlanError::Internal(e.to_string()))?;
                self.shape_aliases.insert(alias_slot, a.clone());
                a
            }
        };
        let aliased = Field {
            alias: Some(alias.clone()),
            selections: Vec::new(),
            ..f.clone()
        };
        let node = self.add_field(ctx.group, ctx.node, &aliased);
        // The rename's path, relative to what the fetch returns (the entity for an
        // entity fetch): response keys only, the alias being unique.
        let group = &mut self.out.groups[ctx.group];
        let skip = group.entity.as_ref().map_or(0, |e| e.path.len());
        let mut path: Vec<String> = ctx
            .path
            .iter()
            .skip(skip)
            .filter_map(|p| match p {
                PathSegment::Key(k) => Some(k.clone()),
                _ => None,
            })
            .collect();
        path.push(alias.to_string());
        let rename = super::Rewrite::KeyRenamer {
            path,
            rename_key_to: key.to_string(),
        };
        if !group.renames.contains(&rename) {
            group.renames.push(rename);
        }
        Ok(node)
    }

    fn add_typename(&mut self, group: usize, parent: usize) {
        if self.typed.contains(&parent) {
            return;
        }
        let f = Field {
            alias: None,
            name: apollo_compiler::name!("__typename"),
            arguments: Vec::new(),
            directives: Vec::new(),
            selections: Vec::new(),
        };
        self.add_field(group, parent, &f);
    }

    fn add_fragment(
        &mut self,
        group: usize,
        parent: usize,
        tc: Option<&Name>,
        dirs: &[Node<Directive>],
    ) -> usize {
        self.touched.push(group);
        let key = format!(
            "...{}{}",
            tc.map(|t| format!(" on {t}")).unwrap_or_default(),
            directives_text(dirs)
        );
        self.add_child(
            parent,
            key,
            Item::Fragment {
                type_condition: tc.cloned(),
                directives: dirs.to_vec(),
            },
        )
    }

    /// Does group `a` (transitively) depend on group `b`?
    fn depends_on(&self, a: usize, b: usize) -> bool {
        let mut stack = vec![a];
        let mut seen = BTreeSet::new();
        while let Some(g) = stack.pop() {
            if g == b {
                return true;
            }
            if seen.insert(g) {
                stack.extend(self.out.groups[g].deps.iter().copied());
            }
        }
        false
    }

    fn group_exists(&self, subgraph: usize, path: &[PathSegment], view: &Name) -> bool {
        self.index
            .contains_key(&(self.segment, subgraph, path_key(path), view.clone()))
    }

    /// Finds or creates the entity group (subgraph, path, view type) depending on
    /// `parent` and `extra`.
    fn entity_group(
        &mut self,
        subgraph: usize,
        path: &[PathSegment],
        view: &Name,
        parent: usize,
        extra: &[usize],
    ) -> usize {
        let key = (self.segment, subgraph, path_key(path), view.clone());
        let reusable = self.index.get(&key).and_then(|list| {
            list.iter().copied().find(|&g| {
                g != parent
                    && !extra.contains(&g)
                    && !self.depends_on(parent, g)
                    && extra.iter().all(|&d| !self.depends_on(d, g))
            })
        });
        let g = match reusable {
            Some(g) => g,
            None => {
                let g = self.new_group(
                    subgraph,
                    Some(Entity {
                        path: path.to_vec(),
                        view_type: view.clone(),
                        requires: IndexMap::new(),
                        rewrite_types: BTreeSet::new(),
                        rewrite_all: false,
                    }),
                );
                self.index.entry(key).or_default().push(g);
                g
            }
        };
        let deps = &mut self.out.groups[g].deps;
        deps.insert(parent);
        deps.extend(extra.iter().copied().filter(|&d| d != g));
        g
    }

    fn add_requires(&mut self, g: usize, ty: &Name, projection: Vec<Selection>) {
        let entity = self.out.groups[g].entity.as_mut().expect("entity group");
        let list = entity.requires.entry(ty.clone()).or_default();
        for sel in projection {
            merge_selection(list, sel);
        }
    }

    // ---- response keys -----------------------------------------------------------

    fn register(&mut self, key: &str, sels: &[Sel]) {
        let mut fields = Vec::new();
        collect_fields(sels, &mut fields);
        if fields.is_empty() {
            return;
        }
        let reg = match self.registry.get_mut(key) {
            Some(reg) => reg,
            None => self.registry.entry(key.to_string()).or_default(),
        };
        for f in fields {
            reg.entry(f.response_key().clone())
                .or_insert_with(|| signature(f));
        }
    }

    /// Gives planner-added fields (keys, `@requires` inputs) an alias when their name is
    /// already used at this path by a different field.
    fn alias_resolve(
        &mut self,
        path: &[PathSegment],
        ty: &Name,
        sels: &[Sel],
    ) -> Result<Vec<Sel>, PlanError> {
        let mut out = Vec::with_capacity(sels.len());
        for sel in sels {
            self.budget.tick()?;
            match sel {
                Sel::Field(f) => {
                    let sig = signature(f);
                    let reg = self.registry.entry(path_key(path)).or_default();
                    let alias = match reg.get(&f.name) {
                        None => {
                            reg.insert(f.name.clone(), sig);
                            None
                        }
                        Some(s) if *s == sig => None,
                        Some(_) => {
                            let existing = reg
                                .iter()
                                .find(|(k, s)| **s == sig && k.starts_with("_portico"))
                                .map(|(k, _)| k.clone());
                            match existing {
                                Some(k) => Some(k),
                                None => {
                                    self.aliases += 1;
                                    let k =
                                        Name::new(&format!("_portico{}_{}", self.aliases, f.name))
                                            .map_err(|e| PlanError::Internal(e.to_string()))?;
                                    reg.insert(k.clone(), sig);
                                    Some(k)
                                }
                            }
                        }
                    };
                    let mut field = Field {
                        alias,
                        name: f.name.clone(),
                        arguments: f.arguments.clone(),
                        directives: Vec::new(),
                        selections: Vec::new(),
                    };
                    if !f.selections.is_empty() {
                        let (inner, depth) =
                            self.graph.field_type(ty, &f.name).ok_or_else(|| {
                                PlanError::InvalidFieldSet {
                                    coordinate: format!("{ty}.{}", f.name),
                                    message: "no such field".into(),
                                }
                            })?;
                        let mut sub = path.to_vec();
                        sub.push(PathSegment::Key(field.response_key().to_string()));
                        sub.extend(std::iter::repeat_n(PathSegment::List, depth));
                        field.selections = self.alias_resolve(&sub, &inner, &f.selections)?;
                    }
                    out.push(Sel::Field(field));
                }
                Sel::Fragment(fr) => {
                    let inner_ty = fr.type_condition.clone().unwrap_or_else(|| ty.clone());
                    let mut fr = fr.clone();
                    fr.selections = self.alias_resolve(path, &inner_ty, &fr.selections)?;
                    out.push(Sel::Fragment(fr));
                }
            }
        }
        Ok(out)
    }

    /// Plans planner-needed fields (keys, `@requires` inputs) at the object of `ctx` and
    /// returns their projection for representations.
    fn plan_planner_fields(
        &mut self,
        ctx: &Ctx,
        ty: &Name,
        sels: &[Sel],
    ) -> Result<Vec<Selection>, PlanError> {
        let resolved = self.alias_resolve(&ctx.path, ty, sels)?;
        self.planner_fields += 1;
        let walked = self.walk_selections(ctx, ty, &resolved);
        self.planner_fields -= 1;
        walked?;
        Ok(projection(&resolved))
    }

    // ---- options and the cost model ---------------------------------------------

    /// A copy of everything the walk has decided so far.
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            out: self.out.clone(),
            index: self.index.clone(),
            root_groups: self.root_groups.clone(),
            registry: self.registry.clone(),
            touched: self.touched.clone(),
            segment: self.segment,
            aliases: self.aliases,
            typed: self.typed.clone(),
            jumping: self.jumping.clone(),
            nesting: self.nesting,
            shapes: self.shapes.clone(),
            shape_aliases: self.shape_aliases.clone(),
            context_vars: self.context_vars,
            planner_fields: self.planner_fields,
            positions: self.positions.clone(),
            defer_ids: self.defer_ids.clone(),
        }
    }

    fn restore(&mut self, s: Snapshot) {
        self.out = s.out;
        self.index = s.index;
        self.root_groups = s.root_groups;
        self.registry = s.registry;
        self.touched = s.touched;
        self.segment = s.segment;
        self.aliases = s.aliases;
        self.typed = s.typed;
        self.jumping = s.jumping;
        self.nesting = s.nesting;
        self.shapes = s.shapes;
        self.shape_aliases = s.shape_aliases;
        self.context_vars = s.context_vars;
        self.planner_fields = s.planner_fields;
        self.positions = s.positions;
        self.defer_ids = s.defer_ids;
    }

    /// The cost of the plan decided so far (see [`Cost`]).
    fn cost(&self) -> Cost {
        let groups = &self.out.groups;
        // Level of each group: 0 without dependencies, else 1 + the deepest dependency
        // (an explicit stack: dependency chains are as long as the operation is deep).
        let mut level: Vec<Option<usize>> = vec![None; groups.len()];
        for start in 0..groups.len() {
            let mut stack = vec![(start, false)];
            while let Some((g, expanded)) = stack.pop() {
                if level[g].is_some() {
                    continue;
                }
                if expanded {
                    let l = groups[g]
                        .deps
                        .iter()
                        .map(|&d| level[d].map_or(0, |l| l + 1))
                        .max()
                        .unwrap_or(0);
                    level[g] = Some(l);
                    continue;
                }
                stack.push((g, true));
                // A dependency already on the stack (a cycle, which the walk never
                // builds) counts as level 0 instead of looping.
                stack.extend(
                    groups[g]
                        .deps
                        .iter()
                        .filter(|&&d| level[d].is_none() && d != g)
                        .map(|&d| (d, false)),
                );
            }
        }
        // Entity fetches to one subgraph at one level share a request (the scheduler's
        // batches); root fetches are one request per subgraph and mutation segment.
        let mut requests = BTreeSet::new();
        let mut depth = 0;
        for (g, group) in groups.iter().enumerate() {
            if group.merged {
                continue;
            }
            let l = level[g].unwrap_or(0);
            depth = depth.max(l + 1);
            requests.insert((group.segment, group.subgraph, l, group.entity.is_some()));
        }
        Cost {
            fetches: requests.len(),
            depth,
            data: self.out.nodes.len(),
        }
    }

    /// Steps trials may still take: [`TRIAL_FLOOR`] plus as many as the plan itself has
    /// taken so far, so trying options at most about doubles the work of a large
    /// plan, and never exceeds what the plan's budget allows.
    fn trial_allowance(&self) -> usize {
        (TRIAL_FLOOR + self.budget.used / 2)
            .min(self.spec_max)
            .saturating_sub(self.spec_used)
    }

    fn may_try(&self) -> bool {
        self.trial_allowance() > 0
    }

    /// Takes one of `options` (best first by the heuristic) with `apply`, and returns
    /// its index. When the first is not `dominant` and trying is allowed, every option
    /// is tried from the same state and the one whose plan costs least (fewest
    /// requests, then shortest sequence, then least data; ties go to the heuristic
    /// order) is taken; options that fail to plan are skipped, so an option that would
    /// fail below is never taken while another succeeds. Inside a trial, options are
    /// taken in heuristic order (no nested trials) and planned [`TRIAL_DEPTH`] levels
    /// deep; each trial has a step limit ([`TRIAL_STEPS`]), and trials stop once they
    /// have used their allowance ([`Walker::trial_allowance`]): from then on the
    /// heuristic order decides.
    fn choose<O>(
        &mut self,
        options: &[O],
        dominant: bool,
        apply: impl Fn(&mut Self, &O) -> Result<(), PlanError>,
    ) -> Result<usize, PlanError> {
        let Some(first) = options.first() else {
            return Err(PlanError::Internal("no option to choose from".into()));
        };
        if options.len() == 1 || dominant || self.speculating || !self.may_try() {
            apply(self, first)?;
            return Ok(0);
        }
        // Copying the state costs about [`COPY_STEPS`] steps per selection node and
        // group: it is copied once, then restored after each trial (a copy each time,
        // but for the last).
        let copy = COPY_STEPS * (self.out.nodes.len() + self.out.groups.len());
        self.spec_used += copy;
        let mut base = Some(self.snapshot());
        let (used, max) = (self.budget.used, self.budget.max);
        // Options whose trial succeeded: their cost, and whether the trial stopped at
        // its depth.
        let mut tried: Vec<(Cost, usize, bool)> = Vec::new();
        for (i, option) in options.iter().enumerate() {
            let limit = TRIAL_STEPS.min(self.trial_allowance());
            self.budget.used = 0;
            self.budget.max = limit;
            self.speculating = true;
            self.truncated = false;
            self.trial_floor = self.nesting;
            let result = apply(self, option);
            self.speculating = false;
            self.spec_used += self.budget.used;
            self.budget.used = used;
            self.budget.max = max;
            // A failed trial, or one too costly to finish (unknown, not worse), is not
            // chosen unless no trial succeeds.
            if result.is_ok() {
                tried.push((self.cost(), i, self.truncated));
            }
            let go_on = i + 1 < options.len() && self.trial_allowance() > copy;
            // The state before the trials is kept for a fallback (below) only when the
            // option about to be taken was tried to its depth limit, not to the end.
            let keep = go_on || tried.iter().min().is_some_and(|&(_, _, cut)| cut);
            let snapshot = if keep { base.clone() } else { base.take() };
            if let Some(snapshot) = snapshot {
                self.restore(snapshot);
            }
            if !go_on {
                break;
            }
            self.spec_used += copy;
        }
        // The cheapest successful trial first (ties to the heuristic order), then the
        // other options in heuristic order. A trial stops a few levels down, so the
        // option it chose may still fail deeper: then the next one is planned instead,
        // from the same state. No option plans: the first one's error.
        tried.sort();
        let mut order: Vec<usize> = tried.iter().map(|&(_, i, _)| i).collect();
        let rest: Vec<usize> = (0..options.len()).filter(|i| !order.contains(i)).collect();
        order.extend(rest);
        let mut first_error = None;
        for (k, &i) in order.iter().enumerate() {
            match apply(self, &options[i]) {
                Ok(()) => return Ok(i),
                Err(e @ PlanError::BudgetExceeded { .. }) => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                    match (&base, k + 1 < order.len()) {
                        (Some(state), true) => self.restore(state.clone()),
                        _ => break,
                    }
                }
            }
        }
        Err(first_error.unwrap_or_else(|| PlanError::Internal("no option to choose from".into())))
    }

    // ---- the walk ----------------------------------------------------------------

    fn walk_selections(&mut self, ctx: &Ctx, ty: &Name, sels: &[Sel]) -> Result<(), PlanError> {
        if self.nesting >= MAX_NESTING {
            return Err(PlanError::TooDeep {
                max_depth: MAX_NESTING,
            });
        }
        if self.speculating && self.nesting >= self.trial_floor + TRIAL_DEPTH {
            self.truncated = true;
            return Ok(());
        }
        self.nesting += 1;
        let result = self.walk_selections_inner(ctx, ty, sels);
        self.nesting -= 1;
        result
    }

    fn walk_selections_inner(
        &mut self,
        ctx: &Ctx,
        ty: &Name,
        sels: &[Sel],
    ) -> Result<(), PlanError> {
        self.register(&ctx.path.key, sels);
        if self.graph.is_abstract(ty) {
            // Every object of abstract type gets its `__typename` from the fetch that
            // returns it, whatever the fragments select, so the executor always knows
            // its concrete type. (An `@interfaceObject` subgraph would answer the
            // interface name: there the concrete type comes from another fetch.)
            if matches!(self.out.nodes[ctx.object_node].item, Item::Field { .. })
                && !self.graph.is_interface_object(ctx.subgraph, ty)
            {
                self.add_typename(ctx.group, ctx.object_node);
            }
            return self.walk_abstract(ctx, ty, sels);
        }
        for sel in sels {
            match sel {
                Sel::Field(f) => self.walk_field(ctx, ty, f)?,
                Sel::Fragment(fr) => {
                    if let Some(tc) = &fr.type_condition
                        && !self.graph.applies(tc, ty)
                    {
                        continue;
                    }
                    if self.defers_here(fr) {
                        self.walk_deferred(ctx, ty, fr)?;
                    } else if fr.directives.is_empty() {
                        self.walk_selections(ctx, ty, &fr.selections)?;
                    } else {
                        let mut c = ctx.clone();
                        c.node = self.add_fragment(ctx.group, ctx.node, None, &fr.directives);
                        c.pending.push(fr.directives.clone());
                        self.walk_selections(&c, ty, &fr.selections)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Is `fr` a deferred fragment to plan apart (the outermost `@defer` of its branch,
    /// in a client selection)?
    fn defers_here(&self, fr: &Fragment) -> bool {
        fr.defer.is_some()
            && self.defer_enabled
            && self.segment < DEFER_SEGMENTS
            && self.planner_fields == 0
    }

    /// Walks deferred fragment `fr` at `ctx` (object type `ty`) in its own segment: its
    /// fields jump out of the current fetch by a key where one exists (see `force`), and
    /// everything below them follows in fetches of that segment.
    fn walk_deferred(&mut self, ctx: &Ctx, ty: &Name, fr: &Fragment) -> Result<(), PlanError> {
        let key = (std::ptr::from_ref(fr) as usize, ctx.path.scope.clone());
        let id = match self.defer_ids.get(&key) {
            Some(&id) => id,
            None => {
                self.out.defers.push(Deferred {
                    label: fr.defer.as_ref().and_then(|d| d.label.clone()),
                    path: ctx
                        .path
                        .iter()
                        .filter(|p| !matches!(p, PathSegment::TypeCondition(_)))
                        .cloned()
                        .collect(),
                });
                let id = self.out.defers.len() - 1;
                self.defer_ids.insert(key, id);
                id
            }
        };
        let mut c = ctx.clone();
        if !fr.directives.is_empty() {
            c.node = self.add_fragment(ctx.group, ctx.node, None, &fr.directives);
            c.pending.push(fr.directives.clone());
        }
        let saved = (self.segment, self.force.take());
        self.segment = DEFER_SEGMENTS + id;
        self.force = Some((c.path.key.clone(), c.group));
        let result = self.walk_selections(&c, ty, &fr.selections);
        (self.segment, self.force) = saved;
        result
    }

    /// Should field `f` at `ctx` leave the current fetch for a deferred one, and can
    /// it (a strict key route to a subgraph that resolves it)? Fields that cannot stay
    /// where they are fetched with the primary part (the spec lets a server deliver
    /// deferred data early).
    fn forced_out(&mut self, ctx: &Ctx, ty: &Name, f: &Field) -> Result<bool, PlanError> {
        let Some((key, group)) = &self.force else {
            return Ok(false);
        };
        if self.planner_fields > 0
            || ctx.group != *group
            || ctx.path.key != *key
            || ctx.view.is_some()
            || self.graph.is_abstract(ty)
            || self.context_candidate(ty, f).is_some()
        {
            return Ok(false);
        }
        for cand in self.graph.candidates(ty, &f.name) {
            if self.route(ctx, ty, &cand, false)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn walk_field(&mut self, ctx: &Ctx, ty: &Name, f: &Field) -> Result<(), PlanError> {
        self.budget.tick()?;
        if f.name == "__typename" {
            // A subgraph seeing the type as an @interfaceObject would answer the interface
            // name: the concrete `__typename` comes from the parent fetch instead.
            if ctx.view.is_none() {
                self.add_field(ctx.group, ctx.node, f);
            }
            return Ok(());
        }
        if self.forced_out(ctx, ty, f)? {
            return self.jump(ctx, ty, f);
        }
        if let Some(provided) = ctx
            .provided
            .as_ref()
            .and_then(|p| find_provided(self.graph, p, ty, &f.name))
        {
            let n = self.add_checked(ctx, ty, f)?;
            return self.recurse(ctx, ty, f, n, Some(provided));
        }
        if let Some(cand) = self.context_candidate(ty, f) {
            return self.context_field(ctx, ty, f, cand);
        }
        let view = ctx.view.clone().unwrap_or_else(|| ty.clone());
        match self.graph.field_local(ctx.subgraph, &view, &f.name) {
            Some(local)
                if local.requires.is_none()
                    && !local.context
                    && !self.stuck_in_value_type(ctx, ty, f)? =>
            {
                self.take_field(ctx, ty, f, local.provides)
            }
            _ => self.jump(ctx, ty, f),
        }
    }

    /// The object's own position at `ctx` (where key fields and `__typename` go).
    fn object_of(ctx: &Ctx) -> Ctx {
        Ctx {
            node: ctx.object_node,
            pending: Vec::new(),
            ..ctx.clone()
        }
    }

    /// Replays the conditional fragments `pending` (between an object's selection and
    /// the current position) under `at`, so a field moved to another fetch keeps its
    /// `@skip`/`@include`.
    fn reapply_pending(&mut self, at: &mut Ctx, pending: &[Vec<Node<Directive>>]) {
        let mut node = at.node;
        for dirs in pending {
            node = self.add_fragment(at.group, node, None, dirs);
        }
        at.node = node;
        at.pending = pending.to_vec();
    }

    /// Takes field `f` of `ty` at `at` (whose subgraph resolves it, with `provides` as
    /// that subgraph declares it) and walks its sub-selections there.
    fn take_field(
        &mut self,
        at: &Ctx,
        ty: &Name,
        f: &Field,
        provides: Option<&FieldSet>,
    ) -> Result<(), PlanError> {
        let provided = match provides {
            Some(fs) => Some(field_set(fs, || format!("{ty}.{}", f.name))?.to_vec()),
            None => None,
        };
        let n = self.add_checked(at, ty, f)?;
        self.recurse(at, ty, f, n, provided)
    }

    /// Would staying in the current subgraph for `f` strand selections on a value type
    /// (no keys, so no way to jump later) that another subgraph could answer?
    fn stuck_in_value_type(&mut self, ctx: &Ctx, ty: &Name, f: &Field) -> Result<bool, PlanError> {
        if f.selections.is_empty() || ctx.view.is_some() {
            return Ok(false);
        }
        let Some((inner, _)) = self.graph.field_type(ty, &f.name) else {
            return Ok(false);
        };
        if self.graph.has_keys(&inner) || self.graph.is_abstract(&inner) {
            return Ok(false);
        }
        if self.nonlocal(ctx.subgraph, &inner, &f.selections, 0, &mut false)? == 0 {
            return Ok(false);
        }
        for cand in self.graph.candidates(ty, &f.name) {
            if cand.subgraph != ctx.subgraph
                && cand.via.is_none()
                && self.nonlocal(cand.subgraph, &inner, &f.selections, 0, &mut false)? == 0
            {
                return Ok(self.route(ctx, ty, &cand, false)?.is_some());
            }
        }
        Ok(false)
    }

    /// Walks the sub-selections of field `f` (already added as `node`) in the same group.
    fn recurse(
        &mut self,
        ctx: &Ctx,
        ty: &Name,
        f: &Field,
        node: usize,
        provided: Option<Vec<Sel>>,
    ) -> Result<(), PlanError> {
        if f.selections.is_empty() {
            return Ok(());
        }
        let (mut inner, depth) = self.graph.field_type(ty, &f.name).ok_or_else(|| {
            PlanError::Internal(format!("no field definition for {ty}.{}", f.name))
        })?;
        // The subgraph may declare a narrower type (`@join__field(type:)`): select what
        // is valid there, and still type the objects if the client sees an abstract type.
        let view = ctx.view.as_ref().unwrap_or(ty);
        if let Some(own) = self.graph.subgraph_field_type(ctx.subgraph, view, &f.name) {
            if self.graph.is_abstract(&inner) && !self.graph.is_abstract(&own) {
                self.add_typename(ctx.group, node);
            }
            inner = own;
        }
        let path = ctx.path.field(f.response_key(), depth);
        let mut c = Ctx {
            group: ctx.group,
            subgraph: ctx.subgraph,
            node,
            object_node: node,
            path,
            view: None,
            pending: Vec::new(),
            provided,
            anchor: None,
            frames: ctx.frames.clone(),
        };
        if f.directives.is_empty() && ctx.pending.is_empty() {
            self.remember(&c);
        }
        self.push_frame(&mut c, &inner);
        c.anchor = if self.graph.has_keys(&inner) && !self.graph.is_abstract(&inner) {
            Some(Anchor::at(&c, &inner, false))
        } else {
            ctx.anchor.as_ref().map(|a| {
                a.then(Step::Field(Field {
                    selections: Vec::new(),
                    ..f.clone()
                }))
            })
        };
        self.walk_selections(&c, &inner, &f.selections)
    }

    /// The subgraphs that can resolve root field `f`, best first by the heuristic
    /// (fewest fields left to other subgraphs, then a fetch that exists already), and
    /// whether the first is certainly best (it resolves everything selected and adds
    /// no fetch another option would not).
    fn root_options(
        &mut self,
        root: &Name,
        f: &Field,
        kind: OperationKind,
        previous: Option<usize>,
    ) -> Result<(Vec<usize>, bool), PlanError> {
        let mut scored = Vec::new();
        for s in self.graph.type_graphs(root) {
            let Some(local) = self.graph.field_local(s, root, &f.name) else {
                continue;
            };
            if local.requires.is_some() {
                continue;
            }
            let mut truncated = false;
            let nonlocal = match self.graph.field_type(root, &f.name) {
                Some((inner, _)) => self.nonlocal(s, &inner, &f.selections, 0, &mut truncated)?,
                None => 0,
            };
            let existing = match kind {
                OperationKind::Mutation => previous == Some(s),
                _ => self.root_groups.contains_key(&(self.segment, s)),
            };
            scored.push(((nonlocal + usize::from(!existing), nonlocal, s), truncated));
        }
        scored.sort_unstable();
        let Some(&((_, nonlocal, _), truncated)) = scored.first() else {
            return Err(PlanError::Unresolvable {
                type_name: root.to_string(),
                field: f.name.to_string(),
                detail: String::new(),
            });
        };
        let dominant = nonlocal == 0 && !truncated;
        Ok((
            scored.into_iter().map(|((_, _, s), _)| s).collect(),
            dominant,
        ))
    }

    /// Plans root field `f` (under the conditional fragments `conditions`) in subgraph
    /// `s`; `previous` is the subgraph of the root field before it.
    fn plan_root_field(
        &mut self,
        op: &Operation,
        f: &Field,
        conditions: &[Vec<Node<Directive>>],
        s: usize,
        previous: Option<usize>,
    ) -> Result<(), PlanError> {
        if op.kind == OperationKind::Mutation && previous.is_some_and(|p| p != s) {
            self.segment += 1;
        }
        let group = match self.root_groups.get(&(self.segment, s)) {
            Some(g) => *g,
            None => {
                let g = self.new_group(s, None);
                self.root_groups.insert((self.segment, s), g);
                g
            }
        };
        let root = self.out.groups[group].root;
        let mut node = root;
        for dirs in conditions {
            node = self.add_fragment(group, node, None, dirs);
        }
        let mut ctx = Ctx {
            group,
            subgraph: s,
            node,
            object_node: root,
            path: RPath::default(),
            view: None,
            pending: conditions.to_vec(),
            provided: None,
            anchor: None,
            frames: None,
        };
        if op.kind == OperationKind::Query {
            ctx.anchor = Some(Anchor::at(&ctx, &op.root_type, true));
        }
        self.walk_field(&ctx, &op.root_type, f)
    }

    /// Rough count of selected fields subgraph `s` cannot resolve (used to choose
    /// among subgraphs that share a field: fewer jumps means fewer fetches).
    fn nonlocal(
        &mut self,
        s: usize,
        ty: &Name,
        sels: &[Sel],
        depth: usize,
        truncated: &mut bool,
    ) -> Result<usize, PlanError> {
        if depth > 4 {
            *truncated = true;
            return Ok(0);
        }
        let mut n = 0;
        for sel in sels {
            self.budget.tick()?;
            match sel {
                Sel::Field(f) if f.name == "__typename" => {}
                Sel::Field(f) => match self.graph.field_local(s, ty, &f.name) {
                    Some(local) if local.requires.is_none() => {
                        if !f.selections.is_empty()
                            && let Some((inner, _)) = self.graph.field_type(ty, &f.name)
                        {
                            n += self.nonlocal(s, &inner, &f.selections, depth + 1, truncated)?;
                        }
                    }
                    _ => n += 1,
                },
                Sel::Fragment(fr) => {
                    let t = fr.type_condition.clone().unwrap_or_else(|| ty.clone());
                    n += self.nonlocal(s, &t, &fr.selections, depth, truncated)?;
                }
            }
        }
        Ok(n)
    }

    /// The shortest chain of key jumps from the current subgraph to `cand` for objects of
    /// type `ty`: a breadth-first search over the query graph's key edges (every
    /// resolvable key of every subgraph defining `ty`, chains of any length). A key may be
    /// assembled from every subgraph the chain has visited so far: its fields are fetched
    /// where they are resolvable before the jump. Intermediate subgraphs that see `ty` as
    /// an `@interfaceObject` are not used (they would answer the interface name).
    ///
    /// `relaxed`: a key field with a sub-selection counts as available when some visited
    /// subgraph resolves the field itself; the walk then fetches its sub-selection
    /// wherever it lives (by another key jump inside the key condition). Used only when
    /// no strict route exists, as it may still fail while planning the key.
    fn route(
        &mut self,
        ctx: &Ctx,
        ty: &Name,
        cand: &Candidate,
        relaxed: bool,
    ) -> Result<Option<Vec<Hop<'a>>>, PlanError> {
        let graph = self.graph;
        let target_view = cand.via.clone().unwrap_or_else(|| ty.clone());
        let from_view = ctx.view.clone().unwrap_or_else(|| ty.clone());
        // Search nodes: (subgraph, view type, parent node, key used to get here).
        struct Node<'k> {
            subgraph: usize,
            via: Option<Name>,
            parent: Option<usize>,
            key: Option<&'k FieldSet>,
        }
        let mut nodes: Vec<Node<'a>> = vec![Node {
            subgraph: ctx.subgraph,
            via: ctx.view.clone(),
            parent: None,
            key: None,
        }];
        let mut seen: BTreeSet<usize> = BTreeSet::from([ctx.subgraph]);
        let intermediates: Vec<usize> = graph
            .type_graphs(ty)
            .into_iter()
            .filter(|&y| y != cand.subgraph && !graph.is_interface_object(y, ty))
            .collect();
        // Can the chain ending at node `n` provide every top-level field of `key`?
        let chain_obtains = |nodes: &[Node<'a>], n: usize, key: &[Sel]| {
            key.iter().all(|sel| {
                let mut at = Some(n);
                while let Some(i) = at {
                    let view = match (i, &nodes[i].via) {
                        (0, _) => &from_view,
                        (_, Some(via)) => via,
                        (_, None) => ty,
                    };
                    if graph.obtainable(nodes[i].subgraph, view, std::slice::from_ref(sel)) {
                        return true;
                    }
                    if relaxed
                        && let Sel::Field(f) = sel
                        && !f.selections.is_empty()
                        && graph
                            .field_local(nodes[i].subgraph, view, &f.name)
                            .is_some()
                    {
                        return true;
                    }
                    at = nodes[i].parent;
                }
                false
            })
        };
        let mut frontier = 0;
        while frontier < nodes.len() {
            let n = frontier;
            frontier += 1;
            // The target first: the shortest chain wins, and among equals the first key.
            for key in graph.resolvable_keys(cand.subgraph, &target_view) {
                self.budget.tick()?;
                let sels = field_set(&key.fields, || format!("key of {target_view}"))?;
                if chain_obtains(&nodes, n, sels) {
                    let mut hops = vec![Hop {
                        subgraph: cand.subgraph,
                        via: cand.via.clone(),
                        key: &key.fields,
                    }];
                    let mut at = n;
                    while let Some(parent) = nodes[at].parent {
                        hops.push(Hop {
                            subgraph: nodes[at].subgraph,
                            via: nodes[at].via.clone(),
                            key: nodes[at].key.ok_or_else(|| {
                                PlanError::Internal("route node without key".into())
                            })?,
                        });
                        at = parent;
                    }
                    hops.reverse();
                    return Ok(Some(hops));
                }
            }
            for &y in &intermediates {
                if seen.contains(&y) {
                    continue;
                }
                for key in graph.resolvable_keys(y, ty) {
                    self.budget.tick()?;
                    let sels = field_set(&key.fields, || format!("key of {ty}"))?;
                    if chain_obtains(&nodes, n, sels) {
                        seen.insert(y);
                        nodes.push(Node {
                            subgraph: y,
                            via: None,
                            parent: Some(n),
                            key: Some(&key.fields),
                        });
                        break;
                    }
                }
            }
        }
        Ok(None)
    }

    /// Field `f` of object type `ty` is not resolvable where we stand: fetch it from the
    /// best other subgraph through an entity fetch.
    fn jump(&mut self, ctx: &Ctx, ty: &Name, f: &Field) -> Result<(), PlanError> {
        let me = (ctx.path.key.clone(), ty.clone(), f.name.clone());
        if self.jumping.contains(&me) {
            // Fetching this field needs this very field first (e.g. an `@external` key
            // field that the key jump would need): the subgraph returns the key fields of
            // its own keys in representations, so take it from here if that is the case.
            let view = ctx.view.as_ref().unwrap_or(ty);
            if f.selections.is_empty() && self.graph.own_key_field(ctx.subgraph, view, &f.name) {
                self.add_field(ctx.group, ctx.node, f);
                return Ok(());
            }
            return Err(PlanError::Unresolvable {
                type_name: ty.to_string(),
                field: f.name.to_string(),
                detail: format!(
                    " from subgraph \"{}\" at path \"{}\" (fetching it needs itself)",
                    self.graph.subgraph_name(ctx.subgraph),
                    me.0
                ),
            });
        }
        self.jumping.push(me);
        let result = self.jump_inner(ctx, ty, f);
        self.jumping.pop();
        result
    }

    fn jump_inner(&mut self, ctx: &Ctx, ty: &Name, f: &Field) -> Result<(), PlanError> {
        let graph = self.graph;
        // Every candidate subgraph with a route to it (strict routes first; relaxed ones
        // only when there is no strict one), best first by the heuristic score.
        let mut options: Vec<(Choice<'a>, bool)> = Vec::new();
        for relaxed in [false, true] {
            if !options.is_empty() {
                break;
            }
            for (i, cand) in graph.candidates(ty, &f.name).into_iter().enumerate() {
                let view = cand.via.clone().unwrap_or_else(|| ty.clone());
                // (Fields with `@fromContext` arguments never get here: `walk_field`
                // sends them to `context_field`.)
                let requires = graph
                    .field_local(cand.subgraph, &view, &f.name)
                    .and_then(|l| l.requires);
                let Some(route) = self.route(ctx, ty, &cand, relaxed)? else {
                    continue;
                };
                let new_groups = route
                    .iter()
                    .filter(|h| {
                        !self.group_exists(h.subgraph, &ctx.path, h.via.as_ref().unwrap_or(ty))
                    })
                    .count();
                let mut truncated = false;
                let nonlocal = match graph.field_type(ty, &f.name) {
                    Some((inner, _)) => {
                        self.nonlocal(cand.subgraph, &inner, &f.selections, 0, &mut truncated)?
                    }
                    None => 0,
                };
                let score = (new_groups + usize::from(requires.is_some()), nonlocal, i);
                // Dominant: everything selected below stays in the target, no
                // `@requires` input to fetch, and no option adds fewer fetches.
                let complete = nonlocal == 0 && !truncated && requires.is_none();
                options.push(((score, cand, route), complete));
            }
        }
        options.sort_unstable_by_key(|((score, _, _), _)| *score);
        let Some(&(_, dominant)) = options.first() else {
            if self.reanchor(ctx, ty, f)? {
                return Ok(());
            }
            return Err(PlanError::Unresolvable {
                type_name: ty.to_string(),
                field: f.name.to_string(),
                detail: format!(
                    " from subgraph \"{}\" at path \"{}\"",
                    graph.subgraph_name(ctx.subgraph),
                    path_key(&ctx.path)
                ),
            });
        };
        let choices: Vec<Choice<'a>> = options.into_iter().map(|(c, _)| c).collect();
        self.choose(&choices, dominant, |w, (_, cand, route)| {
            w.jump_to(ctx, ty, f, cand, route)
        })?;
        Ok(())
    }

    /// Takes `f` of `ty` from `cand`, reached from `ctx` by `route`: `@requires` inputs
    /// first, then the key jumps, then the field and its sub-selections there.
    fn jump_to(
        &mut self,
        ctx: &Ctx,
        ty: &Name,
        f: &Field,
        cand: &Candidate,
        route: &[Hop<'a>],
    ) -> Result<(), PlanError> {
        let graph = self.graph;
        let target_view = cand.via.clone().unwrap_or_else(|| ty.clone());
        let target_local = graph.field_local(cand.subgraph, &target_view, &f.name);

        let object = Self::object_of(ctx);
        // `@requires` inputs first, from where we stand (they may jump too).
        let mut required = Vec::new();
        let mut extra = Vec::new();
        if let Some(fs) = target_local.and_then(|l| l.requires) {
            let sels = field_set(fs, || format!("{target_view}.{}", f.name))?.to_vec();
            let mark = self.touched.len();
            required = self.plan_planner_fields(&object, ty, &sels)?;
            extra = self.touched[mark..].to_vec();
            extra.sort_unstable();
            extra.dedup();
        }
        let mut cur = self.enter(object, ty, route.to_vec(), required, &extra)?;
        self.reapply_pending(&mut cur, &ctx.pending);
        self.take_field(&cur, ty, f, target_local.and_then(|l| l.provides))
    }

    /// `f` of the value type `ty` is resolvable elsewhere but there is no key to jump by:
    /// go back to the nearest enclosing entity (by its key) or to the root, in a subgraph
    /// that resolves every field from there down to `f`, select down again and take `f`
    /// there. Subgraph responses merge by response key, so both halves meet in one
    /// object. `false` when no subgraph can do it.
    fn reanchor(&mut self, ctx: &Ctx, ty: &Name, f: &Field) -> Result<bool, PlanError> {
        let graph = self.graph;
        let Some(anchor) = ctx.anchor.clone() else {
            return Ok(false);
        };
        if ctx.view.is_some() {
            return Ok(false);
        }
        for cand in graph.candidates(ty, &f.name) {
            self.budget.tick()?;
            if cand.via.is_some() || cand.subgraph == ctx.subgraph {
                continue;
            }
            let s = cand.subgraph;
            if graph
                .field_local(s, ty, &f.name)
                .is_none_or(|l| l.requires.is_some() || l.context)
            {
                continue;
            }
            // Every step from the anchor down must be resolvable in `s`.
            let mut t = anchor.ty.clone();
            let mut ok = true;
            for step in &anchor.steps {
                match step {
                    Step::Field(sf) => {
                        let usable = graph
                            .field_local(s, &t, &sf.name)
                            .is_some_and(|l| l.requires.is_none() && !l.context);
                        match graph.field_type(&t, &sf.name) {
                            Some((inner, _)) if usable => {
                                t = graph.subgraph_field_type(s, &t, &sf.name).unwrap_or(inner)
                            }
                            _ => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    Step::Narrow(p) => {
                        if !graph.type_graphs(p).contains(&s) {
                            ok = false;
                            break;
                        }
                        t = p.clone();
                    }
                }
            }
            if !ok || &t != ty {
                continue;
            }
            // Enter `s` at the anchor.
            let mut at = if anchor.root {
                let segment = self.segment;
                let group = match self.root_groups.get(&(segment, s)) {
                    Some(g) => *g,
                    None => {
                        let g = self.new_group(s, None);
                        self.root_groups.insert((segment, s), g);
                        g
                    }
                };
                let root = self.out.groups[group].root;
                Ctx {
                    group,
                    subgraph: s,
                    node: root,
                    object_node: root,
                    path: RPath::default(),
                    view: None,
                    pending: Vec::new(),
                    provided: None,
                    anchor: None,
                    frames: None,
                }
            } else {
                let Some(route) = self.route(&anchor.ctx, &anchor.ty, &cand, false)? else {
                    continue;
                };
                let object = Ctx {
                    node: anchor.ctx.object_node,
                    pending: Vec::new(),
                    provided: None,
                    ..anchor.ctx.clone()
                };
                self.enter(object, &anchor.ty, route, Vec::new(), &[])?
            };
            // Select down again.
            let mut t = anchor.ty.clone();
            for step in &anchor.steps {
                match step {
                    Step::Field(sf) => {
                        let n = self.add_field(at.group, at.node, sf);
                        let (inner, depth) = graph.field_type(&t, &sf.name).ok_or_else(|| {
                            PlanError::Internal(format!("no field definition for {t}.{}", sf.name))
                        })?;
                        if graph.is_abstract(&inner) {
                            self.add_typename(at.group, n);
                        }
                        let path = at.path.field(sf.response_key(), depth);
                        t = graph.subgraph_field_type(s, &t, &sf.name).unwrap_or(inner);
                        at = Ctx {
                            node: n,
                            object_node: n,
                            path,
                            ..at
                        };
                    }
                    Step::Narrow(p) => {
                        at = self.narrow(&at, p);
                        t = p.clone();
                    }
                }
            }
            let mut node = at.node;
            for dirs in &ctx.pending {
                node = self.add_fragment(at.group, node, None, dirs);
            }
            at.node = node;
            at.pending = ctx.pending.clone();
            at.anchor = ctx.anchor.clone();
            at.frames = ctx.frames.clone();
            self.walk_field(&at, ty, f)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The subgraph resolving `ty.f` with `@fromContext` arguments, if that is how the
    /// field is resolved (a field with context arguments is never shared).
    fn context_candidate(&self, ty: &Name, f: &Field) -> Option<Candidate> {
        self.graph.candidates(ty, &f.name).into_iter().find(|c| {
            self.graph
                .field_local(c.subgraph, c.via.as_ref().unwrap_or(ty), &f.name)
                .is_some_and(|l| l.context)
        })
    }

    /// `f` takes arguments from an ancestor's `@context`: fetch the context's selection
    /// at the nearest enclosing position that sets it, then fetch `f` by an entity fetch
    /// on its parent (even in the same subgraph), with each argument a variable the
    /// executor fills per object from that ancestor.
    fn context_field(
        &mut self,
        ctx: &Ctx,
        ty: &Name,
        f: &Field,
        cand: Candidate,
    ) -> Result<(), PlanError> {
        let graph = self.graph;
        let view = cand.via.clone().unwrap_or_else(|| ty.clone());
        let local = graph
            .field_local(cand.subgraph, &view, &f.name)
            .ok_or_else(|| PlanError::Internal(format!("{view}.{} lost its subgraph", f.name)))?;
        let mut arguments: Vec<Node<Argument>> = f.arguments.clone();
        let mut context_args = Vec::new();
        let mut extra = Vec::new();
        for ca in local.context_args {
            let Some(frame) = Frame::find(&ctx.frames, &ca.context) else {
                return Err(PlanError::Unresolvable {
                    type_name: ty.to_string(),
                    field: f.name.to_string(),
                    detail: format!(
                        " (its argument {} comes from @context \"{}\", which no enclosing \
                         object sets at path \"{}\")",
                        ca.name,
                        ca.context,
                        path_key(&ctx.path)
                    ),
                });
            };
            let text = ca.selection.trim();
            let text = text
                .strip_prefix('{')
                .and_then(|t| t.strip_suffix('}'))
                .unwrap_or(text);
            let sels = super::operation::parse_field_set(text).map_err(|message| {
                PlanError::InvalidFieldSet {
                    coordinate: format!("{view}.{}({}:)", f.name, ca.name),
                    message,
                }
            })?;
            let mark = self.touched.len();
            let projection = self.plan_planner_fields(&frame.ctx, &frame.ty, &sels)?;
            extra.extend_from_slice(&self.touched[mark..]);
            // The value: the first field path of the selection.
            let mut path = Vec::new();
            let mut level = projection.as_slice();
            while let Some(sel) = level.first() {
                match sel {
                    Selection::Field {
                        name, selections, ..
                    } => {
                        path.push(name.clone());
                        level = selections;
                    }
                    Selection::InlineFragment { selections, .. } => level = selections,
                }
            }
            let levels_up = ctx.path[frame.ctx.path.len().min(ctx.path.len())..]
                .iter()
                .filter(|p| !matches!(p, PathSegment::TypeCondition(_)))
                .count();
            let variable = format!("__portico_ctx_{}", self.context_vars);
            self.context_vars += 1;
            let var_name = Name::new(&variable).map_err(|e| PlanError::Internal(e.to_string()))?;
            let arg_name = Name::new(&ca.name).map_err(|e| PlanError::Internal(e.to_string()))?;
            arguments.retain(|a| a.name != arg_name);
            arguments.push(Node::new(Argument {
                name: arg_name,
                value: Node::new(apollo_compiler::ast::Value::Variable(var_name)),
            }));
            context_args.push(super::ContextArgument {
                variable,
                type_name: ca.ty.clone(),
                levels_up,
                path,
            });
        }
        extra.sort_unstable();
        extra.dedup();
        let route = match self.route(ctx, ty, &cand, false)? {
            Some(r) => Some(r),
            None => self.route(ctx, ty, &cand, true)?,
        };
        let Some(route) = route else {
            return Err(PlanError::Unresolvable {
                type_name: ty.to_string(),
                field: f.name.to_string(),
                detail: format!(
                    " from subgraph \"{}\" at path \"{}\" (no key to fetch it with its @fromContext arguments)",
                    graph.subgraph_name(ctx.subgraph),
                    path_key(&ctx.path)
                ),
            });
        };
        let mut cur = self.enter(Self::object_of(ctx), ty, route, Vec::new(), &extra)?;
        self.reapply_pending(&mut cur, &ctx.pending);
        for a in context_args {
            let group = &mut self.out.groups[cur.group];
            if !group.context_args.contains(&a) {
                group.context_args.push(a);
            }
        }
        let field = Field {
            arguments,
            ..f.clone()
        };
        self.take_field(&cur, ty, &field, local.provides)
    }

    /// Follows a chain of key jumps from `object` (an object position of type `ty`):
    /// plans each key's fields where the chain can provide them, opens or reuses the
    /// entity groups, and returns the position in the last one. `required` (`@requires`
    /// inputs, already planned) goes into the last representation, whose group also
    /// depends on `extra`.
    fn enter(
        &mut self,
        object: Ctx,
        ty: &Name,
        route: Vec<Hop<'a>>,
        required: Vec<Selection>,
        extra: &[usize],
    ) -> Result<Ctx, PlanError> {
        let graph = self.graph;
        let path = object.path.clone();
        let frames = object.frames.clone();
        let mut cur = object;
        // Every subgraph the chain has visited: a key field comes from the first one
        // that can provide it (keys may be assembled from several subgraphs).
        let mut chain: Vec<Ctx> = vec![cur.clone()];
        let hops = route.len();
        for (i, hop) in route.into_iter().enumerate() {
            let last = i + 1 == hops;
            let key = field_set(hop.key, || format!("key of {ty}"))?.to_vec();
            if i == 0
                && let Some(provider) = self.earlier_provider(&cur, ty, &key)
            {
                // Jump from the earliest fetch that has the object and its key.
                chain.insert(0, provider.clone());
                cur = provider;
            }
            let mut proj = vec![typename_selection()];
            // Groups the key's fields land in (a key part may need jumps of its own):
            // the entity fetch waits for all of them.
            let mark = self.touched.len();
            for sel in &key {
                let at = chain
                    .iter()
                    .position(|c| {
                        graph.obtainable(
                            c.subgraph,
                            c.view.as_ref().unwrap_or(ty),
                            std::slice::from_ref(sel),
                        )
                    })
                    .or_else(|| {
                        // Only part of it anywhere: start where the field itself resolves
                        // (its sub-selection then jumps on from there).
                        let Sel::Field(kf) = sel else { return None };
                        chain.iter().position(|c| {
                            graph
                                .field_local(c.subgraph, c.view.as_ref().unwrap_or(ty), &kf.name)
                                .is_some()
                        })
                    })
                    .unwrap_or(chain.len() - 1);
                let from = chain[at].clone();
                for p in self.plan_planner_fields(&from, ty, std::slice::from_ref(sel))? {
                    merge_selection(&mut proj, p);
                }
            }
            if cur.view.is_none() {
                self.add_typename(cur.group, cur.object_node);
            }
            let mut deps: Vec<usize> = self.touched[mark..].to_vec();
            if last {
                deps.extend_from_slice(extra);
            }
            deps.sort_unstable();
            deps.dedup();
            let view = hop.via.clone().unwrap_or_else(|| ty.clone());
            let g = self.entity_group(hop.subgraph, &path, &view, cur.group, &deps);
            if last {
                proj.extend(required.iter().cloned());
            }
            self.add_requires(g, ty, proj);
            if hop.via.is_some()
                && let Some(e) = self.out.groups[g].entity.as_mut()
            {
                e.rewrite_types.insert(ty.clone());
            }
            let node = self.out.entity_node(g);
            cur = Ctx {
                group: g,
                subgraph: hop.subgraph,
                node,
                object_node: node,
                path: path.clone(),
                view: hop.via,
                pending: Vec::new(),
                provided: None,
                anchor: None,
                frames: frames.clone(),
            };
            if cur.view.is_none() {
                cur.anchor = Some(Anchor::at(&cur, ty, false));
            }
            self.remember(&cur);
            chain.push(cur.clone());
        }
        Ok(cur)
    }

    /// Narrows an abstract position to object type `p`: `... on P` in the object's
    /// selection, conditional wrappers replicated inside, `|[P]` in the path.
    fn narrow(&mut self, ctx: &Ctx, p: &Name) -> Ctx {
        let object_node = self.add_fragment(ctx.group, ctx.object_node, Some(p), &[]);
        if self.out.nodes[ctx.object_node]
            .children
            .contains_key("__typename")
        {
            self.typed.insert(object_node);
        }
        let mut node = object_node;
        for dirs in &ctx.pending {
            node = self.add_fragment(ctx.group, node, None, dirs);
        }
        let path = ctx.path.narrow(p);
        let mut c = Ctx {
            object_node,
            node,
            path,
            view: None,
            ..ctx.clone()
        };
        self.push_frame(&mut c, p);
        c.anchor = if self.graph.has_keys(p) {
            Some(Anchor::at(&c, p, false))
        } else {
            ctx.anchor.as_ref().map(|a| a.then(Step::Narrow(p.clone())))
        };
        c
    }

    fn walk_abstract(&mut self, ctx: &Ctx, a: &Name, sels: &[Sel]) -> Result<(), PlanError> {
        let graph = self.graph;
        let s = ctx.subgraph;
        if graph.is_interface_object(s, a) {
            // Fields the @interfaceObject subgraph resolves are fetched right here; the
            // rest, and in any case the concrete `__typename` (the executor needs it to
            // shape an object of abstract type), come from a subgraph that knows it.
            let (here, rest): (Vec<Sel>, Vec<Sel>) = if self.interface_object_can_stay(s, a, sels) {
                (sels.to_vec(), Vec::new())
            } else {
                sels.iter().cloned().partition(|sel| {
                    matches!(sel, Sel::Field(f) if f.name != "__typename"
                        && graph.field_local(s, a, &f.name).is_some_and(|l| l.requires.is_none()))
                })
            };
            self.walk_flat(ctx, a, &here)?;
            // Fields another `@interfaceObject` subgraph resolves go there straight from
            // here (its representations name the interface, as this subgraph does), in
            // parallel with resolving the concrete types.
            let mut others = Vec::with_capacity(rest.len());
            for sel in rest {
                let peer = match &sel {
                    Sel::Field(f) if f.name != "__typename" => self.interface_object_peer(s, a, f),
                    _ => None,
                };
                match (peer, &sel) {
                    (Some(y), Sel::Field(f)) => {
                        self.jump_between_interface_objects(ctx, a, f, y)?
                    }
                    _ => others.push(sel),
                }
            }
            let rest = others;
            if rest.is_empty() && self.planner_fields > 0 {
                // Key fields the interface object gives itself: no concrete type needed
                // (the client's own selection of this position resolves it).
                return Ok(());
            }
            return self.resolve_interface_object(ctx, a, &rest);
        }
        let possible = graph.possible_types(s, a);
        if self.can_stay(s, a, sels) {
            for sel in sels {
                self.budget.tick()?;
                match sel {
                    Sel::Field(f) => self.walk_field(ctx, a, f)?,
                    Sel::Fragment(fr) => match &fr.type_condition {
                        Some(p) if p != a => {
                            if !possible.contains(p) {
                                continue;
                            }
                            let c = self.narrow(ctx, p);
                            if fr.directives.is_empty() && !self.defers_here(fr) {
                                self.walk_selections(&c, p, &fr.selections)?;
                            } else {
                                self.walk_selections(&c, p, std::slice::from_ref(sel))?;
                            }
                        }
                        _ => {
                            if fr.directives.is_empty() {
                                self.walk_abstract(ctx, a, &fr.selections)?;
                            } else {
                                let mut c = ctx.clone();
                                c.node =
                                    self.add_fragment(ctx.group, ctx.node, None, &fr.directives);
                                c.pending.push(fr.directives.clone());
                                self.walk_abstract(&c, a, &fr.selections)?;
                            }
                        }
                    },
                }
            }
            return Ok(());
        }
        for p in &possible {
            self.budget.tick()?;
            if !self.selects_anything(p, sels) {
                continue;
            }
            let c = self.narrow(ctx, p);
            self.walk_selections(&c, p, sels)?;
        }
        Ok(())
    }

    /// Another subgraph that sees `a` as an `@interfaceObject`, resolves `a.f` without
    /// `@requires`, and has a resolvable key `s` can give (for jumps between interface
    /// objects, where no concrete type is needed).
    fn interface_object_peer(&self, s: usize, a: &Name, f: &Field) -> Option<usize> {
        let graph = self.graph;
        graph.type_graphs(a).into_iter().find(|&y| {
            y != s
                && graph.is_interface_object(y, a)
                && graph
                    .field_local(y, a, &f.name)
                    .is_some_and(|l| l.requires.is_none() && !l.context)
                && graph.resolvable_keys(y, a).any(|k| {
                    k.fields
                        .selections()
                        .is_ok_and(|sels| graph.obtainable(s, a, sels))
                })
        })
    }

    /// `a.f` from another `@interfaceObject` subgraph, jumping from this one by a key;
    /// representations keep (or are rewritten to) the interface's name.
    fn jump_between_interface_objects(
        &mut self,
        ctx: &Ctx,
        a: &Name,
        f: &Field,
        y: usize,
    ) -> Result<(), PlanError> {
        let graph = self.graph;
        let cand = Candidate {
            subgraph: y,
            via: None,
        };
        let Some(route) = self.route(ctx, a, &cand, false)? else {
            return Err(PlanError::Internal(format!(
                "no key into {a} of subgraph {y}"
            )));
        };
        let mut cur = self.enter(Self::object_of(ctx), a, route, Vec::new(), &[])?;
        // Once other fetches have named the concrete type, send the interface's name.
        if let Some(e) = self.out.groups[cur.group].entity.as_mut() {
            e.rewrite_all = true;
        }
        self.reapply_pending(&mut cur, &ctx.pending);
        cur.view = Some(a.clone());
        let provides = graph.field_local(y, a, &f.name).and_then(|l| l.provides);
        self.take_field(&cur, a, f, provides)
    }

    /// Walks fields of `a` directly (used when an `@interfaceObject` answers everything).
    fn walk_flat(&mut self, ctx: &Ctx, a: &Name, sels: &[Sel]) -> Result<(), PlanError> {
        for sel in sels {
            match sel {
                Sel::Field(f) => self.walk_field(ctx, a, f)?,
                Sel::Fragment(fr) => self.walk_flat(ctx, a, &fr.selections)?,
            }
        }
        Ok(())
    }

    /// The current subgraph returned `a` as an `@interfaceObject` (its `__typename` is the
    /// interface name): ask a subgraph that knows the real types, then continue there.
    fn resolve_interface_object(
        &mut self,
        ctx: &Ctx,
        a: &Name,
        sels: &[Sel],
    ) -> Result<(), PlanError> {
        let graph = self.graph;
        for y in graph.type_graphs(a) {
            if graph.is_interface_object(y, a) {
                continue;
            }
            for key in graph.resolvable_keys(y, a) {
                self.budget.tick()?;
                let key_sels = field_set(&key.fields, || format!("key of {a}"))?.to_vec();
                if !graph.obtainable(ctx.subgraph, a, &key_sels) {
                    continue;
                }
                let object = Ctx {
                    node: ctx.object_node,
                    pending: Vec::new(),
                    provided: None,
                    ..ctx.clone()
                };
                // The key comes from the @interfaceObject subgraph itself (walking it as
                // an abstract selection would come back here).
                let resolved = self.alias_resolve(&ctx.path, a, &key_sels)?;
                self.walk_flat(&object, a, &resolved)?;
                let mut proj = vec![typename_selection()];
                proj.extend(projection(&resolved));
                self.add_typename(ctx.group, ctx.object_node);
                let g = self.entity_group(y, &ctx.path, a, ctx.group, &[]);
                self.add_requires(g, a, proj);
                let entity_node = self.out.entity_node(g);
                let mut node = entity_node;
                for dirs in &ctx.pending {
                    node = self.add_fragment(g, node, None, dirs);
                }
                let c = Ctx {
                    group: g,
                    subgraph: y,
                    node,
                    object_node: entity_node,
                    path: ctx.path.clone(),
                    view: None,
                    pending: ctx.pending.clone(),
                    provided: None,
                    anchor: None,
                    frames: ctx.frames.clone(),
                };
                // The real `__typename` must come back to type the objects.
                self.add_typename(g, entity_node);
                return self.walk_abstract(&c, a, sels);
            }
        }
        Err(PlanError::Unresolvable {
            type_name: a.to_string(),
            field: "__typename".into(),
            detail: format!(
                " (subgraph \"{}\" returns it as an @interfaceObject and no subgraph with a key can resolve its concrete type)",
                graph.subgraph_name(ctx.subgraph)
            ),
        })
    }

    fn interface_object_can_stay(&self, s: usize, a: &Name, sels: &[Sel]) -> bool {
        sels.iter().all(|sel| match sel {
            Sel::Field(f) => {
                f.name != "__typename"
                    && self
                        .graph
                        .field_local(s, a, &f.name)
                        .is_some_and(|l| l.requires.is_none())
            }
            Sel::Fragment(fr) => {
                fr.directives.is_empty()
                    && !self.defers_here(fr)
                    && fr.type_condition.as_ref().is_none_or(|t| t == a)
                    && self.interface_object_can_stay(s, a, &fr.selections)
            }
        })
    }

    /// Can subgraph `s` answer this selection on abstract type `a` without exploding it?
    /// Every object type `s` may return here must resolve the field itself too: an
    /// implementation may declare it `@external`, or another subgraph may `@override` it.
    fn can_stay(&self, s: usize, a: &Name, sels: &[Sel]) -> bool {
        let local = |ty: &Name, field: &Name| {
            self.graph
                .field_local(s, ty, field)
                .is_some_and(|l| l.requires.is_none() && !l.context)
        };
        sels.iter().all(|sel| match sel {
            Sel::Field(f) => {
                f.name == "__typename"
                    || (local(a, &f.name)
                        && self
                            .graph
                            .possible_types(s, a)
                            .iter()
                            .all(|p| local(p, &f.name)))
            }
            // A deferred fragment on the abstract type itself is planned per object type.
            Sel::Fragment(fr)
                if self.defers_here(fr) && fr.type_condition.as_ref().is_none_or(|t| t == a) =>
            {
                false
            }
            Sel::Fragment(fr) => match &fr.type_condition {
                None => self.can_stay(s, a, &fr.selections),
                Some(t) if t == a => self.can_stay(s, a, &fr.selections),
                Some(t) => self.graph.schema.get_object(t).is_some(),
            },
        })
    }

    fn selects_anything(&self, p: &Name, sels: &[Sel]) -> bool {
        sels.iter().any(|sel| match sel {
            Sel::Field(_) => true,
            Sel::Fragment(fr) => {
                fr.type_condition
                    .as_ref()
                    .is_none_or(|t| self.graph.applies(t, p))
                    && self.selects_anything(p, &fr.selections)
            }
        })
    }
}

fn collect_fields<'s>(sels: &'s [Sel], out: &mut Vec<&'s Field>) {
    for sel in sels {
        match sel {
            Sel::Field(f) => out.push(f),
            Sel::Fragment(fr) => collect_fields(&fr.selections, out),
        }
    }
}

pub(crate) fn find_provided(
    graph: &Graph<'_>,
    provided: &[Sel],
    ty: &Name,
    field: &str,
) -> Option<Vec<Sel>> {
    for sel in provided {
        match sel {
            Sel::Field(f) if f.name == field => return Some(f.selections.clone()),
            Sel::Fragment(fr)
                if fr
                    .type_condition
                    .as_ref()
                    .is_none_or(|t| graph.applies(t, ty)) =>
            {
                if let Some(found) = find_provided(graph, &fr.selections, ty, field) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

fn typename_selection() -> Selection {
    Selection::Field {
        name: "__typename".into(),
        alias: None,
        selections: Vec::new(),
    }
}

fn projection(sels: &[Sel]) -> Vec<Selection> {
    sels.iter()
        .map(|sel| match sel {
            Sel::Field(f) => Selection::Field {
                name: f.response_key().to_string(),
                alias: f.alias.as_ref().map(|_| f.name.to_string()),
                selections: projection(&f.selections),
            },
            Sel::Fragment(fr) => Selection::InlineFragment {
                type_condition: fr.type_condition.as_ref().map(|t| t.to_string()),
                selections: projection(&fr.selections),
            },
        })
        .collect()
}

/// Adds `sel` to `list`, merging with an equal field/fragment already there.
pub(crate) fn merge_selection(list: &mut Vec<Selection>, sel: Selection) {
    for existing in list.iter_mut() {
        match (existing, &sel) {
            (
                Selection::Field {
                    name,
                    alias,
                    selections,
                },
                Selection::Field {
                    name: n2,
                    alias: a2,
                    selections: s2,
                },
            ) if name == n2 && alias == a2 => {
                for s in s2.clone() {
                    merge_selection(selections, s);
                }
                return;
            }
            (
                Selection::InlineFragment {
                    type_condition,
                    selections,
                },
                Selection::InlineFragment {
                    type_condition: t2,
                    selections: s2,
                },
            ) if type_condition == t2 => {
                for s in s2.clone() {
                    merge_selection(selections, s);
                }
                return;
            }
            _ => {}
        }
    }
    list.push(sel);
}
