//! Stage 3, optimisation: entity groups to the same subgraph whose paths differ only by
//! their final type condition (`items.@|[Book]`, `items.@|[Movie]`) and that depend on
//! the same groups are merged into one fetch (`items.@|[Book,Movie]`).

use super::walk::{Groups, merge_selection};
use super::{Budget, PathSegment, PlanError};

fn split(path: &[PathSegment]) -> Option<(&[PathSegment], &[String])> {
    match path.split_last() {
        Some((PathSegment::TypeCondition(types), rest)) => Some((rest, types)),
        _ => None,
    }
}

fn merge_nodes(groups: &mut Groups, into: usize, from: usize) {
    let children: Vec<(String, usize)> = groups.nodes[from]
        .children
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for (key, child) in children {
        match groups.nodes[into].children.get(&key).copied() {
            Some(existing) => merge_nodes(groups, existing, child),
            None => {
                groups.nodes[into].children.insert(key, child);
            }
        }
    }
}

pub(crate) fn merge(groups: &mut Groups, budget: &mut Budget) -> Result<(), PlanError> {
    let n = groups.groups.len();
    for a in 0..n {
        for b in (a + 1)..n {
            budget.tick()?;
            let (ga, gb) = (&groups.groups[a], &groups.groups[b]);
            if ga.merged
                || gb.merged
                || ga.subgraph != gb.subgraph
                || ga.segment != gb.segment
                || ga.deps != gb.deps
            {
                continue;
            }
            let (Some(ea), Some(eb)) = (&ga.entity, &gb.entity) else {
                continue;
            };
            let (Some((pa, ta)), Some((pb, tb))) = (split(&ea.path), split(&eb.path)) else {
                continue;
            };
            if pa != pb {
                continue;
            }
            let mut types = ta.to_vec();
            types.extend(tb.iter().filter(|t| !ta.contains(t)).cloned());
            let mut path = pa.to_vec();
            path.push(PathSegment::TypeCondition(types));
            let eb = eb.clone();
            let (root_a, root_b) = (ga.root, gb.root);
            merge_nodes(groups, root_a, root_b);
            let ea = groups.groups[a].entity.as_mut().expect("checked above");
            ea.path = path;
            for (ty, sels) in eb.requires {
                let list = ea.requires.entry(ty).or_default();
                for s in sels {
                    merge_selection(list, s);
                }
            }
            ea.rewrite_types.extend(eb.rewrite_types);
            ea.rewrite_all |= eb.rewrite_all;
            let renames = std::mem::take(&mut groups.groups[b].renames);
            for r in renames {
                if !groups.groups[a].renames.contains(&r) {
                    groups.groups[a].renames.push(r);
                }
            }
            groups.groups[b].merged = true;
            for g in groups.groups.iter_mut() {
                if g.deps.remove(&b) {
                    g.deps.insert(a);
                }
            }
        }
    }
    Ok(())
}
