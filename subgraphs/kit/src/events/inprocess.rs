//! The in-process bus: fan-out to every consumer group through unbounded channels. A group
//! that subscribes late first receives the bus's recent history (so start-up order between
//! services in one process does not lose events).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Acker, Bus, Delivery, DeliverySource, Event, Subscription};
use crate::KitError;

/// Events kept for groups that subscribe late.
const HISTORY: usize = 10_000;

struct Group {
    tx: mpsc::UnboundedSender<Event>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>>,
}

#[derive(Default)]
struct Inner {
    history: VecDeque<Event>,
    groups: HashMap<String, Group>,
}

/// In-process bus (the default). Use [`InProcessBus::shared`] for the one instance of a
/// process, or [`InProcessBus::new`] for an isolated one (tests).
#[derive(Default)]
pub struct InProcessBus {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBus").finish_non_exhaustive()
    }
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide instance.
    pub fn shared() -> Arc<InProcessBus> {
        static SHARED: OnceLock<Arc<InProcessBus>> = OnceLock::new();
        SHARED.get_or_init(|| Arc::new(InProcessBus::new())).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, event: &Event) -> Result<(), KitError> {
        let mut inner = self.lock();
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(event.clone());
        inner.groups.retain(|_, g| g.tx.send(event.clone()).is_ok());
        Ok(())
    }

    async fn subscribe(&self, group: &str) -> Result<Subscription, KitError> {
        let mut inner = self.lock();
        let rx = match inner.groups.get(group) {
            Some(g) => g.rx.clone(),
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                for e in &inner.history {
                    let _ = tx.send(e.clone());
                }
                let rx = Arc::new(tokio::sync::Mutex::new(rx));
                inner
                    .groups
                    .insert(group.to_string(), Group { tx, rx: rx.clone() });
                rx
            }
        };
        Ok(Subscription::new(Box::new(InProcessSource { rx })))
    }
}

struct InProcessSource {
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>>,
}

#[async_trait]
impl DeliverySource for InProcessSource {
    async fn next(&mut self) -> Result<Delivery, KitError> {
        let event = self
            .rx
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| KitError::Bus("in-process bus closed".into()))?;
        Ok(Delivery::new(event, Box::new(NoAck)))
    }
}

struct NoAck;

#[async_trait]
impl Acker for NoAck {
    async fn ack(self: Box<Self>) -> Result<(), KitError> {
        Ok(())
    }
}
