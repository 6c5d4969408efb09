//! Load, memory and cold-planning numbers on a generated supergraph.
//!
//! ```sh
//! cargo run --release -p portico-federation --example scale -- \
//!     [--shape chain|shared] [--types N] [--subgraphs N] [--depth N] [--queries N] \
//!     [--write FILE]
//! ```
//!
//! Shapes (defaults: `chain`, 10,000 types, 50 subgraphs, depth 40, 8 queries):
//!
//! - `chain`: entity `T{i}` is owned by subgraph `s{i%n}` (key `id`, `name`, `tags`) and
//!   extended by `s{(i+1)%n}` (`score`, `next: T{i+1}`), so every level of a deep query
//!   crosses subgraphs and there is exactly one way to do it.
//! - `shared`: every entity `T{i}` is resolvable in the three subgraphs `s{i%n}`,
//!   `s{(i+1)%n}`, `s{(i+2)%n}` with two keys (`id`, `uid`; the third subgraph only
//!   `uid`); `id`, `uid` and `name` are shareable in all three, `next: T{i+1}` in the
//!   last two, `tags` only in the first and `score` only in the last. Root fields are
//!   resolvable in the three subgraphs of their type. Every hop has several candidate subgraphs and
//!   several keys, so a search that enumerates them per level explodes (2 choices for
//!   `next` per level: 2^depth paths).
//!
//! Reported: SDL size, load time (`Supergraph::parse`), the process RSS (`VmRSS`, and
//! the peak `VmHWM`, from `/proc/self/status`; system allocator, i.e. glibc malloc on
//! Linux) at each stage: start, SDL generated, loaded, SDL dropped, after planning. Then
//! `--queries` distinct deep queries, each starting at a different root field (different
//! types, different subgraphs), each planned once, cold: first-plan time and fetch count.
//! No plan cache is involved; nothing is repeated. No timing is asserted. `--write FILE`
//! also writes the SDL, e.g. to start the gateway on it.

use apollo_compiler::ExecutableDocument;
use portico_federation::{PlanOptions, Supergraph, plan};
use std::fmt::Write;
use std::time::{Duration, Instant};

/// `VmRSS` and `VmHWM` of this process in MiB (0 where `/proc` is unavailable).
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

fn memory(stage: &str) {
    let (rss, hwm) = rss();
    println!("  {stage:<22} RSS {rss:>6.1} MiB, peak RSS {hwm:>6.1} MiB");
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Chain,
    Shared,
}

struct Args {
    shape: Shape,
    types: usize,
    subgraphs: usize,
    depth: usize,
    queries: usize,
    write: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        shape: Shape::Chain,
        types: 10_000,
        subgraphs: 50,
        depth: 40,
        queries: 8,
        write: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--shape" => {
                a.shape = match value.as_str() {
                    "chain" => Shape::Chain,
                    "shared" => Shape::Shared,
                    other => return Err(format!("unknown shape {other} (chain, shared)")),
                }
            }
            "--types" => a.types = number()?,
            "--subgraphs" => a.subgraphs = number()?,
            "--depth" => a.depth = number()?,
            "--queries" => a.queries = number()?,
            "--write" => a.write = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.types < 2 || a.subgraphs < 3 || a.queries == 0 || a.queries > a.types {
        return Err("need --types >= 2, --subgraphs >= 3, 1 <= --queries <= --types".into());
    }
    Ok(a)
}

/// Root field `t{k}` returns `T{root_type(k)}`: roots spread evenly over the types.
fn root_type(k: usize, a: &Args) -> usize {
    k * (a.types / a.queries)
}

fn supergraph(a: &Args) -> String {
    let mut s = String::from(
        r#"schema @link(url: "https://specs.apollo.dev/link/v1.0") @link(url: "https://specs.apollo.dev/join/v0.5", for: EXECUTION) { query: Query }
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean, overrideLabel: String, contextArguments: [join__ContextArgument!]) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
input join__ContextArgument { name: String! type: String! context: String! selection: join__FieldValue! }
scalar join__FieldSet
scalar join__FieldValue
scalar link__Import
enum link__Purpose { SECURITY EXECUTION }
enum join__Graph {
"#,
    );
    let n = a.subgraphs;
    for g in 0..n {
        writeln!(
            s,
            "  S{g} @join__graph(name: \"s{g}\", url: \"http://s{g}\")"
        )
        .expect("write");
    }
    s.push_str("}\n");
    match a.shape {
        Shape::Chain => {
            query_type(&mut s, n);
            for k in 0..a.queries {
                let t = root_type(k, a);
                writeln!(s, "  t{k}: T{t} @join__field(graph: S{})", t % n).expect("write");
            }
            s.push_str("}\n");
            for i in 0..a.types {
                let (x, y) = (i % n, (i + 1) % n);
                let next = (i + 1) % a.types;
                writeln!(
                    s,
                    "type T{i} @join__type(graph: S{x}, key: \"id\") @join__type(graph: S{y}, key: \"id\") {{\n  id: ID!\n  name: String @join__field(graph: S{x})\n  score(factor: Int = 1): Int @join__field(graph: S{y})\n  next: T{next} @join__field(graph: S{y})\n  tags: [String] @join__field(graph: S{x})\n}}"
                )
                .expect("write");
            }
        }
        Shape::Shared => {
            query_type(&mut s, n);
            for k in 0..a.queries {
                let t = root_type(k, a);
                let (x, y, z) = (t % n, (t + 1) % n, (t + 2) % n);
                writeln!(
                    s,
                    "  t{k}: T{t} @join__field(graph: S{x}) @join__field(graph: S{y}) @join__field(graph: S{z})"
                )
                .expect("write");
            }
            s.push_str("}\n");
            for i in 0..a.types {
                let (x, y, z) = (i % n, (i + 1) % n, (i + 2) % n);
                let next = (i + 1) % a.types;
                writeln!(
                    s,
                    "type T{i} @join__type(graph: S{x}, key: \"id\") @join__type(graph: S{x}, key: \"uid\") @join__type(graph: S{y}, key: \"id\") @join__type(graph: S{y}, key: \"uid\") @join__type(graph: S{z}, key: \"uid\") {{\n  id: ID!\n  uid: ID!\n  name: String\n  score(factor: Int = 1): Int @join__field(graph: S{z})\n  next: T{next} @join__field(graph: S{y}) @join__field(graph: S{z})\n  tags: [String] @join__field(graph: S{x})\n}}"
                )
                .expect("write");
            }
        }
    }
    s
}

/// `type Query` in every subgraph: root field `t{k}` is resolved where its type lives.
fn query_type(s: &mut String, subgraphs: usize) {
    s.push_str("type Query");
    for g in 0..subgraphs {
        write!(s, " @join__type(graph: S{g})").expect("write");
    }
    s.push_str(" {\n");
}

/// Root field `t{k}`, then `depth` levels of `next`, each level selecting fields that
/// live in different subgraphs.
fn query(k: usize, a: &Args) -> String {
    let mut q = format!("{{ t{k} {{ ");
    for _ in 0..a.depth {
        q.push_str("id name score(factor: 2) tags next { ");
    }
    q.push_str("id name");
    for _ in 0..a.depth {
        q.push_str(" }");
    }
    q.push_str(" } }");
    q
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::exit(2);
        }
    };
    let shape = match a.shape {
        Shape::Chain => "chain",
        Shape::Shared => "shared",
    };
    println!("memory (system allocator: glibc malloc on Linux):");
    memory("start");
    let sdl = supergraph(&a);
    if let Some(path) = &a.write {
        std::fs::write(path, &sdl).expect("writing the supergraph SDL");
    }
    memory("SDL generated");
    let start = Instant::now();
    let sg = Supergraph::parse(&sdl).expect("generated supergraph loads");
    let load = start.elapsed();
    memory("loaded");
    let sdl_bytes = sdl.len();
    drop(sdl);
    memory("loaded, SDL dropped");
    let (loaded_rss, loaded_hwm) = rss();

    let options = PlanOptions::default();
    let mut times = Vec::new();
    let mut fetches = Vec::new();
    for k in 0..a.queries {
        let q = query(k, &a);
        let doc = ExecutableDocument::parse_and_validate(sg.api_schema(), &q, "q.graphql")
            .expect("valid query");
        let start = Instant::now();
        let p = plan(&sg, &doc, None, &options).expect("plans");
        times.push(start.elapsed());
        fetches.push(p.to_string().matches("Fetch(").count());
    }
    memory("after planning");
    let mut sorted = times.clone();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;

    println!(
        "shape {shape}: {} types, {} subgraphs, {:.0} KiB of SDL",
        a.types,
        a.subgraphs,
        sdl_bytes as f64 / 1024.0
    );
    println!("load: {:.0} ms (Supergraph::parse)", ms(load));
    println!(
        "RSS after load: {loaded_rss:.1} MiB (peak {loaded_hwm:.1} MiB), SDL string dropped; system allocator"
    );
    println!(
        "plan: {} distinct queries of depth {}, each planned once (cold): first-plan min {:.2} ms, median {:.2} ms, max {:.2} ms; fetch nodes {:?}",
        a.queries,
        a.depth,
        ms(sorted[0]),
        ms(sorted[sorted.len() / 2]),
        ms(sorted[sorted.len() - 1]),
        fetches
    );
}
