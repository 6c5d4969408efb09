//! The whole demo platform in one process (in-memory SQLite, fresh keys, free ports),
//! driven over real HTTP exactly as a client would: log in, ask for an aggregated view,
//! and prove by counting subgraph requests that entity resolution is batched.

use std::time::Duration;

use portico::platform::{self, Platform, PlatformOptions, Storage};
use portico::seed::{Client, DEMO_PASSWORD};
use serde_json::{Value, json};

pub(crate) async fn start() -> Platform {
    platform::start(PlatformOptions {
        storage: Storage::Memory,
        gateway_addr: "127.0.0.1:0".parse().expect("addr"),
        subgraph_base_port: None,
        seed: true,
        redis_url: None,
        limits: true,
    })
    .await
    .expect("platform starts")
}

pub(crate) async fn login(client: &Client, username: &str) -> (String, String) {
    let data = client
        .run(
            None,
            "mutation($u: String!, $p: String!) { login(usernameOrEmail: $u, password: $p) { accessToken userId } }",
            json!({ "u": username, "p": DEMO_PASSWORD }),
        )
        .await
        .expect("login");
    (
        data["login"]["accessToken"]
            .as_str()
            .expect("token")
            .to_string(),
        data["login"]["userId"].as_str().expect("id").to_string(),
    )
}

const PROFILE_VIEW: &str = "query($id: ID!) {
  user(id: $id) {
    username
    posts(first: 30) {
      nodes {
        caption
        likeCount
        likedByMe
        comments(first: 10) { nodes { body author { username displayName } } }
      }
    }
  }
}";

fn total_requests(p: &Platform) -> u64 {
    platform::SUBGRAPHS
        .iter()
        .map(|s| p.gateway.subgraph_request_count(s))
        .sum()
}

async fn requests_for_view(p: &Platform, client: &Client, token: &str, id: &str) -> (u64, Value) {
    let before = total_requests(p);
    let data = client
        .run(Some(token), PROFILE_VIEW, json!({ "id": id }))
        .await
        .expect("profile view");
    (total_requests(p) - before, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_profile_view_is_one_round_trip_and_subgraph_requests_do_not_grow_with_posts() {
    let p = start().await;
    let client = Client::new(&p.gateway_url);
    let (token, alice) = login(&client, "alice").await;

    let (requests_small, data) = requests_for_view(&p, &client, &token, &alice).await;
    let posts = data["user"]["posts"]["nodes"].as_array().expect("posts");
    assert_eq!(data["user"]["username"], "alice");
    assert_eq!(posts.len(), 3, "alice has three seeded posts");
    for post in posts {
        assert!(post["likeCount"].is_i64());
        assert!(post["likedByMe"].is_boolean());
        for c in post["comments"]["nodes"].as_array().expect("comments") {
            assert!(
                c["author"]["username"].is_string(),
                "comment authors resolved: {c}"
            );
        }
    }

    // Ten times the posts, each with comments by several users.
    let (bob_token, _) = login(&client, "bob").await;
    for i in 0..27 {
        let post = client
            .run(
                Some(&token),
                "mutation($c: String!) { createPost(caption: $c) { id } }",
                json!({ "c": format!("more {i}") }),
            )
            .await
            .expect("create post");
        let id = post["createPost"]["id"].as_str().expect("id").to_string();
        for t in [&token, &bob_token] {
            retry_comment(&client, t, &id).await;
        }
    }
    let (requests_large, data) = requests_for_view(&p, &client, &token, &alice).await;
    let posts = data["user"]["posts"]["nodes"].as_array().expect("posts");
    assert_eq!(posts.len(), 30);
    assert!(
        posts
            .iter()
            .filter(|p| p["comments"]["nodes"]
                .as_array()
                .is_some_and(|c| c.len() >= 2))
            .count()
            >= 27
    );
    assert_eq!(
        requests_small, requests_large,
        "subgraph requests must not grow with the number of posts and comments"
    );
    assert!(
        requests_large <= 5,
        "users, posts, comments+likes, users again: {requests_large}"
    );
    p.shutdown();
}

async fn retry_comment(client: &Client, token: &str, post: &str) {
    // Comments need the post known to the comments service (PostCreated event).
    portico::seed::retry(|| {
        client.run(
            Some(token),
            "mutation($p: ID!) { addComment(postId: $p, body: \"nice\") { id } }",
            json!({ "p": post }),
        )
    })
    .await
    .unwrap_or_else(|e| panic!("comment on {post} never accepted: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subgraphs_refuse_requests_that_bypass_the_gateway() {
    let p = start().await;
    let http = reqwest::Client::new();
    for (name, url) in &p.subgraphs {
        let resp = http
            .post(url)
            .header("content-type", "application/json")
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
            .await
            .expect("subgraph reachable");
        assert_eq!(
            resp.status(),
            401,
            "{name} refuses a request without a trust token"
        );
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            body.get("data").is_none_or(Value::is_null),
            "{name}: no data"
        );
        // A token the gateway minted for another subgraph is refused too.
        let other = if *name == "users" { "posts" } else { "users" };
        let token = p.trust_signer.mint(
            other,
            &portico_trust::Identity::anonymous(),
            br#"{"query":"{ __typename }"}"#,
            Duration::from_secs(30),
        );
        let resp = http
            .post(url)
            .header("content-type", "application/json")
            .header(portico_trust::HEADER_TRUST, token)
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
            .await
            .expect("subgraph reachable");
        assert_eq!(resp.status(), 401, "{name} refuses a token for {other}");
    }
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_and_act_through_the_gateway() {
    let p = start().await;
    let client = Client::new(&p.gateway_url);
    let data = client
        .run(
            None,
            "mutation { register(username: \"erin\", email: \"erin@example.com\", password: \"long-enough-pw\") { accessToken userId } }",
            json!({}),
        )
        .await
        .expect("register");
    let token = data["register"]["accessToken"]
        .as_str()
        .expect("token")
        .to_string();
    // Profile arrives through the UserRegistered event.
    let mut me = Value::Null;
    for _ in 0..100 {
        me = client
            .run(
                Some(&token),
                "{ me { username followingCount } }",
                json!({}),
            )
            .await
            .expect("me");
        if !me["me"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(me["me"]["username"], "erin");
    // Mutations need a user: anonymous createPost is refused.
    let anon = client
        .run(
            None,
            "mutation { createPost(caption: \"x\") { id } }",
            json!({}),
        )
        .await;
    assert!(anon.is_err(), "anonymous createPost must fail");
    p.shutdown();
}

/// Browser clients never hold the refresh token in script: `login` sets it as an
/// `HttpOnly; Secure; SameSite=Strict` cookie through the gateway (auth's `Set-Cookie`
/// passed on by the demo's `respond` rule), and `refresh` / `logout` accept the cookie
/// (the client's `Cookie` reaches auth only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_token_travels_as_an_http_only_cookie_through_the_gateway() {
    let p = start().await;
    let http = reqwest::Client::new();
    let post = |query: &str, cookie: Option<&str>| {
        let mut req = http
            .post(&p.gateway_url)
            .header("content-type", "application/json")
            .body(json!({ "query": query }).to_string());
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let cookie_of = |r: &reqwest::Response| -> Option<String> {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("portico_refresh="))
            .map(str::to_string)
    };
    let login = post(
        &format!(
            "mutation {{ login(usernameOrEmail: \"{}\", password: \"{}\") {{ accessToken }} }}",
            portico::seed::DEMO_USERS[0],
            portico::seed::DEMO_PASSWORD
        ),
        None,
    )
    .await
    .expect("login answers");
    let set = cookie_of(&login).expect("login sets the refresh cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{flag} in {set}");
    }
    let pair = set.split(';').next().unwrap_or_default().to_string();

    // Refresh with the cookie alone (no argument): new tokens, and a rotated cookie.
    let refreshed = post("mutation { refresh { accessToken } }", Some(&pair))
        .await
        .expect("refresh answers");
    let rotated = cookie_of(&refreshed).expect("refresh sets the next cookie");
    assert_ne!(rotated.split(';').next(), Some(pair.as_str()));
    let body: Value = refreshed.json().await.expect("json");
    assert!(body["data"]["refresh"]["accessToken"].is_string(), "{body}");

    // The old cookie was single use: presenting it again revokes the session.
    let reuse: Value = post("mutation { refresh { accessToken } }", Some(&pair))
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        reuse["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{reuse}"
    );

    // No cookie, no argument: refused.
    let none: Value = post("mutation { refresh { accessToken } }", None)
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        none["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{none}"
    );

    // Logout clears the cookie.
    let out = post("mutation { logout }", Some(&pair))
        .await
        .expect("answers");
    let cleared = cookie_of(&out).expect("logout clears the cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    p.shutdown();
}
