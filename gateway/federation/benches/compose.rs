//! Composition cost on a large synthetic graph (`cargo bench -p portico-federation --bench
//! compose [-- DUMP_DIR]`): 20 subgraphs, 1,000 entity types, each owned by one subgraph,
//! extended by the next with one field, linking to two other entities (so
//! satisfiability has key jumps everywhere), plus one root field per type. Prints the
//! time of each run and the mean; with `DUMP_DIR` it also writes the subgraph SDLs there
//! so another composer can be timed on the same input.

use portico_federation::compose::{SubgraphInput, compose};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::Instant;

const TYPES: usize = 1_000;
const SUBGRAPHS: usize = 20;

fn generate() -> Vec<SubgraphInput> {
    let mut bodies: Vec<Vec<String>> = vec![Vec::new(); SUBGRAPHS];
    let mut defined: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); SUBGRAPHS];
    let mut referenced: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); SUBGRAPHS];
    for i in 0..TYPES {
        let owner = i % SUBGRAPHS;
        let next = (owner + 1) % SUBGRAPHS;
        let (a, b) = ((i + 1) % TYPES, (i + 7) % TYPES);
        bodies[owner].push(format!(
            "type T{i} @key(fields: \"id\") {{ id: ID! name: String next: T{a} jump: [T{b}] }}"
        ));
        bodies[next].push(format!(
            "type T{i} @key(fields: \"id\") {{ id: ID! extra{i}: Int }}"
        ));
        defined[owner].insert(i);
        defined[next].insert(i);
        referenced[owner].extend([a, b]);
    }
    (0..SUBGRAPHS)
        .map(|s| {
            let mut sdl = String::from(
                "extend schema @link(url: \"https://specs.apollo.dev/federation/v2.3\", import: [\"@key\", \"@shareable\"])\n",
            );
            let roots: Vec<String> = (s..TYPES)
                .step_by(SUBGRAPHS)
                .map(|i| format!("t{i}: T{i}"))
                .collect();
            let _ = writeln!(sdl, "type Query {{ {} }}", roots.join(" "));
            for body in &bodies[s] {
                let _ = writeln!(sdl, "{body}");
            }
            for r in referenced[s].difference(&defined[s]) {
                let _ = writeln!(
                    sdl,
                    "type T{r} @key(fields: \"id\", resolvable: false) {{ id: ID! }}"
                );
            }
            SubgraphInput {
                name: format!("s{s}"),
                url: format!("http://s{s}"),
                sdl,
            }
        })
        .collect()
}

fn main() {
    let inputs = generate();
    if let Some(dir) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        std::fs::create_dir_all(&dir).expect("dump dir");
        for s in &inputs {
            std::fs::write(format!("{dir}/{}.graphql", s.name), &s.sdl).expect("write SDL");
        }
    }
    let bytes: usize = inputs.iter().map(|s| s.sdl.len()).sum();
    println!("{SUBGRAPHS} subgraphs, {TYPES} entity types, {bytes} bytes of SDL");
    let runs = 5;
    let mut total = 0.0;
    for run in 0..runs {
        let start = Instant::now();
        let composed = compose(&inputs);
        let secs = start.elapsed().as_secs_f64();
        total += secs;
        match composed {
            Ok(c) => println!(
                "run {run}: {secs:.3} s ({} bytes of supergraph, {} hints)",
                c.supergraph_sdl.len(),
                c.hints.len()
            ),
            Err(e) => {
                println!("run {run}: {secs:.3} s, failed: {:?}", e.errors.first());
            }
        }
    }
    println!("mean: {:.3} s", total / runs as f64);
}
