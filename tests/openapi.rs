//! `openapi.yaml` against the real gateway: every JSON answer (the waiting answer, status, join,
//! leave, closed, origin down, lottery, random, pre-queue, every admin call and its errors) is
//! validated against the schema the document gives for its path, method and status; an answer
//! the document does not describe fails. The served `/__anteroom/openapi.yaml` is the file.

// Tests unwrap, may run long, and share `pub` helpers through `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const FILE: &str = include_str!("../openapi.yaml");

/// The operations a path item may have.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The OpenAPI document, parsed.
struct Doc(Value);

impl Doc {
    fn load() -> Doc {
        let doc: Value = serde_norway::from_str(FILE).expect("openapi.yaml is YAML");
        assert_eq!(doc["openapi"], "3.1.0");
        Doc(doc)
    }

    /// The path template of the document that `path` (no query) falls under: the one with the
    /// most literal segments; `{site_path}` takes the rest of the path.
    fn template(&self, path: &str) -> String {
        let path = path.split('?').next().unwrap();
        let want: Vec<&str> = path.split('/').skip(1).collect();
        let mut best: Option<(usize, &String)> = None;
        for t in self.0["paths"].as_object().unwrap().keys() {
            let segs: Vec<&str> = t.split('/').skip(1).collect();
            let rest = segs.last() == Some(&"{site_path}");
            let fits = if rest {
                want.len() >= segs.len() - 1
                    && segs[..segs.len() - 1]
                        .iter()
                        .zip(&want)
                        .all(|(s, w)| s.starts_with('{') || s == w)
            } else {
                segs.len() == want.len()
                    && segs
                        .iter()
                        .zip(&want)
                        .all(|(s, w)| (s.starts_with('{') && !w.is_empty()) || s == w)
            };
            let literal = segs.iter().filter(|s| !s.starts_with('{')).count();
            if fits && best.is_none_or(|(l, _)| literal > l) {
                best = Some((literal, t));
            }
        }
        best.unwrap_or_else(|| panic!("no path of the document fits {path}"))
            .1
            .clone()
    }

    /// Follows a `$ref` within the document.
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let target = self
                    .0
                    .pointer(r.strip_prefix('#').unwrap())
                    .unwrap_or_else(|| panic!("dangling $ref {r}"));
                self.resolve(target)
            }
            None => v,
        }
    }

    /// The documented response of `template` `method` with `status`: the exact status, else its
    /// range (`4XX`), else `default`.
    /// A method the path does not have: its 405, as the path's operations list it.
    fn response(&self, template: &str, method: &str, status: u16) -> Option<&Value> {
        let item = &self.0["paths"][template];
        let op = match item.get(method.to_ascii_lowercase()) {
            Some(op) => op,
            None if status == 405 => METHODS.iter().find_map(|m| item.get(m))?,
            None => return None,
        };
        let responses = &op["responses"];
        let range = format!("{}XX", status / 100);
        [status.to_string(), range, "default".to_string()]
            .iter()
            .find_map(|k| responses.get(k))
            .map(|r| self.resolve(r))
    }

    /// The JSON schema the document gives an `application/json` answer, if any.
    fn json_schema(&self, template: &str, method: &str, status: u16) -> Option<&Value> {
        self.response(template, method, status)?
            .pointer("/content/application~1json/schema")
    }

    /// A validator of `schema` whose `$ref`s resolve against the document's components.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = schema.as_object().unwrap().clone();
        root.insert(
            "$schema".into(),
            "https://json-schema.org/draft/2020-12/schema".into(),
        );
        root.insert("components".into(), self.0["components"].clone());
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
    }

    /// The schema's complaints about `body` (none: it matches).
    fn errors(&self, schema: &Value, body: &Value) -> Vec<String> {
        let v = self.validator(schema);
        v.iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// A JSON body must match the schema of its path, method and status.
    fn check_json(&self, method: &str, path: &str, status: u16, body: &Value) {
        let t = self.template(path);
        let schema = self.json_schema(&t, method, status).unwrap_or_else(|| {
            panic!("{method} {t} {status}: no JSON schema in the document for {body}")
        });
        let errors = self.errors(schema, body);
        assert!(
            errors.is_empty(),
            "{method} {path} ({t}) {status}: {body}\n{}",
            errors.join("\n")
        );
    }

    /// An answer must be documented for its path, method and status, with its media type; a
    /// JSON one must match its schema.
    fn check(&self, method: &str, path: &str, reply: &Reply) {
        let t = self.template(path);
        let status = reply.status.as_u16();
        let response = self
            .response(&t, method, status)
            .unwrap_or_else(|| panic!("{method} {t}: {status} is not documented: {}", reply.body));
        let media = reply
            .header("content-type")
            .map(|c| c.split(';').next().unwrap().trim().to_string());
        let Some(media) = media else {
            let any = response.pointer("/content/*~1*").is_some();
            assert!(
                reply.body.is_empty() || any,
                "{method} {t} {status}: a body with no type"
            );
            return;
        };
        let content = response["content"].as_object().unwrap_or_else(|| {
            panic!("{method} {t} {status}: the document gives no content, got {media}")
        });
        let kind = format!("{}/*", media.split('/').next().unwrap());
        assert!(
            content.contains_key(&media)
                || content.contains_key(&kind)
                || content.contains_key("*/*"),
            "{method} {t} {status}: {media} is not documented ({:?})",
            content.keys().collect::<Vec<_>>()
        );
        if media == "application/json" {
            self.check_json(method, path, status, &reply.json());
        }
    }
}

/// One request through `client`, checked against the document; the answer.
async fn call(
    doc: &Doc,
    c: &mut Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let r = c.send(method, path, headers, "").await;
    doc.check(method, path, &r);
    r
}

/// One admin call, checked against the document; the answer.
async fn admin_call(doc: &Doc, admin: &Admin, method: &str, path: &str, body: &str) -> Reply {
    let r = admin.send(method, path, body).await;
    doc.check(method, path, &r);
    r
}

/// The visitor's status, checked, after waiting out the poll floor.
async fn status_checked(doc: &Doc, c: &mut Client) -> Value {
    loop {
        let r = call(doc, c, "GET", "/__anteroom/status", &[("accept", JSON)]).await;
        if r.status == 429 {
            let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        return r.json();
    }
}

/// Polls the status (each answer checked) until it says `want`.
async fn wait_checked(doc: &Doc, c: &mut Client, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let j = status_checked(doc, c).await;
        if j["state"] == want {
            return j;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {want}: {j}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `[[room.event]]` whose pre-queue opened a minute ago and which starts an hour ahead.
fn prequeue_event(name: &str) -> String {
    let now = unix_ms();
    format!(
        "[[room.event]]\nname = \"{name}\"\nprequeue_from = \"{}\"\nstarts_at = \"{}\"\nends_at = \"{}\"\nmessage = \"Soon\"\n",
        rfc3339_at(now - 60_000, 0),
        rfc3339_at(now + 3_600_000, 0),
        rfc3339_at(now + 7_200_000, 0)
    )
}

fn with_admin(config: String) -> String {
    config.replace(
        "http = \"127.0.0.1:0\"\n",
        "http = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n",
    )
}

/// A status JSON of every field, as the gateway writes one.
fn sample_status() -> Value {
    json!({
        "room": "shop", "state": "queued", "position": 3, "queue_depth": 7,
        "estimated_wait_seconds": 40, "release_rate_per_minute": 8.5, "poll_after_seconds": 4,
        "next_draw_at": null, "event_starts_at": null, "message": null, "token": "abc",
        "chance_next_minute": null, "release_expires_at": null, "session_expires_at": null,
        "session_ends_at": null, "admissions_slowed_at": "2026-01-01T10:00:00Z",
        "store_fallback": null, "updated_at": "2026-01-01T10:00:05Z"
    })
}

#[test]
fn the_validator_refuses_what_the_document_does_not_say() {
    let doc = Doc::load();
    let t = doc.template("/__anteroom/status");
    assert_eq!(t, "/__anteroom/status");
    let schema = doc.json_schema(&t, "GET", 200).unwrap();
    assert!(doc.errors(schema, &sample_status()).is_empty());
    // A challenge (the join challenge) is allowed, and `null`.
    for challenge in [
        json!({"algorithm": "sha256", "nonce": "n", "difficulty": 18, "expires_at": "2026-01-01T10:02:00Z"}),
        Value::Null,
    ] {
        let mut ok = sample_status();
        ok["challenge"] = challenge;
        assert!(doc.errors(schema, &ok).is_empty(), "{ok}");
    }
    let wrong: [(&str, Value); 6] = [
        ("queue_depth", json!("7")),
        ("position", json!(0)),
        ("state", json!("waiting")),
        ("updated_at", json!("yesterday")),
        ("surprise", json!(1)),
        (
            "challenge",
            json!({"algorithm": "md5", "nonce": "n", "difficulty": 1, "expires_at": "2026-01-01T10:02:00Z"}),
        ),
    ];
    for (field, value) in wrong {
        let mut bad = sample_status();
        bad[field] = value;
        assert!(!doc.errors(schema, &bad).is_empty(), "{field}: {bad}");
    }
    let mut missing = sample_status();
    missing.as_object_mut().unwrap().remove("token");
    assert!(!doc.errors(schema, &missing).is_empty());
    // An answer the document does not give has no schema: checking it fails.
    assert!(doc.response("/__anteroom/leave", "POST", 418).is_none());
    assert!(doc.json_schema(&t, "GET", 302).is_none());
    let undocumented = std::panic::catch_unwind(|| {
        doc.check_json("GET", "/__anteroom/status", 418, &sample_status())
    });
    assert!(undocumented.is_err());
    // Site URLs and the admin API fall under their templates.
    assert_eq!(doc.template("/a/b?c=1"), "/{site_path}");
    assert_eq!(doc.template("/"), "/{site_path}");
    assert_eq!(
        doc.template("/api/v1/rooms/x/events/y/end"),
        "/api/v1/rooms/{name}/events/{event}/end"
    );
    assert_eq!(doc.template("/__anteroom/nope"), "/__anteroom/{name}");
}

#[test]
fn every_schema_of_the_document_compiles_and_every_ref_resolves() {
    let doc = Doc::load();
    for (name, schema) in doc.0["components"]["schemas"].as_object().unwrap() {
        let _ = doc.validator(schema);
        assert!(!name.is_empty());
    }
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc.0, &mut all);
    assert!(all.len() > 50);
    for r in all {
        assert!(doc.0.pointer(&r[1..]).is_some(), "dangling {r}");
    }
}

#[tokio::test]
async fn the_served_document_is_the_file() {
    let origin = Origin::start().await;
    let gw = Gateway::start(
        &(base_config("20ms") + &room("docs", "docs.test", &origin.url(), "active_users = 10")),
    )
    .await;
    let doc = Doc::load();
    let mut c = gw.client("docs.test");
    let path = "/__anteroom/openapi.yaml";
    let r = call(&doc, &mut c, "GET", path, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/yaml"));
    assert_eq!(r.body, FILE);
    let etag = r.header("etag").unwrap().to_string();
    let r = call(&doc, &mut c, "GET", path, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 304);
    for file in ["/__anteroom/waiting.js", "/__anteroom/waiting.css"] {
        let r = call(&doc, &mut c, "GET", file, &[]).await;
        assert_eq!(r.status, 200, "{file}");
    }
    let r = call(&doc, &mut c, "POST", path, &[("accept", JSON)]).await;
    assert_eq!(r.status, 405);
    let r = call(&doc, &mut c, "GET", "/__anteroom/nope", &[("accept", JSON)]).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        origin.count(),
        0,
        "the origin never sees the reserved prefix"
    );
}

#[tokio::test]
async fn a_visitor_through_the_line_gets_documented_json_at_every_step() {
    let origin = Origin::start().await;
    let extra =
        "active_users = 1\nsession_ttl = \"1h\"\nabandon_after = \"1h\"\nmessage = \"Busy\"";
    let gw =
        Gateway::start(&(base_config("20ms") + &room("shop", "shop.test", &origin.url(), extra)))
            .await;
    let doc = Doc::load();
    let app = [("accept", JSON)];

    // The first visitor is admitted: the origin's answer.
    let mut first = gw.client("shop.test");
    let r = call(&doc, &mut first, "GET", "/cart", &app).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let admitted = status_checked(&doc, &mut first).await;
    assert_eq!(admitted["state"], "admitted");
    // Its event stream says so once and ends; a preflight has no body.
    let sse = [("accept", "text/event-stream")];
    let r = call(&doc, &mut first, "GET", "/__anteroom/events", &sse).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("event: status\ndata: {"), "{}", r.body);
    let r = call(&doc, &mut first, "OPTIONS", "/__anteroom/events", &sse).await;
    assert_eq!(r.status, 204);

    // The second waits: 429 with the status JSON and its token.
    let mut second = gw.client("shop.test");
    let r = call(&doc, &mut second, "GET", "/cart", &app).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["state"], "queued");
    assert!(r.json()["token"].is_string());
    // Posting as fast as it can: the poll floor's 429 on a status poll and at a site URL.
    let mut floor = 0;
    for _ in 0..3 {
        let r = call(&doc, &mut second, "GET", "/__anteroom/status", &app).await;
        floor += usize::from(r.status == 429);
    }
    assert!(floor > 0, "no poll floor");
    let r = call(&doc, &mut second, "POST", "/form", &app).await;
    assert_eq!(r.status, 429, "{}", r.body);

    // A native app joins, then asks with its token in the header.
    let mut app_client = gw.client("shop.test");
    let r = call(&doc, &mut app_client, "POST", "/__anteroom/join", &app).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["token"].as_str().unwrap().to_string();
    let by_header = [("accept", JSON), ("anteroom-token", token.as_str())];
    let mut bare = gw.client("shop.test");
    let r = call(&doc, &mut bare, "GET", "/__anteroom/status", &by_header).await;
    assert!(r.status == 200 || r.status == 429, "{}", r.body);
    let r = call(&doc, &mut bare, "POST", "/__anteroom/join", &by_header).await;
    assert!(r.status == 200 || r.status == 429, "{}", r.body);

    // No session, or a forged token: 404.
    let mut nobody = gw.client("shop.test");
    let r = call(&doc, &mut nobody, "GET", "/__anteroom/status", &app).await;
    assert_eq!(r.status, 404);
    let forged = [("accept", JSON), ("anteroom-token", "AAAA")];
    let r = call(&doc, &mut nobody, "GET", "/__anteroom/status", &forged).await;
    assert_eq!(r.status, 404);
    let r = call(&doc, &mut nobody, "GET", "/__anteroom/join", &app).await;
    assert_eq!(r.status, 405);
    let r = call(&doc, &mut nobody, "GET", "/__anteroom/events", &app).await;
    assert_eq!(r.status, 404);
    let r = call(&doc, &mut nobody, "POST", "/__anteroom/events", &app).await;
    assert_eq!(r.status, 405);
    let r = call(&doc, &mut nobody, "POST", "/__anteroom/leave", &app).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["left"].clone()),
        (200, json!(false))
    );

    // The first leaves: the second is released, then admitted.
    let r = call(&doc, &mut first, "POST", "/__anteroom/leave", &app).await;
    assert_eq!(r.json()["left"], true);
    let released = wait_checked(&doc, &mut second, "released").await;
    assert!(released["release_expires_at"].is_string());
    let r = call(&doc, &mut second, "GET", "/cart", &app).await;
    assert_eq!(r.status, 200);
    let admitted = wait_checked(&doc, &mut second, "admitted").await;
    assert!(admitted["session_expires_at"].is_string());

    // The app leaves by a form post (a page), and its token then names an expired place.
    let r = call(
        &doc,
        &mut app_client,
        "POST",
        "/__anteroom/leave",
        &[("accept", BROWSER)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let r = call(&doc, &mut bare, "GET", "/__anteroom/status", &by_header).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["state"].clone()),
        (200, json!("expired"))
    );
}

#[tokio::test]
async fn closed_rooms_failing_origins_and_other_lines_answer_as_documented() {
    let origin = Origin::start().await;
    let dead = format!("http://{}", dead_port().await);
    let one = "active_users = 1\nsession_ttl = \"1h\"\nabandon_after = \"1h\"";
    let rooms = [
        room(
            "closed",
            "closed.test",
            &origin.url(),
            "active_users = 1\nmode = \"reject\"\nmessage = \"Closed today\"",
        ),
        room("down", "down.test", &dead, "active_users = 100"),
        room(
            "lottery",
            "lottery.test",
            &origin.url(),
            &format!("{one}\nqueue = \"lottery\"\ndraw_every = \"1h\""),
        ),
        room(
            "random",
            "random.test",
            &origin.url(),
            &format!("{one}\nqueue = \"random\""),
        ),
        room(
            "drop",
            "drop.test",
            &origin.url(),
            &format!("{one}\n{}", prequeue_event("launch")),
        ),
    ];
    let gw = Gateway::start(&(base_config("20ms") + &rooms.concat())).await;
    let doc = Doc::load();
    let app = [("accept", JSON)];

    let mut c = gw.client("closed.test");
    let r = call(&doc, &mut c, "GET", "/", &app).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["state"].clone()),
        (503, json!("closed"))
    );
    let r = call(&doc, &mut c, "POST", "/__anteroom/join", &app).await;
    assert_eq!(r.status, 503);
    let r = call(&doc, &mut c, "GET", "/a%2Fb", &app).await;
    assert_eq!(r.status, 400, "a plain line, documented");

    let mut c = gw.client("down.test");
    let r = call(&doc, &mut c, "GET", "/page", &app).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].clone()),
        (502, json!("origin_unreachable"))
    );

    let mut unknown = gw.client("nowhere.test");
    let r = call(&doc, &mut unknown, "GET", "/", &app).await;
    assert_eq!(r.status, 421);

    for (host, field) in [
        ("lottery.test", "next_draw_at"),
        ("random.test", "chance_next_minute"),
    ] {
        let mut holder = gw.client(host);
        assert_eq!(call(&doc, &mut holder, "GET", "/", &app).await.status, 200);
        let mut waiting = gw.client(host);
        let r = call(&doc, &mut waiting, "GET", "/", &app).await;
        assert_eq!(r.status, 429, "{host}: {}", r.body);
        let j = status_checked(&doc, &mut waiting).await;
        assert_eq!(j["state"], "queued", "{host}: {j}");
        assert!(!j[field].is_null(), "{host}: {j}");
        assert!(j["position"].is_null(), "{host}: {j}");
    }

    let mut early = gw.client("drop.test");
    let r = call(&doc, &mut early, "GET", "/", &app).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["state"].clone()),
        (429, json!("prequeue"))
    );
    let j = status_checked(&doc, &mut early).await;
    assert_eq!(j["state"], "prequeue");
    assert!(j["event_starts_at"].is_string());
    let mut joiner = gw.client("drop.test");
    let r = call(&doc, &mut joiner, "POST", "/__anteroom/join", &app).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["state"].clone()),
        (200, json!("prequeue"))
    );
}

#[tokio::test]
async fn every_admin_call_answers_as_documented() {
    const VAR: &str = "ANTEROOM_TEST_ADMIN_TOKEN_OPENAPI";
    const TOKEN: &str = "openapi-admin-token";
    let origin = Origin::start().await;
    // Two events may not overlap: the second one a day later.
    let now = unix_ms();
    let later = format!(
        "[[room.event]]\nname = \"later\"\nprequeue_from = \"{}\"\nstarts_at = \"{}\"\nends_at = \"{}\"\nqueue = \"random\"\nactive_users = 5\n",
        rfc3339_at(now + 86_400_000, 0),
        rfc3339_at(now + 90_000_000, 0),
        rfc3339_at(now + 93_600_000, 0)
    );
    let extra = format!("active_users = 1\n{}{later}", prequeue_event("launch"));
    let config = with_admin(base_config("20ms"))
        + &format!("[admin]\ntoken_env = \"{VAR}\"\n\n")
        + &room("shop", "shop.test", &origin.url(), "active_users = 2")
        + &room("drop", "drop.test", &origin.url(), &extra);
    let gw = Gateway::start_with_env(&config, &[(VAR, TOKEN)]).await;
    let doc = Doc::load();
    let mut admin = Admin::of(&gw);

    // Without the token: 401; a foreign Host: 403.
    let r = admin_call(&doc, &admin, "GET", "/api/v1/rooms", "").await;
    assert_eq!(r.status, 401);
    admin.token = Some(TOKEN.into());
    let r = admin
        .with_host("evil.example")
        .send("GET", "/api/v1/config", "")
        .await;
    doc.check("GET", "/api/v1/config", &r);
    assert_eq!(r.status, 403);

    let r = admin_call(&doc, &admin, "GET", "/api/v1/rooms", "").await;
    assert_eq!(r.status, 200);
    let r = admin_call(&doc, &admin, "GET", "/api/v1/rooms/drop", "").await;
    assert_eq!(r.json()["events"][0]["phase"], "prequeue");
    let r = admin_call(&doc, &admin, "GET", "/api/v1/rooms/none", "").await;
    assert_eq!(r.status, 404);
    let r = admin_call(&doc, &admin, "POST", "/api/v1/rooms", "").await;
    assert_eq!(r.status, 405);

    let patch =
        r#"{"paused": true, "message": "Back soon", "queue": "lottery", "active_users": 3}"#;
    let r = admin_call(&doc, &admin, "PATCH", "/api/v1/rooms/shop", patch).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["overrides"]["paused"].clone()),
        (200, json!(true))
    );
    for bad in [r#"{"paused": "yes"}"#, r#"{"nope": 1}"#, "[1]"] {
        let r = admin_call(&doc, &admin, "PATCH", "/api/v1/rooms/shop", bad).await;
        assert_eq!(r.status, 400, "{bad}");
    }
    let r = admin_call(&doc, &admin, "PATCH", "/api/v1/rooms/none", patch).await;
    assert_eq!(r.status, 404);
    let r = admin
        .raw(
            "PATCH",
            "/api/v1/rooms/shop",
            &[("authorization", &format!("Bearer {TOKEN}"))],
            "paused",
        )
        .await;
    doc.check("PATCH", "/api/v1/rooms/shop", &r);
    assert_eq!(r.status, 415);
    let r = admin_call(&doc, &admin, "DELETE", "/api/v1/rooms/shop/overrides", "").await;
    assert_eq!(r.status, 200);

    // The operator's buttons: start (200, then 409), end (200, then 409), unknown (404).
    let start = "/api/v1/rooms/drop/events/launch/start";
    let end = "/api/v1/rooms/drop/events/launch/end";
    for (path, want) in [(start, 200), (start, 409), (end, 200), (end, 409)] {
        let r = admin_call(&doc, &admin, "POST", path, "").await;
        assert_eq!(r.status, want, "{path}: {}", r.body);
    }
    for path in [
        "/api/v1/rooms/drop/events/nope/start",
        "/api/v1/rooms/none/events/launch/end",
    ] {
        let r = admin_call(&doc, &admin, "POST", path, "").await;
        assert_eq!(r.status, 404, "{path}");
    }
    let r = admin_call(&doc, &admin, "GET", "/api/v1/rooms/drop", "").await;
    assert_eq!(r.json()["events"][0]["phase"], "ended");
    assert!(r.json()["overrides"]["events"]["launch"]["ends_at_ms"].is_u64());

    let r = admin_call(&doc, &admin, "POST", "/api/v1/snapshot", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = admin_call(&doc, &admin, "GET", "/api/v1/config", "").await;
    assert_eq!(r.status, 200);
    let r = admin_call(&doc, &admin, "POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let file = gw.dir.path().join("gateway.toml");
    std::fs::write(
        &file,
        config.replace("active_users = 2", "active_users = \"many\""),
    )
    .unwrap();
    let r = admin_call(&doc, &admin, "POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = admin_call(&doc, &admin, "GET", "/api/v1/config", "").await;
    assert_eq!(r.json()["last_reload"]["result"], "error");

    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = admin_call(&doc, &admin, "GET", path, "").await;
        assert_eq!(r.status, 200, "{path}");
    }
}
