//! Joins per client address prefix (IPv4 /24, IPv6 /56): a token bucket per prefix, refilled at
//! `max_joins_per_prefix_per_minute` with a burst of one minute's worth. One host (or one
//! subnet of a botnet) cannot fill the line with fresh sessions; returning visitors and polls
//! cost nothing.

use std::collections::HashMap;
use std::net::IpAddr;

/// The prefix an address is budgeted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix(u128);

impl Prefix {
    /// The prefix as a short stable text (a store's key).
    pub fn key(self) -> String {
        format!("{:x}", self.0)
    }

    /// The prefix as 16 bytes (what a challenge is bound to).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    pub fn of(ip: IpAddr) -> Prefix {
        match ip {
            // The lowest bit tells the families apart: a /56 leaves it zero.
            IpAddr::V4(v4) => Prefix((u128::from(u32::from(v4) & 0xFFFF_FF00) << 1) | 1),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Prefix::of(IpAddr::V4(v4)),
                None => Prefix((u128::from(v6) >> 72) << 72),
            },
        }
    }
}

#[derive(Debug, Default)]
pub struct JoinBudget {
    /// prefix -> (tokens, last refill ms)
    buckets: HashMap<Prefix, (f64, u64)>,
}

impl JoinBudget {
    /// Spends one join of `prefix` at `now_ms`, or says how many ms until one is available.
    pub fn take(&mut self, prefix: Prefix, per_minute: u32, now_ms: u64) -> Result<(), u64> {
        let cap = f64::from(per_minute.max(1));
        let (tokens, last) = self.buckets.entry(prefix).or_insert((cap, now_ms));
        let elapsed = now_ms.saturating_sub(*last) as f64 / 60_000.0;
        *tokens = (*tokens + elapsed * cap).min(cap);
        *last = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - *tokens;
        Err(((missing / cap) * 60_000.0).ceil() as u64)
    }

    /// Forgets prefixes whose bucket has refilled completely (quiet for a minute): memory
    /// follows the prefixes joining now, not every address ever seen.
    pub fn prune(&mut self, now_ms: u64) {
        self.buckets
            .retain(|_, (_, last)| now_ms.saturating_sub(*last) < 60_000);
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        Prefix::of(s.parse().unwrap())
    }

    #[test]
    fn prefixes_group_a_v4_slash_24_and_a_v6_slash_56() {
        assert_eq!(p("203.0.113.7"), p("203.0.113.250"));
        assert_ne!(p("203.0.113.7"), p("203.0.114.7"));
        assert_eq!(p("2001:db8:0:ab00::1"), p("2001:db8:0:abff:ffff::9"));
        assert_ne!(p("2001:db8:0:ab00::1"), p("2001:db8:0:ac00::1"));
        assert_eq!(p("::ffff:203.0.113.7"), p("203.0.113.9"));
        assert_ne!(p("0.0.0.1"), p("::1"));
    }

    #[test]
    fn a_burst_of_one_minute_then_the_rate() {
        let mut b = JoinBudget::default();
        let x = p("198.51.100.1");
        for _ in 0..3 {
            assert!(b.take(x, 3, 0).is_ok());
        }
        // Empty: the next join in 20 s (one token at 3 per minute).
        assert_eq!(b.take(x, 3, 0), Err(20_000));
        assert!(
            b.take(p("198.51.101.1"), 3, 0).is_ok(),
            "another prefix is not affected"
        );
        assert_eq!(b.take(x, 3, 10_000), Err(10_000));
        assert!(b.take(x, 3, 20_000).is_ok());
        b.prune(70_000);
        assert_eq!(b.len(), 1);
        b.prune(90_000);
        assert!(b.is_empty());
    }
}
