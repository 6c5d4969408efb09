//! Cost of the rate limiter per request, both backends (`cargo bench -p portico-gateway
//! --bench limiter`). Memory: a single thread charging 10,000 distinct clients, and 2
//! threads on the same shards. Redis (127.0.0.1:6379, or `REDIS_URL`): one client
//! awaiting each script call (latency), then 64 concurrent calls (throughput). Skipped
//! with a message when Redis is not reachable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_gateway::ratelimit::{Limiter, MemoryLimiter, Quota, RedisLimiter};

const QUOTA: Quota = Quota {
    budget: 1_000_000_000,
    window: Duration::from_secs(60),
};

fn main() {
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("addr:10.0.{}.{}", i / 256, i % 256))
        .collect();

    let memory = MemoryLimiter::new(100_000);
    let n = 2_000_000;
    let start = Instant::now();
    for i in 0..n {
        std::hint::black_box(memory.acquire_now(&keys[i % keys.len()], 10, QUOTA));
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!("memory, 1 thread:   {per:>8.0} ns/op");

    let memory = Arc::new(MemoryLimiter::new(100_000));
    let start = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let memory = memory.clone();
            let keys = keys.clone();
            std::thread::spawn(move || {
                for i in 0..n / 2 {
                    std::hint::black_box(memory.acquire_now(
                        &keys[(i * 7 + t) % keys.len()],
                        10,
                        QUOTA,
                    ));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!("memory, 2 threads:  {per:>8.0} ns/op (wall time / ops)");

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let prefix = format!("portico-bench:{}:", std::process::id());
        let redis = Arc::new(
            RedisLimiter::new(
                &url,
                &prefix,
                Duration::from_millis(500),
                Duration::from_secs(1),
            )
            .expect("url"),
        );
        if redis.acquire("probe", 1, QUOTA).await.is_err() {
            println!("redis: SKIPPED (no Redis at {url})");
            return;
        }
        let n = 20_000;
        let start = Instant::now();
        for i in 0..n {
            redis
                .acquire(&keys[i % keys.len()], 10, QUOTA)
                .await
                .expect("redis");
        }
        let per = start.elapsed().as_nanos() as f64 / n as f64 / 1000.0;
        println!("redis, sequential:  {per:>8.1} µs/op (one round trip + script)");

        let start = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let redis = redis.clone();
                let keys = keys.clone();
                tokio::spawn(async move {
                    for i in 0..n / 64 {
                        redis
                            .acquire(&keys[(i * 64 + t) % keys.len()], 10, QUOTA)
                            .await
                            .expect("redis");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let per = start.elapsed().as_nanos() as f64 / n as f64 / 1000.0;
        println!("redis, 64 in flight: {per:>7.1} µs/op (wall time / ops)");
    });
}
