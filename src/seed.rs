//! Demo data, created through the gateway's public GraphQL API exactly as a client
//! would: register accounts, wait for their profiles (created by the users service from
//! the `UserRegistered` event), then follow, post, like and comment.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

/// Password of every demo account (documented in the README; demo only).
pub const DEMO_PASSWORD: &str = "portico-demo";

/// Demo account usernames.
pub const DEMO_USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// A tiny GraphQL client for the gateway.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    pub fn new(url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.to_string(),
        }
    }

    /// Run an operation; fails when the response carries errors.
    pub async fn run(&self, token: Option<&str>, query: &str, variables: Value) -> Result<Value> {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp: Value = req
            .send()
            .await
            .context("calling the gateway")?
            .json()
            .await
            .context("decoding the gateway response")?;
        if let Some(errors) = resp.get("errors").filter(|e| !e.is_null()) {
            bail!("GraphQL errors: {errors}");
        }
        Ok(resp.get("data").cloned().unwrap_or(Value::Null))
    }
}

struct Account {
    id: String,
    token: String,
}

/// Seed the demo data through the gateway at `url`.
pub async fn seed(url: &str) -> Result<()> {
    let client = Client::new(url);
    let mut accounts = Vec::new();
    for username in DEMO_USERS {
        let data = client
            .run(
                None,
                "mutation Register($u: String!, $e: String!, $p: String!) {
                   register(username: $u, email: $e, password: $p) { accessToken userId }
                 }",
                json!({ "u": username, "e": format!("{username}@example.com"), "p": DEMO_PASSWORD }),
            )
            .await
            .with_context(|| format!("registering {username}"))?;
        let payload = &data["register"];
        accounts.push(Account {
            id: payload["userId"].as_str().unwrap_or_default().to_string(),
            token: payload["accessToken"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        });
    }
    // Profiles are created asynchronously from the UserRegistered events.
    for a in &accounts {
        wait_for_profile(&client, &a.id).await?;
    }
    for a in &accounts {
        for b in &accounts {
            if a.id != b.id {
                client
                    .run(
                        Some(&a.token),
                        "mutation($id: ID!) { follow(userId: $id) { id } }",
                        json!({ "id": b.id }),
                    )
                    .await?;
            }
        }
    }
    let captions = [
        "Sunrise over the harbour",
        "Fresh bread from the corner bakery",
        "Our new office plant",
    ];
    let mut posts = Vec::new();
    for (i, a) in accounts.iter().enumerate() {
        for (j, caption) in captions.iter().enumerate() {
            let data = client
                .run(
                    Some(&a.token),
                    "mutation($c: String!, $img: String) { createPost(caption: $c, imageUrl: $img) { id } }",
                    json!({ "c": format!("{caption} #{}", i * 3 + j + 1), "img": format!("https://picsum.photos/seed/{}/600", i * 3 + j + 1) }),
                )
                .await?;
            posts.push(
                data["createPost"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    // Likes and comments need the posts known to their services (PostCreated events).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, post) in posts.iter().enumerate() {
        for (k, a) in accounts.iter().enumerate() {
            if (i + k) % 2 == 0 {
                retry(|| {
                    client.run(
                        Some(&a.token),
                        "mutation($p: ID!) { likePost(postId: $p) { id } }",
                        json!({ "p": post }),
                    )
                })
                .await?;
            }
            if (i + k) % 3 == 0 {
                retry(|| {
                    client.run(
                        Some(&a.token),
                        "mutation($p: ID!, $b: String!) { addComment(postId: $p, body: $b) { id } }",
                        json!({ "p": post, "b": "Love this!" }),
                    )
                })
                .await?;
            }
        }
    }
    tracing::info!(
        users = accounts.len(),
        posts = posts.len(),
        "demo data seeded"
    );
    Ok(())
}

async fn wait_for_profile(client: &Client, id: &str) -> Result<()> {
    for _ in 0..100 {
        let data = client
            .run(
                None,
                "query($id: ID!) { user(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await?;
        if !data["user"].is_null() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the profile of user {id} did not appear within 5 s")
}

/// Run `f` until it succeeds (up to 50 tries, 100 ms apart): for writes that depend on
/// another service's projection, which events fill asynchronously.
pub async fn retry<F, Fut>(mut f: F) -> Result<Value>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value>>,
{
    let mut last = None;
    for _ in 0..50 {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("retry gave up")))
}
