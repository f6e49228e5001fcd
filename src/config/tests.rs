//! Table tests of configuration validation: what is accepted, and where every error points.

use std::path::Path;
use std::time::Duration;

use super::parse;

const GOOD: &str = r#"
tick = "1s"
[listen]
http = "127.0.0.1:0"

[[room]]
name = "shop"
hosts = ["Shop.Example"]
origin = "http://127.0.0.1:9001"
active_users = 2
session_ttl = "30s"
bypass = ["/favicon.ico", "/static/*"]
"#;

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("gateway.toml"), text) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn good_file_validates() {
    let c = parse(Path::new("gateway.toml"), GOOD).unwrap();
    assert_eq!(c.rooms.len(), 1);
    assert!(c.room_for_host("shop.example").is_some());
    assert_eq!(c.rooms[0].settings.session_ttl, Duration::from_secs(30));
    assert!(c.rooms[0].bypass[1].matches("/static/app.js"));
    assert!(!c.rooms[0].bypass[0].matches("/favicon.ico2"));
    // The cookie keeps its name unless the prefix is asked for, and then only over TLS.
    let r = &c.rooms[0];
    assert_eq!(
        (r.cookie_name_for(false), r.cookie_name_for(true)),
        ("anteroom_shop".into(), "anteroom_shop".into())
    );
    let c = parse(
        Path::new("gateway.toml"),
        &GOOD.replace(
            "active_users = 2",
            "active_users = 2\ncookie_prefix_host = true",
        ),
    )
    .unwrap();
    let r = &c.rooms[0];
    assert_eq!(r.cookie_name_for(false), "anteroom_shop");
    assert_eq!(r.cookie_name_for(true), "__Host-anteroom_shop");
}

#[test]
fn errors_name_file_line_and_key() {
    let cases = top_level_error_cases()
        .into_iter()
        .chain(room_error_cases())
        .chain(push_error_cases())
        .chain(bypass_error_cases());
    for (text, want) in cases {
        let got = errors(&text);
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "want {want}, got {got:?}"
        );
    }
}

/// Files with an error outside any room, and the start of the error each must give.
fn top_level_error_cases() -> Vec<(String, &'static str)> {
    vec![
        (
            GOOD.replace("http = \"127.0.0.1:0\"", "http = \"nowhere\""),
            "gateway.toml:4: key `listen.http`",
        ),
        (
            GOOD.replace("tick = \"1s\"", "tick = 1"),
            "gateway.toml:2: key `tick`",
        ),
        (GOOD.replace("[listen]", "[listen"), "gateway.toml:3"),
    ]
}

/// Files with an error in a `[[room]]` key, and the start of the error each must give.
/// `cors_origins` entries that are not origins, and a zero heartbeat.
fn push_error_cases() -> Vec<(String, &'static str)> {
    vec![
        (
            GOOD.replace(
                "active_users = 2",
                "active_users = 2\ncors_origins = [\"https://app.example\", \"*\"]",
            ),
            "gateway.toml:11: key `room[0].cors_origins[1]`",
        ),
        (
            GOOD.replace(
                "active_users = 2",
                "active_users = 2\ncors_origins = [\"https://app.example/\"]",
            ),
            "gateway.toml:11: key `room[0].cors_origins[0]`",
        ),
        (
            format!("{GOOD}\n[limits]\nevent_heartbeat = \"0s\"\n"),
            "gateway.toml:15: key `limits.event_heartbeat`",
        ),
    ]
}

fn room_error_cases() -> Vec<(String, &'static str)> {
    vec![
        (
            GOOD.replace("session_ttl = \"30s\"", "session_ttl = \"30 parsecs\""),
            "gateway.toml:11: key `room[0].session_ttl`",
        ),
        (
            GOOD.replace("active_users = 2", "active_users = 2\nactve_users = 3"),
            "gateway.toml:11: key `room[0].actve_users`",
        ),
        (
            GOOD.replace("http://127.0.0.1:9001", "ftp://x"),
            "gateway.toml:9: key `room[0].origin`",
        ),
        (
            GOOD.replace("active_users = 2", "active_users = 0"),
            "gateway.toml:10: key `room[0].active_users`",
        ),
        (
            format!(
                "{GOOD}\n[[room]]\nname = \"b\"\nhosts = [\"shop.example\"]\norigin = \"http://a:1\"\nactive_users = 1\n"
            ),
            "gateway.toml:16: key `room[1].hosts[0]`",
        ),
        (
            GOOD.replace(
                "active_users = 2",
                "active_users = 2\ncookie_prefix_host = \"yes\"",
            ),
            "gateway.toml:11: key `room[0].cookie_prefix_host`",
        ),
        (
            GOOD.replace(
                "active_users = 2",
                "active_users = 2\njoin_challenge = \"captcha\"",
            ),
            "gateway.toml:11: key `room[0].join_challenge`",
        ),
        (
            GOOD.replace(
                "active_users = 2",
                "active_users = 2\njoin_challenge = \"pow\"\npow_difficulty = 33",
            ),
            "gateway.toml:12: key `room[0].pow_difficulty`",
        ),
        (
            GOOD.replace("active_users = 2", "active_users = 2\npow_difficulty = 0"),
            "gateway.toml:11: key `room[0].pow_difficulty`",
        ),
    ]
}

#[test]
fn the_join_challenge_defaults_to_none_and_pow_to_18_bits() {
    use crate::pow::JoinChallenge;
    let load = |extra: &str| {
        let text = GOOD.replace("active_users = 2", &format!("active_users = 2\n{extra}"));
        parse(Path::new("gateway.toml"), &text).unwrap().rooms[0].join_challenge
    };
    assert_eq!(load(""), JoinChallenge::None);
    assert_eq!(load("join_challenge = \"none\""), JoinChallenge::None);
    assert_eq!(
        load("join_challenge = \"pow\""),
        JoinChallenge::Pow { difficulty: 18 }
    );
    assert_eq!(
        load("join_challenge = \"pow\"\npow_difficulty = 12"),
        JoinChallenge::Pow { difficulty: 12 }
    );
}

/// Files with a `bypass` pattern not in normal form, and the start of the error each must give.
/// Requests are matched in normal form; a pattern that is not one could never match.
fn bypass_error_cases() -> Vec<(String, &'static str)> {
    vec![
        (
            GOOD.replace("\"/static/*\"", "\"/static/../admin*\""),
            "gateway.toml:12: key `room[0].bypass[1]`",
        ),
        (
            GOOD.replace("\"/static/*\"", "\"/%2e/x\""),
            "gateway.toml:12: key `room[0].bypass[1]`",
        ),
        (
            GOOD.replace("\"/static/*\"", "\"/a%2Fb\""),
            "gateway.toml:12: key `room[0].bypass[1]`",
        ),
    ]
}

#[test]
fn every_error_is_reported() {
    let text = GOOD
        .replace(
            "session_ttl = \"30s\"",
            "session_ttl = \"x\"\nabandon_after = \"y\"",
        )
        .replace("active_users = 2", "active_users = -1");
    assert_eq!(errors(&text).len(), 3, "{:?}", errors(&text));
}

#[test]
fn durations_past_a_year_and_bad_proxy_lists_are_refused() {
    let huge = GOOD.replace(
        "session_ttl = \"30s\"",
        "session_ttl = \"18446744073709551615s\"",
    );
    let e = errors(&huge);
    assert!(
        e.iter()
            .any(|m| m.contains("room[0].session_ttl") && m.contains("at most a year")),
        "{e:?}"
    );
    let limits = GOOD.replace("[listen]", "[limits]\nidle_timeout = \"400d\"\n[listen]");
    assert!(
        errors(&limits)
            .iter()
            .any(|m| m.contains("limits.idle_timeout"))
    );
    let proxies = GOOD.replace(
        "tick = \"1s\"",
        "tick = \"1s\"\ntrusted_proxies = [\"10.0.0.0/8\", \"not-an-address\"]",
    );
    let e = errors(&proxies);
    assert!(
        e.iter()
            .any(|m| m.contains("trusted_proxies[1]") && m.contains(":3:")),
        "{e:?}"
    );
}

/// A file with `[store]` as given and the token secret from the environment.
fn shared(store: &str) -> String {
    GOOD.replace(
        "[listen]",
        &format!("[token]\nsecret_env = \"S\"\n[store]\n{store}\n[listen]"),
    )
}

/// `[store]`: a good redis store with the secret from the environment passes, and memory stays
/// the default.
#[test]
fn a_redis_store_validates_with_its_defaults() {
    assert_eq!(
        parse(Path::new("gateway.toml"), GOOD).unwrap().store,
        super::StoreSettings::Memory
    );
    let good = shared("kind = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"");
    let c = parse(Path::new("gateway.toml"), &good).unwrap();
    match c.store {
        super::StoreSettings::Redis(r) => {
            assert_eq!(r.key_prefix, "anteroom");
            assert_eq!(r.timeout, Duration::from_millis(250));
            assert_eq!(r.on_error, super::OnStoreError::Closed);
        }
        other => panic!("{other:?}"),
    }
    for (word, want) in [
        ("open", super::OnStoreError::Open),
        ("local", super::OnStoreError::Local),
    ] {
        let text = shared(&format!(
            "kind = \"redis\"\nurl = \"redis://x\"\non_error = \"{word}\""
        ));
        match parse(Path::new("gateway.toml"), &text).unwrap().store {
            super::StoreSettings::Redis(r) => assert_eq!(r.on_error, want),
            other => panic!("{other:?}"),
        }
    }
}

/// `[store]`: each mistake named by its key.
#[test]
fn store_errors_name_their_key() {
    let cases = [
        (shared("kind = \"etcd\""), "store.kind"),
        (shared("kind = \"redis\""), "store.kind"),
        (shared("kind = \"redis\"\nurl = \"http://x\""), "store.url"),
        (
            shared("kind = \"redis\"\nurl = \"redis://x\"\nurl_env = \"U\""),
            "store.url_env",
        ),
        (
            shared("kind = \"redis\"\nurl = \"redis://x\"\non_error = \"retry\""),
            "store.on_error",
        ),
        (
            shared("kind = \"redis\"\nurl = \"redis://x\"\nkey_prefix = \"a{b}\""),
            "store.key_prefix",
        ),
        (
            shared("kind = \"redis\"\nurl = \"redis://x\"\ntimeout = \"soon\""),
            "store.timeout",
        ),
        (shared("url = \"redis://x\""), "store.url"),
        (
            GOOD.replace(
                "[listen]",
                "[store]\nkind = \"redis\"\nurl = \"redis://x\"\n[listen]",
            ),
            "token.secret_env",
        ),
    ];
    for (text, key) in cases {
        let e = errors(&text);
        assert!(
            e.iter().any(|m| m.contains(&format!("`{key}`"))),
            "want {key}: {e:?}"
        );
    }
    // Every policy works with a shared store.
    for q in ["fifo", "random", "lottery"] {
        let text = shared("kind = \"redis\"\nurl = \"redis://x\"").replace(
            "active_users = 2",
            &format!("active_users = 2\nqueue = \"{q}\""),
        );
        assert_eq!(errors(&text), Vec::<String>::new(), "{q}");
    }
}

/// Two events of the shop room after GOOD (lines 14 to 18 and 20 on), with `first` and `second` replacing
/// their times.
fn with_events(first: &str, second: &str) -> String {
    format!(
        "{GOOD}\n[[room.event]]\nname = \"drop\"\n{first}\n\n[[room.event]]\nname = \"late\"\n{second}\n"
    )
}

const FIRST: &str = "prequeue_from = \"2026-12-24T17:30:00+01:00\"\nstarts_at = 2026-12-24T18:00:00+01:00\nends_at = \"2026-12-24T20:00:00+01:00\"";
const SECOND: &str = "starts_at = \"2026-12-25T18:00:00Z\"\nends_at = \"2026-12-25T19:00:00Z\"";

#[test]
fn events_take_rfc3339_times_with_offsets_as_strings_or_toml_times() {
    let c = parse(Path::new("gateway.toml"), &with_events(FIRST, SECOND)).unwrap();
    let e = &c.rooms[0].events;
    assert_eq!(e.len(), 2);
    // 2026-12-24T17:00:00Z.
    assert_eq!(e[0].starts_at_ms, 1_798_131_600_000);
    assert_eq!(e[0].prequeue_from_ms, e[0].starts_at_ms - 1_800_000);
    assert!(e[0].shuffle);
    // No pre-queue key: it opens at the start.
    assert_eq!(e[1].prequeue_from_ms, e[1].starts_at_ms);
    assert_eq!(c.rooms[0].outside_events, super::OutsideEvents::Queue);
}

/// The shared store runs scheduled events too: a room with events on it loads.
#[test]
fn events_load_on_the_shared_store() {
    let text = with_events(FIRST, SECOND).replace(
        "tick = \"1s\"",
        "tick = \"1s\"\n[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n[token]\nsecret_env = \"S\"",
    );
    let c = parse(Path::new("gateway.toml"), &text).unwrap();
    assert_eq!(c.rooms[0].events.len(), 2);
}

#[test]
fn event_errors_name_line_and_key() {
    let cases = [
        // Overlapping (the second's pre-queue opens before the first ends).
        (
            with_events(
                FIRST,
                "prequeue_from = \"2026-12-24T18:59:00Z\"\nstarts_at = \"2026-12-24T19:30:00Z\"\nends_at = \"2026-12-24T21:00:00Z\"",
            ),
            "gateway.toml:22: key `room[0].event[1].prequeue_from`",
        ),
        // No offset.
        (
            with_events(FIRST, &SECOND.replace("18:00:00Z", "18:00:00")),
            "gateway.toml:22: key `room[0].event[1].starts_at`",
        ),
        // Ends before it starts.
        (
            with_events(FIRST, &SECOND.replace("19:00:00Z", "17:00:00Z")),
            "gateway.toml:23: key `room[0].event[1].ends_at`",
        ),
        // The pre-queue after the start.
        (
            with_events(&FIRST.replace("17:30:00+01:00", "18:30:00+01:00"), SECOND),
            "gateway.toml:16: key `room[0].event[0].prequeue_from`",
        ),
        // Two events of one name.
        (
            with_events(FIRST, SECOND).replace("name = \"late\"", "name = \"drop\""),
            "gateway.toml:21: key `room[0].event[1].name`",
        ),
        (
            with_events(FIRST, &format!("{SECOND}\nactive_users = 0")),
            "gateway.toml:24: key `room[0].event[1].active_users`",
        ),
        (
            with_events(FIRST, &format!("{SECOND}\nqueue = \"stack\"")),
            "gateway.toml:24: key `room[0].event[1].queue`",
        ),
        (
            with_events(FIRST, SECOND).replace(
                "active_users = 2",
                "active_users = 2\noutside_events = \"shut\"",
            ),
            "gateway.toml:11: key `room[0].outside_events`",
        ),
    ];
    for (text, want) in cases {
        let got = errors(&text);
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "want {want}, got {got:?}\n{text}"
        );
    }
}

#[test]
fn a_room_speaks_its_languages_with_its_own_strings() {
    let text = format!(
        "{GOOD}languages = [\"en\", \"de\"]\ndefault_language = \"de\"\ndisplay_name = \"Der Laden\"\n\
         [room.text.de]\nqueue_heading = \"Bitte warten: {{site}}\"\n"
    );
    let c = parse(Path::new("gateway.toml"), &text).unwrap();
    let r = &c.rooms[0];
    let codes: Vec<&str> = r.text.langs.iter().map(|l| l.code).collect();
    assert_eq!(codes, ["en", "de"]);
    assert_eq!(r.text.langs[r.text.default].code, "de");
    assert_eq!(r.text.langs[1].get("queue_heading"), "Bitte warten: {site}");
    assert_eq!(
        r.text.langs[1].get("paused"),
        "Die Warteschlange ist kurz angehalten. Ihr Platz bleibt erhalten."
    );
    assert_eq!(r.display_name.as_deref(), Some("Der Laden"));
    // Unset: every built-in language, English by default, the host as the site's name.
    let c = parse(Path::new("gateway.toml"), GOOD).unwrap();
    let r = &c.rooms[0];
    assert_eq!(r.text.langs.len(), crate::pages::lang::COUNT);
    assert_eq!(r.text.langs[r.text.default].code, "en");
    assert!(r.display_name.is_none());
}

#[test]
fn language_errors_name_line_and_key() {
    let cases = [
        (
            "languages = [\"en\", \"xx\"]\n",
            "gateway.toml:13: key `room[0].languages[1]`: \"xx\" is not a language",
        ),
        (
            "languages = []\n",
            "gateway.toml:13: key `room[0].languages`",
        ),
        (
            "languages = [\"en\", \"de\"]\ndefault_language = \"fr\"\n",
            "gateway.toml:14: key `room[0].default_language`: \"fr\" is not one of",
        ),
        (
            "\n[room.text.de]\nqueue_heading = \"Hallo\"\nbogus_key = \"x\"\n",
            "gateway.toml:16: key `room[0].text.de.bogus_key`: `bogus_key` is not a text key",
        ),
        (
            "[room.text.sv]\nfooter = \"x\"\n",
            "gateway.toml:13: key `room[0].text.sv`",
        ),
        (
            "languages = [\"en\"]\n[room.text.de]\nfooter = \"x\"\n",
            "gateway.toml:14: key `room[0].text.de`: \"de\" is not one of this room's",
        ),
        (
            "display_name = \" \"\n",
            "gateway.toml:13: key `room[0].display_name`",
        ),
    ];
    for (extra, want) in cases {
        let got = errors(&format!("{GOOD}{extra}"));
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "{extra:?}: want {want}, got {got:?}"
        );
    }
}

/// A room's template file with `body`, written for one test.
fn template_file(test: &str, body: &str) -> String {
    let dir = std::env::temp_dir().join(format!("anteroom-tpl-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shop.html");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[test]
fn a_template_reading_an_unknown_variable_is_refused_at_load() {
    let body = "<html lang=\"{{ lang }}\">\n<p>{{ t.queue_heading }}</p>\n\n<p>{{ postion }}</p>\n";
    for (key, other) in [("page", ""), ("closed_page", ""), ("error_page", "")] {
        let path = template_file(key, body);
        let text = format!("{GOOD}{key} = {path:?}\n{other}");
        let errs = errors(&text);
        let want = format!("{path}:4: unknown variable `postion`");
        assert!(
            errs.iter().any(|e| e.contains(&want) && e.contains(key)),
            "{key}: {errs:?}"
        );
        if key == "page" {
            assert!(errs[0].contains("(did you mean `position`?)"), "{errs:?}");
            assert!(errs[0].contains("queue_depth"), "{errs:?}");
        }
    }
}

#[test]
fn a_template_reading_only_its_values_loads() {
    let page = template_file(
        "good-page",
        "{{ position }} {{ t.queue_heading }} {{ waiting_css_url }} {% for l in languages %}{{ l.code }}{% endfor %}{{ range(3)|length }}",
    );
    let closed = template_file(
        "good-closed",
        "{{ retry_text }} {{ message }} {{ csp_nonce }}",
    );
    let text = format!("{GOOD}page = {page:?}\nclosed_page = {closed:?}\n");
    assert_eq!(errors(&text), Vec::<String>::new());
    // A closed page has no place in line.
    let closed = template_file("bad-closed", "{{ position }}");
    let errs = errors(&format!("{GOOD}closed_page = {closed:?}\n"));
    assert!(
        errs.iter()
            .any(|e| e.contains("unknown variable `position`")),
        "{errs:?}"
    );
}
