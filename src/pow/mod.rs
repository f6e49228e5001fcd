//! The proof-of-work join challenge (`join_challenge = "pow"`): a new visitor gets a place only
//! after finding a decimal string `s` such that SHA-256(`nonce` + ":" + `s`) starts with
//! `difficulty` zero bits. Stateless: the nonce carries what it is bound to (the room, the
//! client's address prefix, its expiry, the difficulty, 16 random bytes) under an HMAC made with
//! a key derived from the token keys; nothing is stored per challenge issued. A solution is
//! taken once: `seen.rs` remembers the nonces solved until they expire, in bounded memory.
//!
//! It is a floor under the cost of a join (a bot pays CPU time per place, as a person's browser
//! does once), not a bot defence on its own.

mod seen;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::room::Prefix;
use crate::token::{HmacSha256, Keys, mac};
pub use seen::Seen;

/// The hash a solution is checked with.
pub const ALGORITHM: &str = "sha256";
/// How long a challenge may be solved and sent.
pub const WINDOW: Duration = Duration::from_secs(120);
/// `pow_difficulty` when the room sets none, and the range it may take.
pub const DEFAULT_DIFFICULTY: u8 = 18;
pub const MIN_DIFFICULTY: u8 = 1;
pub const MAX_DIFFICULTY: u8 = 32;
/// The largest join body read (`{"nonce": …, "solution": …}` is under 150 bytes).
pub const MAX_ANSWER_BYTES: usize = 1024;
/// Solved nonces remembered at most (about 40 bytes each): past this, solutions are refused
/// until some expire, rather than memory growing.
pub const MAX_SEEN: usize = 100_000;

/// What the derived key is for; a MAC under it can never pass for a token's.
const PURPOSE: &[u8] = b"anteroom join challenge v1";
const VERSION: u8 = 1;
/// version | difficulty | expires (unix s) | room id | prefix | random
const BODY: usize = 1 + 1 + 8 + 8 + 16 + 16;
const TAG: usize = 16;
/// The nonce's length in base64url without padding.
const NONCE_CHARS: usize = ((BODY + TAG) * 4).div_ceil(3);
/// A solution is a `u64` in decimal.
const MAX_SOLUTION_DIGITS: usize = 20;

/// A room's `join_challenge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JoinChallenge {
    /// New visitors join at once (the default).
    #[default]
    None,
    /// New visitors join after solving a challenge of this many leading zero bits.
    Pow { difficulty: u8 },
}

/// What a challenge is bound to: a room and a client address prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub room_id: u64,
    pub prefix: Prefix,
}

/// One challenge as clients receive it (the `challenge` object of the JSON answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Challenge {
    pub algorithm: &'static str,
    pub nonce: String,
    pub difficulty: u8,
    /// RFC 3339.
    pub expires_at: String,
}

/// A join's answer: the body of `POST /__anteroom/join`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Answer {
    pub nonce: Option<String>,
    pub solution: Option<String>,
}

/// Why an answer gets no place. The reason codes are a contract (JSON `reason`, the label of
/// `anteroom_pow_failed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No answer at all (no body, or neither field).
    Missing,
    /// Not the JSON of an answer, too long, or a nonce or solution of the wrong form.
    Malformed,
    /// The nonce was not made by this gateway (its MAC does not verify).
    Forged,
    /// A nonce of another room.
    WrongRoom,
    /// A nonce issued to another client address prefix.
    WrongClient,
    /// The nonce's window has passed.
    Expired,
    /// The solution does not have the nonce's leading zero bits.
    WrongSolution,
    /// The nonce was solved before.
    Reused,
    /// The replay filter is full: no new solution is taken until some expire.
    Busy,
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Refusal::Missing,
        Refusal::Malformed,
        Refusal::Forged,
        Refusal::WrongRoom,
        Refusal::WrongClient,
        Refusal::Expired,
        Refusal::WrongSolution,
        Refusal::Reused,
        Refusal::Busy,
    ];

    /// The reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Forged => "forged",
            Refusal::WrongRoom => "wrong_room",
            Refusal::WrongClient => "wrong_client",
            Refusal::Expired => "expired",
            Refusal::WrongSolution => "wrong_solution",
            Refusal::Reused => "reused",
            Refusal::Busy => "busy",
        }
    }

    /// The answer's status: 400 for what cannot be read, 503 when full, 403 for the rest.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Malformed => 400,
            Refusal::Busy => 503,
            _ => 403,
        }
    }

    /// A sentence for people reading the JSON.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "this room asks for a solved challenge to join",
            Refusal::Malformed => "the body is not {\"nonce\": \"…\", \"solution\": \"<digits>\"}",
            Refusal::Forged => "the nonce was not issued here",
            Refusal::WrongRoom => "the nonce was issued for another room",
            Refusal::WrongClient => "the nonce was issued to another client address",
            Refusal::Expired => "the challenge expired; solve the new one",
            Refusal::WrongSolution => "the solution does not solve the challenge",
            Refusal::Reused => "the challenge was solved before; solve the new one",
            Refusal::Busy => "too many joins at once; try again shortly",
        }
    }
}

/// A nonce solved and taken by this instance's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solved {
    /// The nonce's tag: names it (16 bytes of an HMAC, so unguessable and unique).
    pub id: [u8; TAG],
    /// Unix second its challenge expires: nobody can use it after, so nobody needs to remember it.
    pub expires: u64,
}

/// Issues and checks challenges. Holds the derived keys and the replay filter; shared by every
/// request (the filter's lock is taken briefly, never with another).
pub struct Challenges {
    /// The keys as HMAC states already keyed: a challenge clones one instead of keying anew.
    current: HmacSha256,
    previous: Vec<HmacSha256>,
    seen: Seen,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges").finish_non_exhaustive()
    }
}

impl Challenges {
    /// Challenges signed with keys derived from `keys`, remembering up to `max_seen` solutions.
    pub fn new(keys: &Keys, max_seen: usize) -> Self {
        let (current, previous) = keys.derive(PURPOSE);
        Challenges {
            current: mac(&current, &[]),
            previous: previous.iter().map(|k| mac(k, &[])).collect(),
            seen: Seen::new(max_seen),
        }
    }

    /// A fresh challenge for `to`, good until `WINDOW` after `now`.
    pub fn issue(&self, to: Binding, difficulty: u8, now: SystemTime) -> Challenge {
        let mut random = [0u8; 16];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut random);
        let expires = unix_secs(now).saturating_add(WINDOW.as_secs());
        let mut buf = Vec::with_capacity(BODY + TAG);
        buf.push(VERSION);
        buf.push(difficulty);
        buf.extend_from_slice(&expires.to_be_bytes());
        buf.extend_from_slice(&to.room_id.to_be_bytes());
        buf.extend_from_slice(&to.prefix.to_bytes());
        buf.extend_from_slice(&random);
        let mut m = self.current.clone();
        m.update(&buf);
        let tag = m.finalize().into_bytes();
        buf.extend_from_slice(&tag[..TAG]);
        let at = UNIX_EPOCH + Duration::from_secs(expires);
        Challenge {
            algorithm: ALGORITHM,
            nonce: URL_SAFE_NO_PAD.encode(buf),
            difficulty,
            expires_at: humantime::format_rfc3339_seconds(at).to_string(),
        }
    }

    /// Checks an answer from `to` at `now`: the nonce is ours, for this room and client, in its
    /// window, solved, and never solved before (it is remembered from here on).
    pub fn verify(&self, to: Binding, answer: &Answer, now: SystemTime) -> Result<(), Refusal> {
        self.check(to, answer, now).map(|_| ())
    }

    /// [`Self::verify`], saying which nonce was solved: an instance sharing a store with others
    /// also takes it there, so that it buys one place across all of them.
    pub fn check(&self, to: Binding, answer: &Answer, now: SystemTime) -> Result<Solved, Refusal> {
        let (nonce, solution) = match (&answer.nonce, &answer.solution) {
            (None, None) => return Err(Refusal::Missing),
            (Some(n), Some(s)) => (n.as_str(), s.as_str()),
            _ => return Err(Refusal::Malformed),
        };
        let digits = solution.len() <= MAX_SOLUTION_DIGITS
            && !solution.is_empty()
            && solution.bytes().all(|b| b.is_ascii_digit());
        if nonce.len() != NONCE_CHARS || !digits {
            return Err(Refusal::Malformed);
        }
        // Decoded on the stack, with room to spare (the decoder's estimate rounds up).
        let mut buf = [0u8; BODY + TAG + 3];
        let raw = match URL_SAFE_NO_PAD.decode_slice(nonce.as_bytes(), &mut buf) {
            Ok(n) if n == BODY + TAG && buf[0] == VERSION => &buf[..n],
            _ => return Err(Refusal::Malformed),
        };
        let (body, tag) = raw.split_at(BODY);
        // Constant time: `verify_truncated_left` compares the whole tag whatever differs.
        let ours = std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|k| {
                let mut m = k.clone();
                m.update(body);
                m.verify_truncated_left(tag).is_ok()
            });
        if !ours {
            return Err(Refusal::Forged);
        }
        let difficulty = body[1];
        let expires = u64_at(body, 2);
        if u64_at(body, 10) != to.room_id {
            return Err(Refusal::WrongRoom);
        }
        if body[18..34] != to.prefix.to_bytes() {
            return Err(Refusal::WrongClient);
        }
        if unix_secs(now) > expires {
            return Err(Refusal::Expired);
        }
        if !solves(nonce, solution, difficulty) {
            return Err(Refusal::WrongSolution);
        }
        let mut id = [0u8; TAG];
        id.copy_from_slice(tag);
        self.seen.take(id, expires, unix_secs(now))?;
        Ok(Solved { id, expires })
    }

    /// Solved nonces remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }
}

/// Reads a join's body: empty is no answer; otherwise it must be the answer's JSON.
pub fn parse_answer(body: &[u8]) -> Result<Answer, Refusal> {
    if body.len() > MAX_ANSWER_BYTES {
        return Err(Refusal::Malformed);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Answer::default());
    }
    serde_json::from_slice(body).map_err(|_| Refusal::Malformed)
}

/// Whether `solution` solves `nonce` at `difficulty` leading zero bits.
pub fn solves(nonce: &str, solution: &str, difficulty: u8) -> bool {
    let mut h = Sha256::new();
    h.update(nonce.as_bytes());
    h.update(b":");
    h.update(solution.as_bytes());
    leading_zero_bits(&h.finalize()) >= u32::from(difficulty)
}

/// The number of zero bits `digest` starts with.
pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for b in digest {
        if *b != 0 {
            return bits + b.leading_zeros();
        }
        bits += 8;
    }
    bits
}

/// A reference solver, as a join bot would write it: tries 0, 1, 2, … and returns the first
/// solution with the hash state of `nonce:` computed once. Expect 2^difficulty hashes.
pub fn solve(nonce: &str, difficulty: u8) -> String {
    let mut start = Sha256::new();
    start.update(nonce.as_bytes());
    start.update(b":");
    let mut s = String::with_capacity(MAX_SOLUTION_DIGITS);
    for n in 0u64.. {
        use std::fmt::Write;
        s.clear();
        let _ = write!(s, "{n}");
        let mut h = start.clone();
        h.update(s.as_bytes());
        if leading_zero_bits(&h.finalize()) >= u32::from(difficulty) {
            break;
        }
    }
    s
}

fn u64_at(body: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&body[at..at + 8]);
    u64::from_be_bytes(b)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
