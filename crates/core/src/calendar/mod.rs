//! The US equity market calendar (NYSE and Nasdaq), computed from the exchanges'
//! holiday rules so that it never runs out: New Year's Day, Martin Luther King Jr. Day,
//! Washington's Birthday, Good Friday (from Easter), Memorial Day, Juneteenth (from
//! 2022), Independence Day, Labor Day, Thanksgiving and Christmas, each moved to the
//! nearest weekday when it falls on a weekend (a Saturday New Year's Day is not
//! observed); early closes at 13:00 on the day before Independence Day, the day after
//! Thanksgiving and Christmas Eve. Closures no rule foresees (national mourning,
//! storms) are a short table. Years outside [`FIRST_YEAR`, `LAST_YEAR`] are not known:
//! [`UsEquityCalendar::check_known`] refuses them, and they are never sessions.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{Datelike, Days, NaiveDate, NaiveTime, Weekday};
use thiserror::Error;

/// The first year the rules describe (the exchanges observed MLK Day from 1998).
pub const FIRST_YEAR: i32 = 1998;
/// The last year the rules are trusted for; beyond it the exchanges may have changed
/// them.
pub const LAST_YEAR: i32 = 2099;

/// Full-day closures outside the rules: September 11 2001, days of mourning for
/// former presidents, Hurricane Sandy.
const ONE_OFF_CLOSURES: [(i32, u32, u32); 10] = [
    (2001, 9, 11),
    (2001, 9, 12),
    (2001, 9, 13),
    (2001, 9, 14),
    (2004, 6, 11),
    (2007, 1, 2),
    (2012, 10, 29),
    (2012, 10, 30),
    (2018, 12, 5),
    (2025, 1, 9),
];

/// Early closes outside the rules (13:00), and rule days that closed at 16:00.
const ONE_OFF_EARLY_CLOSES: [(i32, u32, u32); 2] = [(2002, 7, 5), (2003, 12, 26)];
const ONE_OFF_FULL_DAYS: [(i32, u32, u32); 1] = [(2002, 7, 3)];

/// A date the calendar cannot speak for.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{date} is outside the trading calendar's years ({FIRST_YEAR} to {LAST_YEAR}): whether the market trades then is not known")]
pub struct UnknownDate {
    pub date: NaiveDate,
}

/// Why the market is shut on `date`, in words: "a Saturday", "a market holiday, a
/// Thursday".
pub fn closed_because(date: NaiveDate) -> String {
    match date.weekday() {
        Weekday::Sat | Weekday::Sun => format!("a {}", date.format("%A")),
        _ => format!("a market holiday, a {}", date.format("%A")),
    }
}

/// How long after the close a day's bar is taken as final (the closing auction's prints
/// and late reports land in the minutes after 16:00).
pub const BAR_SETTLES_AFTER_CLOSE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

#[derive(Debug)]
pub struct UsEquityCalendar {
    /// Computed years, each year's holidays and early closes.
    years: BTreeMap<i32, Year>,
}

#[derive(Debug, Default)]
struct Year {
    holidays: Vec<NaiveDate>,
    early_closes: Vec<NaiveDate>,
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// The `n`th `weekday` of `month` (n from 1), or the last one with `n = 0`.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u32) -> NaiveDate {
    if n == 0 {
        let next_month = if month == 12 {
            ymd(year + 1, 1, 1)
        } else {
            ymd(year, month + 1, 1)
        };
        let mut d = next_month.pred_opt().unwrap_or(next_month);
        while d.weekday() != weekday {
            d = d.pred_opt().unwrap_or(d);
        }
        return d;
    }
    let first = ymd(year, month, 1);
    let offset = (7 + weekday.num_days_from_monday() - first.weekday().num_days_from_monday()) % 7;
    first + Days::new(u64::from(offset + 7 * (n - 1)))
}

/// Easter Sunday (the anonymous Gregorian algorithm).
fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    ymd(year, month as u32, day as u32)
}

/// A fixed-date holiday moved off the weekend: Saturday to Friday, Sunday to Monday.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date.pred_opt().unwrap_or(date),
        Weekday::Sun => date.succ_opt().unwrap_or(date),
        _ => date,
    }
}

impl Year {
    fn by_rules(year: i32) -> Year {
        let mut holidays = Vec::with_capacity(12);
        // A Saturday New Year's Day is not moved into the old year.
        let new_year = ymd(year, 1, 1);
        if new_year.weekday() != Weekday::Sat {
            holidays.push(observed(new_year));
        }
        holidays.push(nth_weekday(year, 1, Weekday::Mon, 3));
        holidays.push(nth_weekday(year, 2, Weekday::Mon, 3));
        holidays.push(easter(year) - Days::new(2));
        holidays.push(nth_weekday(year, 5, Weekday::Mon, 0));
        if year >= 2022 {
            holidays.push(observed(ymd(year, 6, 19)));
        }
        let independence = ymd(year, 7, 4);
        holidays.push(observed(independence));
        holidays.push(nth_weekday(year, 9, Weekday::Mon, 1));
        let thanksgiving = nth_weekday(year, 11, Weekday::Thu, 4);
        holidays.push(thanksgiving);
        let christmas = ymd(year, 12, 25);
        holidays.push(observed(christmas));
        for (y, m, d) in ONE_OFF_CLOSURES {
            if y == year {
                holidays.push(ymd(y, m, d));
            }
        }
        holidays.sort();

        let mut early_closes = Vec::new();
        if matches!(
            independence.weekday(),
            Weekday::Tue | Weekday::Wed | Weekday::Thu | Weekday::Fri
        ) {
            early_closes.push(ymd(year, 7, 3));
        }
        early_closes.push(thanksgiving + Days::new(1));
        let eve = ymd(year, 12, 24);
        if matches!(
            eve.weekday(),
            Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu
        ) {
            early_closes.push(eve);
        }
        for (y, m, d) in ONE_OFF_EARLY_CLOSES {
            if y == year {
                early_closes.push(ymd(y, m, d));
            }
        }
        early_closes.retain(|d| !ONE_OFF_FULL_DAYS.contains(&(d.year(), d.month(), d.day())));
        early_closes.sort();
        Year {
            holidays,
            early_closes,
        }
    }
}

impl UsEquityCalendar {
    /// The calendar of every known year (computed once).
    pub fn get() -> &'static UsEquityCalendar {
        static CAL: OnceLock<UsEquityCalendar> = OnceLock::new();
        CAL.get_or_init(|| UsEquityCalendar {
            years: (FIRST_YEAR..=LAST_YEAR)
                .map(|y| (y, Year::by_rules(y)))
                .collect(),
        })
    }

    /// Refuses a date in a year the rules do not cover.
    pub fn check_known(&self, date: NaiveDate) -> Result<(), UnknownDate> {
        if self.years.contains_key(&date.year()) {
            Ok(())
        } else {
            Err(UnknownDate { date })
        }
    }

    /// Whether the regular session trades on `date`: a weekday of a known year that is
    /// not a holiday. A date the calendar cannot speak for is never a session.
    pub fn is_session(&self, date: NaiveDate) -> bool {
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            return false;
        }
        self.years
            .get(&date.year())
            .is_some_and(|y| !y.holidays.contains(&date))
    }

    /// Close time (New York) on `date`: 16:00, or 13:00 on an early close.
    pub fn close_time(&self, date: NaiveDate) -> NaiveTime {
        let early = self
            .years
            .get(&date.year())
            .is_some_and(|y| y.early_closes.contains(&date));
        NaiveTime::from_hms_opt(if early { 13 } else { 16 }, 0, 0).unwrap_or_default()
    }

    /// The last session before `date` (or the calendar's first day, before which
    /// nothing is known).
    pub fn previous_session(&self, date: NaiveDate) -> NaiveDate {
        let first = ymd(FIRST_YEAR, 1, 1);
        let mut day = date;
        while let Some(before) = day.pred_opt().filter(|d| *d >= first) {
            day = before;
            if self.is_session(day) {
                return day;
            }
        }
        day
    }

    /// The last session whose daily bar is final at `now` (New York time): today's
    /// once [`BAR_SETTLES_AFTER_CLOSE`] has passed since its close, else the one before.
    /// A bar of a session still trading would change after it is stored.
    pub fn last_completed_session(&self, now: chrono::NaiveDateTime) -> NaiveDate {
        let today = now.date();
        let settled = self.is_session(today)
            && now.time() >= self.close_time(today) + BAR_SETTLES_AFTER_CLOSE;
        if settled {
            today
        } else {
            self.previous_session(today)
        }
    }

    /// Sessions in `[from, to]`.
    pub fn sessions(&self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        from.iter_days()
            .take_while(|d| *d <= to)
            .filter(|d| self.is_session(*d))
            .collect()
    }

    /// The years the rules cover.
    pub fn covered_years(&self) -> (i32, i32) {
        (FIRST_YEAR, LAST_YEAR)
    }

    /// Weekday holidays of `year` (for tests and the README's table).
    pub fn holidays(&self, year: i32) -> Vec<NaiveDate> {
        self.years.get(&year).map_or_else(Vec::new, |y| {
            y.holidays
                .iter()
                .copied()
                .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// The exchanges' published calendar for 1998-2028 as LEAN's market-hours database
    /// lists it: the rules must reproduce every session and early close in it.
    #[test]
    fn the_rules_reproduce_the_published_calendar_1998_to_2028() {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Published {
            holidays: Vec<String>,
            early_closes: BTreeMap<String, String>,
        }
        let published: Published = serde_json::from_str(include_str!("us_equity.json")).unwrap();
        let mdy = |s: &str| NaiveDate::parse_from_str(s, "%m/%d/%Y").unwrap();
        let weekday = |d: &NaiveDate| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
        let listed: BTreeSet<NaiveDate> = published
            .holidays
            .iter()
            .map(|s| mdy(s))
            .filter(weekday)
            .collect();
        let cal = UsEquityCalendar::get();
        let ruled: BTreeSet<NaiveDate> = (1998..=2028).flat_map(|y| cal.holidays(y)).collect();
        assert_eq!(
            ruled.symmetric_difference(&listed).collect::<Vec<_>>(),
            Vec::<&NaiveDate>::new()
        );
        // The list starts its early closes in 1999.
        let listed_early: BTreeSet<NaiveDate> = published
            .early_closes
            .keys()
            .map(|s| mdy(s))
            .filter(weekday)
            .collect();
        let ruled_early: BTreeSet<NaiveDate> = (1999..=2028)
            .flat_map(|y| cal.sessions(d(y, 1, 1), d(y, 12, 31)))
            .filter(|day| cal.close_time(*day) < NaiveTime::from_hms_opt(16, 0, 0).unwrap())
            .collect();
        assert_eq!(
            ruled_early
                .symmetric_difference(&listed_early)
                .collect::<Vec<_>>(),
            Vec::<&NaiveDate>::new()
        );
    }

    #[test]
    fn holidays_by_their_rules_beyond_any_list() {
        let c = UsEquityCalendar::get();
        // Good Friday from Easter: 2030-04-21 is Easter Sunday.
        assert!(!c.is_session(d(2030, 4, 19)));
        // Juneteenth on a Saturday (2032) is observed on Friday the 18th.
        assert!(!c.is_session(d(2032, 6, 18)));
        // Christmas on a Sunday (2033) is observed on Monday the 26th.
        assert!(!c.is_session(d(2033, 12, 26)));
        // A Saturday New Year's Day (2039) moves nowhere: Friday 2038-12-31 trades.
        assert!(c.is_session(d(2038, 12, 31)));
        // Thanksgiving 2040 is the 22nd; the 23rd closes early.
        assert!(!c.is_session(d(2040, 11, 22)));
        assert_eq!(
            c.close_time(d(2040, 11, 23)),
            NaiveTime::from_hms_opt(13, 0, 0).unwrap()
        );
        assert!(c.is_session(d(2040, 11, 23)));
    }

    #[test]
    fn a_year_past_the_rules_is_refused_and_never_a_session() {
        let c = UsEquityCalendar::get();
        let far = d(2100, 3, 2);
        assert!(c.check_known(far).is_err());
        assert!(!c.is_session(far));
        assert!(c
            .check_known(far)
            .unwrap_err()
            .to_string()
            .contains("2100-03-02"));
        assert!(c.check_known(d(2099, 12, 31)).is_ok());
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
