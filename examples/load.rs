//! Load test of the whole platform (`cargo bench-load`): starts the six subgraphs and the
//! gateway in this process (in-memory SQLite, seeded), logs in, then runs a fixed number
//! of requests from N concurrent clients and reports requests per second and latency
//! percentiles for:
//!
//! 1. `baseline`: a trivial query answered by the gateway alone (`{ __typename }`) — the
//!    HTTP + parse + cache floor of the gateway;
//! 2. `direct`: the users subgraph's `_entities` for the 4 demo users, called directly with a
//!    trust token — the cost of one subgraph hop;
//! 3. `profile`: the demo's aggregated profile view (user → posts → comments + likes →
//!    comment authors: 4 subgraphs, 4 plan steps) through the gateway, plan cache warm.
//!
//! Usage: `cargo run --release --example load -- [requests] [concurrency]`.
//!
//! Soak: `cargo run --release --example load -- soak [seconds] [concurrency] [reads]`
//! runs the demo mix (70% the profile view, 20% `{ __typename }`, 10% like/unlike writes,
//! or with `reads` 80% / 20% and no writes: the in-memory databases then stop growing) for
//! that long (default 180 s, 32 clients) and prints, every 10 s, requests, errors and the
//! process's resident memory (gateway and subgraphs are in this process), the RSS 10 s
//! and 30 s after the load stops, then the RSS growth after the first 30 s (the warm-up).

/// See the `jemalloc` feature in Cargo.toml (on by default).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt as _;
use portico::platform::{self, PlatformOptions, Storage};
use portico::seed::{Client, DEMO_PASSWORD};
use serde_json::json;

const PROFILE: &str = "query($id: ID!) { user(id: $id) { username posts(first: 10) { nodes { caption likeCount likedByMe comments(first: 10) { nodes { body author { username } } } } } } }";

struct Stats {
    name: &'static str,
    total: Duration,
    latencies: Vec<Duration>,
    errors: usize,
}

impl Stats {
    fn print(&mut self, baseline_rps: Option<f64>) -> f64 {
        self.latencies.sort();
        let n = self.latencies.len().max(1);
        let pct = |p: f64| self.latencies[((n as f64 * p) as usize).min(n - 1)];
        let rps = self.latencies.len() as f64 / self.total.as_secs_f64();
        let ratio = baseline_rps
            .map(|b| format!("  ({:.2}x baseline rps)", rps / b))
            .unwrap_or_default();
        println!(
            "{:<9} {:>6} req  {:>9.0} req/s  p50 {:>8.2?}  p90 {:>8.2?}  p99 {:>8.2?}  errors {}{}",
            self.name,
            self.latencies.len(),
            rps,
            pct(0.50),
            pct(0.90),
            pct(0.99),
            self.errors,
            ratio
        );
        rps
    }
}

async fn run<F, Fut>(name: &'static str, requests: usize, concurrency: usize, f: F) -> Stats
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    let results: Vec<(Duration, bool)> = futures::stream::iter(0..requests)
        .map(|_| {
            let fut = f();
            async move {
                let t = Instant::now();
                let ok = fut.await;
                (t.elapsed(), ok)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Stats {
        name,
        total: start.elapsed(),
        errors: results.iter().filter(|(_, ok)| !ok).count(),
        latencies: results.into_iter().map(|(d, _)| d).collect(),
    }
}

/// POSTs `body` to `url`: a success status and a GraphQL answer without errors?
async fn post_json(
    http: reqwest::Client,
    body: serde_json::Value,
    url: String,
    headers: Vec<(String, String)>,
) -> bool {
    let mut req = http.post(url).json(&body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => r
            .json::<serde_json::Value>()
            .await
            .map(|v| v.get("errors").is_none())
            .unwrap_or(false),
        _ => false,
    }
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The soak (see the module documentation): `send(i)` sends request `i` of the mix.
async fn soak<F, Fut>(seconds: u64, concurrency: usize, send: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let done = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let send = Arc::new(send);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (done, errors, next, send) =
                (done.clone(), errors.clone(), next.clone(), send.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if !send(i).await {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    println!(
        "{:>6} {:>10} {:>8} {:>8} {:>9}",
        "t (s)", "requests", "req/s", "errors", "RSS MiB"
    );
    let start = Instant::now();
    let mut last = 0;
    let mut samples = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let now = done.load(Ordering::Relaxed);
        let rss = rss_mib();
        let t = start.elapsed().as_secs();
        samples.push((t, rss));
        println!(
            "{t:>6} {now:>10} {:>8.0} {:>8} {rss:>9.1}",
            (now - last) as f64 / 10.0,
            errors.load(Ordering::Relaxed)
        );
        last = now;
    }
    for w in workers {
        let _ = w.await;
    }
    // Memory after the load: does it come back down once the clients are gone?
    for idle in [10, 30] {
        tokio::time::sleep(Duration::from_secs(if idle == 10 { 10 } else { 20 })).await;
        println!("idle {idle:>3} s after the load: RSS {:.1} MiB", rss_mib());
    }
    let after_warmup: Vec<f64> = samples
        .iter()
        .filter(|(t, _)| *t > 30)
        .map(|(_, r)| *r)
        .collect();
    if let (Some(first), Some(max)) = (
        after_warmup.first(),
        after_warmup.iter().copied().reduce(f64::max),
    ) {
        println!(
            "\n{} requests, {} errors; RSS after warm-up {first:.1} MiB, highest {max:.1} MiB, last {:.1} MiB",
            done.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
            after_warmup.last().copied().unwrap_or(*first)
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let soak_mode = args.peek().is_some_and(|a| a == "soak");
    if soak_mode {
        args.next();
    }
    let first: Option<u64> = args.next().and_then(|s| s.parse().ok());
    let requests: usize = first.map_or(2000, |n| n as usize);
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let writes = args.next().is_none_or(|a| a != "reads");
    let p = platform::start(PlatformOptions {
        storage: Storage::Memory,
        gateway_addr: "127.0.0.1:0".parse()?,
        subgraph_base_port: None,
        seed: true,
        redis_url: None,
        limits: false,
    })
    .await?;
    let client = Client::new(&p.gateway_url);
    let login = client
        .run(
            None,
            "mutation($p: String!) { login(usernameOrEmail: \"alice\", password: $p) { accessToken userId } }",
            json!({ "p": DEMO_PASSWORD }),
        )
        .await?;
    let token = login["login"]["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let alice = login["login"]["userId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let http = reqwest::Client::new();
    let gw = p.gateway_url.clone();
    println!("platform up; {requests} requests per scenario, {concurrency} concurrent clients\n");

    let post = |body: serde_json::Value, url: String, headers: Vec<(String, String)>| {
        post_json(http.clone(), body, url, headers)
    };

    let auth = vec![("authorization".to_string(), format!("Bearer {token}"))];
    if soak_mode {
        let seconds = first.unwrap_or(180);
        let posts = client
            .run(
                Some(&token),
                "query($id: ID!) { user(id: $id) { posts(first: 1) { nodes { id } } } }",
                json!({ "id": alice }),
            )
            .await?;
        let post_id = posts["user"]["posts"]["nodes"][0]["id"].clone();
        println!(
            "soak: {seconds} s, {concurrency} clients, {}, RSS at start {:.1} MiB\n",
            if writes { "10% writes" } else { "reads only" },
            rss_mib()
        );
        let (gw, auth, http) = (gw.clone(), auth.clone(), http.clone());
        soak(seconds, concurrency, move |i| {
            let (body, headers) = match i % 10 {
                0 | 1 => (json!({ "query": "{ __typename }" }), vec![]),
                2 if writes => (
                    json!({ "query": if i % 20 < 10 { "mutation($p: ID!) { likePost(postId: $p) { id } }" } else { "mutation($p: ID!) { unlikePost(postId: $p) { id } }" }, "variables": { "p": post_id } }),
                    auth.clone(),
                ),
                _ => (
                    json!({ "query": PROFILE, "variables": { "id": alice } }),
                    auth.clone(),
                ),
            };
            post_json(http.clone(), body, gw.clone(), headers)
        })
        .await?;
        p.shutdown();
        return Ok(());
    }
    // Warm the plan cache and JWT verification.
    post(
        json!({ "query": PROFILE, "variables": { "id": alice } }),
        gw.clone(),
        auth.clone(),
    )
    .await;

    let mut baseline = run("baseline", requests, concurrency, || {
        post(json!({ "query": "{ __typename }" }), gw.clone(), vec![])
    })
    .await;
    let base_rps = baseline.print(None);

    let users_url = p
        .subgraphs
        .iter()
        .find(|(n, _)| *n == "users")
        .map(|(_, u)| u.clone())
        .unwrap_or_default();
    let signer = p.trust_signer.clone();
    // Representations of the four demo users (distinct ids: one batch of 4).
    let mut reps = Vec::new();
    for username in portico::seed::DEMO_USERS {
        let data = client
            .run(
                None,
                "query($u: String!) { userByUsername(username: $u) { id } }",
                json!({ "u": username }),
            )
            .await?;
        reps.push(json!({ "__typename": "User", "id": data["userByUsername"]["id"] }));
    }
    let mut direct = run("direct", requests, concurrency, || {
        let body = json!({ "query": "query($r:[_Any!]!){_entities(representations:$r){...on User{username}}}", "variables": { "r": reps } });
        // One token per request, bound to its body (as the gateway mints them); `post`
        // sends the same bytes (`.json` serialises like `to_vec`).
        let token = signer.mint(
            "users",
            &portico_trust::Identity::anonymous(),
            &serde_json::to_vec(&body).unwrap_or_default(),
            Duration::from_secs(30),
        );
        post(
            body,
            users_url.clone(),
            vec![(portico_trust::HEADER_TRUST.to_string(), token)],
        )
    })
    .await;
    direct.print(Some(base_rps));

    let mut profile = run("profile", requests, concurrency, || {
        post(
            json!({ "query": PROFILE, "variables": { "id": alice } }),
            gw.clone(),
            auth.clone(),
        )
    })
    .await;
    profile.print(Some(base_rps));
    let (hits, misses) = p.gateway.plan_cache_stats();
    println!("\nplan cache: {hits} hits, {misses} misses");
    for (name, _) in &p.subgraphs {
        println!(
            "subgraph {name:<14} {} requests",
            p.gateway.subgraph_request_count(name)
        );
    }
    p.shutdown();
    Ok(())
}
