//! The durable event journal: every event the broker accepts, appended to SQLite (WAL)
//! *before* it is dispatched, in sequence order, hash-chained for tamper evidence.
//!
//! - the entry hash (format 2, `entry_format` column) = blake3 of the seq, the envelope's
//!   head (every field but the payload) and the payload hash; [`Journal::verify`]
//!   recomputes the payload hash from the stored payload and checks every column against
//!   the envelope, so each stored byte is covered. Rows written before format 2 are
//!   format 1: their entry hash covers every column and the whole envelope, and they
//!   still verify. `chain_hash` = blake3(previous chain_hash ‖ entry hash), the first
//!   entry chaining from 32 zero bytes. Changing any stored byte breaks the chain (or
//!   the payload's hash) from that entry on, which [`Journal::verify`] reports by
//!   sequence number.
//! - Appends are batched: the events of one broker turn go in one transaction (group
//!   commit).
//! - Durability (`journal.sync`): `"normal"` (WAL, `synchronous=NORMAL`) survives a crash
//!   of the process — `kill -9` loses nothing committed — but the last transactions may
//!   be lost if the machine itself loses power; `"full"` (`synchronous=FULL`) survives
//!   power loss too, at the cost of an fsync per commit.
//! - The schema is versioned (`PRAGMA user_version`) and migrated forward on open; a
//!   journal of a newer schema than this version knows is refused, never appended to.
//! - The last sequence number and chain hash are also kept beside the file (`head`), so
//!   that a lost tail is found; one engine writes a journal at a time (`lock`).

pub mod group_commit;
pub mod head;
pub mod lock;
pub mod outbox;
mod schema;
pub mod status;
pub mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::domain::{Side, Symbol};
use crate::events::envelope::{split_stored, stored_payload_hash};
use crate::events::{
    CorrelationId, EncodedEnvelope, Envelope, EventKind, Payload, SignalGenerated, TradingHalted,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    #[default]
    Normal,
    Full,
}

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal {path}: {message}")]
    Open { path: String, message: String },
    #[error("journal: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("journal entry {seq}: {message}")]
    Entry { seq: u64, message: String },
    #[error("journal append out of order: expected seq {expected}, got {got}")]
    Gap { expected: u64, got: u64 },
    #[error("journal schema version {found} is newer than this version of alchemiser knows ({known}): written by a newer release; refusing to open it")]
    NewerSchema { found: u32, known: u32 },
    #[error("journal head {path}: {message}")]
    Head { path: String, message: String },
}

pub use crate::engine_core::ConsumerMark;

/// An event's row as stored — the envelope encoded (JSON, payload hash, the column
/// texts inside the JSON) and the entry hash — computed once, on the broker's thread, so
/// that the writer thread only chains and inserts.
#[derive(Clone, Debug)]
pub struct Serialized {
    encoded: EncodedEnvelope,
    entry_hash: [u8; 32],
}

impl Serialized {
    /// Bytes the row stores, about (the envelope dominates): what checkpoints pace by.
    pub fn stored_len(&self) -> usize {
        self.encoded.json.len() + 256
    }

    pub fn of(seq: u64, env: &Envelope) -> Result<Self, JournalError> {
        let encoded = env.encode().map_err(|e| JournalError::Entry {
            seq,
            message: e.to_string(),
        })?;
        let entry_hash = head_entry_hash(
            seq,
            &encoded.json[..encoded.head_len],
            encoded.payload_hash.to_hex().as_str(),
        );
        Ok(Self {
            encoded,
            entry_hash,
        })
    }
}

/// The format of the entries this version writes (see the module's doc).
const ENTRY_FORMAT: i64 = 2;

/// Format 2: the seq, the envelope's head and the payload hash (which covers the
/// payload). Half the bytes of format 1: the columns repeat the head.
fn head_entry_hash(seq: u64, head: &str, payload_hash: &str) -> [u8; 32] {
    let mut buf = Vec::with_capacity(head.len() + payload_hash.len() + 24);
    buf.extend_from_slice(&seq.to_le_bytes());
    for part in [head, payload_hash] {
        buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    *blake3::hash(&buf).as_bytes()
}

/// Format 1: the fields an entry hash covers, borrowed from wherever they are.
struct EntryFields<'a> {
    seq: u64,
    event_id: &'a str,
    event_type: &'a str,
    schema_version: u32,
    correlation_id: &'a str,
    causation_id: Option<&'a str>,
    source: &'a str,
    occurred_at: &'a str,
    envelope: &'a str,
    payload_hash: &'a str,
}

fn entry_hash(f: &EntryFields<'_>) -> [u8; 32] {
    // One buffer, one hash: blake3 is slow on many small updates.
    let mut buf = Vec::with_capacity(f.envelope.len() + 256);
    buf.extend_from_slice(&f.seq.to_le_bytes());
    for part in [
        f.event_id,
        f.event_type,
        &f.schema_version.to_string(),
        f.correlation_id,
        f.causation_id.unwrap_or(""),
        f.source,
        f.occurred_at,
        f.envelope,
        f.payload_hash,
    ] {
        buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    *blake3::hash(&buf).as_bytes()
}

/// One stored event.
#[derive(Clone, Debug)]
pub struct JournalEntry {
    pub seq: u64,
    pub envelope: Envelope,
    pub payload_hash: String,
    pub chain_hash: String,
}

/// Which rows a read takes.
enum RowFilter<'a> {
    All,
    Correlation(&'a CorrelationId),
    /// After a seq, at most so many.
    After(u64, usize),
}

/// The outcome of [`Journal::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    /// The first entry that fails a check, and why.
    pub first_broken: Option<(u64, String)>,
}

pub struct Journal {
    conn: Connection,
    last_seq: u64,
    last_chain: [u8; 32],
    durable: bool,
    /// Where the head is kept (a file journal).
    head: Option<head::HeadFile>,
}

struct Row {
    seq: u64,
    event_id: String,
    event_type: String,
    schema_version: u32,
    correlation_id: String,
    causation_id: Option<String>,
    source: String,
    occurred_at: String,
    envelope: String,
    payload_hash: String,
    chain_hash: String,
    entry_format: i64,
}

impl Row {
    /// The entry hash by the row's format, or why it cannot be computed; for format 2
    /// also the stored payload, which [`Row::mismatch`] checks.
    fn entry_hash(&self) -> Result<([u8; 32], Option<&str>), String> {
        match self.entry_format {
            1 => Ok((self.columns_entry_hash(), None)),
            2 => {
                let (head, payload) = split_stored(&self.envelope)
                    .ok_or("envelope is not in the stored form (head, then payload)")?;
                Ok((
                    head_entry_hash(self.seq, head, &self.payload_hash),
                    Some(payload),
                ))
            }
            other => Err(format!("unknown entry format {other}")),
        }
    }

    /// What a format 2 entry hash does not cover directly: the payload hash must be the
    /// stored payload's, and the columns must repeat the envelope's fields. `payload`:
    /// the stored payload of a format 2 row (`None` for format 1, which needs neither).
    fn mismatch(&self, env: &Envelope, payload: Option<&str>) -> Option<String> {
        let payload = payload?;
        match stored_payload_hash(env.kind(), payload.as_bytes()) {
            Ok(hash) if hash == self.payload_hash => {}
            _ => {
                return Some(
                    "payload does not match its hash (changed after it was written)".into(),
                )
            }
        }
        let columns = [
            ("event_id", self.event_id == env.event_id.to_string()),
            ("event_type", self.event_type == env.event_type()),
            ("schema_version", self.schema_version == env.schema_version),
            (
                "correlation_id",
                self.correlation_id == env.correlation_id.to_string(),
            ),
            (
                "causation_id",
                self.causation_id == env.causation_id.map(|c| c.to_string()),
            ),
            ("source", self.source == env.source),
            (
                "occurred_at",
                self.occurred_at == env.occurred_at.to_rfc3339(),
            ),
        ];
        columns
            .iter()
            .find(|(_, same)| !same)
            .map(|(column, _)| format!("column {column} does not match the envelope"))
    }

    fn columns_entry_hash(&self) -> [u8; 32] {
        entry_hash(&EntryFields {
            seq: self.seq,
            event_id: &self.event_id,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            correlation_id: &self.correlation_id,
            causation_id: self.causation_id.as_deref(),
            source: &self.source,
            occurred_at: &self.occurred_at,
            envelope: &self.envelope,
            payload_hash: &self.payload_hash,
        })
    }
}

fn chain(prev: &[u8; 32], entry: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(entry);
    *h.finalize().as_bytes()
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let bytes = blake3::Hash::from_hex(s).ok()?;
    Some(*bytes.as_bytes())
}

impl Journal {
    /// Opens (creating folders and file if needed) and migrates the journal at `path`.
    pub fn open(path: &Path, sync: SyncMode) -> Result<Self, JournalError> {
        let fail = |message: String| JournalError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        let mut journal = Self::setup(conn, sync).map_err(|e| fail(e.to_string()))?;
        journal.durable = true;
        journal.head = Some(head::HeadFile::beside(path, sync == SyncMode::Full));
        Ok(journal)
    }

    /// Takes and releases the write lock: a journal opened read-only (a read-only file
    /// or folder) is found out now, not when the first event cannot be appended and
    /// the workflow waits out its timeout.
    pub fn check_writable(&self) -> Result<(), JournalError> {
        let shown = self.conn.path().unwrap_or("").to_string();
        let refused = |why: String| JournalError::Open {
            path: shown.clone(),
            message: format!(
                "cannot be written ({why}); the engine journals every event before acting on it"
            ),
        };
        // SQLite falls back to reading a file it may not write.
        if self
            .conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|e| refused(e.to_string()))?
        {
            return Err(refused("the file or its folder is read-only".into()));
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(|e| refused(e.to_string()))
    }

    /// A second connection to the file for checkpoints, this connection's automatic
    /// checkpoints turned off (see `writer`); `None` in memory.
    fn checkpoint_connection(&mut self) -> Result<Option<Connection>, JournalError> {
        let Some(path) = self
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
        else {
            return Ok(None);
        };
        if !self.durable {
            return Ok(None);
        }
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(Some(conn))
    }

    /// A journal that lives only as long as the process (backtests).
    pub fn in_memory() -> Result<Self, JournalError> {
        Self::setup(Connection::open_in_memory()?, SyncMode::Normal)
    }

    fn setup(conn: Connection, sync: SyncMode) -> Result<Self, JournalError> {
        // Rows are about 1 KiB: bigger pages hold more of them (only a new file takes it).
        conn.pragma_update(None, "page_size", 16_384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            match sync {
                SyncMode::Normal => "NORMAL",
                SyncMode::Full => "FULL",
            },
        )?;
        // 64 MiB of page cache: the id indexes take random-key inserts.
        conn.pragma_update(None, "cache_size", -65_536)?;
        // Checkpoint every 64 MiB of WAL, whatever the file's page size (an older journal
        // keeps the page size it was made with).
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        conn.pragma_update(None, "wal_autocheckpoint", (64 << 20) / page_size.max(512))?;
        let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = schema::MIGRATIONS.len() as u32;
        if found > known {
            return Err(JournalError::NewerSchema { found, known });
        }
        schema::migrate(&conn)?;
        let last: Option<(u64, String)> = conn
            .query_row(
                "SELECT seq, chain_hash FROM events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?;
        let (last_seq, last_chain) = match last {
            Some((seq, hash)) => (
                seq,
                hex32(&hash).ok_or(JournalError::Entry {
                    seq,
                    message: "stored chain hash is not hex".into(),
                })?,
            ),
            None => (0, [0u8; 32]),
        };
        Ok(Self {
            conn,
            last_seq,
            last_chain,
            durable: false,
            head: None,
        })
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// On disk (survives the process), as opposed to in memory.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Appends `entries` (consecutive seqs after [`Journal::last_seq`]) in one transaction.
    pub fn append_batch(&mut self, entries: &[(u64, &Envelope)]) -> Result<(), JournalError> {
        self.append(entries, &[])
    }

    /// Appends events and consumer marks in one transaction (the group commit).
    pub fn append(
        &mut self,
        entries: &[(u64, &Envelope)],
        marks: &[ConsumerMark],
    ) -> Result<(), JournalError> {
        let serialized = entries
            .iter()
            .map(|(seq, env)| Ok((*seq, *env, Serialized::of(*seq, env)?)))
            .collect::<Result<Vec<_>, JournalError>>()?;
        let refs: Vec<(u64, &Envelope, &Serialized)> =
            serialized.iter().map(|(s, e, z)| (*s, *e, z)).collect();
        self.append_serialized(&refs, marks)
    }

    /// [`Journal::append`] of events already serialised (elsewhere: the broker thread
    /// serialises while the writer thread inserts).
    pub fn append_serialized(
        &mut self,
        entries: &[(u64, &Envelope, &Serialized)],
        marks: &[ConsumerMark],
    ) -> Result<(), JournalError> {
        if entries.is_empty() && marks.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        let mut last_seq = self.last_seq;
        let mut last_chain = self.last_chain;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (seq, event_id, event_type, schema_version, correlation_id, causation_id, \
                 source, occurred_at, envelope, payload_hash, chain_hash, entry_format) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for (seq, env, serialized) in entries {
                if *seq != last_seq + 1 {
                    return Err(JournalError::Gap {
                        expected: last_seq + 1,
                        got: *seq,
                    });
                }
                let chained = chain(&last_chain, &serialized.entry_hash);
                let chain_hex = blake3::Hash::from(chained).to_hex();
                let encoded = &serialized.encoded;
                stmt.execute(params![
                    *seq as i64,
                    env.event_id.to_string(),
                    env.event_type(),
                    env.schema_version,
                    env.correlation_id.to_string(),
                    env.causation_id.map(|c| c.to_string()),
                    env.source.as_ref(),
                    // `+00:00`, as format 1 entry hashes cover it.
                    env.occurred_at.to_rfc3339(),
                    encoded.json,
                    encoded.payload_hash.to_hex().as_str(),
                    chain_hex.as_str(),
                    ENTRY_FORMAT
                ])?;
                last_seq = *seq;
                last_chain = chained;
            }
        }
        if !marks.is_empty() {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO consumer_marks (consumer, event_type, correlation_id, payload_hash, seq) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for m in marks {
                stmt.execute(params![
                    m.consumer,
                    m.event_type,
                    m.correlation_id.to_string(),
                    m.payload_hash,
                    m.seq as i64
                ])?;
            }
        }
        crate::fault::crash_point("journal.commit");
        tx.commit()?;
        let moved = last_seq != self.last_seq;
        self.last_seq = last_seq;
        self.last_chain = last_chain;
        if let (Some(file), true) = (&self.head, moved) {
            file.write(head::Head {
                seq: last_seq,
                chain: last_chain,
            })
            .map_err(|e| JournalError::Head {
                path: file.path().display().to_string(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Why the journal is shorter than its head says (its last entries were lost or the
    /// file was replaced by an older copy), or `None`. A journal without a head file
    /// (new, or written before heads were kept) has nothing to compare with.
    pub fn lost_tail(&self) -> Result<Option<String>, JournalError> {
        let Some(file) = &self.head else {
            return Ok(None);
        };
        let head = file.read().map_err(|message| JournalError::Head {
            path: file.path().display().to_string(),
            message,
        })?;
        let Some(head) = head else { return Ok(None) };
        let shown = file.path().display();
        if head.seq > self.last_seq {
            return Ok(Some(format!(
                "the journal ends at seq {} but its head ({shown}) records seq {}: the last {} entries are lost",
                self.last_seq,
                head.seq,
                head.seq - self.last_seq
            )));
        }
        let stored: Option<String> = self
            .conn
            .query_row(
                "SELECT chain_hash FROM events WHERE seq = ?1",
                [head.seq as i64],
                |r| r.get(0),
            )
            .optional()?;
        let matches = head.seq == 0 || stored.as_deref().and_then(hex32) == Some(head.chain);
        Ok((!matches).then(|| {
            format!(
                "entry {} does not carry the chain hash its head ({shown}) records: the journal was replaced or rewritten",
                head.seq
            )
        }))
    }

    /// Up to `limit` entries after `seq`, in sequence order (a reader catching up).
    pub fn entries_after(&self, seq: u64, limit: usize) -> Result<Vec<JournalEntry>, JournalError> {
        self.rows_where(RowFilter::After(seq, limit))?
            .into_iter()
            .map(to_entry)
            .collect()
    }

    fn rows(&self, filter: Option<&CorrelationId>) -> Result<Vec<Row>, JournalError> {
        self.rows_where(filter.map_or(RowFilter::All, RowFilter::Correlation))
    }

    fn rows_where(&self, filter: RowFilter<'_>) -> Result<Vec<Row>, JournalError> {
        let sql = "SELECT seq, event_id, event_type, schema_version, correlation_id, causation_id, source, \
                   occurred_at, envelope, payload_hash, chain_hash, entry_format FROM events";
        let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
            Ok(Row {
                seq: r.get::<_, i64>(0)? as u64,
                event_id: r.get(1)?,
                event_type: r.get(2)?,
                schema_version: r.get(3)?,
                correlation_id: r.get(4)?,
                causation_id: r.get(5)?,
                source: r.get(6)?,
                occurred_at: r.get(7)?,
                envelope: r.get(8)?,
                payload_hash: r.get(9)?,
                chain_hash: r.get(10)?,
                entry_format: r.get(11)?,
            })
        };
        let rows = match filter {
            RowFilter::Correlation(c) => {
                let mut stmt = self
                    .conn
                    .prepare(&format!("{sql} WHERE correlation_id = ?1 ORDER BY seq"))?;
                let it = stmt.query_map([c.to_string()], map)?;
                it.collect::<Result<Vec<_>, _>>()?
            }
            RowFilter::After(seq, limit) => {
                let mut stmt = self
                    .conn
                    .prepare(&format!("{sql} WHERE seq > ?1 ORDER BY seq LIMIT ?2"))?;
                let it = stmt.query_map(
                    rusqlite::params![seq as i64, limit.min(i64::MAX as usize) as i64],
                    map,
                )?;
                it.collect::<Result<Vec<_>, _>>()?
            }
            RowFilter::All => {
                let mut stmt = self.conn.prepare(&format!("{sql} ORDER BY seq"))?;
                let it = stmt.query_map([], map)?;
                it.collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(rows)
    }

    /// Every entry of one correlation, in sequence order.
    pub fn correlation(&self, id: &CorrelationId) -> Result<Vec<JournalEntry>, JournalError> {
        self.rows(Some(id))?.into_iter().map(to_entry).collect()
    }

    /// Every entry, in sequence order.
    pub fn entries(&self) -> Result<Vec<JournalEntry>, JournalError> {
        self.rows(None)?.into_iter().map(to_entry).collect()
    }

    /// Checks sequence contiguity, every entry hash, the hash chain, and that each
    /// causation is an earlier event of the same correlation.
    pub fn verify(&self) -> Result<VerifyReport, JournalError> {
        let rows = self.rows(None)?;
        let mut prev_chain = [0u8; 32];
        // Event id → (its correlation, its seq).
        let mut seen: HashMap<String, (String, u64)> = HashMap::new();
        for (expected, row) in (1u64..).zip(rows.iter()) {
            let broken = |why: String| {
                Ok(VerifyReport {
                    entries: rows.len() as u64,
                    first_broken: Some((row.seq, why)),
                })
            };
            if row.seq != expected {
                return broken(format!("sequence gap: expected {expected}"));
            }
            let (entry, payload) = match row.entry_hash() {
                Ok(found) => found,
                Err(why) => return broken(why),
            };
            let chained = chain(&prev_chain, &entry);
            if hex32(&row.chain_hash) != Some(chained) {
                return broken(
                    "contents do not match the hash chain (changed after it was written)".into(),
                );
            }
            match Envelope::from_json(&row.envelope) {
                Err(e) => return broken(format!("envelope does not parse: {e}")),
                Ok(env) => {
                    if let Some(why) = row.mismatch(&env, payload) {
                        return broken(why);
                    }
                }
            }
            if let Some(cause) = &row.causation_id {
                match seen.get(cause) {
                    None => return broken(format!("causation {cause} is not an earlier event")),
                    Some((corr, _)) if *corr != row.correlation_id => {
                        return broken(format!("causation {cause} belongs to another correlation"))
                    }
                    Some(_) => {}
                }
            }
            if let Some((_, first)) = seen.get(&row.event_id) {
                return broken(format!(
                    "duplicate event id {} (first at seq {first})",
                    row.event_id
                ));
            }
            seen.insert(row.event_id.clone(), (row.correlation_id.clone(), row.seq));
            prev_chain = chained;
        }
        let lost = self.lost_tail()?;
        Ok(VerifyReport {
            entries: rows.len() as u64,
            first_broken: lost.map(|why| (self.last_seq + 1, why)),
        })
    }

    /// Every workflow whose root is journaled but no terminal event: its entries in order.
    pub fn open_workflows(&self) -> Result<Vec<Vec<JournalEntry>>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{OPEN_WORKFLOWS} ORDER BY min(seq)"))?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter()
            .map(|id| self.correlation(&stored_correlation(id, 0)?))
            .collect()
    }

    /// The latest entry of any of `types`.
    fn latest_of(&self, types: &[EventKind]) -> Result<Option<JournalEntry>, JournalError> {
        let list = types
            .iter()
            .map(|t| format!("'{}'", t.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        let seq: Option<i64> = self
            .conn
            .query_row(
                &format!("SELECT max(seq) FROM events WHERE event_type IN ({list})"),
                [],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let Some(seq) = seq else { return Ok(None) };
        let envelope: String =
            self.conn
                .query_row("SELECT envelope FROM events WHERE seq = ?1", [seq], |r| {
                    r.get(0)
                })?;
        let envelope = Envelope::from_json(&envelope).map_err(|e| JournalError::Entry {
            seq: seq as u64,
            message: e.to_string(),
        })?;
        Ok(Some(JournalEntry {
            seq: seq as u64,
            envelope,
            payload_hash: String::new(),
            chain_hash: String::new(),
        }))
    }

    /// The halt in force when the journal ends: the last `trading.halted.v1` not
    /// followed by a `trading.resumed.v1`. A halt survives restarts.
    pub fn halt_in_force(&self) -> Result<Option<TradingHalted>, JournalError> {
        Ok(self.halted_since()?.map(|(_, h)| h))
    }

    /// [`Journal::halt_in_force`] with when it was journaled.
    pub fn halted_since(
        &self,
    ) -> Result<Option<(chrono::DateTime<chrono::Utc>, TradingHalted)>, JournalError> {
        let last = self.latest_of(&[EventKind::TradingHalted, EventKind::TradingResumed])?;
        Ok(last.and_then(|e| match e.envelope.payload {
            Payload::TradingHalted(h) => Some((e.envelope.occurred_at, h)),
            _ => None,
        }))
    }

    /// The positions the account should hold by the journal: the last execution's
    /// positions before its first order, plus its fills. `None` before any execution.
    pub fn expected_positions(&self) -> Result<Option<BTreeMap<Symbol, Decimal>>, JournalError> {
        let Some(started) = self.latest_of(&[EventKind::ExecutionStarted])? else {
            return Ok(None);
        };
        let Payload::ExecutionStarted(execution) = &started.envelope.payload else {
            return Ok(None);
        };
        let mut positions = execution.positions_before.clone();
        let entries = self.correlation(&started.envelope.correlation_id)?;
        let fills = entries
            .iter()
            .filter_map(|entry| match &entry.envelope.payload {
                Payload::OrderFilled(fill) if entry.seq > started.seq => {
                    Some((&fill.symbol, fill.side, fill.qty))
                }
                _ => None,
            });
        crate::domain::apply_fills(&mut positions, fills);
        Ok(Some(positions))
    }

    /// The latest signal journaled: it carries the slices the strategy book keeps.
    pub fn latest_signal(&self) -> Result<Option<SignalGenerated>, JournalError> {
        Ok(self
            .latest_of(&[EventKind::SignalGenerated])?
            .and_then(|e| match e.envelope.payload {
                Payload::SignalGenerated(s) => Some(s),
                _ => None,
            }))
    }

    /// The latest execution when its workflow is still open (the engine stopped during
    /// or after its orders, before the workflow ended): its workflow and the positions
    /// before its first order. The journal may lack fills of such an execution that the
    /// venue has; the start-up check takes them from the venue, for the orders the
    /// outbox says the workflow sent.
    pub fn open_execution(&self) -> Result<Option<OpenExecution>, JournalError> {
        let Some(started) = self.latest_of(&[EventKind::ExecutionStarted])? else {
            return Ok(None);
        };
        let Payload::ExecutionStarted(execution) = started.envelope.payload else {
            return Ok(None);
        };
        let correlation = started.envelope.correlation_id;
        let open: bool = self.conn.query_row(
            &format!("SELECT ?1 IN ({OPEN_WORKFLOWS})"),
            [correlation.to_string()],
            |r| r.get(0),
        )?;
        Ok(open.then_some(OpenExecution {
            correlation,
            positions_before: execution.positions_before,
        }))
    }

    /// Notional bought (fills × price) on New York day `day`, whichever day's signal
    /// the orders traded: what a restarted engine has already deployed today.
    pub fn bought_on(&self, day: NaiveDate) -> Result<Decimal, JournalError> {
        // The New York day falls within these two UTC dates; the exact day is checked
        // on each fill's time below.
        let (from, to) = (day.to_string(), (day + chrono::Days::new(2)).to_string());
        let mut stmt = self.conn.prepare(
            "SELECT seq, envelope FROM events WHERE event_type = 'execution.order.filled.v1' \
             AND occurred_at >= ?1 AND occurred_at < ?2",
        )?;
        let rows = stmt.query_map([from, to], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut total = Decimal::ZERO;
        for row in rows {
            let (seq, text) = row?;
            let env = Envelope::from_json(&text).map_err(|e| JournalError::Entry {
                seq: seq as u64,
                message: e.to_string(),
            })?;
            if crate::clock::new_york_date(env.occurred_at) != day {
                continue;
            }
            if let Payload::OrderFilled(f) = env.payload {
                if f.side == Side::Buy {
                    total += f.qty * f.price;
                }
            }
        }
        Ok(total)
    }

    /// The consumer marks of workflows still open.
    pub fn open_marks(&self) -> Result<Vec<ConsumerMark>, JournalError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT consumer, event_type, correlation_id, payload_hash, seq FROM consumer_marks \
             WHERE correlation_id IN ({OPEN_WORKFLOWS})"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (consumer, event_type, correlation, payload_hash, seq) = row?;
            let correlation_id = stored_correlation(&correlation, seq as u64)?;
            out.push(ConsumerMark {
                consumer,
                event_type,
                correlation_id,
                payload_hash,
                seq: seq as u64,
            });
        }
        Ok(out)
    }
}

/// Correlations whose root is a workflow start and that have no terminal event.
/// An execution whose workflow the journal shows unfinished.
pub struct OpenExecution {
    pub correlation: CorrelationId,
    pub positions_before: BTreeMap<Symbol, Decimal>,
}

const OPEN_WORKFLOWS: &str = "SELECT correlation_id FROM events GROUP BY correlation_id \
     HAVING sum(event_type = 'workflow.started.v1') = 1 \
     AND sum(event_type IN ('workflow.completed.v1', 'workflow.failed.v1')) = 0";

/// A correlation id read back from the file.
pub(crate) fn stored_correlation(text: &str, seq: u64) -> Result<CorrelationId, JournalError> {
    text.parse().map_err(|_| JournalError::Entry {
        seq,
        message: format!("correlation id `{text}` is not a uuid"),
    })
}

fn to_entry(row: Row) -> Result<JournalEntry, JournalError> {
    let envelope = Envelope::from_json(&row.envelope).map_err(|e| JournalError::Entry {
        seq: row.seq,
        message: e.to_string(),
    })?;
    Ok(JournalEntry {
        seq: row.seq,
        envelope,
        payload_hash: row.payload_hash,
        chain_hash: row.chain_hash,
    })
}
