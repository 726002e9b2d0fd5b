//! The US equity market calendar: weekdays that are not full-day holidays, 1998-2028,
//! with early closes. The dates are facts (as listed in LEAN's market-hours database),
//! embedded from `us_equity.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use serde::Deserialize;

const CALENDAR_JSON: &str = include_str!("us_equity.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    holidays: Vec<String>,
    early_closes: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct UsEquityCalendar {
    holidays: BTreeSet<NaiveDate>,
    early_closes: BTreeMap<NaiveDate, NaiveTime>,
    first_year: i32,
    last_year: i32,
}

fn parse_mdy(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%m/%d/%Y").ok()
}

impl UsEquityCalendar {
    /// The embedded calendar (parsed once).
    pub fn get() -> &'static UsEquityCalendar {
        static CAL: OnceLock<UsEquityCalendar> = OnceLock::new();
        CAL.get_or_init(|| {
            // The embedded file is part of the source tree; a parse failure is a build
            // defect caught by the unit tests, so an empty calendar is never shipped.
            let raw: Raw = serde_json::from_str(CALENDAR_JSON).unwrap_or(Raw {
                holidays: vec![],
                early_closes: BTreeMap::new(),
            });
            let holidays: BTreeSet<NaiveDate> =
                raw.holidays.iter().filter_map(|s| parse_mdy(s)).collect();
            let early_closes = raw
                .early_closes
                .iter()
                .filter_map(|(d, t)| {
                    Some((
                        parse_mdy(d)?,
                        NaiveTime::parse_from_str(t, "%H:%M:%S").ok()?,
                    ))
                })
                .collect();
            UsEquityCalendar {
                first_year: holidays.first().map_or(1998, |d| d.year()),
                last_year: holidays.last().map_or(2028, |d| d.year()),
                holidays,
                early_closes,
            }
        })
    }

    /// Whether the regular session trades on `date` (weekday, not a holiday).
    pub fn is_session(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&date)
    }

    /// Close time (New York) on `date`: 16:00, or the early close.
    pub fn close_time(&self, date: NaiveDate) -> NaiveTime {
        self.early_closes
            .get(&date)
            .copied()
            .unwrap_or(NaiveTime::from_hms_opt(16, 0, 0).unwrap_or_default())
    }

    /// The last session before `date`.
    pub fn previous_session(&self, date: NaiveDate) -> NaiveDate {
        let mut day = date;
        while let Some(before) = day.pred_opt() {
            day = before;
            if self.is_session(day) {
                return day;
            }
        }
        day
    }

    /// Sessions in `[from, to]`.
    pub fn sessions(&self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        from.iter_days()
            .take_while(|d| *d <= to)
            .filter(|d| self.is_session(*d))
            .collect()
    }

    /// Years the holiday list covers; outside them only weekends are known.
    pub fn covered_years(&self) -> (i32, i32) {
        (self.first_year, self.last_year)
    }

    pub fn holiday_count(&self) -> usize {
        self.holidays.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn embedded_calendar_parses() {
        let c = UsEquityCalendar::get();
        assert_eq!(c.holiday_count(), 293);
        assert_eq!(c.covered_years(), (1998, 2028));
    }

    #[test]
    fn holidays_weekends_and_early_closes() {
        let c = UsEquityCalendar::get();
        assert!(!c.is_session(d(2020, 12, 25)));
        assert!(!c.is_session(d(2020, 12, 26)));
        assert!(c.is_session(d(2020, 12, 24)));
        assert_eq!(
            c.close_time(d(2020, 12, 24)),
            NaiveTime::from_hms_opt(13, 0, 0).unwrap()
        );
        assert_eq!(
            c.close_time(d(2020, 12, 23)),
            NaiveTime::from_hms_opt(16, 0, 0).unwrap()
        );
        // 2013-10-07 to 2013-10-11: a full week
        assert_eq!(c.sessions(d(2013, 10, 5), d(2013, 10, 13)).len(), 5);
    }
}
