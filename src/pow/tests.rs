use super::*;
use crate::token::room_id;

fn challenges() -> Challenges {
    Challenges::new(&Keys::new(vec![7u8; 32], vec![]), 1000)
}

fn to(room: &str, ip: &str) -> Binding {
    Binding {
        room_id: room_id(room),
        prefix: Prefix::of(ip.parse().unwrap()),
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_800_000_000;

fn answer(nonce: &str, solution: &str) -> Answer {
    Answer {
        nonce: Some(nonce.to_string()),
        solution: Some(solution.to_string()),
    }
}

fn solved(c: &Challenges, b: Binding, difficulty: u8) -> (Challenge, Answer) {
    let ch = c.issue(b, difficulty, at(NOW));
    let s = solve(&ch.nonce, difficulty);
    let a = answer(&ch.nonce, &s);
    (ch, a)
}

#[test]
fn a_challenge_says_what_to_solve_and_until_when() {
    let c = challenges();
    let ch = c.issue(to("shop", "203.0.113.7"), 12, at(NOW));
    assert_eq!(ch.algorithm, "sha256");
    assert_eq!(ch.difficulty, 12);
    assert_eq!(ch.nonce.len(), NONCE_CHARS);
    assert!(
        ch.nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{}",
        ch.nonce
    );
    assert_eq!(ch.expires_at, "2027-01-15T08:02:00Z");
    let again = c.issue(to("shop", "203.0.113.7"), 12, at(NOW));
    assert_ne!(ch.nonce, again.nonce, "each challenge is fresh");
    let json = serde_json::to_value(&ch).unwrap();
    assert_eq!(
        json.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["algorithm", "difficulty", "expires_at", "nonce"]
    );
}

#[test]
fn a_good_solution_passes_once() {
    let c = challenges();
    let b = to("shop", "203.0.113.7");
    let (_, a) = solved(&c, b, 10);
    // Same /24, a minute later: still good.
    let same_prefix = to("shop", "203.0.113.200");
    assert_eq!(c.verify(same_prefix, &a, at(NOW + 60)), Ok(()));
    assert_eq!(c.verify(b, &a, at(NOW + 61)), Err(Refusal::Reused));
    assert_eq!(c.remembered(), 1);
}

#[test]
fn each_wrong_answer_is_refused_with_its_reason() {
    let c = challenges();
    let b = to("shop", "203.0.113.7");
    let (ch, a) = solved(&c, b, 10);
    let now = at(NOW + 1);
    // Tampered: one character of the nonce changed (the MAC no longer verifies).
    let mut bytes = ch.nonce.clone().into_bytes();
    bytes[30] = if bytes[30] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let sol = a.solution.clone().unwrap();
    assert_eq!(
        c.verify(b, &answer(&tampered, &sol), now),
        Err(Refusal::Forged)
    );
    // Another gateway's key.
    let other = Challenges::new(&Keys::new(vec![8u8; 32], vec![]), 10);
    assert_eq!(other.verify(b, &a, now), Err(Refusal::Forged));
    assert_eq!(
        c.verify(to("other", "203.0.113.7"), &a, now),
        Err(Refusal::WrongRoom)
    );
    assert_eq!(
        c.verify(to("shop", "203.0.114.7"), &a, now),
        Err(Refusal::WrongClient)
    );
    assert_eq!(
        c.verify(b, &a, at(NOW + WINDOW.as_secs() + 1)),
        Err(Refusal::Expired)
    );
    // A wrong solution: the first that does not have the leading zero bits.
    let wrong = (0u64..)
        .map(|n| n.to_string())
        .find(|s| !solves(&ch.nonce, s, 10))
        .unwrap();
    assert_eq!(
        c.verify(b, &answer(&ch.nonce, &wrong), now),
        Err(Refusal::WrongSolution)
    );
    // None of these used the nonce up: the right answer still passes, once.
    assert_eq!(c.verify(b, &a, now), Ok(()));
    assert_eq!(c.verify(b, &a, now), Err(Refusal::Reused));
}

#[test]
fn malformed_and_missing_answers() {
    let c = challenges();
    let b = to("shop", "2001:db8::1");
    let ch = c.issue(b, 8, at(NOW));
    let now = at(NOW);
    let cases = [
        (Answer::default(), Refusal::Missing),
        (
            Answer {
                nonce: Some(ch.nonce.clone()),
                solution: None,
            },
            Refusal::Malformed,
        ),
        (answer(&ch.nonce, ""), Refusal::Malformed),
        (answer(&ch.nonce, "-1"), Refusal::Malformed),
        (answer(&ch.nonce, "1e5"), Refusal::Malformed),
        (answer(&ch.nonce, &"9".repeat(21)), Refusal::Malformed),
        (answer("short", "1"), Refusal::Malformed),
        (answer(&"!".repeat(NONCE_CHARS), "1"), Refusal::Malformed),
    ];
    for (a, want) in cases {
        assert_eq!(c.verify(b, &a, now), Err(want), "{a:?}");
    }
    assert_eq!(parse_answer(b""), Ok(Answer::default()));
    assert_eq!(parse_answer(b" \n"), Ok(Answer::default()));
    assert_eq!(parse_answer(b"garbage"), Err(Refusal::Malformed));
    assert_eq!(
        parse_answer(b"{\"nonce\": 1, \"solution\": 2}"),
        Err(Refusal::Malformed)
    );
    assert_eq!(
        parse_answer(&vec![b' '; MAX_ANSWER_BYTES + 1]),
        Err(Refusal::Malformed)
    );
    assert_eq!(
        parse_answer(b"{\"nonce\": \"n\", \"solution\": \"42\"}"),
        Ok(answer("n", "42"))
    );
}

#[test]
fn a_rotation_keeps_challenges_issued_under_the_old_key() {
    let old = challenges();
    let b = to("shop", "198.51.100.1");
    let (_, a) = solved(&old, b, 8);
    let rotated = Challenges::new(&Keys::new(vec![9u8; 32], vec![vec![7u8; 32]]), 10);
    assert_eq!(rotated.verify(b, &a, at(NOW)), Ok(()));
}

#[test]
fn a_full_filter_refuses_rather_than_grows() {
    let c = Challenges::new(&Keys::new(vec![7u8; 32], vec![]), 1);
    let b = to("shop", "198.51.100.1");
    let (_, first) = solved(&c, b, 4);
    let (_, second) = solved(&c, b, 4);
    assert_eq!(c.verify(b, &first, at(NOW)), Ok(()));
    assert_eq!(c.verify(b, &second, at(NOW)), Err(Refusal::Busy));
    assert_eq!(c.remembered(), 1);
}

#[test]
fn zero_bits_are_counted_from_the_first_byte() {
    assert_eq!(leading_zero_bits(&[0xff]), 0);
    assert_eq!(leading_zero_bits(&[0x00, 0x01]), 15);
    assert_eq!(leading_zero_bits(&[0x00, 0x00]), 16);
    assert_eq!(leading_zero_bits(&[0x10, 0x00]), 3);
    let s = solve("n", 12);
    assert!(solves("n", &s, 12));
    let d = Sha256::digest(format!("n:{s}").as_bytes());
    assert!(leading_zero_bits(&d) >= 12);
}

#[test]
fn refusals_have_bounded_reasons_and_statuses() {
    for r in Refusal::ALL {
        assert!(matches!(r.status(), 400 | 403 | 503), "{r:?}");
        assert!(!r.reason().is_empty() && !r.message().is_empty());
    }
    assert_eq!(Refusal::Malformed.status(), 400);
    assert_eq!(Refusal::Reused.status(), 403);
}
