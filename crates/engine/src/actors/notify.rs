//! Notifications actor: listens to workflow endings, halts, drift and recovery
//! give-ups, and hands what `notify::Notes` makes of them to the dispatcher. It publishes
//! nothing and returns at once: sending happens on tasks of its own, so a failing or
//! slow notifier never holds up an event, a workflow or trading.

use std::sync::{Arc, Mutex};

use super::deps::EngineDeps;
use super::supervision::{EventHandler, HandlerFault, Reaction, Registry};
use crate::events::{Envelope, EventKind};
use crate::metrics::metrics;
use crate::notify::delivery::{Notifier, SentLedger};
use crate::notify::Notes;

pub const NAME: &str = "notifications";
pub const CONSUMES: &[EventKind] = &[
    EventKind::WorkflowStarted,
    EventKind::OrderFilled,
    EventKind::ReconciliationCompleted,
    EventKind::WorkflowCompleted,
    EventKind::WorkflowFailed,
    EventKind::TradingHalted,
    EventKind::RecoveryAction,
];

/// What outlives an incarnation of the actor: the workflows' notes so far and the
/// event ids already notified.
struct Shared {
    notes: Mutex<Notes>,
    sent: SentLedger,
    notifier: Arc<Notifier>,
}

pub struct NotifyActor {
    shared: Arc<Shared>,
}

impl EventHandler for NotifyActor {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        let made = self
            .shared
            .notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(event);
        if let Some(n) = made {
            if self.shared.sent.claim(n.event_id) {
                self.shared.notifier.dispatch(n);
            } else {
                for c in self.shared.notifier.channels() {
                    metrics().notification(c.kind(), "deduplicated");
                }
            }
        }
        Ok(Reaction::nothing())
    }
}

/// Registers the notifier when `deps` has one.
pub fn register(registry: &mut Registry) {
    let deps: &EngineDeps = registry.deps();
    let Some(notifier) = deps.notifier.clone() else {
        return;
    };
    let config = &deps.config;
    let shared = Arc::new(Shared {
        notes: Mutex::new(Notes::new(
            config.engine.mode.to_string(),
            &config.notifications.on,
        )),
        sent: SentLedger::default(),
        notifier,
    });
    for c in shared.notifier.channels() {
        metrics().known_notification_channel(c.kind());
    }
    registry.add(NAME, CONSUMES, move || NotifyActor {
        shared: shared.clone(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::config::{NotificationsConfig, WebhookConfig, WebhookFormat};
    use crate::domain::RunMode;
    use crate::events::{WorkflowCompleted, WorkflowStarted};
    use crate::notify::channels::channels;
    use crate::notify::NotifyKind;

    /// A receiver on 127.0.0.1 counting the bodies it is sent.
    async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
        let got: Arc<Mutex<Vec<String>>> = Arc::default();
        let state = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let state = state.clone();
                async move {
                    state.lock().unwrap().push(body);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        actix_rt::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, got)
    }

    #[actix_rt::test]
    async fn a_redelivered_event_sends_nothing_twice_even_to_a_restarted_actor() {
        let (url, got) = receiver().await;
        let config = NotificationsConfig {
            webhooks: vec![WebhookConfig {
                url,
                url_env: String::new(),
                format: WebhookFormat::Json,
            }],
            ..NotificationsConfig::default()
        };
        let found = channels(&config, std::path::Path::new("."), &|_| None).unwrap();
        let notifier = Arc::new(Notifier::new(found, config.retry_policy()));
        let shared = Arc::new(Shared {
            notes: Mutex::new(Notes::new("paper", &NotifyKind::ALL)),
            sent: SentLedger::default(),
            notifier: notifier.clone(),
        });
        let started = Arc::new(Envelope::root(
            WorkflowStarted {
                as_of: chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap(),
                mode: RunMode::Paper,
                trigger: crate::domain::Trigger::Test,
                attempt: 0,
            },
            "test",
            &SystemClock,
            None,
        ));
        let completed = Arc::new(Envelope::caused_by(
            &started,
            WorkflowCompleted {
                orders_placed: 0,
                duration_ms: 3,
            },
            "test",
            &SystemClock,
        ));
        let mut first = NotifyActor {
            shared: shared.clone(),
        };
        first.handle(&started).unwrap();
        first.handle(&completed).unwrap();
        // Redelivered to the same incarnation, then to a fresh one after a restart.
        first.handle(&completed).unwrap();
        let mut restarted = NotifyActor { shared };
        restarted.handle(&completed).unwrap();
        assert!(notifier.drain(std::time::Duration::from_secs(10)).await);
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains(&completed.event_id.to_string()),
            "{}",
            got[0]
        );
    }
}
