//! Time as a seam: live code reads [`SystemClock`], tests and replays set a
//! [`ManualClock`]. `Utc::now()` appears nowhere else.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told; shared by clones. It holds nanoseconds since the
/// epoch in an atomic (every event reads it: a lock per read showed in backtest
/// profiles), so it spans 1677-09-21 to 2262-04-11; a time outside is held at the end
/// nearest to it.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(AtomicI64::new(Self::nanos(at))))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        self.0.store(Self::nanos(at), Ordering::Release);
    }

    fn nanos(at: DateTime<Utc>) -> i64 {
        at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.0.load(Ordering::Acquire))
    }
}

/// The New York calendar date at `at`: the trading day US equity sessions count by.
pub fn new_york_date(at: DateTime<Utc>) -> chrono::NaiveDate {
    at.with_timezone(&chrono_tz::America::New_York).date_naive()
}

/// The instant of New York wall time `local` (the earlier one when a clock change makes
/// it ambiguous, the hour after when it does not exist).
pub fn new_york_to_utc(local: chrono::NaiveDateTime) -> DateTime<Utc> {
    use chrono::TimeZone;
    let ny = chrono_tz::America::New_York;
    ny.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            ny.from_local_datetime(&(local + chrono::TimeDelta::hours(1)))
                .earliest()
        })
        .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_manual_clock_keeps_nanoseconds_and_holds_far_times_at_its_ends() {
        let clock = ManualClock::new(Utc.timestamp_opt(0, 0).unwrap());
        let shared = clock.clone();
        let at = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        clock.set(at);
        assert_eq!(shared.now(), at);
        let far = Utc.with_ymd_and_hms(3000, 1, 1, 0, 0, 0).unwrap();
        clock.set(far);
        assert_eq!(shared.now(), DateTime::from_timestamp_nanos(i64::MAX));
        let early = Utc.with_ymd_and_hms(1600, 1, 1, 0, 0, 0).unwrap();
        clock.set(early);
        assert_eq!(shared.now(), DateTime::from_timestamp_nanos(i64::MIN));
    }
}
