//! The signed session token: `version | room id | session id | ticket | issued-at | tag`,
//! base64url without padding. The tag is HMAC-SHA256 truncated to 16 bytes, checked in
//! constant time. Anything that fails to decode or verify is simply no token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::room::SessionId;

const VERSION: u8 = 1;
const BODY: usize = 1 + 8 + 16 + 8 + 8;
const TAG: usize = 16;
/// Shortest secret accepted for signing.
pub const MIN_SECRET: usize = 32;

pub(crate) type HmacSha256 = hmac::Hmac<Sha256>;

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub room_id: u64,
    pub session: SessionId,
    pub ticket: u64,
    /// Unix seconds.
    pub issued_at: u64,
}

/// The signing key and the keys still accepted during a rotation.
#[derive(Clone)]
pub struct Keys {
    current: Vec<u8>,
    previous: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    pub fn new(current: Vec<u8>, previous: Vec<Vec<u8>>) -> Self {
        Keys { current, previous }
    }

    pub fn encode(&self, c: &Claims) -> String {
        let mut buf = Vec::with_capacity(BODY + TAG);
        buf.push(VERSION);
        buf.extend_from_slice(&c.room_id.to_be_bytes());
        buf.extend_from_slice(c.session.as_bytes());
        buf.extend_from_slice(&c.ticket.to_be_bytes());
        buf.extend_from_slice(&c.issued_at.to_be_bytes());
        let tag = mac(&self.current, &buf).finalize().into_bytes();
        buf.extend_from_slice(&tag[..TAG]);
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// Keys for another use than tokens, derived from these (HMAC of `purpose` under each key):
    /// the current one, then those still accepted during a rotation. A MAC made with a derived
    /// key can never pass for a token's, and the derived keys rotate with the token keys.
    pub fn derive(&self, purpose: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let one = |k: &Vec<u8>| mac(k, purpose).finalize().into_bytes().to_vec();
        (one(&self.current), self.previous.iter().map(one).collect())
    }

    /// The claims of `token` if it is well formed, signed by one of our keys and bound to
    /// `room_id`; otherwise `None`.
    pub fn decode(&self, room_id: u64, token: &str) -> Option<Claims> {
        if token.len() > 2 * (BODY + TAG) {
            return None;
        }
        // Decoded on the stack: a token's check allocates nothing.
        let mut buf = [0u8; 2 * (BODY + TAG)];
        let n = URL_SAFE_NO_PAD
            .decode_slice(token.as_bytes(), &mut buf)
            .ok()?;
        let raw = &buf[..n];
        if raw.len() != BODY + TAG || raw[0] != VERSION {
            return None;
        }
        let (body, tag) = raw.split_at(BODY);
        let verified = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .any(|k| mac(k, body).verify_truncated_left(tag).is_ok());
        if !verified {
            return None;
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut session = [0u8; 16];
        session.copy_from_slice(&body[9..25]);
        let claims = Claims {
            room_id: u64_at(1),
            session: SessionId::from_bytes(session),
            ticket: u64_at(25),
            issued_at: u64_at(33),
        };
        (claims.room_id == room_id).then_some(claims)
    }
}

/// HMAC-SHA256 of `body` under `key`, ready to finalize or verify.
pub(crate) fn mac(key: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(body);
    m
}

/// The id that binds tokens to a room: the first 8 bytes of SHA-256 of its name.
pub fn room_id(name: &str) -> u64 {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(vec![7u8; 32], vec![])
    }

    fn claims(room: &str) -> Claims {
        Claims {
            room_id: room_id(room),
            session: SessionId::from_u128(42),
            ticket: 9,
            issued_at: 1_700_000_000,
        }
    }

    #[test]
    fn round_trips() {
        let t = keys().encode(&claims("shop"));
        assert_eq!(keys().decode(room_id("shop"), &t), Some(claims("shop")));
    }

    #[test]
    fn rejects_tampered_truncated_foreign_and_garbage() {
        let k = keys();
        let t = k.encode(&claims("shop"));
        let mut bytes = t.clone().into_bytes();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        let cases = [
            tampered.as_str(),
            &t[..t.len() - 3],
            "",
            "not base64 !!",
            "AAAA",
            &"A".repeat(5000),
        ];
        for c in cases {
            assert_eq!(k.decode(room_id("shop"), c), None, "{c:?}");
        }
        assert_eq!(k.decode(room_id("other"), &t), None);
        let other_key = Keys::new(vec![8u8; 32], vec![]);
        assert_eq!(other_key.decode(room_id("shop"), &t), None);
    }

    #[test]
    fn previous_keys_still_verify() {
        let old = keys();
        let t = old.encode(&claims("shop"));
        let rotated = Keys::new(vec![9u8; 32], vec![vec![7u8; 32]]);
        assert!(rotated.decode(room_id("shop"), &t).is_some());
    }
}
