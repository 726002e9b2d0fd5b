//! Simple and exponential moving averages of closes.

use super::{finite, min_window, need, smoothing_history, IndicatorError};

/// Mean of the last `n` closes.
pub fn moving_average(closes: &[f64], n: usize) -> Result<f64, IndicatorError> {
    min_window(n, 1, "moving-average-price")?;
    need(closes, n, "moving-average-price", n)?;
    let tail = &closes[closes.len() - n..];
    finite(
        tail.iter().sum::<f64>() / n as f64,
        "moving-average-price",
        n,
    )
}

/// EMA with α = 2/(n+1), seeded at the first close of the last max(3n, 200) closes.
pub fn exponential_moving_average(closes: &[f64], n: usize) -> Result<f64, IndicatorError> {
    let name = "exponential-moving-average-price";
    min_window(n, 1, name)?;
    need(closes, n, name, n)?;
    let tail = &closes[closes.len().saturating_sub(smoothing_history(n))..];
    let alpha = 2.0 / (n as f64 + 1.0);
    let mut ema = tail[0];
    for c in &tail[1..] {
        ema = alpha * c + (1.0 - alpha) * ema;
    }
    finite(ema, name, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sma_is_the_mean_of_the_last_n() {
        assert_eq!(moving_average(&[1.0, 2.0, 3.0, 4.0], 2).unwrap(), 3.5);
        assert!(moving_average(&[1.0], 2).is_err());
    }

    #[test]
    fn ema_is_seeded_at_the_first_close() {
        // n = 3: α = 0.5; 2 → 0.5·4 + 0.5·2 = 3 → 0.5·6 + 0.5·3 = 4.5
        assert_eq!(
            exponential_moving_average(&[2.0, 4.0, 6.0], 3).unwrap(),
            4.5
        );
    }
}
