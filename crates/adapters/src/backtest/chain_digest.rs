//! The backtest's chain digest: blake3 over the payload hash of every event (as hex), in
//! sequence order. Hashing a payload means writing its JSON and hashing that; it needs
//! nothing from the run but the envelopes, so a thread of its own folds them, in
//! batches, while the actors go on (one hand-over per batch keeps the cross-thread cost
//! off every event).

use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use thiserror::Error;

use crate::events::Envelope;

/// Envelopes handed over per batch: every batch sent wakes the folding thread (a futex
/// call), so batches are large; 4 queued at most bound what waits to be folded.
const BATCH: usize = 1024;
/// Batches queued before `push` waits for the thread: bounds memory when it falls behind.
const QUEUED_BATCHES: usize = 4;

/// The folding thread stopped before the end (it panicked): the digest would be wrong.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("the chain digest's thread stopped before the last event")]
pub struct DigestThreadLost;

/// Folds envelopes pushed in sequence order into the chain digest on its own thread.
pub struct ChainDigest {
    batch: Vec<Arc<Envelope>>,
    fold: Fold,
}

enum Fold {
    Threaded {
        sender: Option<SyncSender<Vec<Arc<Envelope>>>>,
        /// Folded batches come back to be dropped here: freeing on the thread that
        /// allocated is cheaper for the allocator.
        folded: Receiver<Vec<Arc<Envelope>>>,
        folder: JoinHandle<blake3::Hasher>,
    },
    /// No thread could be started: the same digest, folded as events come.
    Inline(Box<blake3::Hasher>),
}

impl Default for ChainDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainDigest {
    pub fn new() -> Self {
        let (sender, batches) = sync_channel::<Vec<Arc<Envelope>>>(QUEUED_BATCHES);
        let (give_back, folded) = channel::<Vec<Arc<Envelope>>>();
        let folder = std::thread::Builder::new()
            .name("chain-digest".into())
            .spawn(move || {
                let mut digest = blake3::Hasher::new();
                for batch in batches {
                    for env in &batch {
                        fold(&mut digest, env);
                    }
                    let _ = give_back.send(batch);
                }
                digest
            });
        let fold = match folder {
            Ok(folder) => Fold::Threaded {
                sender: Some(sender),
                folded,
                folder,
            },
            Err(_) => Fold::Inline(Box::default()),
        };
        Self {
            batch: Vec::with_capacity(BATCH),
            fold,
        }
    }

    /// Adds the next event (in sequence order). Returns the batches of envelopes folded
    /// since the last call (most often none), for the caller to free: freeing on the
    /// thread that allocated is cheaper for the allocator, and the caller knows which
    /// thread made what.
    pub fn push(&mut self, env: Arc<Envelope>) -> Vec<Vec<Arc<Envelope>>> {
        let mut done = Vec::new();
        match &mut self.fold {
            Fold::Inline(digest) => fold(digest, &env),
            Fold::Threaded { sender, folded, .. } => {
                self.batch.push(env);
                if self.batch.len() >= BATCH {
                    let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
                    if sender.as_ref().is_some_and(|s| s.send(batch).is_err()) {
                        *sender = None;
                    }
                    done.extend(folded.try_iter());
                }
            }
        }
        done
    }

    /// The digest of every event pushed, as hex.
    pub fn finish(self) -> Result<String, DigestThreadLost> {
        let digest = match self.fold {
            Fold::Inline(digest) => *digest,
            Fold::Threaded { sender, folder, .. } => {
                let sent = sender.is_some_and(|s| s.send(self.batch).is_ok());
                match folder.join() {
                    Ok(digest) if sent => digest,
                    _ => return Err(DigestThreadLost),
                }
            }
        };
        Ok(digest.finalize().to_hex().to_string())
    }
}

/// What one envelope adds to the digest: its payload hash as hex, or why it has none.
fn fold(digest: &mut blake3::Hasher, env: &Envelope) {
    match env.payload_digest() {
        Ok(hash) => digest.update(hash.to_hex().as_bytes()),
        Err(e) => digest.update(format!("unhashable payload: {e}").as_bytes()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::Side;
    use crate::events::OrderFilled;
    use chrono::{TimeZone, Utc};
    use rust_decimal::Decimal;

    fn events(n: usize) -> Vec<Arc<Envelope>> {
        let clock = ManualClock::new(Utc.timestamp_opt(1_700_000_000, 0).unwrap());
        (0..n)
            .map(|i| {
                let fill = OrderFilled {
                    client_order_id: format!("alc-{i}"),
                    fill_id: format!("f{i}"),
                    symbol: "SPY".into(),
                    side: Side::Buy,
                    qty: Decimal::new(i as i64 + 1, 2),
                    price: Decimal::new(50_012, 2),
                    commission: Decimal::ZERO,
                };
                Arc::new(Envelope::root(fill, "test", &clock, None))
            })
            .collect()
    }

    /// The threaded fold, over several batches and a partial last one, is the plain
    /// sequential fold; and order matters.
    #[test]
    fn the_threaded_digest_is_the_sequential_fold() {
        let envs = events(3 * BATCH + 17);
        let mut expected = blake3::Hasher::new();
        for env in &envs {
            expected.update(env.payload_digest().unwrap().to_hex().as_bytes());
        }
        let mut digest = ChainDigest::new();
        for env in &envs {
            digest.push(env.clone());
        }
        let got = digest.finish().unwrap();
        assert_eq!(got, expected.finalize().to_hex().to_string());

        let mut swapped = ChainDigest::new();
        for env in envs.iter().rev() {
            swapped.push(env.clone());
        }
        assert_ne!(swapped.finish().unwrap(), got);
        assert_eq!(
            ChainDigest::new().finish().unwrap(),
            blake3::Hasher::new().finalize().to_hex().to_string()
        );

        // Without a thread (none could be started), folded as events come: the same.
        let mut inline = ChainDigest {
            batch: Vec::new(),
            fold: Fold::Inline(Box::default()),
        };
        for env in &envs {
            inline.push(env.clone());
        }
        assert_eq!(inline.finish().unwrap(), got);
    }
}
