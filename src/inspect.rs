//! `anteroom state inspect DIR`: what a state folder holds, for an operator deciding whether a
//! restart will bring the line back.

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use crate::room::{Image, LineImage};
use crate::store::overrides;
use crate::store::snapshot::{self, VERSION};

/// The summary text, or why there is none.
pub fn inspect(dir: &Path) -> Result<String, String> {
    let snap = snapshot::read(dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no snapshot in {}", dir.display()))?;
    let file = snapshot::path(dir);
    let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
    let now = snapshot::unix_ms();
    let mut out = String::new();
    let written = UNIX_EPOCH + Duration::from_millis(snap.written_unix_ms);
    let _ = writeln!(out, "snapshot {}", file.display());
    let _ = writeln!(
        out,
        "format {VERSION}, {bytes} bytes, written {} ({} ago), {} rooms",
        humantime::format_rfc3339_seconds(written),
        age(now, snap.written_unix_ms),
        snap.rooms.len()
    );
    for (name, image) in &snap.rooms {
        room(&mut out, name, image, now);
    }
    let overrides = overrides::load_quiet(dir);
    for (name, o) in overrides {
        let _ = writeln!(
            out,
            "overrides of {name}: {}",
            serde_json::to_string(&o).unwrap_or_default()
        );
    }
    Ok(out)
}

fn room(out: &mut String, name: &str, image: &Image, now: u64) {
    // Session states as stored (see `SessionImage::state`).
    const QUEUED: &[u8] = &[0, 4, 5, 7];
    const RELEASED: &[u8] = &[1, 8];
    const ACTIVE: &[u8] = &[2];
    const MISSED: &[u8] = &[3, 6];
    let count = |states: &[u8]| {
        image
            .sessions
            .iter()
            .filter(|s| states.contains(&s.state))
            .count()
    };
    let policy = match &image.line {
        LineImage::Fifo => "fifo".to_string(),
        LineImage::Random => "random".to_string(),
        LineImage::Lottery { drawn, .. } => format!("lottery ({} drawn)", drawn.len()),
    };
    let _ = writeln!(
        out,
        "room {name}: {policy}, queued {}, active {}, released {}, away after their turn {}",
        count(QUEUED),
        count(ACTIVE),
        count(RELEASED),
        count(MISSED)
    );
    let oldest = |states: &[u8]| {
        image
            .sessions
            .iter()
            .filter(|s| states.contains(&s.state))
            .map(|s| s.since_ms)
            .min()
    };
    if let Some(t) = oldest(QUEUED) {
        let _ = writeln!(out, "  longest wait {}", age(now, t));
    }
    if let Some(t) = oldest(ACTIVE) {
        let _ = writeln!(out, "  longest admitted {}", age(now, t));
    }
    let c = &image.counters;
    let _ = writeln!(
        out,
        "  joined {}, admitted {} at once and {} from the line, abandoned {}, recovered {}",
        c.joined, c.admitted_immediate, c.admitted_released, c.abandoned, c.recovered
    );
    let _ = writeln!(
        out,
        "  next ticket {}, reserved up to {}, {} recovery ranges open",
        image.next_ticket,
        image.ticket_ceiling,
        image.recovery.iter().filter(|r| r.until_ms > now).count()
    );
}

/// A rough age ("3m 12s") of a room-clock time, which is unix milliseconds.
fn age(now: u64, then: u64) -> String {
    let secs = now.saturating_sub(then) / 1000;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}
