//! A sliding-window rate limit: at most `limit` events in any `window`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    events: VecDeque<Instant>,
}

impl SlidingWindow {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1) as usize,
            window,
            events: VecDeque::new(),
        }
    }

    /// Messages per minute.
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    fn expire(&mut self, now: Instant) {
        while self
            .events
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.events.pop_front();
        }
    }

    /// Takes a slot at `now`, or says how long to wait for the next one.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        self.expire(now);
        if self.events.len() < self.limit {
            self.events.push_back(now);
            return Ok(());
        }
        let oldest = self.events.front().copied().unwrap_or(now);
        Err(self
            .window
            .saturating_sub(now.saturating_duration_since(oldest)))
    }

    /// Events within the window ending at `now`.
    pub fn count(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_limit_then_says_how_long_to_wait() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(2, Duration::from_secs(60));
        assert!(w.try_acquire(t0).is_ok());
        assert!(w.try_acquire(t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(
            w.try_acquire(t0 + Duration::from_secs(20)),
            Err(Duration::from_secs(40))
        );
        // The first slot frees 60 s after it was taken.
        assert!(w.try_acquire(t0 + Duration::from_secs(60)).is_ok());
        assert_eq!(w.count(t0 + Duration::from_secs(60)), 2);
        assert_eq!(
            w.try_acquire(t0 + Duration::from_secs(61)),
            Err(Duration::from_secs(9))
        );
        assert_eq!(w.count(t0 + Duration::from_secs(200)), 0);
    }
}
