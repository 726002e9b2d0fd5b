//! Maximum drawdown within a window.

use super::{finite, min_window, need, IndicatorError};

/// Largest (running peak − close)/running peak ·100 within the last `n` closes, the
/// running peak starting at the window's first close.
pub fn max_drawdown(closes: &[f64], n: usize) -> Result<f64, IndicatorError> {
    let name = "max-drawdown";
    min_window(n, 1, name)?;
    need(closes, n, name, n)?;
    let mut peak = f64::MIN;
    let mut worst = 0.0f64;
    for &c in &closes[closes.len() - n..] {
        peak = peak.max(c);
        worst = worst.max((peak - c) / peak * 100.0);
    }
    finite(worst, name, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deepest_fall_from_a_running_peak() {
        // peak 10 → 5 is −50%; later peak 12 → 9 is −25%
        let v = max_drawdown(&[1.0, 10.0, 5.0, 12.0, 9.0], 4).unwrap();
        assert!((v - 50.0).abs() < 1e-12);
        // within the last 2 closes only: 12 → 9
        assert!((max_drawdown(&[1.0, 10.0, 5.0, 12.0, 9.0], 2).unwrap() - 25.0).abs() < 1e-12);
    }
}
