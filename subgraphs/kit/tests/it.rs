//! Integration tests of the kit: outbox/relay/consumers on SQLite and PostgreSQL, the
//! Redis Streams bus against a real Redis, and trust enforcement over real HTTP.

use portico_kit::testing::PrivateRedis;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_graphql::{Context, EmptyMutation, EmptySubscription, Object, Schema};
use async_trait::async_trait;
use portico_kit::KitError;
use portico_kit::events::{
    Bus, Event, InProcessBus, RedisStreamsBus, Subscription, enqueue, prune, spawn_consumer,
    spawn_relay,
};
use portico_kit::testing::{TestTrust, headers_for, spawn, test_databases};
use portico_migrations::MigratorTrait;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

struct CommonOnly;

impl MigratorTrait for CommonOnly {
    fn migrations() -> Vec<Box<dyn portico_migrations::MigrationTrait>> {
        portico_migrations::common::migrations()
    }
}

async fn databases() -> Vec<(&'static str, DatabaseConnection)> {
    let dbs = test_databases().await;
    for (_, db) in &dbs {
        CommonOnly::up(db, None).await.expect("migrate");
    }
    dbs
}

async fn next_event(sub: &mut Subscription) -> Option<Event> {
    let d = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .ok()?
        .ok()?;
    let e = d.event.clone();
    d.ack().await.expect("ack");
    Some(e)
}

async fn unpublished(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL",
        ))
        .await
        .expect("count")
        .expect("row");
    row.try_get::<i64>("", "n").expect("n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_enqueued_while_the_relay_is_not_running_are_all_delivered_in_order_once_it_starts()
{
    for (backend, db) in databases().await {
        let txn = db.begin().await.expect("begin");
        let mut ids = Vec::new();
        for i in 0..25 {
            ids.push(
                enqueue(&txn, "TEST", serde_json::json!({ "i": i }))
                    .await
                    .expect("enqueue"),
            );
        }
        txn.commit().await.expect("commit");
        // a rolled back write leaves no event
        let txn = db.begin().await.expect("begin");
        enqueue(&txn, "TEST", serde_json::json!({ "rolled": "back" }))
            .await
            .expect("enqueue");
        txn.rollback().await.expect("rollback");
        assert_eq!(unpublished(&db).await, 25, "{backend}");

        let bus = Arc::new(InProcessBus::new());
        let mut sub = bus.subscribe("g").await.expect("subscribe");
        let relay = spawn_relay(db.clone(), bus.clone());
        for (i, id) in ids.iter().enumerate() {
            let e = next_event(&mut sub).await.expect("event delivered");
            assert_eq!(&e.id, id, "{backend}: order");
            assert_eq!(e.payload["i"], i, "{backend}");
        }
        // and an event enqueued while the relay runs is delivered promptly
        let txn = db.begin().await.expect("begin");
        let late = enqueue(&txn, "TEST", serde_json::json!({}))
            .await
            .expect("enqueue");
        txn.commit().await.expect("commit");
        assert_eq!(
            next_event(&mut sub).await.map(|e| e.id),
            Some(late),
            "{backend}"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while unpublished(&db).await > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        relay.abort();
        assert_eq!(unpublished(&db).await, 0, "{backend}: all marked published");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pruning_deletes_old_published_events_and_processed_ids_never_unpublished_ones() {
    for (backend, db) in databases().await {
        let count = |sql: &'static str| {
            let db = db.clone();
            async move {
                db.query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    sql,
                ))
                .await
                .expect("count")
                .and_then(|row| row.try_get::<i64>("", "n").ok())
                .unwrap_or(-1)
            }
        };
        let txn = db.begin().await.expect("begin");
        for i in 0..3 {
            enqueue(&txn, "TEST", serde_json::json!({ "i": i }))
                .await
                .expect("enqueue");
        }
        txn.commit().await.expect("commit");
        // Published and consumed: three outbox rows published, three processed ids.
        let bus = Arc::new(InProcessBus::new());
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = seen.clone();
        let consumer = spawn_consumer(db.clone(), bus.clone(), "prune-test", move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        });
        let relay = spawn_relay(db.clone(), bus.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        relay.abort();
        consumer.abort();
        assert_eq!(seen.load(Ordering::SeqCst), 3, "{backend}");
        // One more, never published.
        let txn = db.begin().await.expect("begin");
        enqueue(&txn, "TEST", serde_json::json!({}))
            .await
            .expect("enqueue");
        txn.commit().await.expect("commit");

        // Cut-offs in the past: nothing goes.
        let past = chrono::Utc::now() - chrono::Duration::hours(1);
        let (outbox, processed) = prune(&db, past, past).await.expect("prune");
        assert_eq!((outbox, processed), (0, 0), "{backend}");
        // Cut-offs in the future: every published row and processed id goes, the
        // unpublished row stays.
        let later = chrono::Utc::now() + chrono::Duration::hours(1);
        let (outbox, processed) = prune(&db, later, later).await.expect("prune");
        assert_eq!((outbox, processed), (3, 3), "{backend}");
        assert_eq!(
            count("SELECT COUNT(*) AS n FROM outbox").await,
            1,
            "{backend}"
        );
        assert_eq!(unpublished(&db).await, 1, "{backend}");
        assert_eq!(
            count("SELECT COUNT(*) AS n FROM processed_events").await,
            0,
            "{backend}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_relays_on_postgres_publish_each_event_once() {
    for (backend, db) in databases().await {
        if backend != "postgres" {
            continue; // one SQLite file has one process, hence one relay
        }
        let txn = db.begin().await.expect("begin");
        for i in 0..300 {
            enqueue(&txn, "TEST", serde_json::json!({ "i": i }))
                .await
                .expect("enqueue");
        }
        txn.commit().await.expect("commit");
        let bus = Arc::new(InProcessBus::new());
        let mut sub = bus.subscribe("g").await.expect("subscribe");
        let relays: Vec<_> = (0..3)
            .map(|_| spawn_relay(db.clone(), bus.clone()))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let e = next_event(&mut sub).await.expect("delivered");
            assert!(seen.insert(e.id), "event published twice");
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(700), sub.next())
                .await
                .is_err(),
            "no duplicates after the 300"
        );
        for r in relays {
            r.abort();
        }
    }
}

/// A bus that refuses to publish while `down` is set.
struct FlakyBus {
    inner: InProcessBus,
    down: AtomicBool,
}

#[async_trait]
impl Bus for FlakyBus {
    async fn publish(&self, event: &Event) -> Result<(), KitError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(KitError::Bus("down".into()));
        }
        self.inner.publish(event).await
    }

    async fn subscribe(&self, group: &str) -> Result<Subscription, KitError> {
        self.inner.subscribe(group).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_retries_while_the_bus_is_down_and_loses_nothing() {
    for (backend, db) in databases().await {
        let bus = Arc::new(FlakyBus {
            inner: InProcessBus::new(),
            down: AtomicBool::new(true),
        });
        let mut sub = bus.subscribe("g").await.expect("subscribe");
        let relay = spawn_relay(db.clone(), bus.clone());
        for i in 0..5 {
            let txn = db.begin().await.expect("begin");
            enqueue(&txn, "TEST", serde_json::json!({ "i": i }))
                .await
                .expect("enqueue");
            txn.commit().await.expect("commit");
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            unpublished(&db).await,
            5,
            "{backend}: nothing published while down"
        );
        bus.down.store(false, Ordering::SeqCst);
        for i in 0..5 {
            let e = next_event(&mut sub)
                .await
                .expect("delivered after recovery");
            assert_eq!(e.payload["i"], i, "{backend}");
        }
        relay.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_handles_an_event_delivered_twice_only_once() {
    for (backend, db) in databases().await {
        let bus = Arc::new(InProcessBus::new());
        let handled = Arc::new(AtomicUsize::new(0));
        let h = handled.clone();
        let consumer = spawn_consumer(db.clone(), bus.clone(), "counter", move |txn, _event| {
            let h = h.clone();
            Box::pin(async move {
                // the handler's writes share the transaction with the processed mark
                txn.execute_unprepared("SELECT 1").await?;
                h.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        });
        let e1 = Event::new("TEST", serde_json::json!({}));
        let e2 = Event::new("TEST", serde_json::json!({}));
        for e in [&e1, &e1, &e2, &e1] {
            bus.publish(e).await.expect("publish");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while handled.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(handled.load(Ordering::SeqCst), 2, "{backend}");
        consumer.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_sqlite_do_not_fail_with_busy() {
    for (backend, db) in databases().await {
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    let txn = db.begin().await?;
                    enqueue(&txn, "TEST", serde_json::json!({ "i": i })).await?;
                    txn.commit().await
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("join").expect("write succeeds");
        }
        assert_eq!(unpublished(&db).await, 50, "{backend}");
    }
}

async fn select(db: &DatabaseConnection) {
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT 1 AS one",
    ))
    .await
    .expect("select");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_counter_counts_domain_statements_only() {
    for (backend, db) in databases().await {
        let counter = portico_kit::db::statement_counter(&db);
        let before = counter.load(Ordering::SeqCst);
        select(&db).await;
        select(&db).await;
        let txn = db.begin().await.expect("begin");
        enqueue(&txn, "TEST", serde_json::json!({}))
            .await
            .expect("enqueue");
        txn.commit().await.expect("commit");
        assert_eq!(counter.load(Ordering::SeqCst) - before, 2, "{backend}");
        // clones share the counter
        select(&db.clone()).await;
        assert_eq!(counter.load(Ordering::SeqCst) - before, 3, "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_sqlite_database_keeps_its_data_across_statements() {
    let db = portico_kit::db::connect("sqlite::memory:")
        .await
        .expect("memory");
    CommonOnly::up(&db, None).await.expect("migrate");
    let txn = db.begin().await.expect("begin");
    enqueue(&txn, "TEST", serde_json::json!({}))
        .await
        .expect("enqueue");
    txn.commit().await.expect("commit");
    assert_eq!(unpublished(&db).await, 1);
}

fn redis_url() -> String {
    std::env::var("PORTICO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_streams_bus_fans_out_to_groups_and_acknowledges() {
    let stream = format!("portico-test:{}", uuid::Uuid::new_v4().simple());
    let bus = match RedisStreamsBus::connect(&redis_url(), &stream).await {
        Ok(bus) => bus,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("Redis is required in CI but unreachable: {e}");
            }
            eprintln!("\n!!!!!!!!!!!!!!!!\nSKIPPED redis streams test: {e}\n!!!!!!!!!!!!!!!!\n");
            return;
        }
    };
    let bus: Arc<dyn Bus> = Arc::new(bus);
    let mut a = bus.subscribe("a").await.expect("subscribe a");
    let events: Vec<Event> = (0..3)
        .map(|i| Event::new("TEST", serde_json::json!({ "i": i })))
        .collect();
    for e in &events {
        bus.publish(e).await.expect("publish");
    }
    // a group created after the publish still reads the stream from its start
    let mut b = bus.subscribe("b").await.expect("subscribe b");
    for sub in [&mut a, &mut b] {
        for e in &events {
            assert_eq!(next_event(sub).await.as_ref(), Some(e));
        }
    }
    // acknowledged: a new member of group a receives nothing more
    let mut a2 = bus.subscribe("a").await.expect("subscribe a again");
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), a2.next())
            .await
            .is_err()
    );

    // the outbox relay publishes to Redis; a consumer group reads it idempotently
    let mut streams = vec![stream.clone()];
    for (backend, db) in databases().await {
        let key = format!("{stream}-{backend}");
        streams.push(key.clone());
        let bus: Arc<dyn Bus> = Arc::new(
            RedisStreamsBus::connect(&redis_url(), &key)
                .await
                .expect("connect"),
        );
        let handled = Arc::new(AtomicUsize::new(0));
        let h = handled.clone();
        let consumer = spawn_consumer(db.clone(), bus.clone(), "c", move |_txn, _event| {
            let h = h.clone();
            Box::pin(async move {
                h.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        });
        let txn = db.begin().await.expect("begin");
        for _ in 0..4 {
            enqueue(&txn, "RELAYED", serde_json::json!({}))
                .await
                .expect("enqueue");
        }
        txn.commit().await.expect("commit");
        let relay = spawn_relay(db.clone(), bus.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while handled.load(Ordering::SeqCst) < 4 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(handled.load(Ordering::SeqCst), 4, "{backend}");
        relay.abort();
        consumer.abort();
    }
    if let Ok(client) = redis::Client::open(redis_url())
        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
    {
        let _: Result<i64, _> = redis::cmd("DEL").arg(&streams).query_async(&mut conn).await;
    }
}

#[tokio::test]
async fn connecting_to_an_unreachable_redis_fails_quickly() {
    let started = std::time::Instant::now();
    let res = RedisStreamsBus::connect("redis://127.0.0.1:1", "x").await;
    assert!(res.is_err());
    assert!(started.elapsed() < Duration::from_secs(15));
}

struct Query;

#[Object]
impl Query {
    async fn whoami(&self, ctx: &Context<'_>) -> Option<String> {
        portico_kit::identity::identity(ctx).user_id.clone()
    }
}

#[tokio::test]
async fn graphql_requires_a_valid_trust_token_for_this_service_and_health_is_open() {
    let trust = TestTrust::new();
    let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
    let router = portico_kit::server::graphql_router(schema, "users", trust.verifier.clone());
    let addr = spawn(router).await;
    let url = format!("http://{addr}/graphql");
    let http = reqwest::Client::new();
    // The trust token binds the body: the exact bytes sent.
    let sent: &[u8] = br#"{"query":"{ whoami }"}"#;
    let post = |headers: Vec<(String, String)>| {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .body(sent.to_vec());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };

    let ok = post(headers_for(&trust.signer, "users", Some("u1"), sent))
        .await
        .expect("send");
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.expect("json");
    assert_eq!(body["data"]["whoami"], "u1");

    let other = portico_trust::TrustSigner::generate();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let expired = trust.signer.sign(&portico_trust::Claims {
        aud: "users".into(),
        iat: now - 300,
        exp: now - 240,
        kid: trust.signer.kid().into(),
        idh: {
            // binding of the anonymous identity
            let good = headers_for(&trust.signer, "users", None, sent);
            let body = good[0].1.split('.').nth(1).expect("body").to_string();
            let claims: serde_json::Value = serde_json::from_slice(
                &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, body)
                    .expect("b64"),
            )
            .expect("claims");
            claims["idh"].as_str().expect("idh").to_string()
        },
        sub: None,
        bh: portico_trust::body_hash(sent),
        jti: "expired".into(),
    });
    let mut tampered = headers_for(&trust.signer, "users", Some("u1"), sent);
    tampered[1].1 = "u2".into();
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("missing", vec![]),
        ("forged", headers_for(&other, "users", Some("u1"), sent)),
        (
            "other audience",
            headers_for(&trust.signer, "posts", Some("u1"), sent),
        ),
        (
            "token for another body",
            headers_for(&trust.signer, "users", Some("u1"), b"{}"),
        ),
        ("expired", vec![("portico-trust".into(), expired)]),
        ("tampered identity", tampered),
        ("garbage", vec![("portico-trust".into(), "v1.x.y".into())]),
    ];
    for (case, headers) in cases {
        let res = post(headers).await.expect("send");
        assert_eq!(res.status(), 401, "{case}");
        let body: serde_json::Value = res.json().await.expect("json");
        assert!(body.get("data").is_none(), "{case}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{case}"
        );
    }

    let big = vec![b' '; portico_kit::server::MAX_BODY_BYTES + 1];
    let mut huge = http
        .post(&url)
        .body(big.clone())
        .header("content-type", "application/json");
    for (k, v) in headers_for(&trust.signer, "users", None, &big) {
        huge = huge.header(k, v);
    }
    assert_eq!(huge.send().await.expect("send").status(), 413);

    let health = http
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_accepted_by_one_replica_is_refused_by_another_sharing_redis() {
    let prefix = format!("portico-test:jti:{}", uuid::Uuid::new_v4().simple());
    let store = match portico_kit::replay::RedisReplayStore::connect(&redis_url(), &prefix).await {
        Ok(store) => Arc::new(store),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("Redis is required in CI but unreachable: {e}");
            }
            eprintln!("\n!!!!!!!!!!!!!!!!\nSKIPPED shared replay test: {e}\n!!!!!!!!!!!!!!!!\n");
            return;
        }
    };
    let trust = TestTrust::new();
    let replica = |verifier: portico_trust::TrustVerifier| {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        spawn(portico_kit::server::graphql_router(
            schema, "users", verifier,
        ))
    };
    let shared = trust.verifier.clone().with_shared_replay(store);
    let (a, b) = (replica(shared.clone()).await, replica(shared).await);
    // A replica without the shared store: only its own ids.
    let alone = replica(trust.verifier.clone()).await;
    let sent: &[u8] = br#"{"query":"{ whoami }"}"#;
    let http = reqwest::Client::new();
    let post = |addr, headers: &[(String, String)]| {
        let response = post_whoami(&http, addr, sent, headers);
        async move {
            let response = response.await;
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("json");
            (status, body)
        }
    };
    let headers = headers_for(&trust.signer, "users", Some("u1"), sent);
    let (status, body) = post(a, &headers).await;
    assert_eq!(
        (status, &body["data"]["whoami"]),
        (200, &serde_json::json!("u1"))
    );
    // The same token, body and headers replayed to the other replica: refused.
    let (status, body) = post(b, &headers).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0]["message"], "trust token was already used");
    assert!(body.get("data").is_none_or(serde_json::Value::is_null));
    // Without the shared store, another process would have accepted it.
    let (status, _) = post(alone, &headers).await;
    assert_eq!(status, 200);
    // A fresh token is accepted by either.
    let (status, _) = post(b, &headers_for(&trust.signer, "users", Some("u1"), sent)).await;
    assert_eq!(status, 200);
    if let Ok(client) = redis::Client::open(redis_url())
        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
    {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        assert_eq!(keys.len(), 2, "one key per accepted token: {keys:?}");
        let ttl: i64 = redis::cmd("TTL")
            .arg(&keys[0])
            .query_async(&mut conn)
            .await
            .unwrap_or(-1);
        assert!(
            (1..=70).contains(&ttl),
            "keys expire with their tokens: {ttl}"
        );
        let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
    }
}

#[tokio::test]
async fn connecting_the_replay_store_to_an_unreachable_redis_fails_quickly() {
    let started = std::time::Instant::now();
    let res = portico_kit::replay::RedisReplayStore::connect("redis://127.0.0.1:1", "x").await;
    assert!(res.is_err());
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// POSTs `body` to the replica at `addr` with `headers` (a trust token's).
fn post_whoami(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    body: &[u8],
    headers: &[(String, String)],
) -> impl std::future::Future<Output = reqwest::Response> + use<> {
    let mut req = http
        .post(format!("http://{addr}/graphql"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    async move { req.send().await.expect("send") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_keep_serving_while_the_shared_replay_store_is_down_and_share_again_after() {
    let port = portico_kit::testing::free_port();
    let Some(redis) = PrivateRedis::start_or_skip(port, "replay store outage test") else {
        return;
    };
    let mut store = None;
    for _ in 0..50 {
        if let Ok(s) = portico_kit::replay::RedisReplayStore::connect(&redis.url(), "jti").await {
            store = Some(Arc::new(s));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = store.expect("the private redis-server accepts connections");
    let trust = TestTrust::new();
    let shared = trust.verifier.clone().with_shared_replay(store);
    let replica = |verifier: portico_trust::TrustVerifier| {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        spawn(portico_kit::server::graphql_router(
            schema, "users", verifier,
        ))
    };
    let (a, b) = (replica(shared.clone()).await, replica(shared).await);
    let sent: &[u8] = br#"{"query":"{ whoami }"}"#;
    let http = reqwest::Client::new();
    let status = |addr, headers: Vec<(String, String)>| {
        let response = post_whoami(&http, addr, sent, &headers);
        async move { response.await.status().as_u16() }
    };
    let token = || headers_for(&trust.signer, "users", Some("u1"), sent);

    // Redis up: a replay to the other replica is refused.
    let first = token();
    assert_eq!(status(a, first.clone()).await, 200);
    assert_eq!(status(b, first).await, 401);

    // Redis gone: both replicas keep serving, bounded in time, on their own ids alone.
    drop(redis);
    let started = std::time::Instant::now();
    let during = token();
    assert_eq!(status(a, during.clone()).await, 200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        status(a, during.clone()).await,
        401,
        "the process still remembers"
    );
    assert_eq!(
        status(b, during).await,
        200,
        "not shared while Redis is away"
    );

    // Redis back on the same port: sharing resumes without a restart.
    let _redis = PrivateRedis::start(port).expect("restart redis-server");
    let mut shared_again = false;
    for _ in 0..50 {
        let again = token();
        if status(a, again.clone()).await == 200 && status(b, again).await == 401 {
            shared_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        shared_again,
        "replicas share accepted ids again once Redis is back"
    );
}
