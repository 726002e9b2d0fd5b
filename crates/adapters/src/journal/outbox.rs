//! The order outbox: each order intent is written to the journal file *before* the venue
//! is called, and its outcome after. At start, intents without an outcome are resolved
//! at the venue by `client_order_id` — adopted when the venue has the order, submitted
//! with the same id when it does not — so an order is never lost and never created twice.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;

use super::JournalError;
use crate::domain::{OrderType, Side};
use crate::events::{CorrelationId, OrderIntent};
pub use crate::intents::IntentRecorder;
use crate::intents::Recorded;

/// Its own connection to the journal file (SQLite serialises the writers; WAL lets the
/// broker's connection go on reading).
pub struct Outbox {
    conn: Connection,
}

/// The outbox the actors of one process share: execution records through it, recovery
/// and reconciliation ask it.
#[derive(Clone)]
pub struct SharedOutbox(Arc<Mutex<Outbox>>);

impl SharedOutbox {
    pub fn new(outbox: Outbox) -> Self {
        Self(Arc::new(Mutex::new(outbox)))
    }

    /// Runs `read` on the outbox (a poisoned lock is an error like any other).
    pub fn with<T>(
        &self,
        read: impl FnOnce(&Outbox) -> Result<T, JournalError>,
    ) -> Result<T, String> {
        let outbox = self
            .0
            .lock()
            .map_err(|_| "outbox lock poisoned".to_string())?;
        read(&outbox).map_err(|e| e.to_string())
    }
}

impl IntentRecorder for SharedOutbox {
    fn intend<'a>(
        &'a self,
        correlation: CorrelationId,
        plan_hash: &'a str,
        intent: &'a OrderIntent,
    ) -> Recorded<'a, ()> {
        let done = self.with(|o| o.intend(correlation, plan_hash, intent));
        Box::pin(std::future::ready(done))
    }

    fn resolve<'a>(&'a self, client_order_id: &'a str, outcome: &'a str) -> Recorded<'a, ()> {
        let done = self.with(|o| o.resolve(client_order_id, outcome));
        Box::pin(std::future::ready(done))
    }

    fn knows<'a>(&'a self, client_order_id: &'a str) -> Recorded<'a, bool> {
        let known = self.with(|o| o.knows(client_order_id));
        Box::pin(std::future::ready(known))
    }

    fn intents_of<'a>(&'a self, correlation: CorrelationId) -> Recorded<'a, Option<Vec<String>>> {
        let ids = self.with(|o| o.intents_of(correlation)).map(Some);
        Box::pin(std::future::ready(ids))
    }
}

/// An intent the outbox holds, with the workflow it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingIntent {
    pub correlation_id: CorrelationId,
    pub plan_hash: String,
    pub intent: OrderIntent,
}

impl Outbox {
    /// Opens the outbox in the journal at `path` (the journal must exist: it creates the
    /// tables).
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let conn = Connection::open(path).map_err(|e| JournalError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Self { conn })
    }

    /// Records an intent before it is sent (a repeat of the same id is a no-op).
    pub fn intend(
        &self,
        correlation: CorrelationId,
        plan_hash: &str,
        intent: &OrderIntent,
    ) -> Result<(), JournalError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO order_intents (client_order_id, correlation_id, plan_hash, symbol, side, qty, outcome) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
            params![
                intent.client_order_id,
                correlation.to_string(),
                plan_hash,
                intent.symbol.as_str(),
                intent.side.as_str(),
                intent.qty.to_string()
            ],
        )?;
        Ok(())
    }

    /// Records what the venue said about an intent.
    pub fn resolve(&self, client_order_id: &str, outcome: &str) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE order_intents SET outcome = ?2 WHERE client_order_id = ?1",
            params![client_order_id, outcome],
        )?;
        Ok(())
    }

    /// Whether an intent with this client order id was ever recorded.
    pub fn knows(&self, client_order_id: &str) -> Result<bool, JournalError> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM order_intents WHERE client_order_id = ?1",
                [client_order_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// Every intent's client order id and workflow.
    pub fn intent_workflows(&self) -> Result<Vec<(String, CorrelationId)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT client_order_id, correlation_id FROM order_intents ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, correlation) = row?;
            out.push((id, super::stored_correlation(&correlation, 0)?));
        }
        Ok(out)
    }

    /// Client order ids of one workflow's intents.
    pub fn intents_of(&self, correlation: CorrelationId) -> Result<Vec<String>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT client_order_id FROM order_intents WHERE correlation_id = ?1")?;
        let ids = stmt
            .query_map([correlation.to_string()], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// Intents sent (or about to be) whose outcome was never recorded.
    pub fn pending(&self) -> Result<Vec<PendingIntent>, JournalError> {
        let mut stmt = self.conn.prepare(
            "SELECT client_order_id, correlation_id, plan_hash, symbol, side, qty FROM order_intents \
             WHERE outcome IS NULL ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, correlation, plan_hash, symbol, side, qty) = row?;
            let bad = |what: &str| JournalError::Entry {
                seq: 0,
                message: format!("order intent {id}: bad {what}"),
            };
            out.push(PendingIntent {
                correlation_id: super::stored_correlation(&correlation, 0)?,
                plan_hash,
                intent: OrderIntent {
                    client_order_id: id.clone(),
                    symbol: symbol.into(),
                    side: if side == "sell" {
                        Side::Sell
                    } else {
                        Side::Buy
                    },
                    qty: Decimal::from_str(&qty).map_err(|_| bad("quantity"))?,
                    order_type: OrderType::Market,
                    limit_price: None,
                },
            });
        }
        Ok(out)
    }
}
