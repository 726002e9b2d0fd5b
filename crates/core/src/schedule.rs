//! When the daily workflow runs: at `time` New York on each US equity session, or
//! `early_close_offset` before the close on early-close days (whichever is earlier).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::America::New_York;

use crate::calendar::UsEquityCalendar;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailySchedule {
    pub time: NaiveTime,
    pub early_close_offset: Duration,
}

impl Default for DailySchedule {
    fn default() -> Self {
        Self {
            time: NaiveTime::from_hms_opt(15, 45, 0).unwrap_or_default(),
            early_close_offset: Duration::from_secs(15 * 60),
        }
    }
}

impl DailySchedule {
    /// The run time on `date` (New York), or `None` when the market is closed that day.
    pub fn run_time_on(
        &self,
        date: NaiveDate,
        calendar: &UsEquityCalendar,
    ) -> Option<DateTime<Utc>> {
        if !calendar.is_session(date) {
            return None;
        }
        let close = calendar.close_time(date);
        let before_close =
            close - chrono::Duration::from_std(self.early_close_offset).unwrap_or_default();
        let local = date.and_time(self.time.min(before_close));
        New_York
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first run at or after `now`, with the session date it runs as of.
    pub fn next_run(
        &self,
        now: DateTime<Utc>,
        calendar: &UsEquityCalendar,
    ) -> Option<(NaiveDate, DateTime<Utc>)> {
        let today = now.with_timezone(&New_York).date_naive();
        today.iter_days().take(15).find_map(|d| {
            self.run_time_on(d, calendar)
                .filter(|t| *t >= now)
                .map(|t| (d, t))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn runs_at_1545_new_york_on_sessions() {
        let s = DailySchedule::default();
        let cal = UsEquityCalendar::get();
        // Friday 2024-07-05 10:00 EDT → same day 15:45 EDT = 19:45 UTC
        let (day, at) = s.next_run(utc("2024-07-05T14:00:00Z"), cal).unwrap();
        assert_eq!(day.to_string(), "2024-07-05");
        assert_eq!(at, utc("2024-07-05T19:45:00Z"));
        // After today's run: next Monday (the weekend is skipped)
        let (day, _) = s.next_run(utc("2024-07-05T20:00:00Z"), cal).unwrap();
        assert_eq!(day.to_string(), "2024-07-08");
        // Winter time: 15:45 EST = 20:45 UTC
        assert_eq!(
            s.run_time_on(NaiveDate::from_ymd_opt(2024, 1, 5).unwrap(), cal),
            Some(utc("2024-01-05T20:45:00Z"))
        );
    }

    #[test]
    fn holidays_are_skipped_and_early_closes_run_15_minutes_before() {
        let s = DailySchedule::default();
        let cal = UsEquityCalendar::get();
        assert_eq!(
            s.run_time_on(NaiveDate::from_ymd_opt(2024, 12, 25).unwrap(), cal),
            None
        );
        // 2024-12-24 closes at 13:00 → run at 12:45 EST = 17:45 UTC
        assert_eq!(
            s.run_time_on(NaiveDate::from_ymd_opt(2024, 12, 24).unwrap(), cal),
            Some(utc("2024-12-24T17:45:00Z"))
        );
    }
}
