//! A snapshot file is read at every start: damaged bytes must be refused with a reason (and the
//! gateway start empty), a snapshot that decodes must restore or be refused, never panic.
#![no_main]

use std::path::Path;

use anteroom::room::{RoomState, Settings};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let file = Path::new("snapshot.bin");
    // Raw bytes, and the same bytes as a payload behind a valid header.
    let wrapped = {
        let mut out = b"ANTROOM\0".to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32(data).to_le_bytes());
        out.extend_from_slice(data);
        out
    };
    for bytes in [data, &wrapped[..]] {
        if let Ok(snap) = anteroom::snapshot::decode(file, bytes) {
            for (_, image) in snap.rooms {
                let settings = Settings::default();
                let now = 1_790_000_000_000;
                if let Ok(mut state) = RoomState::restore(image, &settings, now) {
                    state
                        .check_invariants(None)
                        .expect("a restored room is consistent");
                    // And it keeps working: a tick, a newcomer, another tick.
                    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
                    anteroom::room::tick(&settings, &mut state, now + 1_000, &mut rng);
                    anteroom::room::decide(&settings, &mut state, None, now + 1_500, &mut rng);
                    anteroom::room::tick(&settings, &mut state, now + 120_000, &mut rng);
                    state
                        .check_invariants(settings.active_users)
                        .expect("still consistent");
                }
            }
        }
    }
});

/// CRC-32 (IEEE), as the snapshot header uses.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
