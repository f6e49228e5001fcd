//! The `admit_per_minute` token bucket: refilled by the tick, spent by every admission.

/// Tokens available for admissions; burst is one minute's worth.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    tokens: f64,
    last_refill_ms: u64,
    /// The rate at the last refill: a rate newly set (reload, override) starts with a full minute.
    rate: Option<u32>,
}

impl Bucket {
    /// A full bucket for `per_minute` admissions.
    pub fn full(per_minute: Option<u32>, now_ms: u64) -> Self {
        Bucket {
            tokens: per_minute.map_or(0.0, f64::from),
            last_refill_ms: now_ms,
            rate: per_minute,
        }
    }

    /// A bucket as a snapshot stored it.
    pub fn restore(tokens: f64, last_refill_ms: u64, rate: Option<u32>) -> Self {
        Bucket {
            tokens: if tokens.is_finite() { tokens } else { 0.0 },
            last_refill_ms,
            rate,
        }
    }

    /// (tokens, last refill, rate), for a snapshot.
    pub fn parts(&self) -> (f64, u64, Option<u32>) {
        (self.tokens, self.last_refill_ms, self.rate)
    }

    /// Adds what accrued since the last refill, up to one minute's worth.
    pub fn refill(&mut self, per_minute: Option<u32>, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_refill_ms) as f64 / 60_000.0;
        self.last_refill_ms = now_ms;
        if self.rate.is_none() && per_minute.is_some() {
            self.tokens = per_minute.map_or(0.0, f64::from);
        }
        self.rate = per_minute;
        if let Some(rate) = per_minute {
            let cap = f64::from(rate);
            self.tokens = (self.tokens + elapsed * cap).min(cap);
        }
    }

    /// Whole admissions the bucket allows now (unbounded without a rate).
    pub fn available(&self, per_minute: Option<u32>) -> u64 {
        match per_minute {
            None => u64::MAX,
            Some(_) => self.tokens.max(0.0).floor() as u64,
        }
    }

    /// Spends `n` admissions.
    pub fn take(&mut self, per_minute: Option<u32>, n: u64) {
        if per_minute.is_some() {
            self.tokens -= n as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_per_minute_and_caps_at_one_minute() {
        let rate = Some(60);
        let mut b = Bucket::full(rate, 0);
        assert_eq!(b.available(rate), 60);
        b.take(rate, 60);
        assert_eq!(b.available(rate), 0);
        b.refill(rate, 1_000);
        assert_eq!(b.available(rate), 1);
        b.refill(rate, 10 * 60_000);
        assert_eq!(b.available(rate), 60);
        assert_eq!(Bucket::full(None, 0).available(None), u64::MAX);
        // A rate set later starts with a full minute, not an empty bucket.
        let mut b = Bucket::full(None, 0);
        b.refill(Some(30), 1_000);
        assert_eq!(b.available(Some(30)), 30);
    }
}
