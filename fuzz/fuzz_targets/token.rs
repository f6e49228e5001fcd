//! The token decoder takes whatever a client sends in a cookie or the `Anteroom-Token` header:
//! it must answer `None` or valid claims, never panic, and a token it accepts must be exactly
//! what the key would have signed.
#![no_main]

use anteroom::token::{Claims, Keys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = Keys::new(vec![7u8; 32], vec![vec![9u8; 40]]);
    let (room, token) = data.split_at(data.len().min(8));
    let mut id = [0u8; 8];
    id[..room.len()].copy_from_slice(room);
    let room_id = u64::from_le_bytes(id);
    let text = String::from_utf8_lossy(token);
    if let Some(c) = keys.decode(room_id, &text) {
        assert_eq!(c.room_id, room_id);
        let again: Claims = keys.decode(room_id, &keys.encode(&c)).expect("re-encoded");
        assert_eq!(again, c);
    }
    // A token signed here always comes back, bound to its room.
    let claims = Claims {
        room_id,
        session: anteroom::room::SessionId::from_u128(u128::from(room_id) | 1),
        ticket: room_id.rotate_left(7),
        issued_at: room_id >> 3,
    };
    let signed = keys.encode(&claims);
    assert_eq!(keys.decode(room_id, &signed), Some(claims));
    assert_eq!(keys.decode(room_id ^ 1, &signed), None);
});
