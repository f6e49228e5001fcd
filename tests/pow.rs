//! The proof-of-work join challenge through the real gateway: a new visitor of a
//! `join_challenge = "pow"` room gets a challenge and no place; a solution posted to the join
//! endpoint joins exactly as a join does without one, once; wrong answers are refused with
//! their reason; visitors with a token, and rooms without the challenge, go as before.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use serde_json::{Value, json};
use support::*;

const DIFFICULTY: u64 = 10;

/// A `pow` room `name` at shop.test (one slot), another at vip.test and a plain room at
/// free.test, with the admin listener for metrics (room names keep each test's series apart:
/// the recorder is the process's).
fn config(origin: &Origin, name: &str, shop_extra: &str) -> String {
    let base = base_config("50ms").replace(
        "http = \"127.0.0.1:0\"",
        "http = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"",
    );
    format!(
        "{base}{}{}{}",
        room(
            name,
            "shop.test",
            &origin.url(),
            &format!(
                "active_users = 1\njoin_challenge = \"pow\"\npow_difficulty = {DIFFICULTY}\n{shop_extra}"
            ),
        ),
        room(
            &format!("{name}-vip"),
            "vip.test",
            &origin.url(),
            &format!("active_users = 1\njoin_challenge = \"pow\"\npow_difficulty = {DIFFICULTY}"),
        ),
        room(
            "free",
            "free.test",
            &origin.url(),
            "active_users = 1\njoin_challenge = \"none\""
        ),
    )
}

/// The challenge of an answer, checked against the contract.
fn challenge_of(j: &Value) -> Value {
    let c = j["challenge"].clone();
    assert_eq!(c["algorithm"], "sha256", "{j}");
    assert_eq!(c["difficulty"], DIFFICULTY, "{j}");
    assert!(c["nonce"].as_str().is_some_and(|n| n.len() > 40), "{j}");
    let expires = c["expires_at"].as_str().unwrap();
    humantime::parse_rfc3339(expires).unwrap();
    c
}

/// A solution of `challenge`, as a bot (or the page's worker) finds it.
fn solution(challenge: &Value) -> String {
    let nonce = challenge["nonce"].as_str().unwrap();
    let d = u8::try_from(challenge["difficulty"].as_u64().unwrap()).unwrap();
    anteroom::pow::solve(nonce, d)
}

async fn post_join(c: &mut Client, body: &str) -> Reply {
    c.send(
        "POST",
        "/__anteroom/join",
        &[("content-type", JSON), ("accept", JSON)],
        body,
    )
    .await
}

fn answer(challenge: &Value, solution: &str) -> String {
    json!({"nonce": challenge["nonce"], "solution": solution}).to_string()
}

fn depth(gw: &Gateway, room: &str) -> u64 {
    let gateway = &gw.running.as_ref().unwrap().gateway;
    let r = gateway.room(room).unwrap();
    let rc = gateway.config();
    let settings = &rc.rooms.iter().find(|x| x.name == room).unwrap().settings;
    anteroom::store::Store::reading(gateway.store(), &r, settings).waiting
}

#[tokio::test]
async fn a_new_visitor_solves_the_challenge_to_join_once() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&config(&origin, "metered", "")).await;
    let admin = Admin::of(&gw);

    // Someone holds the slot already (a solved join: admitted at once).
    let mut first = gw.client("shop.test");
    let r = first.get("/", JSON).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let c = challenge_of(&r.json());
    let r = post_join(&mut first, &answer(&c, &solution(&c))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "admitted", "{}", r.body);
    assert!(r.json()["token"].is_string());
    assert!(r.header("set-cookie").is_some(), "the join sets the cookie");
    assert_eq!(first.get("/inside", JSON).await.body, "origin:/inside");

    // A new visitor: the challenge, no place, no cookie, nothing created.
    let mut c = gw.client("shop.test");
    let r = c.get("/", JSON).await;
    assert_eq!(r.status, 429, "the app's JSON status: {}", r.body);
    let j = r.json();
    assert_eq!(j["state"], "queued");
    assert!(j["position"].is_null() && j["token"].is_null(), "{j}");
    assert_eq!(j["queue_depth"], 0);
    assert!(
        r.header("set-cookie").is_none(),
        "no cookie before a solution"
    );
    let ch = challenge_of(&j);
    // The status endpoint and the join endpoint (without an answer) carry a challenge too.
    let s = c.get("/__anteroom/status", JSON).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert!(s.json()["position"].is_null(), "{}", s.body);
    challenge_of(&s.json());
    let missing = c.send("POST", "/__anteroom/join", &[], "").await;
    assert_eq!(missing.status, 403, "{}", missing.body);
    assert_eq!(missing.json()["reason"], "missing");
    challenge_of(&missing.json());
    // A page gets the page that solves it.
    let page = c.get("/", BROWSER).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Checking your browser"), "{}", page.body);
    assert!(
        page.body.contains("data-challenge-nonce=\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("<noscript><p"), "{}", page.body);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("worker-src 'self'"), "{csp}");
    assert!(page.header("set-cookie").is_none());
    assert_eq!(depth(&gw, "metered"), 0, "challenges make no place");
    assert_eq!(
        origin.count(),
        1,
        "only the admitted visitor reached the origin"
    );

    // Solved: a place in line, the token and the cookie, as any join.
    let body = answer(&ch, &solution(&ch));
    let r = post_join(&mut c, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["state"], "queued", "{j}");
    assert_eq!(j["position"], 1, "{j}");
    assert!(j["token"].is_string(), "{j}");
    assert!(
        j.get("challenge").is_none(),
        "a visitor with a place gets none: {j}"
    );
    assert!(r.header("set-cookie").is_some());
    assert_eq!(depth(&gw, "metered"), 1);

    // With its token the visitor never sees a challenge again.
    let page = c.get("/", BROWSER).await;
    assert!(
        !page.body.contains("Checking your browser"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("data-challenge-nonce"), "{}", page.body);
    let s = status(&c).await;
    assert_eq!(s["position"], 1, "{s}");
    assert!(s.get("challenge").is_none(), "{s}");

    // The same solution again, from a new client of the same prefix: refused, no place.
    let mut replay = gw.client("shop.test");
    let r = post_join(&mut replay, &body).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["reason"], "reused", "{}", r.body);
    assert!(r.json()["token"].is_null());
    challenge_of(&r.json());
    assert!(r.header("set-cookie").is_none());
    assert_eq!(depth(&gw, "metered"), 1, "a reused solution makes no place");

    // When the slot frees, the solved visitor is let in.
    first.send("POST", "/__anteroom/leave", &[], "").await;
    let mut c2 = c.clone();
    wait_until(LIMIT, "the solved visitor let in", || {
        let mut c = c2.clone();
        async move {
            let r = c.get("/now", JSON).await;
            (r.body == "origin:/now").then_some(())
        }
    })
    .await;
    assert_eq!(c2.get("/again", JSON).await.body, "origin:/again");

    let shop = [("room", "metered")];
    let issued = admin
        .metric("anteroom_pow_challenges_issued_total", &shop)
        .await
        .unwrap();
    assert!(issued >= 6.0, "{issued}");
    let solved = admin.metric("anteroom_pow_solved_total", &shop).await;
    assert_eq!(solved, Some(2.0));
    let reused = [("room", "metered"), ("reason", "reused")];
    assert_eq!(
        admin.metric("anteroom_pow_failed_total", &reused).await,
        Some(1.0)
    );
}

#[tokio::test]
async fn wrong_answers_are_refused_with_their_reason_and_no_place() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&config(&origin, "shop", "")).await;
    let mut c = gw.client("shop.test");
    let ch = challenge_of(&c.get("/", JSON).await.json());
    let good = solution(&ch);
    let wrong = (0u64..)
        .map(|n| n.to_string())
        .find(|s| !anteroom::pow::solves(ch["nonce"].as_str().unwrap(), s, DIFFICULTY as u8))
        .unwrap();
    // The other room's challenge, solved.
    let other_room = {
        let mut o = gw.client("vip.test");
        challenge_of(&o.get("/", JSON).await.json())
    };
    let tampered = {
        let n = ch["nonce"].as_str().unwrap();
        let mut b = n.as_bytes().to_vec();
        b[20] = if b[20] == b'A' { b'B' } else { b'A' };
        json!({"nonce": String::from_utf8(b).unwrap(), "solution": good}).to_string()
    };
    let cases: Vec<(String, Option<&str>, u16, &str)> = vec![
        ("garbage".into(), Some(JSON), 400, "malformed"),
        ("{\"nonce\": 5}".into(), Some(JSON), 400, "malformed"),
        (answer(&ch, "12ab"), Some(JSON), 400, "malformed"),
        ("x".repeat(2000), Some(JSON), 400, "malformed"),
        // A body that does not say it is JSON (a form of another site could send it).
        (answer(&ch, &good), Some("text/plain"), 400, "malformed"),
        (answer(&ch, &wrong), Some(JSON), 403, "wrong_solution"),
        (tampered, Some(JSON), 403, "forged"),
        (
            answer(&other_room, &solution(&other_room)),
            Some(JSON),
            403,
            "wrong_room",
        ),
        (String::new(), None, 403, "missing"),
    ];
    for (body, ct, want_status, want_reason) in cases {
        let mut v = gw.client("shop.test");
        let mut headers = vec![("accept", JSON)];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        let r = v.send("POST", "/__anteroom/join", &headers, &body).await;
        assert_eq!(r.status.as_u16(), want_status, "{want_reason}: {}", r.body);
        let j = r.json();
        assert_eq!(j["reason"], want_reason, "{j}");
        assert!(j["error"].is_string() && j["token"].is_null(), "{j}");
        challenge_of(&j);
        assert!(r.header("set-cookie").is_none(), "{want_reason}");
    }
    assert_eq!(depth(&gw, "shop"), 0, "no refused answer made a place");
    // None of them used the challenge up: it still joins, once.
    let r = post_join(&mut c, &answer(&ch, &good)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["token"].is_string());
}

/// A challenge is bound to the client's address prefix: behind a trusted proxy, one solved for
/// 203.0.113.0/24 is refused from 198.51.100.0/24.
#[tokio::test]
async fn a_challenge_of_another_client_prefix_is_refused() {
    let origin = Origin::start().await;
    let text = format!(
        "trusted_proxies = [\"127.0.0.0/8\"]\n{}",
        config(&origin, "shop", "")
    );
    let gw = Gateway::start(&text).await;
    let mut a = gw.client("shop.test");
    let r = a
        .send(
            "GET",
            "/",
            &[("accept", JSON), ("x-forwarded-for", "203.0.113.7")],
            "",
        )
        .await;
    let ch = challenge_of(&r.json());
    let body = answer(&ch, &solution(&ch));
    let mut b = gw.client("shop.test");
    let r = b
        .send(
            "POST",
            "/__anteroom/join",
            &[("content-type", JSON), ("x-forwarded-for", "198.51.100.7")],
            &body,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["reason"], "wrong_client");
    let r = a
        .send(
            "POST",
            "/__anteroom/join",
            &[("content-type", JSON), ("x-forwarded-for", "203.0.113.99")],
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "same /24: {}", r.body);
}

/// Rooms without the challenge, bypass paths and closed rooms answer as they do without it.
#[tokio::test]
async fn rooms_and_paths_without_the_challenge_are_unchanged() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&config(&origin, "shop", "bypass = [\"/static/*\"]")).await;
    let mut free = gw.client("free.test");
    let r = free.get("/", JSON).await;
    assert_eq!(r.status, 200, "admitted at once: {}", r.body);
    assert_eq!(r.body, "origin:/");
    assert!(r.header("set-cookie").is_some());
    let mut next = gw.client("free.test");
    let r = next.get("/", JSON).await;
    assert_eq!(r.json()["position"], 1, "{}", r.body);
    assert!(r.json().get("challenge").is_none(), "{}", r.body);
    let r = next.send("POST", "/__anteroom/join", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.json().get("challenge").is_none(), "{}", r.body);
    // A bypass path of the pow room passes without a challenge.
    let mut v = gw.client("shop.test");
    assert_eq!(
        v.get("/static/a.css", JSON).await.body,
        "origin:/static/a.css"
    );
    // A closed pow room answers closed, not with a challenge.
    let closed = Gateway::start(&config(&origin, "shop", "mode = \"reject\"")).await;
    let mut v = closed.client("shop.test");
    let r = v.get("/", JSON).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["state"], "closed");
    assert!(r.json().get("challenge").is_none(), "{}", r.body);
    // The worker is served, cacheable by its versioned URL.
    let w = v.get("/__anteroom/pow-worker.js", "*/*").await;
    assert_eq!(w.status, 200);
    assert!(w.body.contains("crypto.subtle"), "{}", w.body);
}

/// A token outlives its place: a token whose session is gone buys no new place at the join
/// endpoint without a solution, while a token of a known session gets its standing as before.
#[tokio::test]
async fn a_token_whose_place_is_gone_needs_a_solution_to_join_again() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&config(&origin, "shop", "")).await;
    let mut c = gw.client("shop.test");
    let ch = challenge_of(&c.get("/", JSON).await.json());
    let r = post_join(&mut c, &answer(&ch, &solution(&ch))).await;
    let token = r.json()["token"].as_str().unwrap().to_string();
    let token_header = [("anteroom-token", token.as_str()), ("accept", JSON)];
    // Known: its standing, no challenge, no second place.
    let r = c.send("POST", "/__anteroom/join", &token_header, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "admitted", "{}", r.body);
    assert!(r.json().get("challenge").is_none(), "{}", r.body);
    // Gone (left): the old token joins only with a solution.
    c.send("POST", "/__anteroom/leave", &token_header, "").await;
    let mut bot = gw.client("shop.test");
    let r = bot
        .send("POST", "/__anteroom/join", &token_header, "")
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["reason"], "missing");
    assert!(r.header("set-cookie").is_none());
    let ch = challenge_of(&r.json());
    let mut headers = token_header.to_vec();
    headers.push(("content-type", JSON));
    let r = bot
        .send(
            "POST",
            "/__anteroom/join",
            &headers,
            &answer(&ch, &solution(&ch)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "admitted", "{}", r.body);
    assert_ne!(r.json()["token"].as_str(), Some(token.as_str()));
}

/// Two instances on one shared store: a solution buys one place across both, not one at each
/// (the nonce is taken in Redis as well as in the instance's own filter).
#[tokio::test]
async fn a_solution_takes_one_place_across_instances() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let extra = format!(
        "active_users = 1\njoin_challenge = \"pow\"\npow_difficulty = {DIFFICULTY}\nabandon_after = \"60s\""
    );
    let (gws, _dirs) = instances(&shop_config(&redis, &origin, &extra, ""), 2).await;

    let mut a = client(&gws[0]);
    let r = a.get("/", JSON).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let c = challenge_of(&r.json());
    let body = answer(&c, &solution(&c));
    let r = post_join(&mut a, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "admitted", "{}", r.body);

    // The same solution, from the same client prefix without the cookie, at the other instance
    // (whose own filter has never seen it), and again at the first.
    for gw in [&gws[1], &gws[0]] {
        let mut bot = client(gw);
        let r = post_join(&mut bot, &body).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.json()["reason"], "reused", "{}", r.body);
        assert!(r.json()["token"].is_null(), "{}", r.body);
        assert!(r.header("set-cookie").is_none());
    }
    // Nobody else holds a place: a fresh solved join at the second instance is first in line.
    let mut b = client(&gws[1]);
    let c = challenge_of(&b.get("/", JSON).await.json());
    let r = post_join(&mut b, &answer(&c, &solution(&c))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["position"], 1, "{}", r.body);
    assert_eq!(r.json()["queue_depth"], 1, "{}", r.body);
}
