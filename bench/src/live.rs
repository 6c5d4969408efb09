//! `portico-bench subscriptions`: what subscriptions cost, against a running demo
//! platform (`portico dev`): memory per idle subscription (the RSS of the given process
//! before and after opening them, both sides when gateway and notifications share the
//! process as in `portico dev`), and events delivered per second when one user's
//! subscriptions all receive every notification while another user likes their post as
//! fast as one client can.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const SUBSCRIPTION: &str =
    "subscription { notificationAdded { kind actor { username } post { caption likeCount } } }";

#[derive(clap::Args)]
pub struct LiveArgs {
    /// The gateway's GraphQL URL.
    #[arg(long, default_value = "http://127.0.0.1:4000/graphql")]
    url: String,
    /// PID whose RSS is measured (the `portico dev` process).
    #[arg(long)]
    pid: u32,
    /// Idle subscriptions to open (spread over fresh users, 50 each).
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Subscriptions of the receiving user in the throughput run.
    #[arg(long, default_value_t = 50)]
    fan_out: usize,
    /// Seconds of liking in the throughput run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

async fn gql(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Result<Value> {
    let mut request = client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let body: Value = request.send().await?.json().await?;
    if let Some(errors) = body.get("errors") {
        bail!("GraphQL errors: {errors}");
    }
    Ok(body["data"].clone())
}

/// A fresh member: (token, id).
async fn member(client: &reqwest::Client, url: &str, name: &str) -> Result<(String, String)> {
    let data = gql(
        client,
        url,
        None,
        "mutation($u: String!, $e: String!) { register(username: $u, email: $e, password: \"Bench-horse-9\") { accessToken userId } }",
        json!({ "u": name, "e": format!("{name}@bench.example") }),
    )
    .await?;
    Ok((
        data["register"]["accessToken"]
            .as_str()
            .context("token")?
            .to_string(),
        data["register"]["userId"]
            .as_str()
            .context("id")?
            .to_string(),
    ))
}

/// Opens one SSE subscription as `token`; counts its `next` events into `events`.
async fn subscribe(
    client: reqwest::Client,
    url: String,
    token: String,
    events: Arc<AtomicU64>,
) -> Result<()> {
    let mut response = client
        .post(&url)
        .header("accept", "text/event-stream")
        .bearer_auth(&token)
        .json(&json!({ "query": SUBSCRIPTION }))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("subscription refused: {}", response.status());
    }
    let mut carry = String::new();
    while let Some(chunk) = response.chunk().await? {
        carry.push_str(&String::from_utf8_lossy(&chunk));
        let n = carry.matches("event: next").count() as u64;
        if n > 0 {
            events.fetch_add(n, Ordering::Relaxed);
            // Keep only what may hold a split marker.
            if let Some(last) = carry.rfind("event: next") {
                carry.drain(..last + "event: next".len());
            }
        }
    }
    Ok(())
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub async fn run(args: LiveArgs) -> Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let stamp = std::process::id();
    // 1. Idle subscriptions.
    let users = args.idle.div_ceil(50).max(1);
    let mut tokens = Vec::new();
    for i in 0..users {
        tokens.push(
            member(&client, &args.url, &format!("idle{stamp}x{i}"))
                .await?
                .0,
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_mb(args.pid).context("the process's RSS")?;
    let idle_events = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..args.idle {
        tasks.push(tokio::spawn(subscribe(
            client.clone(),
            args.url.clone(),
            tokens[i / 50].clone(),
            idle_events.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let open = tasks.iter().filter(|t| !t.is_finished()).count();
    let after = rss_mb(args.pid).context("the process's RSS")?;
    println!(
        "idle: {open} open subscriptions; RSS {before:.1} -> {after:.1} MB: {:.1} KiB per subscription",
        (after - before) * 1024.0 / open.max(1) as f64
    );
    for t in &tasks {
        t.abort();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // 2. Throughput: one author, `fan_out` subscriptions; a liker as fast as it can.
    let (author, _) = member(&client, &args.url, &format!("author{stamp}")).await?;
    let (liker, _) = member(&client, &args.url, &format!("liker{stamp}")).await?;
    let post = gql(
        &client,
        &args.url,
        Some(&author),
        "mutation { createPost(caption: \"bench\") { id } }",
        json!({}),
    )
    .await?;
    let post = post["createPost"]["id"]
        .as_str()
        .context("post id")?
        .to_string();
    let received = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.fan_out {
        tasks.push(tokio::spawn(subscribe(
            client.clone(),
            args.url.clone(),
            author.clone(),
            received.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let mut likes = 0u64;
    while started.elapsed() < Duration::from_secs(args.duration) {
        let mut stopped = None;
        for mutation in ["unlikePost", "likePost"] {
            let query = format!("mutation($p: ID!) {{ {mutation}(postId: $p) {{ id }} }}");
            if let Err(e) = gql(
                &client,
                &args.url,
                Some(&liker),
                &query,
                json!({ "p": post }),
            )
            .await
            {
                stopped = Some(e);
                break;
            }
        }
        // The liker's rate-limit budget may end the window early: reported, not fatal.
        if let Some(e) = stopped {
            println!(
                "liking stopped after {:.1} s: {e}",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        likes += 1;
    }
    let window = started.elapsed();
    // Let the last notifications arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = received.load(Ordering::Relaxed);
    println!(
        "throughput: {likes} likes in {:.1} s ({:.0}/s); {events} events delivered to {} subscriptions ({:.0} events/s, {:.2} per like per subscription)",
        window.as_secs_f64(),
        likes as f64 / window.as_secs_f64(),
        args.fan_out,
        events as f64 / window.as_secs_f64(),
        events as f64 / (likes.max(1) * args.fan_out as u64) as f64,
    );
    for t in &tasks {
        t.abort();
    }
    Ok(())
}
