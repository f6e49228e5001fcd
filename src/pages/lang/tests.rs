//! The built-in language files agree with English, and the choice of language follows the
//! visitor.

use super::*;

#[test]
fn every_language_file_has_exactly_the_keys_and_placeholders_of_english() {
    let en = parse(SHIPPED[0].1).unwrap();
    assert!(en.len() > 50, "en.txt has {} keys", en.len());
    for (code, text) in SHIPPED {
        let table = parse(text).unwrap_or_else(|e| panic!("{code}.txt: {e}"));
        for (key, en_text) in &en {
            let Some((_, t)) = table.iter().find(|(k, _)| k == key) else {
                panic!("{code}.txt lacks `{key}`");
            };
            assert!(!t.is_empty(), "{code}.txt: `{key}` is empty");
            let (mut want, mut got) = (placeholders(en_text), placeholders(t));
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, want, "{code}.txt: placeholders of `{key}`");
        }
        for (key, _) in &table {
            assert!(is_key(key), "{code}.txt has the unknown key `{key}`");
        }
        assert_eq!(table.len(), en.len(), "{code}.txt");
    }
}

#[test]
fn language_files_refuse_what_is_not_a_key_and_text() {
    assert_eq!(
        parse("# c\n\na = b = c\n b_2 =  x \n").unwrap(),
        vec![("a", "b = c"), ("b_2", "x")]
    );
    assert!(parse("no equals sign").unwrap_err().starts_with("line 1:"));
    assert!(parse("a = 1\nA = 2").unwrap_err().starts_with("line 2:"));
    assert!(parse("a = 1\na = 2").unwrap_err().contains("twice"));
}

#[test]
fn the_script_gets_its_strings_as_json_and_a_room_string_wins() {
    let de = LangText::new(
        shipped_index("de").unwrap(),
        &[("wait_minute".into(), "eine Minute".into())],
    );
    assert_eq!(de.code, "de");
    assert_eq!(de.get("wait_minute"), "eine Minute");
    assert_eq!(de.get("position_lead"), "Sie sind Nummer");
    let script: serde_json::Value = serde_json::from_str(de.script.as_str().unwrap()).unwrap();
    assert_eq!(script["wait_minute"], "eine Minute");
    assert_eq!(script["people_waiting"], "Personen warten");
    assert!(script.get("footer").is_none());
    // The templates read the strings by key.
    let mut env = minijinja::Environment::new();
    env.add_template("t", "{{ t.wait_minute }}|{{ t.paused }}")
        .unwrap();
    let out = env
        .get_template("t")
        .unwrap()
        .render(minijinja::context! { t => de.t.clone() })
        .unwrap();
    assert_eq!(
        out,
        "eine Minute|Die Warteschlange ist kurz angehalten. Ihr Platz bleibt erhalten."
    );
}

#[test]
fn waits_are_said_in_the_language() {
    let en = LangText::new(0, &[]);
    assert_eq!(en.wait_text(None), "calculating…");
    assert_eq!(en.wait_text(Some(59)), "less than a minute");
    assert_eq!(en.wait_text(Some(60)), "about 1 minute");
    assert_eq!(en.wait_text(Some(61)), "about 2 minutes");
    assert_eq!(en.wait_text(Some(7200)), "about 2 hours");
    let fr = LangText::new(shipped_index("fr").unwrap(), &[]);
    assert_eq!(fr.wait_text(Some(300)), "environ 5 minutes");
    let ja = LangText::new(shipped_index("ja").unwrap(), &[]);
    assert_eq!(ja.wait_text(Some(10_000)), "約3時間");
}

/// A room speaking `codes` (default the first): the code a visitor gets.
fn chosen(codes: &[&str], accept: &str, cookie: Option<&str>) -> &'static str {
    let langs: Vec<usize> = codes.iter().map(|c| shipped_index(c).unwrap()).collect();
    let i = Prefs::new([accept], cookie).pick(langs.iter().copied(), 0);
    SHIPPED[langs[i]].0
}

#[test]
fn negotiation_table() {
    const ALL: &[&str] = &["en", "de", "fr", "es", "it", "pt", "nl", "pl", "ja", "zh"];
    type Case = (
        &'static [&'static str],
        &'static str,
        Option<&'static str>,
        &'static str,
    );
    let cases: &[Case] = &[
        (ALL, "de", None, "de"),
        (ALL, "", None, "en"),
        (ALL, "sv, fi", None, "en"),
        // A region matches its language, in any case.
        (ALL, "de-CH", None, "de"),
        (ALL, "PT-br,en;q=0.5", None, "pt"),
        (ALL, "zh-Hant-TW", None, "zh"),
        // By q-value, not by order; a tie goes to the earlier.
        (ALL, "fr;q=0.4, it;q=0.9, de", None, "de"),
        (ALL, "fr;q=0.4, it;q=0.9", None, "it"),
        (ALL, "nl;q=0.5, pl;q=0.5", None, "nl"),
        (ALL, "sv, nl;q=0.2", None, "nl"),
        // q=0: not acceptable; the more specific range sets the q-value.
        (ALL, "de;q=0, fr;q=0.1", None, "fr"),
        (ALL, "*, en;q=0", None, "de"),
        (ALL, "de;q=0", None, "en"),
        (ALL, "de-AT;q=0.2, de;q=0, es;q=0.1", None, "es"),
        // The wildcard: anything goes, the default first.
        (ALL, "*", None, "en"),
        (ALL, "sv, *;q=0.1", None, "en"),
        (&["fr", "de"], "*", None, "fr"),
        // Only the room's languages count.
        (&["en", "fr"], "de", None, "en"),
        (&["en", "fr"], "de, fr;q=0.3", None, "fr"),
        // The cookie beats the header, if the room speaks it.
        (ALL, "de", Some("ja"), "ja"),
        (&["en", "fr"], "fr", Some("ja"), "fr"),
        (ALL, "de", Some("bogus"), "de"),
        // Junk is skipped, not fatal.
        (ALL, ";;,, ,q=1,de;q=x", None, "de"),
    ];
    for (codes, accept, cookie, want) in cases {
        assert_eq!(
            chosen(codes, accept, *cookie),
            *want,
            "{codes:?} {accept:?} {cookie:?}"
        );
    }
}

#[test]
fn a_link_beats_the_cookie_and_the_default_is_the_rooms() {
    let mut p = Prefs::new(["de"], Some("fr"));
    p.pin(shipped_index("it").unwrap());
    let langs = [0, 2, 4];
    assert_eq!(p.pick(langs.iter().copied(), 0), 2);
    // Nothing acceptable: the room's default (by its index among the room's languages).
    let p = Prefs::new(["sv"], None);
    assert_eq!(p.pick(langs.iter().copied(), 1), 1);
    // Several lines of the header read as one.
    let p = Prefs::new(["sv;q=0.9", "it"], None);
    assert_eq!(p.pick(langs.iter().copied(), 0), 2);
}
