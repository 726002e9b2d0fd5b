//! Journal schema migrations, applied in order; `PRAGMA user_version` records the last.
//! A journal written by an older version opens: its missing migrations run on open.

use rusqlite::Connection;

/// Each migration brings the schema from version `index` to `index + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the event log.
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        correlation_id TEXT NOT NULL,
        causation_id TEXT,
        source TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        envelope TEXT NOT NULL,
        payload_hash TEXT NOT NULL,
        chain_hash TEXT NOT NULL
    );
    CREATE INDEX events_by_correlation ON events (correlation_id, seq);",
    // 2: consumer idempotency marks and the order outbox.
    "CREATE TABLE consumer_marks (
        consumer TEXT NOT NULL,
        event_type TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        payload_hash TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (consumer, event_type, correlation_id, payload_hash)
    );
    CREATE TABLE order_intents (
        client_order_id TEXT PRIMARY KEY,
        correlation_id TEXT NOT NULL,
        plan_hash TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        qty TEXT NOT NULL,
                outcome TEXT
    );",
    // 3: how each row's entry hash is computed (1 for rows written before this column).
    "ALTER TABLE events ADD COLUMN entry_format INTEGER NOT NULL DEFAULT 1;",
];

pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    migrate_to(conn, MIGRATIONS.len() as u32)
}

/// Applies migrations up to `target` (tests build old journals with it).
pub(super) fn migrate_to(conn: &Connection, target: u32) -> rusqlite::Result<()> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(current as usize)
        .take(target.saturating_sub(current) as usize)
    {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_journal_is_migrated_forward_keeping_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            migrate_to(&conn, 1).unwrap();
            conn.execute(
                "INSERT INTO events VALUES (1, 'e', 't', 1, 'c', NULL, 's', 'o', '{}', 'p', 'c')",
                [],
            )
            .unwrap();
            let v: u32 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, 1);
        }
        let conn = Connection::open(&path).unwrap();
        migrate(&conn).unwrap();
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as u32);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        conn.execute(
            "INSERT INTO order_intents VALUES ('id', 'c', 'p', 'SPY', 'buy', '1', NULL)",
            [],
        )
        .unwrap();
        // Migrating again is a no-op.
        migrate(&conn).unwrap();
    }
}
