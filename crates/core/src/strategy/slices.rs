//! When a file's slice trades: Composer's trading settings, read from the symphony's
//! header, and the slices they keep; and when the account sets the files' shares back
//! to their configured weights (`[strategy] rebalance`, read into a [`TradingRule`]
//! too: daily by default, so configured weights hold every day).
//!
//! Each file owns a slice of the portfolio: between its trades a slice holds what it
//! bought, so its weights drift with prices. A slice trades back to its file's targets
//! when its rule says so; a slice that does not trade keeps its drifted holdings, and
//! the plan moves none of them. Its share of the portfolio drifts with its value until
//! the account's rule sets it back.
//!
//! - Calendar (`:rebalance` or `:rebalance-frequency`: `daily`, `weekly`, `monthly`,
//!   `quarterly`, `yearly`, `none`): the slice trades on the first session of each
//!   period, i.e. on a session whose previous session lies in another ISO week, month,
//!   quarter or year. (Composer says only that a symphony trades "during the next trading
//!   period that falls on a trading day as defined by the symphony logic"; the first
//!   session of the period is this engine's rule, for backtests and `run` alike.)
//! - Threshold (`:rebalance-threshold T`, Composer's corridor trading): the slice trades
//!   when some holding's drifted weight within the slice is more than `T` (absolute,
//!   0.05 = 5 percentage points) away from its target. With a threshold the calendar
//!   defaults to `none`.
//! - Always: a slice trades on its first evaluation and when the set of symbols its file
//!   targets differs from the set it holds (a branch switch), whatever its rule.
//!
//! The slices are the ideal ones (every trade filled at the close it was decided on); the
//! account itself is reconciled against the venue as always.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::domain::Symbol;

/// A calendar trading setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calendar {
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
    /// Only on a threshold breach or a branch switch.
    None,
}

impl Calendar {
    fn parse(text: &str) -> Option<Calendar> {
        Some(match text.trim_start_matches(':') {
            "daily" => Calendar::Daily,
            "weekly" => Calendar::Weekly,
            "monthly" => Calendar::Monthly,
            "quarterly" => Calendar::Quarterly,
            "yearly" | "annually" => Calendar::Yearly,
            "none" => Calendar::None,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Calendar::Daily => "daily",
            Calendar::Weekly => "weekly",
            Calendar::Monthly => "monthly",
            Calendar::Quarterly => "quarterly",
            Calendar::Yearly => "yearly",
            Calendar::None => "none",
        }
    }

    /// Which period `day` belongs to (two days of one period give the same key).
    fn period(self, day: NaiveDate) -> Option<(i32, u32)> {
        match self {
            Calendar::Daily => Some((day.year(), day.ordinal())),
            Calendar::Weekly => {
                let w = day.iso_week();
                Some((w.year(), w.week()))
            }
            Calendar::Monthly => Some((day.year(), day.month())),
            Calendar::Quarterly => Some((day.year(), (day.month() - 1) / 3)),
            Calendar::Yearly => Some((day.year(), 0)),
            Calendar::None => None,
        }
    }

    /// Whether `day` is the first session of its period, `previous` being the session
    /// before it.
    pub fn starts_period(self, day: NaiveDate, previous: NaiveDate) -> bool {
        match (self.period(day), self.period(previous)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        }
    }
}

/// One file's trading setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TradingRule {
    pub calendar: Calendar,
    pub threshold: Option<Decimal>,
}

impl TradingRule {
    pub const DAILY: TradingRule = TradingRule {
        calendar: Calendar::Daily,
        threshold: None,
    };

    /// The rule a symphony's header sets; an unknown setting is an error naming the key.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<TradingRule, String> {
        let threshold = match options.get("rebalance-threshold") {
            None => None,
            Some(t) => match t.parse::<Decimal>() {
                Ok(t) if t > Decimal::ZERO && t < Decimal::ONE => Some(t),
                _ => {
                    return Err(format!(
                        ":rebalance-threshold {t}: expected a weight between 0 and 1 (0.05 = 5 percentage points)"
                    ))
                }
            },
        };
        let key = ["rebalance", "rebalance-frequency"]
            .into_iter()
            .find(|k| options.contains_key(*k));
        let calendar = match key {
            None if threshold.is_some() => Calendar::None,
            None => Calendar::Daily,
            Some(key) => {
                let text = &options[key];
                Calendar::parse(text).ok_or_else(|| {
                    format!(
                        ":{key} {text}: expected daily, weekly, monthly, quarterly, yearly or none"
                    )
                })?
            }
        };
        Ok(TradingRule {
            calendar,
            threshold,
        })
    }

    /// The account's rule over the files' shares (`[strategy] rebalance` and
    /// `rebalance_threshold`), read like a file's header.
    pub fn for_account(
        rebalance: super::settings::AccountRebalance,
        threshold: Option<Decimal>,
    ) -> TradingRule {
        use super::settings::AccountRebalance as A;
        TradingRule {
            calendar: match rebalance {
                A::Daily => Calendar::Daily,
                A::Weekly => Calendar::Weekly,
                A::Monthly => Calendar::Monthly,
                A::Quarterly => Calendar::Quarterly,
                A::Yearly => Calendar::Yearly,
                A::None => Calendar::None,
            },
            threshold,
        }
    }

    pub fn is_daily(&self) -> bool {
        self.calendar == Calendar::Daily
    }

    /// Whether the account sets the files' `shares` (drifted since the last session)
    /// back to their `configured` weights on `day`: on the rule's calendar, or when one
    /// has drifted past the threshold.
    pub fn resets_shares(
        &self,
        shares: &[Decimal],
        configured: &[Decimal],
        day: NaiveDate,
        previous_session: NaiveDate,
    ) -> Decision {
        if self.calendar.starts_period(day, previous_session) {
            return Decision {
                trades: true,
                reason: format!("{} account rebalance", self.calendar.as_str()),
            };
        }
        let widest = shares
            .iter()
            .zip(configured)
            .map(|(s, c)| (*s - *c).abs())
            .max()
            .unwrap_or_default();
        match self.threshold {
            Some(t) if widest > t => Decision {
                trades: true,
                reason: format!(
                    "a share drifted {} from its weight, beyond {t}",
                    widest.round_dp(4)
                ),
            },
            _ => Decision {
                trades: false,
                reason: "shares drift until the account's next rebalance".into(),
            },
        }
    }

    /// Whether a slice holding `held` (drifted weights) trades to `target` on `day`.
    pub fn decide(
        &self,
        held: Option<&BTreeMap<Symbol, Decimal>>,
        target: &BTreeMap<Symbol, Decimal>,
        day: NaiveDate,
        previous_session: NaiveDate,
    ) -> Decision {
        let trade = |reason: String| Decision {
            trades: true,
            reason,
        };
        let Some(held) = held else {
            return trade("first evaluation of the slice".into());
        };
        let symbols = |m: &BTreeMap<Symbol, Decimal>| -> BTreeSet<Symbol> {
            m.iter()
                .filter(|(_, w)| !w.is_zero())
                .map(|(s, _)| s.clone())
                .collect()
        };
        if symbols(held) != symbols(target) {
            return trade("its targets changed symbols (a branch switch)".into());
        }
        if self.calendar.starts_period(day, previous_session) {
            return trade(match self.calendar {
                Calendar::Daily => "daily".into(),
                c => format!("first session of the {} period", c.as_str()),
            });
        }
        if let Some(threshold) = self.threshold {
            let union: BTreeSet<&Symbol> = held.keys().chain(target.keys()).collect();
            // The widest gap; of equal ones, the first symbol's.
            let widest = union.into_iter().fold(None, |widest, s| {
                let h = held.get(s).copied().unwrap_or_default();
                let t = target.get(s).copied().unwrap_or_default();
                let gap = (h - t).abs();
                match widest {
                    Some((g, _)) if g >= gap => widest,
                    _ => Some((gap, s)),
                }
            });
            if let Some((gap, symbol)) = widest.filter(|(gap, _)| *gap > threshold) {
                return trade(format!(
                    "{symbol} drifted {} from its target, beyond the threshold {threshold}",
                    gap.round_dp(4)
                ));
            }
            return Decision {
                trades: false,
                reason: format!("every holding within {threshold} of its target"),
            };
        }
        Decision {
            trades: false,
            reason: format!(
                "not the first session of a {} period",
                self.calendar.as_str()
            ),
        }
    }
}

/// Whether a slice trades today, and why (in words for the signal and `signals`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub trades: bool,
    pub reason: String,
}

/// A slice after a day's trading: its share of the portfolio and its weights within
/// itself (summing to 1 or less; the rest is the slice's cash).
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    pub share: Decimal,
    pub weights: BTreeMap<Symbol, Decimal>,
}

/// Decimal places the drifted weights and shares keep.
const DRIFT_DP: u32 = 12;

/// The slices after prices moved: each holding's value grows by its symbol's `growth`
/// (today's close over the close the slices were last valued at; 1 when unknown), a
/// slice's cash does not, and the shares follow their slices' values.
pub fn drift(slices: &[Slice], growth: impl Fn(&Symbol) -> Decimal) -> Vec<Slice> {
    let grown: Vec<(Decimal, BTreeMap<Symbol, Decimal>)> = slices
        .iter()
        .map(|slice| {
            let invested: Decimal = slice.weights.values().sum();
            let cash = (Decimal::ONE - invested).max(Decimal::ZERO);
            let values: BTreeMap<Symbol, Decimal> = slice
                .weights
                .iter()
                .map(|(s, w)| (s.clone(), *w * growth(s)))
                .collect();
            let value: Decimal = cash + values.values().sum::<Decimal>();
            (value, values)
        })
        .collect();
    let total: Decimal = slices
        .iter()
        .zip(&grown)
        .map(|(slice, (value, _))| slice.share * *value)
        .sum();
    slices
        .iter()
        .zip(grown)
        .map(|(slice, (value, values))| {
            let weights = if value.is_zero() {
                BTreeMap::new()
            } else {
                values
                    .into_iter()
                    .map(|(s, v)| (s, (v / value).round_dp(DRIFT_DP)))
                    .collect()
            };
            let share = if total.is_zero() {
                slice.share
            } else {
                (slice.share * value / total).round_dp(DRIFT_DP)
            };
            Slice { share, weights }
        })
        .collect()
}

/// The slices of every evaluated day (as they stand after its trades), so that a day
/// evaluated again, or out of order, starts from the same day before.
#[derive(Debug, Default)]
pub struct SliceLedger {
    days: BTreeMap<NaiveDate, Vec<Slice>>,
}

impl SliceLedger {
    /// The slices after the last evaluated day before `day`.
    pub fn before(&self, day: NaiveDate) -> Option<(NaiveDate, &Vec<Slice>)> {
        self.days.range(..day).next_back().map(|(d, s)| (*d, s))
    }

    pub fn record(&mut self, day: NaiveDate, slices: Vec<Slice>) {
        self.days.insert(day, slices);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rules_read_from_the_header_and_refuse_what_they_do_not_know() {
        assert_eq!(
            TradingRule::from_options(&options(&[])),
            Ok(TradingRule::DAILY)
        );
        assert_eq!(
            TradingRule::from_options(&options(&[("rebalance-threshold", "0.05")])),
            Ok(TradingRule {
                calendar: Calendar::None,
                threshold: Some(dec!(0.05))
            })
        );
        assert_eq!(
            TradingRule::from_options(&options(&[("rebalance", ":monthly")])).map(|r| r.calendar),
            Ok(Calendar::Monthly)
        );
        let bad = TradingRule::from_options(&options(&[("rebalance-frequency", ":fortnightly")]))
            .unwrap_err();
        assert!(bad.contains(":rebalance-frequency :fortnightly"), "{bad}");
        let bad = TradingRule::from_options(&options(&[("rebalance-threshold", "5")])).unwrap_err();
        assert!(bad.contains(":rebalance-threshold 5"), "{bad}");
    }

    #[test]
    fn calendar_periods_start_on_their_first_session() {
        // Friday 2021-12-31 → Monday 2022-01-03: new week, month, quarter and year.
        for c in [
            Calendar::Weekly,
            Calendar::Monthly,
            Calendar::Quarterly,
            Calendar::Yearly,
        ] {
            assert!(c.starts_period(d("2022-01-03"), d("2021-12-31")), "{c:?}");
        }
        // Tuesday after Monday: none starts.
        for c in [
            Calendar::Weekly,
            Calendar::Monthly,
            Calendar::Quarterly,
            Calendar::Yearly,
        ] {
            assert!(!c.starts_period(d("2022-01-04"), d("2022-01-03")), "{c:?}");
        }
        // Monday 2022-01-31 → Tuesday 2022-02-01: month, not quarter.
        assert!(Calendar::Monthly.starts_period(d("2022-02-01"), d("2022-01-31")));
        assert!(!Calendar::Quarterly.starts_period(d("2022-02-01"), d("2022-01-31")));
        assert!(!Calendar::Weekly.starts_period(d("2022-02-01"), d("2022-01-31")));
        assert!(Calendar::Daily.starts_period(d("2022-02-01"), d("2022-01-31")));
        assert!(!Calendar::None.starts_period(d("2022-02-01"), d("2022-01-31")));
    }

    #[test]
    fn drift_grows_holdings_not_cash_and_moves_shares() {
        // Slice A: half X, half cash; slice B: all Y. X doubles, Y is flat.
        let slices = vec![
            Slice {
                share: dec!(0.5),
                weights: BTreeMap::from([(Symbol::from("X"), dec!(0.5))]),
            },
            Slice {
                share: dec!(0.5),
                weights: BTreeMap::from([(Symbol::from("Y"), dec!(1))]),
            },
        ];
        let drifted = drift(&slices, |s| if s == "X" { dec!(2) } else { dec!(1) });
        // A: X 1.0 + cash 0.5 = 1.5 → X weighs 2/3; shares 1.5 : 1 → 0.6 : 0.4.
        assert_eq!(drifted[0].weights["X"], dec!(0.666666666667));
        assert_eq!(drifted[0].share, dec!(0.6));
        assert_eq!(drifted[1].share, dec!(0.4));
        assert_eq!(drifted[1].weights["Y"], dec!(1));
    }
}
