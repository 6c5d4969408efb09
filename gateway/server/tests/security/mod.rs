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
                ..Default::default()
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
        codes(&body),
        vec![(
            "UNAUTHORIZED_FIELD_OR_TYPE".to_string(),
            json!(["user", "followingIds"])
        )],
        "one error, the null bubbling is explained by it: {body}"
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

    // Deferred: the same rules, in the part that carries the field. Anonymous, the
    // deferred `me` is null with its error in the second part, and never sent.
    let before = users.count();
    let text = reqwest::Client::new()
        .post(&url)
        .header("accept", "multipart/mixed;deferSpec=20220824")
        .json(&json!({"query": r#"{ user(id: "1") { username } ... @defer(label: "me") { me { username } } }"#}))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    let parts = multipart_parts(&text);
    assert_eq!(
        parts[0],
        json!({"data": {"user": {"username": "ann"}}, "hasNext": true}),
        "{text}"
    );
    assert_eq!(
        parts[1]["incremental"],
        json!([{"data": {"me": null}, "path": [], "label": "me"}]),
        "{text}"
    );
    assert_eq!(
        codes(&parts[1]),
        vec![("UNAUTHORIZED_FIELD_OR_TYPE".to_string(), json!(["me"]))],
        "{text}"
    );
    assert_eq!(users.count(), before + 1, "only the primary part's fetch");
    let sent = users.last().body["query"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!sent.contains("{me") && !sent.contains(" me"), "{sent}");
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

// ---------------------------------------------------------------- JWT attack corpus

const JWT_EC_PRIVATE: &[u8] = include_bytes!("../fixtures/jwt_ec_private.pem");
const JWT_ED_PRIVATE: &[u8] = include_bytes!("../fixtures/jwt_ed_private.pem");
const JWKS_ALL: &str = include_str!("../fixtures/jwks_all.json");

/// A JWKS endpoint whose document (and status) tests can change.
#[derive(Clone)]
struct KeyServer {
    url: String,
    body: Arc<Mutex<(StatusCode, String)>>,
}

impl KeyServer {
    async fn start(body: String) -> Self {
        let state = Arc::new(Mutex::new((StatusCode::OK, body)));
        let s = state.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (status, body) = s.lock().clone();
                async move { (status, [("content-type", "application/json")], body) }
            }),
        );
        let addr = spawn(app).await;
        Self {
            url: format!("http://{addr}/jwks.json"),
            body: state,
        }
    }

    /// Publish only the keys with these `kid`s (from `jwks_all.json`).
    fn publish(&self, kids: &[&str]) {
        let all: Value = serde_json::from_str(JWKS_ALL).expect("jwks");
        let keys: Vec<Value> = all["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter(|k| kids.contains(&k["kid"].as_str().unwrap_or("")))
            .cloned()
            .collect();
        *self.body.lock() = (StatusCode::OK, json!({ "keys": keys }).to_string());
    }
}

fn signed(alg: jsonwebtoken::Algorithm, key: &[u8], kid: &str, claims: &Value) -> String {
    use jsonwebtoken::{Algorithm as A, EncodingKey};
    let key = match alg {
        A::ES256 => EncodingKey::from_ec_pem(key),
        A::EdDSA => EncodingKey::from_ed_pem(key),
        _ => EncodingKey::from_rsa_pem(key),
    }
    .expect("test key");
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

fn good_claims() -> Value {
    json!({"sub": "42", "scope": "read", "iss": "portico-auth", "aud": "portico", "exp": now() + 300})
}

fn jwks_config(url: &str) -> portico_gateway::config::JwtConfig {
    portico_gateway::config::JwtConfig {
        jwks_url: Some(url.to_string()),
        issuer: Some("portico-auth".into()),
        audience: Some("portico".into()),
        leeway_secs: 5,
        jwks_min_refresh_secs: 0,
        ..Default::default()
    }
}

#[tokio::test]
async fn the_attack_corpus_is_refused_with_reasons_and_no_subgraph_is_called() {
    use jsonwebtoken::Algorithm as A;
    let keys = KeyServer::start(JWKS_ALL.to_string()).await;
    let (gw, users) = auth_gateway(jwks_config(&keys.url)).await;
    let claims = |patch: Value| {
        let mut c = good_claims();
        for (k, v) in patch.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    let good = signed(A::RS256, JWT_PRIVATE, "test-key-1", &good_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let tampered_payload = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims(json!({"sub": "admin"})).to_string().as_bytes()),
        parts[2]
    );
    let tampered_header = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256","kid":"test-key-1","typ":"JWT","jku":"http://evil"}"#),
        parts[1],
        parts[2]
    );
    let alg_swapped = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"PS256","kid":"test-key-1","typ":"JWT"}"#),
        parts[1],
        parts[2]
    );
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","kid":"test-key-1","typ":"JWT"}"#),
        parts[1]
    );
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(A::HS256);
        header.kid = Some("test-key-1".into());
        jsonwebtoken::encode(
            &header,
            &good_claims(),
            &jsonwebtoken::EncodingKey::from_secret(JWT_PUBLIC.as_bytes()),
        )
        .expect("sign")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", alg_none, "MALFORMED"),
        ("HS256 key confusion", hs256, "WRONG_ALGORITHM"),
        (
            "algorithm swapped in header",
            alg_swapped,
            "WRONG_ALGORITHM",
        ),
        ("tampered payload", tampered_payload, "INVALID_SIGNATURE"),
        ("tampered header", tampered_header, "INVALID_SIGNATURE"),
        (
            "signed by another key under a known kid",
            signed(A::RS256, JWT_OTHER_PRIVATE, "test-key-1", &good_claims()),
            "INVALID_SIGNATURE",
        ),
        (
            "unknown kid",
            signed(A::RS256, JWT_PRIVATE, "no-such-key", &good_claims()),
            "UNKNOWN_KEY",
        ),
        (
            "expired",
            signed(
                A::RS256,
                JWT_PRIVATE,
                "test-key-1",
                &claims(json!({"exp": now() - 60})),
            ),
            "EXPIRED",
        ),
        (
            "not yet valid",
            signed(
                A::RS256,
                JWT_PRIVATE,
                "test-key-1",
                &claims(json!({"nbf": now() + 120})),
            ),
            "NOT_YET_VALID",
        ),
        (
            "wrong issuer",
            signed(
                A::RS256,
                JWT_PRIVATE,
                "test-key-1",
                &claims(json!({"iss": "evil"})),
            ),
            "INVALID_ISSUER",
        ),
        (
            "wrong audience",
            signed(
                A::RS256,
                JWT_PRIVATE,
                "test-key-1",
                &claims(json!({"aud": "other-api"})),
            ),
            "INVALID_AUDIENCE",
        ),
        (
            "no subject",
            signed(
                A::RS256,
                JWT_PRIVATE,
                "test-key-1",
                &claims(json!({"sub": ""})),
            ),
            "MALFORMED",
        ),
        (
            "subject longer than 256 bytes",
            signed(
                A::RS256,
                JWT_PRIVATE,
                "test-key-1",
                &claims(json!({"sub": "u".repeat(300)})),
            ),
            "MALFORMED",
        ),
        (
            "control character in the subject",
            signed(
                A::RS256,
                JWT_PRIVATE,
                "test-key-1",
                &claims(json!({"sub": "42\nportico-user-scopes: admin"})),
            ),
            "MALFORMED",
        ),
        (
            // Sent on as a space-separated header, ["read admin"] would read as two scopes.
            "a list scope with a space",
            signed(
                A::RS256,
                JWT_PRIVATE,
                "test-key-1",
                &claims(json!({"scope": null, "scp": ["read admin"]})),
            ),
            "MALFORMED",
        ),
        (
            "oversized",
            signed(
                A::RS256,
                JWT_PRIVATE,
                "test-key-1",
                &claims(json!({"pad": "x".repeat(9000)})),
            ),
            "TOKEN_TOO_LARGE",
        ),
        ("garbage", "%%%.$$$.###".to_string(), "MALFORMED"),
        (
            "two segments",
            format!("{}.{}", parts[0], parts[1]),
            "MALFORMED",
        ),
    ];
    for (name, token, reason) in &cases {
        let (status, body) = gw
            .post_with(
                json!({"query": "{ me { name } }"}),
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{name}"
        );
        assert_eq!(
            body["errors"][0]["extensions"]["reason"], *reason,
            "{name}: {body}"
        );
        assert!(body.get("data").is_none(), "{name}");
    }
    // Non-UTF-8 bytes in the header.
    let r = reqwest::Client::new()
        .post(format!("{}/graphql", gw.url))
        .header("content-type", "application/json")
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").expect("bytes"),
        )
        .body(json!({"query": "{ me { name } }"}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 401);
    assert_eq!(users.count(), 0, "no refused token reached a subgraph");

    // Still up; every algorithm the keys pin is accepted.
    for (alg, key, kid) in [
        (A::RS256, JWT_PRIVATE, "test-key-1"),
        (A::RS256, JWT_OTHER_PRIVATE, "test-key-2"),
        (A::ES256, JWT_EC_PRIVATE, "ec-key"),
        (A::EdDSA, JWT_ED_PRIVATE, "ed-key"),
    ] {
        let t = signed(alg, key, kid, &good_claims());
        let (status, body) = gw
            .post_with(
                json!({"query": "{ me { name } }"}),
                &[("authorization", &format!("Bearer {t}"))],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{alg:?}: {body}");
    }
    assert_eq!(users.count(), 4);
    // An ES256 token relabelled EdDSA (key confusion across curves) is refused.
    let es = signed(A::ES256, JWT_EC_PRIVATE, "ed-key", &good_claims());
    let (status, body) = gw
        .post_with(
            json!({"query": "{ me { name } }"}),
            &[("authorization", &format!("Bearer {es}"))],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errors"][0]["extensions"]["reason"], "WRONG_ALGORITHM");
}

// ---------------------------------------------------------------- key rotation

#[tokio::test]
async fn auth_key_rotation_accepts_old_and_new_tokens_during_the_overlap() {
    use jsonwebtoken::Algorithm as A;
    let keys = KeyServer::start(String::new()).await;
    keys.publish(&["test-key-1"]);
    let mut jwt = jwks_config(&keys.url);
    jwt.jwks_max_age_secs = 1;
    let (gw, _users) = auth_gateway(jwt).await;
    let ask = |t: String| {
        let gw = &gw;
        async move {
            gw.post_with(
                json!({"query": "{ me { name } }"}),
                &[("authorization", &format!("Bearer {t}"))],
            )
            .await
        }
    };
    let old = signed(A::RS256, JWT_PRIVATE, "test-key-1", &good_claims());
    let new = signed(A::RS256, JWT_OTHER_PRIVATE, "test-key-2", &good_claims());
    assert_eq!(ask(old.clone()).await.0, StatusCode::OK);

    // 1. auth publishes old + new; a new-kid token triggers a refresh.
    keys.publish(&["test-key-1", "test-key-2"]);
    assert_eq!(
        ask(new.clone()).await.0,
        StatusCode::OK,
        "new key picked up"
    );
    assert_eq!(
        ask(old.clone()).await.0,
        StatusCode::OK,
        "old key still valid"
    );

    // 2. The key server goes down: the last good copy keeps serving both.
    *keys.body.lock() = (StatusCode::INTERNAL_SERVER_ERROR, "down".into());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask(old.clone()).await.0, StatusCode::OK);
    assert_eq!(ask(new.clone()).await.0, StatusCode::OK);

    // 3. The old key is removed: its tokens are refused (even cached verifications).
    keys.publish(&["test-key-2"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = ask(old).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "UNKNOWN_KEY");
    assert_eq!(ask(new).await.0, StatusCode::OK);
}

#[tokio::test]
async fn keys_can_come_from_a_jwks_file() {
    use jsonwebtoken::Algorithm as A;
    let dir = std::env::temp_dir().join(format!("portico-sec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("jwks.json");
    std::fs::write(&file, JWKS_ALL).expect("write");
    let (gw, _users) = auth_gateway(portico_gateway::config::JwtConfig {
        jwks_file: Some(file),
        ..Default::default()
    })
    .await;
    let t = signed(A::ES256, JWT_EC_PRIVATE, "ec-key", &good_claims());
    let (status, body) = gw
        .post_with(
            json!({"query": "{ me { name } }"}),
            &[("authorization", &format!("Bearer {t}"))],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn trust_key_rotation_subgraphs_accept_both_gateway_keys_during_the_overlap() {
    let old_signer = TrustSigner::generate();
    let new_signer = TrustSigner::generate();
    let pem = |s: &TrustSigner| s.public_key_pem().expect("pem");
    // Step 1: subgraphs trust old + new; step 2: gateways switch to new; step 3: old removed.
    let overlap =
        portico_trust::TrustVerifier::from_public_pems(&[pem(&old_signer), pem(&new_signer)])
            .expect("verifier");
    let after =
        portico_trust::TrustVerifier::from_public_pems(&[pem(&new_signer)]).expect("verifier");
    let mut minted = Vec::new();
    for signer in [&old_signer, &new_signer] {
        let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
        let planner = Arc::new(StaticPlanner {
            schema: Schema::parse_and_validate(API_SCHEMA, "api.graphql").expect("schema"),
            subgraphs: vec![SubgraphInfo {
                name: "users".into(),
                url: users.url.clone(),
            }],
            plans: [("".to_string(), seq(vec![fetch("users", "{ me { name } }")]))]
                .into_iter()
                .collect(),
            calls: AtomicUsize::new(0),
        });
        let gateway = Gateway::with_planner(dev(), planner, signer.clone()).expect("gateway");
        let addr = spawn(gateway.router()).await;
        let (status, _) = send(&format!("http://{addr}/graphql"), "{ me { name } }", None).await;
        assert_eq!(status, StatusCode::OK);
        let token = users.last().headers["portico-trust"]
            .to_str()
            .expect("ascii")
            .to_string();
        let sent = serde_json::to_vec(&users.last().body).expect("json");
        minted.push((token, sent));
    }
    for (token, sent) in &minted {
        assert!(
            overlap
                .verify(Some(token), "users", None, None, sent)
                .is_ok()
        );
    }
    let [(old_token, old_body), (new_token, new_body)] = &minted[..] else {
        panic!("two tokens")
    };
    assert!(
        after
            .verify(Some(old_token), "users", None, None, old_body)
            .is_err()
    );
    assert!(
        after
            .verify(Some(new_token), "users", None, None, new_body)
            .is_ok()
    );
}

// ---------------------------------------------------------------- headers, CORS, limits

#[tokio::test]
async fn header_rules_propagate_rename_and_insert_and_client_portico_headers_are_stripped() {
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let mut config = GatewayConfig::from_toml(
        r#"
        [headers.subgraphs."*"]
        propagate = [{ named = "accept-language" }, { named = "x-client", rename = "x-client-name", default = "unknown" }]
        [headers.subgraphs.users]
        insert = [{ name = "x-from", value = "portico" }]
        "#,
    )
    .expect("config");
    config.dev = true;
    let gw = TestGateway::start(
        config,
        &[("users", &users.url)],
        vec![("", seq(vec![fetch("users", "{ me { name } }")]))],
    )
    .await;
    let (status, _) = gw
        .post_with(
            json!({"query": "{ me { name } }"}),
            &[
                ("accept-language", "fr-CH"),
                ("cookie", "session=secret"),
                ("x-other", "1"),
                ("portico-user-id", "admin"),
                ("portico-user-scopes", "admin"),
                ("portico-trust", "forged"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let seen = users.last().headers;
    assert_eq!(seen["accept-language"], "fr-CH");
    assert_eq!(seen["x-client-name"], "unknown");
    assert_eq!(seen["x-from"], "portico");
    for absent in [
        "cookie",
        "x-other",
        "portico-user-id",
        "portico-user-scopes",
        "authorization",
    ] {
        assert!(seen.get(absent).is_none(), "{absent} was forwarded");
    }
    assert_ne!(seen["portico-trust"], "forged");

    // Default: nothing the client sent.
    let plain = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let gw = TestGateway::start(
        dev(),
        &[("users", &plain.url)],
        vec![("", seq(vec![fetch("users", "{ me { name } }")]))],
    )
    .await;
    gw.post_with(
        json!({"query": "{ me { name } }"}),
        &[("accept-language", "fr")],
    )
    .await;
    assert!(plain.last().headers.get("accept-language").is_none());
}

async fn preflight(gw: &TestGateway, origin: &str) -> reqwest::Response {
    gw.http
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", gw.url))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .expect("answers")
}

#[tokio::test]
async fn cors_is_closed_by_default_and_opens_to_configured_origins_only() {
    let closed = TestGateway::start(dev(), &[], vec![]).await;
    let r = preflight(&closed, "https://evil.example").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let mut config = GatewayConfig::from_toml(
        "[cors]\nallow_origins = [\"https://app.example\"]\nallow_credentials = true\n",
    )
    .expect("config");
    config.dev = true;
    let open = TestGateway::start(config, &[], vec![]).await;
    let r = preflight(&open, "https://app.example").await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(allowed.contains("authorization"), "{allowed}");
    let r = preflight(&open, "https://evil.example").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // `*` with credentials is a start-up error.
    let e = GatewayConfig::from_toml("[cors]\nallow_origins = [\"*\"]\nallow_credentials = true\n")
        .expect_err("refused");
    assert!(e.to_string().contains("cors.allow_credentials"), "{e}");
}

#[tokio::test]
async fn token_and_directive_limits_refuse_with_their_own_codes_before_planning() {
    let mut config = dev();
    config.limits.max_tokens = 50;
    config.limits.max_directives_per_field = 1;
    let gw = TestGateway::start(config, &[], vec![]).await;
    let many_tokens = format!("{{ {} }}", "__typename ".repeat(60));
    let (status, body) = gw.post(json!({ "query": many_tokens })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "MAX_TOKENS_EXCEEDED"
    );
    let (status, body) = gw
        .post(json!({"query": "{ __typename @skip(if: false) @include(if: true) }"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "MAX_DIRECTIVES_EXCEEDED",
        "{body}"
    );
    assert_eq!(gw.planner.calls.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------- secrets never logged

/// A tracing subscriber that writes every event and span field into one string.
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut out = self.0.lock();
        out.push_str(span.metadata().name());
        span.record(&mut Fields(&mut out));
        out.push('\n');
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut out = self.0.lock();
        out.push_str("(span fields)");
        values.record(&mut Fields(&mut out));
        out.push('\n');
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.0.lock();
        out.push_str(event.metadata().target());
        event.record(&mut Fields(&mut out));
        out.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn no_token_password_or_trust_token_appears_in_the_logs() {
    use jsonwebtoken::Algorithm as A;
    let logs = Arc::new(Mutex::new(String::new()));
    // Current-thread test runtime: the gateway, subgraphs and key server all log here.
    let _guard = tracing::subscriber::set_default(Capture(logs.clone()));

    let keys = KeyServer::start(JWKS_ALL.to_string()).await;
    *keys.body.lock() = (StatusCode::SERVICE_UNAVAILABLE, "down".into());
    let (gw, users) = auth_gateway(jwks_config(&keys.url)).await;
    let good = signed(A::RS256, JWT_PRIVATE, "test-key-1", &good_claims());
    // Key server down: refused (and the failure is logged), then up again.
    let (status, _) = gw
        .post_with(
            json!({"query": "{ me { name } }"}),
            &[("authorization", &format!("Bearer {good}"))],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    keys.publish(&["test-key-1"]);
    let password = "hunter2-correct-horse";
    let bad = signed(A::RS256, JWT_OTHER_PRIVATE, "test-key-1", &good_claims());
    for bearer in [&good, &bad] {
        gw.post_with(
            json!({
                "query": format!("{{ me {{ name }} }} # {password}"),
                "variables": {"password": password},
            }),
            &[
                ("authorization", &format!("Bearer {bearer}")),
                ("cookie", &format!("password={password}")),
            ],
        )
        .await;
    }
    let trust = users.last().headers["portico-trust"]
        .to_str()
        .expect("ascii")
        .to_string();
    let logs = logs.lock().clone();
    assert!(
        logs.contains("graphql request"),
        "the capture works:\n{logs}"
    );
    assert!(logs.contains("JWKS fetch failed"), "{logs}");
    let signature = |t: &str| t.rsplit('.').next().unwrap_or_default().to_string();
    for (what, secret) in [
        ("access token", good.clone()),
        ("access token signature", signature(&good)),
        ("refused token", bad.clone()),
        ("refused token signature", signature(&bad)),
        ("password", password.to_string()),
        ("trust token", trust.clone()),
        ("trust token signature", signature(&trust)),
    ] {
        assert!(
            !logs.contains(&secret),
            "{what} appears in the logs:\n{logs}"
        );
    }
}

// ---------------------------------------------------------------- the demo's rules

#[tokio::test]
async fn the_demo_authorization_rules_fit_the_demo_supergraph() {
    let supergraph = include_str!("../../../../supergraph/supergraph.graphql");
    // The rules as deployed (deploy/gateway.toml is also what `portico dev` applies);
    // only the network-facing parts are switched off for this in-process test.
    let mut config = GatewayConfig::from_toml(include_str!("../../../../deploy/gateway.toml"))
        .expect("demo rules parse");
    config.dev = true;
    config.rate_limit.enabled = false;
    config.jwt.jwks_url = None;
    let gateway =
        Gateway::new(config, supergraph, TrustSigner::generate()).expect("every coordinate exists");
    let addr = spawn(gateway.router()).await;
    let url = format!("http://{addr}/graphql");
    let (status, body) = send(&url, "{ me { id username } }", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!({"me": null}), "{body}");
    assert_eq!(
        codes(&body),
        vec![("UNAUTHORIZED_FIELD_OR_TYPE".to_string(), json!(["me"]))]
    );
    let (_, body) = send(
        &url,
        r#"mutation { markNotificationsRead(ids: ["1"]) }"#,
        None,
    )
    .await;
    assert_eq!(body["data"], Value::Null, "non-null root field: {body}");
    assert_eq!(
        codes(&body),
        vec![(
            "UNAUTHORIZED_FIELD_OR_TYPE".to_string(),
            json!(["markNotificationsRead"])
        )]
    );
    // Nothing was sent anywhere: the removed fields were the whole operation.
    let sent: u64 = [
        "auth",
        "users",
        "posts",
        "comments",
        "likes",
        "notifications",
    ]
    .iter()
    .map(|s| gateway.subgraph_request_count(s))
    .sum();
    assert_eq!(sent, 0);
}

// ---------------------------------------------------------------- @policy

/// The test supergraph with `@policy` on `Query.user`: granted with both
/// `profile:read` AND `profile:extra`, OR with `staff`.
fn supergraph_with_policy() -> String {
    SUPERGRAPH
        .replacen(
            "@link(url: \"https://specs.apollo.dev/join/v0.4\", for: EXECUTION)",
            "@link(url: \"https://specs.apollo.dev/join/v0.4\", for: EXECUTION) \
             @link(url: \"https://specs.apollo.dev/policy/v0.1\", for: SECURITY)",
            1,
        )
        .replacen(
            "user(id: ID!): User @join__field(graph: USERS)",
            "user(id: ID!): User @join__field(graph: USERS) \
             @policy(policies: [[\"profile:read\", \"profile:extra\"], [\"staff\"]])",
            1,
        )
        + "\ndirective @policy(policies: [[policy__Policy!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM\n\
           scalar policy__Policy\n"
}

const USER_QUERY: &str = r#"{ user(id: "1") { username } }"#;

#[tokio::test]
async fn policy_fields_are_denied_unless_the_config_mapping_grants_every_policy_of_a_group() {
    let subgraphs = demo_subgraphs(1, 1).await;
    let config = authz_config(
        r#"
        [authorization.policies]
        "profile:read" = "authenticated"
        "profile:extra" = { scopes = [["extra"]] }
        "#,
    );
    let (gw, url) = secured_gateway(config, &supergraph_with_policy(), &subgraphs).await;

    // Anonymous (and a token missing `profile:extra`): null + error, nothing fetched.
    for bearer in [None, Some(user_token("read"))] {
        let (status, body) = send(&url, USER_QUERY, bearer.as_deref()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"], json!({"user": null}), "{body}");
        assert_eq!(
            codes(&body),
            vec![("UNAUTHORIZED_FIELD_OR_TYPE".to_string(), json!(["user"]))]
        );
    }
    let total: u64 = subgraphs
        .iter()
        .map(|(n, _)| gw.subgraph_request_count(n))
        .sum();
    assert_eq!(total, 0, "a denied @policy field calls no subgraph");

    // Both policies of the first group granted by the mapping.
    let (status, body) = send(&url, USER_QUERY, Some(&user_token("read extra"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["user"]["username"], "ann", "{body}");

    // Rule shapes are checked like `[authorization.rules]`.
    let bad = authz_config("[authorization.policies]\n\"staff\" = \"nobody\"\n");
    let e = Gateway::new(bad, &supergraph_with_policy(), TrustSigner::generate())
        .err()
        .expect("unknown rule refused");
    assert!(e.to_string().contains("authorization.policies"), "{e}");
}

/// Grants `staff` to user "7" only, and records what it was asked.
struct StaffEvaluator(Mutex<Vec<BTreeSet<String>>>);

impl portico_gateway::PolicyEvaluator for StaffEvaluator {
    fn granted(&self, identity: &Identity, policies: &BTreeSet<String>) -> BTreeSet<String> {
        self.0.lock().push(policies.clone());
        if identity.user_id.as_deref() == Some("7") {
            policies.iter().filter(|p| *p == "staff").cloned().collect()
        } else {
            BTreeSet::new()
        }
    }
}

#[tokio::test]
async fn a_custom_policy_evaluator_replaces_the_config_mapping() {
    let subgraphs = demo_subgraphs(1, 1).await;
    // The mapping would grant the first group to any token; the evaluator replaces it.
    let config = authz_config(
        r#"
        [authorization.policies]
        "profile:read" = "authenticated"
        "profile:extra" = "authenticated"
        "#,
    );
    let (gw, url) = secured_gateway(config, &supergraph_with_policy(), &subgraphs).await;
    let evaluator = Arc::new(StaffEvaluator(Mutex::new(Vec::new())));
    let gw = gw.with_policy_evaluator(evaluator.clone());

    let (_, body) = send(&url, USER_QUERY, Some(&user_token("read"))).await;
    assert_eq!(body["data"], json!({"user": null}), "{body}");
    assert_eq!(gw.subgraph_request_count("users"), 0);

    let staff = token(
        JWT_PRIVATE,
        None,
        json!({"sub": "7", "scope": "", "iss": "portico-auth", "aud": "portico", "exp": now() + 300}),
    );
    let (status, body) = send(&url, USER_QUERY, Some(&staff)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["user"]["username"], "ann", "{body}");

    let asked = evaluator.0.lock().clone();
    let every: BTreeSet<String> = ["profile:extra", "profile:read", "staff"]
        .map(String::from)
        .into();
    assert_eq!(asked, vec![every.clone(), every], "asked once per request");
}

/// Panics for user "13", grants nothing otherwise.
struct PanickingEvaluator;

impl portico_gateway::PolicyEvaluator for PanickingEvaluator {
    fn granted(&self, identity: &Identity, _policies: &BTreeSet<String>) -> BTreeSet<String> {
        if identity.user_id.as_deref() == Some("13") {
            panic!("evaluator bug for user 13");
        }
        BTreeSet::new()
    }
}

#[tokio::test]
async fn a_panicking_policy_evaluator_costs_one_request_not_the_gateway() {
    let subgraphs = demo_subgraphs(1, 1).await;
    let mut config = authz_config("");
    config.dev = false; // production: the panic's message stays in the log
    let (gw, url) = secured_gateway(config, &supergraph_with_policy(), &subgraphs).await;
    let _gw = gw.with_policy_evaluator(Arc::new(PanickingEvaluator));
    let unlucky = token(
        JWT_PRIVATE,
        None,
        json!({"sub": "13", "scope": "", "iss": "portico-auth", "aud": "portico", "exp": now() + 300}),
    );
    let (status, body) = send(&url, USER_QUERY, Some(&unlucky)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let error = &body["errors"][0];
    assert_eq!(
        error["extensions"]["code"], "INTERNAL_SERVER_ERROR",
        "{body}"
    );
    let id = error["extensions"]["requestId"]
        .as_str()
        .expect("requestId");
    assert_eq!(
        error["message"],
        format!("internal server error (request id {id})")
    );
    assert!(!body.to_string().contains("evaluator bug"), "{body}");

    // The next request is served.
    let (status, body) = send(&url, USER_QUERY, Some(&user_token("read"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!({"user": null}), "{body}");

    let metrics = metrics_at(url.trim_end_matches("/graphql")).await;
    assert!(
        metrics.contains("portico_panics_total{stage=\"request\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn each_request_is_logged_once_and_a_failing_subgraph_with_its_reason() {
    let logs = Arc::new(Mutex::new(String::new()));
    // Current-thread test runtime: the gateway and the subgraph log here.
    let _guard = tracing::subscriber::set_default(Capture(logs.clone()));
    let users = MockSubgraph::start(|_| json!({"data": {"me": user(1)}})).await;
    let down = MockSubgraph::start_with(
        Arc::new(|_| json!({})),
        Duration::ZERO,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    let gw = TestGateway::start(
        dev(),
        &[("users", &users.url), ("posts", &down.url)],
        vec![
            ("Me", seq(vec![fetch("users", "{ me { name } }")])),
            ("", seq(vec![fetch("posts", "{ me { name } }")])),
        ],
    )
    .await;
    let long_name = format!("ios-app-{}", "x".repeat(100));
    let (status, _) = gw
        .post_with(
            json!({"query": "query Me { me { name } }", "operationName": "Me"}),
            &[
                ("graphql-client-name", &long_name),
                ("apollographql-client-version", "4.2.0"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    gw.post(json!({"query": "{ me { name } }"})).await;
    let logs = logs.lock().clone();
    let access: Vec<&str> = logs
        .lines()
        .filter(|l| l.starts_with("portico::access"))
        .collect();
    assert_eq!(access.len(), 2, "one access line per request:\n{logs}");
    for field in [
        "operation=\"Me\"",
        "operation_type=\"query\"",
        // Bounded: at most 64 characters of what the client sent.
        &format!("client_name=\"{}\"", &long_name[..64]),
        "client_version=\"4.2.0\"",
        "status=200",
        "duration_ms=",
        "request_id=",
    ] {
        assert!(access[0].contains(field), "{field} in {}", access[0]);
    }
    for field in ["operation=\"\"", "client_name=\"\"", "status=200"] {
        assert!(access[1].contains(field), "{field} in {}", access[1]);
    }
    let failure = logs
        .lines()
        .find(|l| l.contains("subgraph request failed"))
        .unwrap_or_else(|| panic!("the failure is logged:\n{logs}"));
    assert!(failure.contains("subgraph=\"posts\""), "{failure}");
    // The plan's fetch name (empty here: the test planner names no fetch).
    assert!(failure.contains(" fetch="), "{failure}");
    assert!(failure.contains("500"), "the reason: {failure}");
    assert!(!failure.contains(&down.url), "no URL: {failure}");
}
