//! Wall-clock times for configurations written by tests (scheduled events a few seconds ahead).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// RFC 3339 of unix milliseconds, to the second, at `offset_hours` from UTC (the file's times
/// may carry any offset).
pub fn rfc3339_at(ms: u64, offset_hours: i8) -> String {
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap()
        .to_offset(time::UtcOffset::from_hms(offset_hours, 0, 0).unwrap())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Sleeps until unix millisecond `ms` (at once if it has passed).
pub async fn sleep_until_ms(ms: u64) {
    let now = unix_ms();
    if ms > now {
        tokio::time::sleep(Duration::from_millis(ms - now)).await;
    }
}
