//! The plan stage behind the plan cache. A miss plans on tokio's blocking pool (never on
//! the async workers), at most one planning per CPU at a time, and once per [`PlanKey`]
//! however many requests wait for that plan (single flight: the first request starts a
//! task, the others await the same result). A failure is cached for
//! `cache.plan_failure_ttl_secs`, so a client repeating an unplannable operation costs a
//! lookup. A panicking planner becomes [`PlanningError::Panicked`] for the requests
//! waiting on it; the process and the next request are unaffected. Planning time,
//! failures and panics are counted for `/metrics`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use portico_federation::plan::QueryPlan;
use tokio::sync::Semaphore;

use super::{BoundedCache, PlanCache, PlanKey, PlanningError};
use crate::error::panic_message;
use crate::http::metrics::DurationHistogram;

/// The planning work of one miss, run on the blocking pool.
pub(crate) type PlanJob = Box<dyn FnOnce() -> Result<QueryPlan, PlanningError> + Send>;

type Outcome = Result<Arc<QueryPlan>, PlanningError>;
type Flight = Shared<BoxFuture<'static, Outcome>>;

/// Plans by key: cached, planned once per key, failures cached briefly.
pub(crate) struct PlanStage {
    state: Arc<State>,
}

struct State {
    plans: PlanCache,
    /// Failures with their expiry (`None`: never, when the TTL overflows `Instant`).
    failures: BoundedCache<PlanKey, (Option<Instant>, PlanningError)>,
    failure_ttl: Duration,
    /// Plannings in progress. A flight leaves this map only after its result is in
    /// `plans` or `failures`, and both happen under this lock, so a request sees either
    /// the flight or its result.
    flights: Mutex<HashMap<PlanKey, Flight>>,
    /// Plannings running at once (CPU-bound work: more than the CPUs only queues in the
    /// blocking pool, which also serves DNS lookups and file I/O).
    permits: Semaphore,
    metrics: PlanMetrics,
}

#[derive(Default)]
struct PlanMetrics {
    duration: DurationHistogram,
    client_errors: AtomicU64,
    failed: AtomicU64,
    panics: AtomicU64,
}

impl PlanStage {
    /// A stage keeping `capacity` plans (and as many failures, for `failure_ttl`; zero
    /// caches no failure).
    pub(crate) fn new(capacity: usize, failure_ttl: Duration) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
        Self {
            state: Arc::new(State {
                plans: PlanCache::new(capacity),
                failures: BoundedCache::new(capacity),
                failure_ttl,
                flights: Mutex::new(HashMap::new()),
                permits: Semaphore::new(cpus.max(2)),
                metrics: PlanMetrics::default(),
            }),
        }
    }

    /// The plan for `key`: from the cache, from a planning in progress, or from `job`
    /// (called only when this request starts the planning, with the key).
    pub(crate) async fn plan(
        &self,
        key: PlanKey,
        job: impl FnOnce(&PlanKey) -> PlanJob,
    ) -> Result<Arc<QueryPlan>, PlanningError> {
        let state = &self.state;
        if let Some(plan) = state.plans.get(&key) {
            return Ok(plan);
        }
        if let Some(error) = state.cached_failure(&key) {
            return Err(error);
        }
        let flight = {
            let mut flights = state.flights.lock();
            match flights.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    // A flight may have landed between the lookups above and this lock.
                    if let Some(plan) = state.plans.peek(&key) {
                        return Ok(plan);
                    }
                    if let Some(error) = state.cached_failure(&key) {
                        return Err(error);
                    }
                    let flight = state.clone().fly(key.clone(), job(&key));
                    flights.insert(key, flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    /// Adds `old`'s counters (cache hits and misses, planning time, failures, panics)
    /// to this stage's: a reload carries them over.
    pub(crate) fn count_on_from(&self, old: &PlanStage) {
        let (mine, theirs) = (&self.state.metrics, &old.state.metrics);
        self.state.plans.count_on_from(&old.state.plans);
        mine.duration.add_from(&theirs.duration);
        for (m, t) in [
            (&mine.client_errors, &theirs.client_errors),
            (&mine.failed, &theirs.failed),
            (&mine.panics, &theirs.panics),
        ] {
            m.fetch_add(t.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// (hits, misses) of the plan cache.
    pub(crate) fn stats(&self) -> (u64, u64) {
        self.state.plans.stats()
    }

    /// Panics caught in planners since start.
    pub(crate) fn panics(&self) -> u64 {
        self.state.metrics.panics.load(Ordering::Relaxed)
    }

    /// Planning duration and failures, Prometheus text.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        let m = &self.state.metrics;
        m.duration.render(
            "portico_query_planning_duration_seconds",
            "Time spent planning operations (plan-cache misses, one per single flight).",
            out,
        );
        out.push_str(
            "# HELP portico_query_planning_failures_total Plannings that produced no plan: \
             client (4xx: too complex, unsupported, unknown operation), failed (planner \
             error, 500), panic (500).\n",
        );
        out.push_str("# TYPE portico_query_planning_failures_total counter\n");
        for (kind, n) in [
            ("client", &m.client_errors),
            ("failed", &m.failed),
            ("panic", &m.panics),
        ] {
            let _ = writeln!(
                out,
                "portico_query_planning_failures_total{{kind=\"{kind}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
}

impl State {
    fn cached_failure(&self, key: &PlanKey) -> Option<PlanningError> {
        let (expires, error) = self.failures.get(key)?;
        match expires {
            Some(at) if Instant::now() >= at => None,
            _ => Some(error),
        }
    }

    /// Start planning `key` in a task of its own, so the plan lands in the cache even
    /// when every request waiting for it has gone (timed out, disconnected).
    fn fly(self: Arc<Self>, key: PlanKey, job: PlanJob) -> Flight {
        let task = tokio::spawn(async move {
            let outcome = self.run(job).await;
            let mut flights = self.flights.lock();
            match &outcome {
                Ok(plan) => self.plans.insert(key.clone(), plan.clone()),
                Err(error) if !self.failure_ttl.is_zero() => {
                    let expires = Instant::now().checked_add(self.failure_ttl);
                    self.failures.insert(key.clone(), (expires, error.clone()));
                }
                Err(_) => {}
            }
            flights.remove(&key);
            outcome
        });
        task.map(|joined| {
            joined.unwrap_or_else(|e| {
                Err(PlanningError::Failed(format!(
                    "the planning task ended early: {e}"
                )))
            })
        })
        .boxed()
        .shared()
    }

    /// Run `job` on the blocking pool, timing it and turning a panic into an error.
    async fn run(&self, job: PlanJob) -> Outcome {
        // The semaphore is never closed; without a permit, plan anyway.
        let _permit = self.permits.acquire().await.ok();
        let joined = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = job();
            (result, started.elapsed())
        })
        .await;
        let m = &self.metrics;
        let outcome = match joined {
            Ok((result, elapsed)) => {
                m.duration.observe(elapsed);
                result.map(Arc::new)
            }
            Err(error) if error.is_panic() => {
                m.panics.fetch_add(1, Ordering::Relaxed);
                let payload = error.into_panic();
                return Err(PlanningError::Panicked(panic_message(payload.as_ref())));
            }
            Err(error) => Err(PlanningError::Failed(format!(
                "the planning task was cancelled: {error}"
            ))),
        };
        if let Err(error) = &outcome {
            let counter = if error.is_client_error() {
                &m.client_errors
            } else {
                &m.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicUsize;

    fn key(name: &str) -> PlanKey {
        PlanKey {
            query: [0; 32],
            operation_name: Some(name.into()),
            override_labels: BTreeSet::new(),
        }
    }

    fn counting(calls: &Arc<AtomicUsize>, result: Result<QueryPlan, PlanningError>) -> PlanJob {
        let calls = calls.clone();
        Box::new(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            result
        })
    }

    #[tokio::test]
    async fn failures_are_cached_for_their_ttl_and_not_at_all_with_zero() {
        for (ttl, expected_calls) in [(Duration::from_secs(60), 1), (Duration::ZERO, 3)] {
            let stage = PlanStage::new(16, ttl);
            let calls = Arc::new(AtomicUsize::new(0));
            for _ in 0..3 {
                let error = stage
                    .plan(key("A"), |_| counting(&calls, Err("no plan".into())))
                    .await
                    .expect_err("unplannable");
                assert_eq!(error, PlanningError::Failed("no plan".into()));
            }
            assert_eq!(calls.load(Ordering::SeqCst), expected_calls, "ttl {ttl:?}");
        }
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_counted_once_and_the_stage_keeps_planning() {
        let stage = PlanStage::new(16, Duration::from_secs(60));
        let error = stage
            .plan(key("Boom"), |_| {
                Box::new(|| -> Result<QueryPlan, PlanningError> { panic!("planner bug") })
            })
            .await
            .expect_err("panicked");
        assert_eq!(error, PlanningError::Panicked("planner bug".into()));
        assert_eq!(stage.panics(), 1);
        let calls = Arc::new(AtomicUsize::new(0));
        let plan = stage
            .plan(key("Fine"), |_| counting(&calls, Ok(QueryPlan::default())))
            .await;
        assert!(plan.is_ok());
        let mut metrics = String::new();
        stage.render_metrics(&mut metrics);
        assert!(metrics.contains("portico_query_planning_failures_total{kind=\"panic\"} 1"));
        assert!(metrics.contains("portico_query_planning_duration_seconds_count 1"));
    }
}
