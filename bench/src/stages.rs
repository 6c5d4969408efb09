//! `portico-bench stages`: the time of each request stage on the benchmark's heavy
//! query, in this process, one stage at a time (median and p90 of N runs after a
//! warm-up). Where `run` measures a gateway as a whole, this says where a request's time
//! goes before and around execution: parse + validate, a cold plan, the cost estimate,
//! an RS256 JWT verification (cache off), one trust token, and the JSON work of the
//! response: parsing, serialising and cloning the 89 KB heavy response as a
//! `serde_json::Value` and as the executor's own tree (`portico_gateway::execute::Val`),
//! side by side; then the executor's last stages on it: shaping the response for the
//! operation, and its actual cost.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use apollo_compiler::ExecutableDocument;
use portico_federation::cost::{CostModel, CostSettings};
use portico_federation::plan::PlanOptions;
use portico_federation::supergraph::Supergraph;
use portico_gateway::execute::Val;
use serde_json::Map;

use crate::subgraphs::{self, Data, HEAVY_QUERY, NAMES};

/// One stage's timings, in microseconds.
#[derive(Debug, serde::Serialize)]
pub struct Stage {
    pub name: &'static str,
    pub median_us: f64,
    pub p90_us: f64,
}

fn time(name: &'static str, iterations: usize, mut f: impl FnMut()) -> Stage {
    for _ in 0..iterations.div_ceil(10) {
        f();
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort_unstable();
    let at = |p: f64| {
        let i = ((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1));
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Stage {
        name,
        median_us: at(0.5),
        p90_us: at(0.9),
    }
}

/// Runs every stage `iterations` times.
pub fn run(iterations: usize) -> Result<Vec<Stage>> {
    let inputs: Vec<_> = NAMES
        .iter()
        .map(|n| -> Result<_> {
            Ok(portico_federation::compose::SubgraphInput {
                name: (*n).to_string(),
                url: format!("http://127.0.0.1:1/{n}"),
                sdl: subgraphs::sdl(n).context("subgraph")?,
            })
        })
        .collect::<Result<_>>()?;
    let composed = portico_federation::compose::compose(&inputs)
        .map_err(|e| anyhow::anyhow!("composition failed: {:?}", e.errors))?;
    let supergraph = Supergraph::parse(&composed.supergraph_sdl)?;
    let api = supergraph.api_schema();
    let doc = ExecutableDocument::parse_and_validate(api, HEAVY_QUERY, "heavy.graphql")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut stages = Vec::new();

    stages.push(time("parse + validate", iterations, || {
        let d = ExecutableDocument::parse_and_validate(api, HEAVY_QUERY, "heavy.graphql");
        std::hint::black_box(d.is_ok());
    }));

    let options = PlanOptions::default();
    let plan = portico_federation::plan::plan(&supergraph, &doc, None, &options)?;
    std::hint::black_box(&plan);
    stages.push(time("plan (cold, no cache)", iterations, || {
        let p = portico_federation::plan::plan(&supergraph, &doc, None, &options);
        std::hint::black_box(p.is_ok());
    }));

    let model = CostModel::new(&supergraph, &CostSettings::default())?;
    let variables = Map::new();
    stages.push(time("cost estimate", iterations, || {
        let c = model.estimate_total(&doc, None, &variables);
        std::hint::black_box(c.is_ok());
    }));

    // An RS256 token verified by the gateway's authenticator, its cache off.
    let keys = portico::platform::Keys::generate()?;
    let dir = std::env::temp_dir().join(format!("portico-stages-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let public = dir.join("auth.pub.pem");
    std::fs::write(&public, &keys.auth_public_pem)?;
    let config = portico_gateway::config::JwtConfig {
        public_key: Some(public),
        verified_cache_size: 0,
        ..Default::default()
    };
    let auth = portico_gateway::auth::Authenticator::from_config(&config, reqwest::Client::new())?;
    let header = crate::run::Tokens::new(&keys.auth_private_pem)?.bearer("bench-user")?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(auth.authenticate(Some(&header)))
        .map_err(|e| anyhow::anyhow!("the token does not verify: {e}"))?;
    stages.push(time("JWT verify (RS256, cache off)", iterations, || {
        let r = rt.block_on(auth.authenticate(Some(&header)));
        std::hint::black_box(r.is_ok());
    }));
    let _ = std::fs::remove_dir_all(&dir);

    let signer = keys.gateway_signer.clone();
    let body = vec![b'x'; 2048];
    let identity = portico_trust::Identity::anonymous();
    stages.push(time("trust token (2 KB body)", iterations, || {
        let t = signer.mint("reviews", &identity, &body, Duration::from_secs(60));
        std::hint::black_box(t);
    }));

    let response = subgraphs::canonical(&Data::new().expected_heavy());
    stages.push(time("parse 89 KB response to Value", iterations, || {
        let v: Result<serde_json::Value, _> = serde_json::from_slice(&response);
        std::hint::black_box(v.is_ok());
    }));
    let value: serde_json::Value = serde_json::from_slice(&response)?;
    stages.push(time("serialise 89 KB Value", iterations, || {
        let b = serde_json::to_vec(&value);
        std::hint::black_box(b.map(|b| b.len()).unwrap_or(0));
    }));
    stages.push(time("clone 89 KB Value", iterations, || {
        std::hint::black_box(value.clone());
    }));
    // The same bytes through the executor's own tree (`portico_gateway::execute::Val`),
    // beside the serde_json rows above: the ratio is what the executor's tree saves.
    stages.push(time("parse 89 KB response to Val", iterations, || {
        let v: Result<Val, _> = serde_json::from_slice(&response);
        std::hint::black_box(v.is_ok());
    }));
    let val: Val = serde_json::from_slice(&response)?;
    stages.push(time("serialise 89 KB Val (serde_json)", iterations, || {
        let b = serde_json::to_vec(&val);
        std::hint::black_box(b.map(|b| b.len()).unwrap_or(0));
    }));
    // What the gateway sends responses with: serde_json's bytes, its own writer.
    anyhow::ensure!(
        {
            let mut out = Vec::new();
            val.write_json(&mut out);
            out == serde_json::to_vec(&val)?
        },
        "Val::write_json and serde_json disagree"
    );
    stages.push(time(
        "serialise 89 KB Val (Val::write_json)",
        iterations,
        || {
            let mut out = Vec::with_capacity(4096);
            val.write_json(&mut out);
            std::hint::black_box(out.len());
        },
    ));
    stages.push(time("clone 89 KB Val", iterations, || {
        std::hint::black_box(val.clone());
    }));
    // The executor's last stages on the heavy response, in-process: shaping it for the
    // operation (in place, from a copy: subtract the clone row), pricing what came back (`[cost] measure_actual`, on by default), and
    // serialising the shaped tree.
    let operation = doc
        .operations
        .get(None)
        .map_err(|_| anyhow::anyhow!("the heavy query has one operation"))?;
    let data = val
        .get("data")
        .cloned()
        .context("the expected response has data")?;
    let (shaped, errors) =
        portico_gateway::execute::shape_only(api, &doc, operation, &mut data.clone());
    anyhow::ensure!(
        errors == 0,
        "shaping the expected response raised {errors} errors"
    );
    anyhow::ensure!(
        serde_json::to_vec(&shaped)? == serde_json::to_vec(&data)?,
        "shaping the expected response changed it"
    );
    stages.push(time("clone + shape 89 KB Val", iterations, || {
        let (v, _) = portico_gateway::execute::shape_only(api, &doc, operation, &mut data.clone());
        std::hint::black_box(v);
    }));
    stages.push(time("actual cost of 89 KB Val", iterations, || {
        let c = portico_federation::cost::actual_cost(&model, &doc, None, &variables, &shaped);
        std::hint::black_box(c.is_ok());
    }));
    Ok(stages)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_stage_runs_on_the_heavy_query() {
        let stages = super::run(2).expect("stages");
        assert_eq!(stages.len(), 14);
        assert!(stages.iter().all(|s| s.median_us > 0.0), "{stages:?}");
    }
}
