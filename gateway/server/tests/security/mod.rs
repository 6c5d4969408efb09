//! Edge security over real HTTP (issue 5): authorization, the JWT attack corpus, key
//! rotation, header propagation, CORS, parser limits and secret-free logs. A module of
//! the `it` binary (one test link), reusing its mock subgraphs and token helpers.

use super::*;

/// The test supergraph with `@authenticated` on `Query.me` and
/// `@requiresScopes(scopes: [["admin"]])` on `User.followingIds`, as composition emits.
fn supergraph_with_directives() -> String {
    SUPERGRAPH
        .replacen(
            "@link(url: \"https://specs.apollo.dev/join/v0.4\", for: EXECUTION)",
            "@link(url: \"https://specs.apollo.dev/join/v0.4\", for: EXECUTION) \
             @link(url: \"https://specs.apollo.dev/authenticated/v0.1\", for: SECURITY) \
             @link(url: \"https://specs.apollo.dev/requiresScopes/v0.1\", for: SECURITY)",
            1,
        )
        .replacen(
            "me: User @join__field(graph: USERS)",
            "me: User @join__field(graph: USERS) @authenticated",
            1,
        )
        .replacen(
            "followingIds: [ID!]! @join__field(graph: POSTS, external: true) @join__field(graph: USERS)",
            "followingIds: [ID!]! @join__field(graph: POSTS, external: true) @join__field(graph: USERS) @requiresScopes(scopes: [[\"admin\"]])",
            1,
        )
        + "\ndirective @authenticated on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM\n\
           directive @requiresScopes(scopes: [[requiresScopes__Scope!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM\n\
           scalar requiresScopes__Scope\n"
}

/// A gateway over the real planner with `config` (subgraph URLs filled in).
async fn secured_gateway(
    mut config: GatewayConfig,
    supergraph: &str,
    subgraphs: &[(&'static str, MockSubgraph)],
) -> (Gateway, String) {
    for (name, sg) in subgraphs {
        config.subgraphs.insert(
            name.to_string(),
            portico_gateway::config::SubgraphConfig {
                url: Some(sg.url.clone()),
                timeout_ms: None,
            },
        );
    }
    let gateway =
        Gateway::new(config, supergraph, TrustSigner::generate()).expect("supergraph loads");
    let addr = spawn(gateway.router()).await;
    (gateway, format!("http://{addr}/graphql"))
}

async fn send(url: &str, query: &str, bearer: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req
        .body(json!({ "query": query }).to_string())
        .send()
        .await
        .expect("gateway answers");
    let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
    (status, resp.json().await.expect("json body"))
}

fn authz_config(rules: &str) -> GatewayConfig {
    let mut config = GatewayConfig::from_toml(rules).expect("rules parse");
    config.dev = true;
    config.jwt = pem_jwt_config();
    config
}

fn user_token(scope: &str) -> String {
    token(
        JWT_PRIVATE,
        None,
        json!({"sub": "1", "scope": scope, "iss": "portico-auth", "aud": "portico", "exp": now() + 300}),
    )
}

fn codes(body: &Value) -> Vec<(String, Value)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["extensions"]["code"].as_str().unwrap_or("").to_string(),
                        e["path"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- authorization

#[tokio::test]
async fn supergraph_directives_null_unauthorized_fields_and_never_send_them_to_subgraphs() {
    let subgraphs = demo_subgraphs(1, 1).await;
    let (_gw, url) =
        secured_gateway(authz_config(""), &supergraph_with_directives(), &subgraphs).await;
    let users = &subgraphs[0].1;

    // Anonymous: `me` is removed from the planned operation, answered null + error.
    let (status, body) = send(
        &url,
        r#"{ user(id: "1") { username } me { username } }"#,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["user"]["username"], "ann", "{body}");
    assert_eq!(body["data"]["me"], Value::Null, "{body}");
    assert_eq!(
        codes(&body),
        vec![("UNAUTHORIZED_FIELD_OR_TYPE".to_string(), json!(["me"]))]
    );
    let sent = users.last().body["query"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        !sent.contains("{me") && !sent.contains(" me"),
        "`me` reached the subgraph: {sent}"
    );

    // Only unauthorized fields: nothing at all is fetched.
    let before = users.count();
    let (status, body) = send(&url, "{ me { username } }", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!({"me": null}), "{body}");
    assert_eq!(
        users.count(),
        before,
        "no subgraph request for a removed field"
    );

    // A non-null field without the scope bubbles to the nearest nullable parent.
    let (_, body) = send(
        &url,
        r#"{ user(id: "1") { username followingIds } }"#,
        Some(&user_token("read")),
    )
    .await;
    assert_eq!(body["data"]["user"], Value::Null, "{body}");
    assert_eq!(
        codes(&body)[0],
        (
            "UNAUTHORIZED_FIELD_OR_TYPE".to_string(),
            json!(["user", "followingIds"])
        ),
        "{body}"
    );

    // With the scope (and a token), everything is allowed.
    let (status, body) = send(
        &url,
        r#"{ user(id: "1") { username } me { username } }"#,
        Some(&user_token("read admin")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn config_rules_apply_by_coordinate_and_type_and_can_refuse_the_whole_request() {
    let subgraphs = demo_subgraphs(2, 1).await;
    let rules = r#"
        [authorization]
        reject_unauthorized = true
        [authorization.rules]
        "Query.me" = "authenticated"
        "CommentConnection" = { scopes = [["comments:read"], ["admin"]] }
    "#;
    let (gw, url) = secured_gateway(authz_config(rules), SUPERGRAPH, &subgraphs).await;
    let query = r#"{ post(id: "p1") { caption comments { nodes { body } } } }"#;
    let (status, body) = send(&url, query, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        codes(&body),
        vec![(
            "UNAUTHORIZED_FIELD_OR_TYPE".to_string(),
            json!(["post", "comments"])
        )]
    );
    let (status, _) = send(&url, query, Some(&user_token("read"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let total: u64 = subgraphs
        .iter()
        .map(|(n, _)| gw.subgraph_request_count(n))
        .sum();
    assert_eq!(total, 0, "refused requests call no subgraph");
    let (status, body) = send(&url, query, Some(&user_token("admin"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");

    // Unknown coordinates are start-up errors naming the rule.
    let bad = authz_config("[authorization.rules]\n\"Query.mee\" = \"authenticated\"\n");
    let e = Gateway::new(bad, SUPERGRAPH, TrustSigner::generate())
        .err()
        .expect("unknown coordinate refused");
    assert!(e.to_string().contains("Query.mee"), "{e}");
}

#[tokio::test]
async fn require_authentication_refuses_anonymous_requests() {
    let subgraphs = demo_subgraphs(1, 1).await;
    let config = authz_config("[authorization]\nrequire_authentication = true\n");
    let (gw, url) = secured_gateway(config, SUPERGRAPH, &subgraphs).await;
    let (status, body) = send(&url, r#"{ user(id: "1") { username } }"#, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "TOKEN_REQUIRED");
    assert_eq!(gw.subgraph_request_count("users"), 0);
    let (status, _) = send(
        &url,
        r#"{ user(id: "1") { username } }"#,
        Some(&user_token("")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
