//! Integration tests of the auth subgraph over real HTTP, on SQLite and PostgreSQL, and
//! with its refresh-token sessions in Redis (shared by replicas).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use portico_auth::{AuthSettings, keys::AccessClaims};
use portico_kit::ServiceContext;
use portico_kit::events::{Bus, InProcessBus, USER_REGISTERED};
use portico_kit::testing::{TestTrust, headers_for, request_body, spawn, test_databases};
use serde_json::{Value, json};

/// Two RSA keys, generated once per test binary (key generation is slow).
fn rsa_keys() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            portico_auth::generate_rsa_private_key_pem().expect("key 1"),
            portico_auth::generate_rsa_private_key_pem().expect("key 2"),
        )
    })
}

struct Service {
    backend: &'static str,
    addr: SocketAddr,
    trust: TestTrust,
    bus: Arc<InProcessBus>,
    http: reqwest::Client,
}

/// Redis for session tests (`PORTICO_TEST_REDIS_URL`), with a key prefix of this run;
/// `None` (loudly) when unreachable outside CI.
async fn sessions_redis() -> Option<(String, String)> {
    let url =
        std::env::var("PORTICO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match portico_kit::replay::connect_bounded(&url).await {
        Ok(_) => Some((
            url,
            format!("portico-test:auth:{}", uuid::Uuid::new_v4().simple()),
        )),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("Redis is required in CI but unreachable: {e}");
            }
            eprintln!(
                "\n!!!!!!!!!!!!!!!!\nSKIPPED auth sessions in Redis: {e}\n!!!!!!!!!!!!!!!!\n"
            );
            None
        }
    }
}

impl Service {
    /// An auth service on `db` (sessions in `redis` when given), trusting `trust`.
    async fn start(
        backend: &'static str,
        db: sea_orm::DatabaseConnection,
        trust: TestTrust,
        redis: Option<&(String, String)>,
    ) -> Service {
        let (key, other) = rsa_keys().clone();
        let bus = Arc::new(InProcessBus::new());
        let mut settings = AuthSettings::with_key(key);
        settings.extra_public_key_pems =
            vec![portico_auth::keys::public_key_pem(&other).expect("pub")];
        if let Some((url, prefix)) = redis {
            settings.sessions_redis_url = Some(url.clone());
            settings.sessions_redis_prefix = prefix.clone();
        }
        let ctx = ServiceContext {
            name: portico_auth::NAME,
            db,
            trust: trust.verifier.clone(),
            bus: bus.clone(),
            redis_url: None,
        };
        let router = portico_auth::app(ctx, settings).await.expect("app");
        Service {
            backend,
            addr: spawn(router).await,
            trust,
            bus,
            http: reqwest::Client::new(),
        }
    }

    /// One service per test database (SQLite, PostgreSQL), plus SQLite with its
    /// sessions in Redis.
    async fn all() -> Vec<Service> {
        let mut out = Vec::new();
        let mut sqlite = None;
        for (backend, db) in test_databases().await {
            portico_auth::migrate(&db).await.expect("migrate");
            if backend == "sqlite" {
                sqlite = Some(db.clone());
            }
            out.push(Service::start(backend, db, TestTrust::new(), None).await);
        }
        if let (Some(db), Some(redis)) = (sqlite, sessions_redis().await) {
            // A database of its own: the same usernames are registered again.
            let fresh = portico_kit::db::connect(&format!(
                "sqlite://{}?mode=rwc",
                std::env::temp_dir()
                    .join(format!(
                        "portico-auth-redis-{}.db",
                        uuid::Uuid::new_v4().simple()
                    ))
                    .display()
            ))
            .await
            .expect("sqlite");
            drop(db);
            portico_auth::migrate(&fresh).await.expect("migrate");
            out.push(
                Service::start(
                    "sqlite+redis sessions",
                    fresh,
                    TestTrust::new(),
                    Some(&redis),
                )
                .await,
            );
        }
        out
    }

    async fn gql(&self, query: &str, variables: Value) -> Value {
        let body = request_body(query, &variables);
        let mut req = self
            .http
            .post(format!("http://{}/graphql", self.addr))
            .header("content-type", "application/json")
            .body(body.clone());
        for (k, v) in headers_for(&self.trust.signer, "auth", None, &body) {
            req = req.header(k, v);
        }
        let res = req.send().await.expect("send");
        assert_eq!(res.status(), 200, "{}", self.backend);
        res.json().await.expect("json")
    }

    async fn register(&self, username: &str, email: &str, password: &str) -> Value {
        self.gql(
            "mutation($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) { accessToken refreshToken expiresIn userId } }",
            json!({ "u": username, "e": email, "p": password }),
        )
        .await
    }

    async fn login(&self, who: &str, password: &str) -> Value {
        self.gql(
            "mutation($w: String!, $p: String!) { login(usernameOrEmail: $w, password: $p) { accessToken refreshToken expiresIn userId } }",
            json!({ "w": who, "p": password }),
        )
        .await
    }

    async fn refresh(&self, token: &str) -> Value {
        self.gql(
            "mutation($t: String!) { refresh(refreshToken: $t) { accessToken refreshToken userId } }",
            json!({ "t": token }),
        )
        .await
    }

    async fn jwks(&self) -> Value {
        let res = self
            .http
            .get(format!("http://{}/.well-known/jwks.json", self.addr))
            .send()
            .await
            .expect("jwks");
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

fn verify_access_token(token: &str, jwks: &Value) -> AccessClaims {
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.expect("kid");
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("signing key is in the JWKS");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().expect("n"),
        jwk["e"].as_str().expect("e"),
    )
    .expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["portico"]);
    validation.set_issuer(&["portico-auth"]);
    jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
        .expect("valid RS256 token")
        .claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_logs_in_right_away_issues_a_verifiable_jwt_and_emits_user_registered() {
    for svc in Service::all().await {
        let b = svc.backend;
        let mut events = svc.bus.subscribe("test").await.expect("subscribe");
        let body = svc
            .register("Alice", "Alice@Example.org", "correct horse")
            .await;
        let p = &body["data"]["register"];
        assert!(body.get("errors").is_none(), "{b}: {body}");
        let user_id = p["userId"].as_str().expect("userId");
        assert_eq!(p["expiresIn"], 900, "{b}");

        let jwks = svc.jwks().await;
        assert_eq!(
            jwks["keys"].as_array().map(Vec::len),
            Some(2),
            "{b}: current + extra key"
        );
        let claims = verify_access_token(p["accessToken"].as_str().expect("token"), &jwks);
        assert_eq!(claims.sub, user_id, "{b}");
        assert_eq!(claims.scope, "read write", "{b}");
        assert_eq!(claims.exp - claims.iat, 900, "{b}");

        let refresh = p["refreshToken"].as_str().expect("refresh");
        assert_eq!(refresh.len(), 43, "{b}: 32 bytes base64url");

        let delivery = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("USER_REGISTERED published")
            .expect("event");
        assert_eq!(delivery.event.kind, USER_REGISTERED, "{b}");
        assert_eq!(delivery.event.payload["userId"], user_id, "{b}");
        assert_eq!(delivery.event.payload["username"], "alice", "{b}");

        // logged in by username or email, case-insensitively
        for who in ["alice", "ALICE@example.org"] {
            let body = svc.login(who, "correct horse").await;
            assert_eq!(body["data"]["login"]["userId"], user_id, "{b}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_credentials_are_refused_with_a_clear_error() {
    for svc in Service::all().await {
        let b = svc.backend;
        svc.register("bob", "bob@example.org", "correct horse")
            .await;
        for (who, pw) in [
            ("bob", "wrong password"),
            ("nobody", "correct horse"),
            ("", "x"),
        ] {
            let body = svc.login(who, pw).await;
            assert_eq!(code(&body), "UNAUTHENTICATED", "{b}: {body}");
            assert_eq!(
                body["errors"][0]["message"], "invalid username/email or password",
                "{b}"
            );
            assert!(body["data"].is_null(), "{b}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_rotates_and_reusing_a_rotated_token_revokes_the_whole_family() {
    for svc in Service::all().await {
        let b = svc.backend;
        let reg = svc
            .register("carol", "carol@example.org", "correct horse")
            .await;
        let r0 = reg["data"]["register"]["refreshToken"]
            .as_str()
            .expect("r0")
            .to_string();
        let other_session =
            svc.login("carol", "correct horse").await["data"]["login"]["refreshToken"]
                .as_str()
                .expect("other")
                .to_string();

        let body = svc.refresh(&r0).await;
        let r1 = body["data"]["refresh"]["refreshToken"]
            .as_str()
            .expect("r1")
            .to_string();
        assert_ne!(r0, r1, "{b}");
        let jwks = svc.jwks().await;
        verify_access_token(
            body["data"]["refresh"]["accessToken"].as_str().expect("at"),
            &jwks,
        );

        let body = svc.refresh(&r1).await;
        let r2 = body["data"]["refresh"]["refreshToken"]
            .as_str()
            .expect("r2")
            .to_string();

        // r1 was rotated: presenting it again is theft, the family dies
        let reuse = svc.refresh(&r1).await;
        assert_eq!(code(&reuse), "UNAUTHENTICATED", "{b}: {reuse}");
        assert!(
            reuse["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("already used")),
            "{b}: {reuse}"
        );
        let after = svc.refresh(&r2).await;
        assert_eq!(
            code(&after),
            "UNAUTHENTICATED",
            "{b}: the newest token is revoked too"
        );

        // another session (family) is unaffected
        let other = svc.refresh(&other_session).await;
        assert!(
            other["data"]["refresh"]["refreshToken"].is_string(),
            "{b}: {other}"
        );

        // garbage
        let garbage = svc.refresh("not-a-token").await;
        assert_eq!(code(&garbage), "UNAUTHENTICATED", "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_revokes_the_session() {
    for svc in Service::all().await {
        let b = svc.backend;
        let reg = svc
            .register("dave", "dave@example.org", "correct horse")
            .await;
        let r = reg["data"]["register"]["refreshToken"]
            .as_str()
            .expect("r")
            .to_string();
        let logout = "mutation($t: String!) { logout(refreshToken: $t) }";
        let body = svc.gql(logout, json!({ "t": r })).await;
        assert_eq!(body["data"]["logout"], true, "{b}: {body}");
        assert_eq!(code(&svc.refresh(&r).await), "UNAUTHENTICATED", "{b}");
        let again = svc.gql(logout, json!({ "t": r })).await;
        assert_eq!(again["data"]["logout"], false, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_in_redis_rotate_and_revoke_across_replicas() {
    let Some(redis) = sessions_redis().await else {
        return;
    };
    // Two replicas: one database, one Redis, one gateway key.
    let path = std::env::temp_dir().join(format!(
        "portico-auth-replicas-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let db = portico_kit::db::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .expect("sqlite");
    portico_auth::migrate(&db).await.expect("migrate");
    let trust = TestTrust::new();
    let a = Service::start("replica a", db.clone(), trust.clone(), Some(&redis)).await;
    let b = Service::start("replica b", db, trust, Some(&redis)).await;

    let reg = a
        .register("erin", "erin@example.org", "correct horse")
        .await;
    let r0 = reg["data"]["register"]["refreshToken"]
        .as_str()
        .expect("r0")
        .to_string();
    // Rotated on b, the token a issued.
    let body = b.refresh(&r0).await;
    let r1 = body["data"]["refresh"]["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string();
    // Reused on a: a knows it was used on b, and the family dies everywhere.
    let reuse = a.refresh(&r0).await;
    assert_eq!(code(&reuse), "UNAUTHENTICATED", "{reuse}");
    assert_eq!(code(&b.refresh(&r1).await), "UNAUTHENTICATED");
    // Logout on one replica ends the session on the other.
    let s0 = a.login("erin", "correct horse").await["data"]["login"]["refreshToken"]
        .as_str()
        .expect("session")
        .to_string();
    let logout = "mutation($t: String!) { logout(refreshToken: $t) }";
    let body = b.gql(logout, json!({ "t": s0 })).await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert_eq!(code(&a.refresh(&s0).await), "UNAUTHENTICATED");
    // Nothing of the sessions is in the database: they live in Redis only.
    let rows = sea_orm::ConnectionTrait::query_one_raw(
        &portico_kit::db::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("sqlite"),
        sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Sqlite,
            "SELECT COUNT(*) AS n FROM refresh_tokens",
        ),
    )
    .await
    .expect("count")
    .and_then(|row| row.try_get::<i64>("", "n").ok());
    assert_eq!(rows, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_or_taken_credentials_are_bad_user_input() {
    for svc in Service::all().await {
        let b = svc.backend;
        svc.register("erin", "erin@example.org", "correct horse")
            .await;
        let long = "x".repeat(129);
        let cases = [
            ("ab", "ok@example.org", "correct horse"),
            ("has space", "ok@example.org", "correct horse"),
            ("fine_name", "not-an-email", "correct horse"),
            ("fine_name", "ok@example.org", "short"),
            ("fine_name", "ok@example.org", long.as_str()),
            ("ERIN", "other@example.org", "correct horse"),
            ("other_name", "Erin@Example.org", "correct horse"),
        ];
        for (u, e, p) in cases {
            let body = svc.register(u, e, p).await;
            assert_eq!(code(&body), "BAD_USER_INPUT", "{b}: {u} {e}: {body}");
            assert!(body["data"].is_null(), "{b}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graphql_without_a_valid_trust_token_is_refused_but_jwks_and_health_are_open() {
    for svc in Service::all().await {
        let b = svc.backend;
        let url = format!("http://{}/graphql", svc.addr);
        let forged = portico_trust::TrustSigner::generate();
        let sent = request_body(
            "mutation { register(username: \"mallory\", email: \"m@example.org\", password: \"correct horse\") { userId } }",
            &Value::Null,
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let expired = svc.trust.signer.sign(&portico_trust::Claims {
            aud: "auth".into(),
            iat: now - 600,
            exp: now - 540,
            kid: svc.trust.signer.kid().into(),
            idh: String::new(),
            sub: None,
            bh: portico_trust::body_hash(&sent),
            jti: "expired".into(),
        });
        let cases: Vec<(&str, Vec<(String, String)>)> = vec![
            ("missing", vec![]),
            ("forged", headers_for(&forged, "auth", None, &sent)),
            ("expired", vec![("portico-trust".into(), expired)]),
            (
                "other audience",
                headers_for(&svc.trust.signer, "users", None, &sent),
            ),
        ];
        for (case, headers) in cases {
            let mut req = svc
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(sent.clone());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let res = req.send().await.expect("send");
            assert_eq!(res.status(), 401, "{b}: {case}");
            let body: Value = res.json().await.expect("json");
            assert!(body.get("data").is_none(), "{b}: {case}");
        }
        // nothing was registered by the refused requests
        let body = svc.login("mallory", "correct horse").await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{b}");
        svc.jwks().await;
        let health = svc
            .http
            .get(format!("http://{}/health", svc.addr))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status(), 200, "{b}");
    }
}

#[test]
fn exported_sdl_matches_the_committed_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../supergraph/auth.graphql");
    let sdl = portico_auth::sdl();
    if std::env::var("UPDATE_SDL").is_ok_and(|v| v == "1") {
        std::fs::write(path, &sdl).expect("write the SDL file");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "supergraph/auth.graphql differs from portico_auth::sdl(); rerun with UPDATE_SDL=1"
    );
}
