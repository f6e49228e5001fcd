//! serde's words for a file error turned into an operator's: an unknown key gets the known key it
//! most likely meant, and a value of the wrong type says what the key takes ("a whole number",
//! "a duration like \"30s\"") instead of a Rust type.

/// Keys whose value is a duration string.
const DURATIONS: &[&str] = &[
    "tick",
    "snapshot_every",
    "timeout",
    "header_timeout",
    "idle_timeout",
    "body_timeout",
    "write_timeout",
    "origin_connect_timeout",
    "origin_response_timeout",
    "drain_timeout",
    "session_ttl",
    "abandon_after",
    "release_window",
    "max_session",
    "draw_every",
];

/// The message for serde's `message` about the key at `key` (`room[1].active_users`).
pub(super) fn explain(message: &str, key: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    let last = last.split('[').next().unwrap_or(last);
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, rest)) = rest.split_once('`')
    {
        let known: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
        return match closest(name, &known) {
            Some(k) => format!("unknown key `{name}`; did you mean `{k}`?"),
            None if known.is_empty() => format!("unknown key `{name}`"),
            None => format!(
                "unknown key `{name}`; the keys here are {}",
                known.join(", ")
            ),
        };
    }
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some((found, expected)) = rest.and_then(|r| r.rsplit_once(", expected ")) {
        return format!("expected {}, found {found}", words(expected, last));
    }
    if message.contains("untagged enum When") {
        return "expected a date and time with its offset, like \"2026-06-01T10:00:00+02:00\""
            .to_string();
    }
    message.to_string()
}

/// What a key takes, in words, from serde's `expected` (a Rust type or serde's phrase).
fn words(expected: &str, key: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" if DURATIONS.contains(&key) => "a duration like \"30s\"",
        "a string" if key == "max_body" => "a size like \"10MB\"",
        "a sequence" => "a list like [\"a\", \"b\"]",
        other => return other.to_string(),
    }
    .to_string()
}

/// The known key nearest to `word` by edit distance, if near enough to be a slip.
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    crate::pages::strict::closest(word, known).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_in_words() {
        for (message, key, want) in [
            (
                "unknown field `activ_users`, expected one of `name`, `active_users`, `queue`",
                "room[0].activ_users",
                "unknown key `activ_users`; did you mean `active_users`?",
            ),
            (
                "unknown field `zzz`, expected one of `name`, `queue`",
                "room[0].zzz",
                "unknown key `zzz`; the keys here are name, queue",
            ),
            (
                "unknown field `x`, there are no fields",
                "x",
                "unknown key `x`",
            ),
            (
                "invalid type: string \"100\", expected u32",
                "room[1].active_users",
                "expected a whole number, 0 or more, found string \"100\"",
            ),
            (
                "invalid type: integer `30`, expected a string",
                "room[0].session_ttl",
                "expected a duration like \"30s\", found integer `30`",
            ),
            (
                "invalid type: string \"yes\", expected a boolean",
                "room[0].paused",
                "expected true or false, found string \"yes\"",
            ),
            (
                "invalid type: integer `1`, expected a string",
                "room[0].name",
                "expected a string, found integer `1`",
            ),
            (
                "invalid type: integer `10`, expected a string",
                "limits.max_body",
                "expected a size like \"10MB\", found integer `10`",
            ),
            (
                "invalid type: string \"a\", expected a sequence",
                "room[0].hosts",
                "expected a list like [\"a\", \"b\"], found string \"a\"",
            ),
            ("something else", "k", "something else"),
        ] {
            assert_eq!(explain(message, key), want, "{message}");
        }
    }
}
