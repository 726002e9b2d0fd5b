//! What `alchemiser data check` finds in a symbol's daily bars: sessions missing against
//! the trading calendar, bars on days that are not sessions, bars no market prints
//! (non-positive prices, high below low), and one-day moves beyond a bound that the next
//! bar does not confirm (a bad print that reverts). A symbol with a finding is not
//! traded on: `signals` and `run` refuse it, naming it.

use std::fmt;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{check_bar, DailyBar};
use crate::calendar::UsEquityCalendar;

/// One thing wrong with a symbol's bars, on a day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The day it concerns (the first missing session of a gap).
    pub date: NaiveDate,
    pub kind: FindingKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// Sessions between the first and last bar with no bar: `sessions` in a row from
    /// `date` to `last`.
    Gap { sessions: usize, last: NaiveDate },
    /// A bar dated on a weekend or holiday.
    NotASession,
    /// A bar no market prints (the reason).
    Impossible(String),
    /// The close moved by `change` (a fraction) from the previous close, beyond the bound,
    /// and the next bar went back more than half way (or there is no next bar yet).
    UnconfirmedMove { change: Decimal },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FindingKind::Gap { sessions: 1, .. } => {
                write!(f, "{}: no bar for this session", self.date)
            }
            FindingKind::Gap { sessions, last } => {
                write!(
                    f,
                    "{}: no bars for {sessions} sessions, to {last}",
                    self.date
                )
            }
            FindingKind::NotASession => write!(
                f,
                "{}: a bar on a day the market was closed ({})",
                self.date,
                crate::calendar::closed_because(self.date)
            ),
            FindingKind::Impossible(why) => write!(f, "{}: {why}", self.date),
            FindingKind::UnconfirmedMove { change } => write!(
                f,
                "{}: the close moved {}% in a day and the next bar does not confirm it",
                self.date,
                (change * Decimal::ONE_HUNDRED).round_dp(1)
            ),
        }
    }
}

/// The findings in `bars` (ascending dates), in date order. `max_move` bounds a one-day
/// close-to-close move (0.5: 50%); calendar checks cover the years the calendar knows.
pub fn findings(bars: &[DailyBar], max_move: Decimal) -> Vec<Finding> {
    let calendar = UsEquityCalendar::get();
    let mut out = Vec::new();
    for bar in bars {
        if let Err(why) = check_bar(bar) {
            out.push(Finding {
                date: bar.date,
                kind: FindingKind::Impossible(why),
            });
        }
        if calendar.check_known(bar.date).is_ok() && !calendar.is_session(bar.date) {
            out.push(Finding {
                date: bar.date,
                kind: FindingKind::NotASession,
            });
        }
    }
    for pair in bars.windows(2) {
        let (before, after) = (pair[0].date, pair[1].date);
        let missing: Vec<NaiveDate> = match before.succ_opt() {
            Some(from) if calendar.check_known(from).is_ok() => calendar
                .sessions(from, after.pred_opt().unwrap_or(after))
                .into_iter()
                .filter(|d| *d < after)
                .collect(),
            _ => Vec::new(),
        };
        if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
            out.push(Finding {
                date: *first,
                kind: FindingKind::Gap {
                    sessions: missing.len(),
                    last: *last,
                },
            });
        }
    }
    for (i, bar) in bars.iter().enumerate().skip(1) {
        let previous = bars[i - 1].close;
        if previous <= Decimal::ZERO || bar.close <= Decimal::ZERO {
            continue;
        }
        let change = bar.close / previous - Decimal::ONE;
        if change.abs() <= max_move {
            continue;
        }
        // Confirmed when the next close stays nearer the new level than the old one.
        let confirmed = bars.get(i + 1).is_some_and(|next| {
            (next.close - bar.close).abs() * Decimal::TWO < (bar.close - previous).abs()
        });
        if !confirmed {
            out.push(Finding {
                date: bar.date,
                kind: FindingKind::UnconfirmedMove {
                    change: change.round_dp(4),
                },
            });
        }
    }
    out.sort_by_key(|f| f.date);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn bars(closes: &[(&str, i64)]) -> Vec<DailyBar> {
        closes
            .iter()
            .map(|(d, c)| DailyBar::flat(day(d), Decimal::new(*c, 2)))
            .collect()
    }

    #[test]
    fn clean_bars_have_no_findings() {
        let b = bars(&[
            ("2024-01-02", 10_000),
            ("2024-01-03", 10_100),
            ("2024-01-04", 9_900),
            ("2024-01-05", 10_000),
            ("2024-01-08", 10_200),
        ]);
        assert_eq!(findings(&b, Decimal::new(5, 1)), Vec::new());
    }

    #[test]
    fn gaps_weekend_bars_impossible_bars_and_spikes_are_found_each_on_its_day() {
        let mut b = bars(&[
            ("2024-01-02", 10_000),
            ("2024-01-03", 10_100),
            // 2024-01-04 and -05 missing
            ("2024-01-06", 10_100), // a Saturday
            ("2024-01-08", 30_000), // +197%, back the next day: a bad print
            ("2024-01-09", 10_050),
            ("2024-01-10", 5_000), // -50.2%, and it stays: a real move
            ("2024-01-11", 5_100),
            ("2024-01-12", 1_000), // -80%, the last bar: nothing confirms it yet
        ]);
        b[1].high = Decimal::new(9_000, 2); // high below low
        let got: Vec<String> = findings(&b, Decimal::new(5, 1))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "2024-01-03: high 90.00 is below low 101.00",
                "2024-01-04: no bars for 2 sessions, to 2024-01-05",
                "2024-01-06: a bar on a day the market was closed (a Saturday)",
                "2024-01-08: the close moved 197.0% in a day and the next bar does not confirm it",
                "2024-01-12: the close moved -80.4% in a day and the next bar does not confirm it",
            ]
        );
    }
}
