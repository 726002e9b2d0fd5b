//! Relative strength index with the original system's smoothing.

use super::{finite, min_window, need, smoothing_history, IndicatorError};

/// RSI(n) on the last close. Δ_t = c_t − c_{t−1} with the first Δ taken as 0; gains and
/// losses are smoothed by an exponential average with α = 1/n seeded at the first value
/// (avg_0 = 0); RSI = 100 − 100/(1 + avg_gain/avg_loss), 100 when avg_loss = 0, 50 when
/// both are 0. Evaluated over the last max(3n, 200) closes (all, when fewer); needs n + 1.
pub fn rsi(closes: &[f64], n: usize) -> Result<f64, IndicatorError> {
    min_window(n, 1, "rsi")?;
    need(closes, n + 1, "rsi", n)?;
    let tail = &closes[closes.len().saturating_sub(smoothing_history(n))..];
    let alpha = 1.0 / n as f64;
    let (mut avg_gain, mut avg_loss) = (0.0f64, 0.0f64);
    for w in tail.windows(2) {
        let delta = w[1] - w[0];
        avg_gain = (1.0 - alpha) * avg_gain + alpha * delta.max(0.0);
        avg_loss = (1.0 - alpha) * avg_loss + alpha * (-delta).max(0.0);
    }
    let value = if avg_loss == 0.0 && avg_gain == 0.0 {
        50.0
    } else if avg_loss == 0.0 {
        100.0
    } else {
        100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    };
    finite(value, "rsi", n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_is_50_rising_is_100() {
        assert_eq!(rsi(&[5.0; 30], 10).unwrap(), 50.0);
        let up: Vec<f64> = (0..30).map(f64::from).collect();
        assert_eq!(rsi(&up, 10).unwrap(), 100.0);
        let down: Vec<f64> = (0..30).map(|i| 100.0 - f64::from(i)).collect();
        assert_eq!(rsi(&down, 10).unwrap(), 0.0);
    }

    #[test]
    fn matches_a_hand_computed_series() {
        // closes 1, 2, 1, 3 with n = 2 (α = 0.5); first Δ (the seed) is 0.
        // Δ: +1, −1, +2 → gains 0.5, 0.25, 1.125; losses 0, 0.5, 0.25.
        let v = rsi(&[1.0, 2.0, 1.0, 3.0], 2).unwrap();
        let expected = 100.0 - 100.0 / (1.0 + 1.125 / 0.25);
        assert!((v - expected).abs() < 1e-12, "{v} vs {expected}");
    }

    #[test]
    fn uses_only_the_last_max_3n_200_closes() {
        let mut long: Vec<f64> = (0..500)
            .map(|i| 100.0 + (f64::from(i) * 0.7).sin())
            .collect();
        let tail_only = long[300..].to_vec();
        assert_eq!(rsi(&long, 10).unwrap(), rsi(&tail_only, 10).unwrap());
        long[0] = 1.0; // outside the tail: no effect
        assert_eq!(rsi(&long, 10).unwrap(), rsi(&tail_only, 10).unwrap());
    }

    #[test]
    fn short_history_is_an_error() {
        let err = rsi(&[1.0; 10], 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rsi with window 10 needs 11 bars of history, 10 available"
        );
    }
}
