//! The rate limit shared by every call to Alpaca: at most `max` requests in any window
//! of `window` (200 per minute by default, Alpaca's limit). A sliding log, not a token
//! bucket: a bucket sized to the limit lets twice the limit through across a window
//! boundary. A 429 pauses all calls until the server's reset time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct SlidingWindow {
    max: usize,
    window: Duration,
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl SlidingWindow {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1) as usize,
            window,
            sent: VecDeque::new(),
            paused_until: None,
        }
    }

    /// Records a request at `now`, or says how long to wait before one is allowed.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until - now);
            }
            self.paused_until = None;
        }
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < self.max {
            self.sent.push_back(now);
            Ok(())
        } else {
            let oldest = self.sent.front().copied().unwrap_or(now);
            Err((oldest + self.window)
                .saturating_duration_since(now)
                .max(Duration::from_millis(1)))
        }
    }

    /// No request before `until` (a 429's reset time).
    pub fn pause_until(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_max_in_any_window() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(10, Duration::from_secs(1));
        let mut sent = Vec::new();
        let mut now = t0;
        while sent.len() < 55 {
            match w.try_take(now) {
                Ok(()) => sent.push(now),
                Err(wait) => now += wait,
            }
        }
        for (i, a) in sent.iter().enumerate() {
            let within = sent[i..]
                .iter()
                .take_while(|b| b.duration_since(*a) < Duration::from_secs(1))
                .count();
            assert!(
                within <= 10,
                "{within} requests within a second of request {i}"
            );
        }
        // 55 requests at 10/s: the last goes out after about 5 s.
        assert!(now.duration_since(t0) >= Duration::from_secs(5));
    }

    #[test]
    fn a_pause_blocks_until_reset() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(200, Duration::from_secs(60));
        w.pause_until(t0 + Duration::from_secs(2));
        assert_eq!(
            w.try_take(t0 + Duration::from_secs(1)).unwrap_err(),
            Duration::from_secs(1)
        );
        assert!(w.try_take(t0 + Duration::from_secs(3)).is_ok());
    }
}
