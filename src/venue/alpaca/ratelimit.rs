//! A token bucket shared by every call to Alpaca: `requests_per_minute` tokens, refilled
//! continuously; a 429 pauses the bucket until the server's reset time.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_second: f64,
    last: Instant,
    paused_until: Option<Instant>,
}

impl TokenBucket {
    pub fn per_minute(requests: u32, now: Instant) -> Self {
        let capacity = f64::from(requests.max(1));
        Self {
            capacity,
            tokens: capacity,
            per_second: capacity / 60.0,
            last: now,
            paused_until: None,
        }
    }

    /// Takes a token, or says how long to wait for one.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until - now);
            }
            self.paused_until = None;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }

    /// No request before `until` (a 429's reset time).
    pub fn pause_until(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
        self.tokens = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(120, t0);
        for _ in 0..120 {
            assert!(b.try_take(t0).is_ok());
        }
        let wait = b.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        // Over the next 60 s exactly 120 more fit.
        let mut taken = 0;
        for ms in (0..60_000).step_by(100) {
            if b.try_take(t0 + Duration::from_millis(ms + 1)).is_ok() {
                taken += 1;
            }
        }
        assert!((119..=120).contains(&taken), "{taken}");
    }

    #[test]
    fn a_pause_blocks_until_reset() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(200, t0);
        b.pause_until(t0 + Duration::from_secs(2));
        assert_eq!(
            b.try_take(t0 + Duration::from_secs(1)).unwrap_err(),
            Duration::from_secs(1)
        );
        assert!(b.try_take(t0 + Duration::from_secs(3)).is_ok());
    }
}
