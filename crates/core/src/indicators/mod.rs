//! Indicators on closes, with the conventions of the system this engine replaces.
//!
//! Each is a pure function over the closes up to the evaluation day (oldest first).
//! Maths is `f64`; callers convert results to `Decimal` at the boundary. Too little
//! history is an error naming the indicator and what it needs, never a silent 0.

mod drawdown;
mod moving_average;
mod returns;
mod rsi;

pub use drawdown::max_drawdown;
pub use moving_average::{exponential_moving_average, moving_average};
pub use returns::{
    cumulative_return, daily_returns_pct, moving_average_return, returns_column, sample_stdev,
    stdev_price, stdev_return,
};
pub use rsi::rsi;

use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndicatorKind {
    Rsi,
    CurrentPrice,
    MovingAveragePrice,
    ExponentialMovingAveragePrice,
    CumulativeReturn,
    MovingAverageReturn,
    StdevReturn,
    StdevPrice,
    MaxDrawdown,
}

impl IndicatorKind {
    pub const ALL: &'static [IndicatorKind] = &[
        IndicatorKind::Rsi,
        IndicatorKind::CurrentPrice,
        IndicatorKind::MovingAveragePrice,
        IndicatorKind::ExponentialMovingAveragePrice,
        IndicatorKind::CumulativeReturn,
        IndicatorKind::MovingAverageReturn,
        IndicatorKind::StdevReturn,
        IndicatorKind::StdevPrice,
        IndicatorKind::MaxDrawdown,
    ];

    /// The name used in symphony files.
    pub fn name(self) -> &'static str {
        match self {
            IndicatorKind::Rsi => "rsi",
            IndicatorKind::CurrentPrice => "current-price",
            IndicatorKind::MovingAveragePrice => "moving-average-price",
            IndicatorKind::ExponentialMovingAveragePrice => "exponential-moving-average-price",
            IndicatorKind::CumulativeReturn => "cumulative-return",
            IndicatorKind::MovingAverageReturn => "moving-average-return",
            IndicatorKind::StdevReturn => "stdev-return",
            IndicatorKind::StdevPrice => "stdev-price",
            IndicatorKind::MaxDrawdown => "max-drawdown",
        }
    }

    pub fn from_name(name: &str) -> Option<IndicatorKind> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    pub fn takes_window(self) -> bool {
        self != IndicatorKind::CurrentPrice
    }

    /// The smallest window the indicator is defined on: a sample standard deviation
    /// needs two values. Checked when a symphony loads, so a file that could never
    /// evaluate is refused then, not on the day it first runs.
    pub fn min_window(self) -> usize {
        match self {
            IndicatorKind::StdevReturn | IndicatorKind::StdevPrice => 2,
            _ => 1,
        }
    }
}

/// An indicator with its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Indicator {
    pub kind: IndicatorKind,
    pub window: usize,
}

#[derive(Clone, Debug, Error, PartialEq)]
pub enum IndicatorError {
    #[error(
        "{indicator} with window {window} needs {needed} bars of history, {available} available"
    )]
    ShortHistory {
        indicator: &'static str,
        window: usize,
        needed: usize,
        available: usize,
    },
    #[error("{indicator}: window must be at least {min}, got {window}")]
    BadWindow {
        indicator: &'static str,
        window: usize,
        min: usize,
    },
    #[error("{indicator} with window {window} is not a finite number (a zero or invalid price in the window)")]
    NotFinite {
        indicator: &'static str,
        window: usize,
    },
}

pub(crate) fn need(
    closes: &[f64],
    needed: usize,
    indicator: &'static str,
    window: usize,
) -> Result<(), IndicatorError> {
    if closes.len() < needed {
        Err(IndicatorError::ShortHistory {
            indicator,
            window,
            needed,
            available: closes.len(),
        })
    } else {
        Ok(())
    }
}

pub(crate) fn min_window(
    window: usize,
    min: usize,
    indicator: &'static str,
) -> Result<(), IndicatorError> {
    if window < min {
        Err(IndicatorError::BadWindow {
            indicator,
            window,
            min,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn finite(
    v: f64,
    indicator: &'static str,
    window: usize,
) -> Result<f64, IndicatorError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(IndicatorError::NotFinite { indicator, window })
    }
}

/// Bars of history the smoothed indicators (RSI, EMA) are evaluated over: max(3n, 200),
/// or all that exist when there are fewer. A fixed tail keeps results independent of
/// where the data happens to start.
pub fn smoothing_history(window: usize) -> usize {
    (3 * window).max(200)
}

impl Indicator {
    pub fn new(kind: IndicatorKind, window: usize) -> Self {
        Self { kind, window }
    }

    /// The indicator's value on the last of `closes`.
    pub fn compute(&self, closes: &[f64]) -> Result<f64, IndicatorError> {
        let n = self.window;
        match self.kind {
            IndicatorKind::Rsi => rsi(closes, n),
            IndicatorKind::CurrentPrice => {
                need(closes, 1, "current-price", 0)?;
                finite(closes[closes.len() - 1], "current-price", 0)
            }
            IndicatorKind::MovingAveragePrice => moving_average(closes, n),
            IndicatorKind::ExponentialMovingAveragePrice => exponential_moving_average(closes, n),
            IndicatorKind::CumulativeReturn => cumulative_return(closes, n),
            IndicatorKind::MovingAverageReturn => moving_average_return(closes, n),
            IndicatorKind::StdevReturn => stdev_return(closes, n),
            IndicatorKind::StdevPrice => stdev_price(closes, n),
            IndicatorKind::MaxDrawdown => max_drawdown(closes, n),
        }
    }

    /// [`Self::compute`], reading daily returns from `returns_pct` (the series' column
    /// from [`returns_column`], up to its last close) instead of dividing closes again: a
    /// filter over hundreds of symbols by a return metric spent its time dividing.
    pub fn compute_with_returns(
        &self,
        closes: &[f64],
        returns_pct: &[f64],
    ) -> Result<f64, IndicatorError> {
        let n = self.window;
        let last = |k: usize| &returns_pct[returns_pct.len().saturating_sub(k)..];
        match self.kind {
            IndicatorKind::StdevReturn => returns::stdev_of_returns(closes, last(n), n),
            IndicatorKind::MovingAverageReturn => {
                returns::moving_average_of_returns(closes, last(n), n)
            }
            _ => self.compute(closes),
        }
    }

    /// Whether [`Self::compute_with_returns`] reads returns.
    pub fn reads_returns(&self) -> bool {
        matches!(
            self.kind,
            IndicatorKind::StdevReturn | IndicatorKind::MovingAverageReturn
        )
    }

    /// The most bars `compute` looks at (what a synthetic series must provide).
    pub fn lookback(&self) -> usize {
        let n = self.window;
        match self.kind {
            IndicatorKind::Rsi | IndicatorKind::ExponentialMovingAveragePrice => {
                smoothing_history(n)
            }
            IndicatorKind::CurrentPrice => 1,
            IndicatorKind::MovingAveragePrice
            | IndicatorKind::StdevPrice
            | IndicatorKind::MaxDrawdown => n,
            IndicatorKind::CumulativeReturn
            | IndicatorKind::MovingAverageReturn
            | IndicatorKind::StdevReturn => n + 1,
        }
    }

    /// The fewest bars `compute` accepts (fewer is a short-history error): what a
    /// symbol must have before a strategy using this indicator can evaluate.
    pub fn min_history(&self) -> usize {
        let n = self.window;
        match self.kind {
            IndicatorKind::Rsi => n + 1,
            IndicatorKind::ExponentialMovingAveragePrice => n,
            _ => self.lookback(),
        }
    }

    /// `rsi(SPY,10)`: how the value is labelled in signals (inline when short: every
    /// signal carries a label per indicator it used). Written piece by piece: the
    /// formatting machinery took a tenth of the signal thread's time.
    pub fn label(&self, subject: &str) -> compact_str::CompactString {
        let name = self.kind.name();
        let mut label = compact_str::CompactString::with_capacity(name.len() + subject.len() + 8);
        label.push_str(name);
        label.push('(');
        label.push_str(subject);
        if self.kind.takes_window() {
            label.push(',');
            label.push_str(itoa::Buffer::new().format(self.window));
        }
        label.push(')');
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading a series' returns column gives every indicator the bits (and the errors)
    /// that computing from the closes gives, at every length of history.
    #[test]
    fn the_returns_column_gives_the_same_bits_as_the_closes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let mut close = 50.0;
        let closes: Vec<f64> = (0..400)
            .map(|_| {
                close *= 1.0 + rng.random_range(-0.04..0.04);
                close
            })
            .collect();
        let column = returns_column(&closes);
        assert_eq!(column.len(), closes.len() - 1);
        for kind in IndicatorKind::ALL {
            for window in [1, 2, 3, 5, 20, 63, 64, 65, 200] {
                let indicator = Indicator::new(*kind, window);
                for n in 1..=closes.len() {
                    let direct = indicator.compute(&closes[..n]);
                    let read = indicator.compute_with_returns(&closes[..n], &column[..n - 1]);
                    assert_eq!(
                        direct.map(f64::to_bits),
                        read.map(f64::to_bits),
                        "{kind:?} {window} at {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn min_history_is_exactly_what_compute_accepts() {
        // A wavy positive series, so no value is undefined for want of movement.
        let closes: Vec<f64> = (0..700)
            .map(|i| 100.0 + (i as f64 * 0.7).sin() * 5.0)
            .collect();
        for kind in IndicatorKind::ALL {
            for window in [2, 5, 10, 60, 200] {
                let indicator = Indicator::new(*kind, window);
                let n = indicator.min_history();
                assert!(
                    indicator.compute(&closes[..n]).is_ok(),
                    "{kind:?}({window}) on {n} bars"
                );
                assert!(
                    matches!(
                        indicator.compute(&closes[..n - 1]),
                        Err(IndicatorError::ShortHistory { .. })
                    ),
                    "{kind:?}({window}) on {} bars",
                    n - 1
                );
            }
        }
    }

    #[test]
    fn labels_name_the_indicator_its_subject_and_window() {
        for kind in IndicatorKind::ALL {
            for window in [1, 10, 200, 12345] {
                let indicator = Indicator {
                    kind: *kind,
                    window,
                };
                let expected = if kind.takes_window() {
                    format!("{}(SPY,{window})", kind.name())
                } else {
                    format!("{}(SPY)", kind.name())
                };
                assert_eq!(indicator.label("SPY").as_str(), expected);
            }
        }
        let rsi = Indicator {
            kind: IndicatorKind::Rsi,
            window: 10,
        };
        assert_eq!(rsi.label("IWM").as_str(), "rsi(IWM,10)");
    }
}
