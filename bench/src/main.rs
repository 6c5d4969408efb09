//! `portico-bench`: the gateway benchmark (see BENCHMARKS.md).
//!
//! - `portico-bench subgraphs [--ports a,b,c,d]` serves the four benchmark subgraphs;
//! - `portico-bench load --url URL [--connections N] [--duration S]` loads one gateway
//!   with the heavy query and checks every response;
//! - `portico-bench run [--hive PATH]` runs the whole comparison;
//! - `portico-bench stages` times each request stage on the heavy query.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(test)]
mod e2e;
mod live;
mod load;
mod run;
mod stages;
mod subgraphs;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Portico's gateway benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the four benchmark subgraphs (accounts, inventory, products, reviews).
    Subgraphs {
        /// Ports of accounts, inventory, products and reviews.
        #[arg(long, value_delimiter = ',', default_value = "5221,5222,5223,5224")]
        ports: Vec<u16>,
    },
    /// Print the composed supergraph of the four subgraphs at the given ports.
    Supergraph {
        #[arg(long, value_delimiter = ',', default_value = "5221,5222,5223,5224")]
        ports: Vec<u16>,
    },
    /// Load one gateway with the heavy query; every response is checked.
    Load {
        #[arg(long, default_value = "http://127.0.0.1:4000/graphql")]
        url: String,
        #[arg(long, default_value_t = 50)]
        connections: usize,
        #[arg(long, default_value_t = 5)]
        warmup: u64,
        #[arg(long, default_value_t = 15)]
        duration: u64,
        /// The small query instead of the heavy one.
        #[arg(long)]
        small: bool,
        /// Send a distinct valid RS256 JWT with each request (the `heavy-jwt` scenario),
        /// signed with the auth key of this keys directory (a `run`'s `<out>/keys`, whose
        /// `auth.pub.pem` the gateway verifies with).
        #[arg(long)]
        jwt_keys: Option<std::path::PathBuf>,
        /// How many distinct tokens, with `--jwt-keys`.
        #[arg(long, default_value_t = 20000)]
        tokens: usize,
    },
    /// Run the comparison: floor, Portico, Hive Router.
    Run(run::RunArgs),
    /// Subscriptions against a running `portico dev`: memory per idle subscription and
    /// events delivered per second.
    Subscriptions(live::LiveArgs),
    /// Time each request stage on the heavy query, in this process.
    Stages {
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
    },
}

fn ports4(ports: &[u16]) -> Result<[u16; 4]> {
    <[u16; 4]>::try_from(ports).map_err(|_| anyhow::anyhow!("--ports takes four ports"))
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Subgraphs { ports } => subgraphs::serve(ports4(&ports)?).await,
        Cmd::Supergraph { ports } => {
            let ports = ports4(&ports)?;
            let inputs: Vec<_> = subgraphs::NAMES
                .iter()
                .zip(ports)
                .map(|(n, p)| portico_federation::compose::SubgraphInput {
                    name: (*n).to_string(),
                    url: format!("http://127.0.0.1:{p}/graphql"),
                    sdl: subgraphs::sdl(n).unwrap_or_default(),
                })
                .collect();
            let c = portico_federation::compose::compose(&inputs)
                .map_err(|e| anyhow::anyhow!("composition failed: {:?}", e.errors))?;
            print!("{}", c.supergraph_sdl);
            Ok(())
        }
        Cmd::Load {
            url,
            connections,
            warmup,
            duration,
            small,
            jwt_keys,
            tokens,
        } => {
            let data = subgraphs::Data::new();
            let (query, expected) = if small {
                (subgraphs::SMALL_QUERY, data.expected_small())
            } else {
                (subgraphs::HEAVY_QUERY, data.expected_heavy())
            };
            let w = load::Workload::Gateway {
                url,
                body: serde_json::json!({ "query": query }).to_string().into(),
                expected: Arc::new(load::Checker::new(&expected)),
                tokens: match jwt_keys {
                    Some(dir) => {
                        let path = dir.join("auth.pem");
                        let pem = std::fs::read_to_string(&path).map_err(|e| {
                            anyhow::anyhow!("{}: {e} (pass a `run`'s <out>/keys)", path.display())
                        })?;
                        Some(Arc::new(run::mint_tokens(&pem, tokens)?.0))
                    }
                    None => None,
                },
            };
            let client = load::client(connections);
            load::run(&client, &w, connections, Duration::from_secs(warmup)).await;
            let r = load::run(&client, &w, connections, Duration::from_secs(duration)).await;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        Cmd::Run(args) => run::run(args).await,
        Cmd::Subscriptions(args) => live::run(args).await,
        Cmd::Stages { iterations } => {
            // The stages block: run them off the async workers.
            let stages = tokio::task::spawn_blocking(move || stages::run(iterations)).await??;
            println!("| stage | median µs | p90 µs |\n|---|--:|--:|");
            for s in &stages {
                println!("| {} | {:.1} | {:.1} |", s.name, s.median_us, s.p90_us);
            }
            Ok(())
        }
    }
}
