//! Crash and fault points for drills and crash tests: the one place the core reads the
//! environment, because the points sit inside the executor's order path.
//!
//! `ALCHEMISER_CRASH_AFTER=LABEL[:N]` aborts the process — no destructors, no flush, as
//! with `kill -9` — the N-th time (default 1st) the engine passes the point named
//! `LABEL`. Labels: every event type, right after the event is committed to the journal
//! and before it is dispatched (`execution.order.filled.v1`), and `venue.submit`, right
//! after the venue answered an order and before anything about it is published,
//! `venue.accepted` (the venue answered, the outbox has no outcome yet), `outbox.intent`
//! (the intent is recorded, the venue not yet called) and `journal.commit` (rows written,
//! transaction not committed), and in workers `sweep.variant` (a variant taken, not yet
//! run). Without the variable a crash point costs one relaxed atomic load.
//!
//! `ALCHEMISER_FAIL_ON=LABEL` makes every pass of a fault point named `LABEL` fail (a
//! worker's handling of an event type: `remote.handle:EVENT_TYPE`), so that drills and
//! tests can see what repeated failures lead to.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

struct Spec {
    label: String,
    nth: u32,
    seen: AtomicU32,
}

fn spec() -> Option<&'static Spec> {
    static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let raw = std::env::var("ALCHEMISER_CRASH_AFTER").ok()?;
        let (label, nth) = match raw.split_once(':') {
            Some((l, n)) => (l.to_string(), n.parse().unwrap_or(1)),
            None => (raw, 1),
        };
        Some(Spec {
            label,
            nth: nth.max(1),
            seen: AtomicU32::new(0),
        })
    })
    .as_ref()
}

/// Whether the fault point `label` fails (see the module's doc).
pub fn fails(label: &str) -> bool {
    static FAIL_ON: OnceLock<Option<String>> = OnceLock::new();
    FAIL_ON
        .get_or_init(|| std::env::var("ALCHEMISER_FAIL_ON").ok())
        .as_deref()
        == Some(label)
}

/// Passes the crash point `label`.
pub fn crash_point(label: &str) {
    if let Some(s) = spec() {
        if s.label == label && s.seen.fetch_add(1, Ordering::SeqCst) + 1 == s.nth {
            eprintln!("ALCHEMISER_CRASH_AFTER: aborting after {label}");
            std::process::abort();
        }
    }
}
