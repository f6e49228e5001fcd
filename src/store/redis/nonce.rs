//! The join challenge's replay filter, shared: a solved nonce is taken in Redis too, so that a
//! solution buys one place across every instance, not one at each. Each instance's own filter
//! (`pow::Seen`) has taken it first; this is one `SET NX` with the nonce's remaining life as its
//! expiry, beside the room's keys (same hash tag).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{RedisRooms, StoreError};

impl RedisRooms {
    /// Takes the nonce `id` of `room`, valid until unix second `expires`: `false` if an
    /// instance took it before.
    pub async fn take_nonce(
        &self,
        room: &str,
        id: &[u8; 16],
        expires: u64,
    ) -> Result<bool, StoreError> {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("{}:pow:{hex}", self.key(room));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        // Kept one second past the expiry: a clock a little behind another instance's still
        // refuses the nonce there as expired or taken.
        let ttl = expires.saturating_sub(now).saturating_add(1);
        let mut conn = self.conn.clone();
        let started = tokio::time::Instant::now();
        let mut set = ::redis::cmd("SET");
        set.arg(&key).arg(1).arg("NX").arg("EX").arg(ttl);
        let reply =
            tokio::time::timeout(self.timeout, set.query_async::<Option<String>>(&mut conn)).await;
        metrics::counter!(crate::metrics::STORE_REQUESTS, "op" => "nonce").increment(1);
        metrics::histogram!(crate::metrics::STORE_LATENCY, "op" => "nonce")
            .record(started.elapsed().as_secs_f64());
        let reply = reply.map_err(|_| StoreError::Timeout(self.timeout))??;
        Ok(reply.is_some())
    }
}
