//! Return-based indicators, in percent.

use super::{finite, min_window, need, IndicatorError};

/// Daily percentage changes ×100 of the last `n` days (needs n + 1 closes).
pub fn daily_returns_pct(closes: &[f64], n: usize) -> impl Iterator<Item = f64> + '_ {
    let tail = &closes[closes.len().saturating_sub(n + 1)..];
    tail.windows(2).map(|w| (w[1] / w[0] - 1.0) * 100.0)
}

/// (c_t / c_{t−n} − 1)·100.
pub fn cumulative_return(closes: &[f64], n: usize) -> Result<f64, IndicatorError> {
    let name = "cumulative-return";
    min_window(n, 1, name)?;
    need(closes, n + 1, name, n)?;
    let last = closes[closes.len() - 1];
    let then = closes[closes.len() - 1 - n];
    finite((last / then - 1.0) * 100.0, name, n)
}

/// Mean of the last `n` daily percentage changes.
pub fn moving_average_return(closes: &[f64], n: usize) -> Result<f64, IndicatorError> {
    let returns: Vec<f64> = daily_returns_pct(closes, n).collect();
    moving_average_of_returns(closes, &returns, n)
}

/// Sample standard deviation (n − 1) of the last `n` daily percentage changes.
pub fn stdev_return(closes: &[f64], n: usize) -> Result<f64, IndicatorError> {
    let returns: Vec<f64> = daily_returns_pct(closes, n).collect();
    stdev_of_returns(closes, &returns, n)
}

/// [`moving_average_return`] given the last `n` returns of `closes` (computed here, or
/// read from the series' column: the same values).
pub(crate) fn moving_average_of_returns(
    closes: &[f64],
    returns: &[f64],
    n: usize,
) -> Result<f64, IndicatorError> {
    let name = "moving-average-return";
    min_window(n, 1, name)?;
    need(closes, n + 1, name, n)?;
    finite(returns.iter().sum::<f64>() / n as f64, name, n)
}

/// [`stdev_return`] given the last `n` returns of `closes`.
pub(crate) fn stdev_of_returns(
    closes: &[f64],
    returns: &[f64],
    n: usize,
) -> Result<f64, IndicatorError> {
    let name = "stdev-return";
    min_window(n, 2, name)?;
    need(closes, n + 1, name, n)?;
    finite(sample_stdev(returns), name, n)
}

/// Every daily percentage change of `closes`: element `i` is that from close `i` to
/// close `i + 1`, computed as [`daily_returns_pct`] computes it.
pub fn returns_column(closes: &[f64]) -> Vec<f64> {
    daily_returns_pct(closes, closes.len()).collect()
}

/// Sample standard deviation (n − 1) of the last `n` closes, in price units: how far
/// the price strays from its `n`-day average (pandas' `rolling(n).std()`).
pub fn stdev_price(closes: &[f64], n: usize) -> Result<f64, IndicatorError> {
    let name = "stdev-price";
    min_window(n, 2, name)?;
    need(closes, n, name, n)?;
    finite(sample_stdev(&closes[closes.len() - n..]), name, n)
}

/// Sample standard deviation of a sequence (n − 1 in the denominator).
pub fn sample_stdev(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdev_price_is_the_sample_stdev_of_the_last_closes_in_price_units() {
        // The last 4 closes 2, 4, 4, 6: mean 4, squares 4+0+0+4 = 8, / 3, sqrt.
        let closes = [100.0, 2.0, 4.0, 4.0, 6.0];
        let got = stdev_price(&closes, 4).unwrap();
        assert!((got - (8.0f64 / 3.0).sqrt()).abs() < 1e-12, "{got}");
        assert!(stdev_price(&closes, 6).is_err(), "needs 6 closes");
        assert!(stdev_price(&closes, 1).is_err(), "window of at least 2");
    }

    #[test]
    fn cumulative_return_over_n_days() {
        assert!((cumulative_return(&[100.0, 50.0, 110.0], 2).unwrap() - 10.0).abs() < 1e-12);
    }

    #[test]
    fn mean_and_stdev_of_daily_changes() {
        // changes: +10%, −10% → mean 0, sample stdev √(200) ≈ 14.142
        let c = [5.0, 100.0, 110.0, 99.0];
        assert!(moving_average_return(&c, 2).unwrap().abs() < 1e-12);
        assert!((stdev_return(&c, 2).unwrap() - 200f64.sqrt()).abs() < 1e-9);
        assert!(stdev_return(&c, 1).is_err());
        assert!(stdev_return(&c[..2], 2).is_err());
    }
}
