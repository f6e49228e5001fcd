//! `[store]`: in this process (the default) or in Redis, shared by several instances.

use std::time::Duration;

use super::super::file::{StoreFile, TokenFile};
use super::super::{OnStoreError, RedisSettings, StoreSettings};
use super::{Validator, key};

impl Validator<'_> {
    /// `[store]`. A shared store needs the token secret from `[token] secret_env`: a key
    /// generated into each instance's state folder would differ between instances, and a
    /// visitor moved to another one would lose their place.
    pub(super) fn store(&mut self, s: &StoreFile, token: &TokenFile) -> StoreSettings {
        let kind = s.kind.as_deref().unwrap_or("memory");
        match kind {
            "memory" => {
                for (k, set) in [
                    ("url", s.url.is_some()),
                    ("url_env", s.url_env.is_some()),
                    ("key_prefix", s.key_prefix.is_some()),
                    ("timeout", s.timeout.is_some()),
                    ("on_error", s.on_error.is_some()),
                ] {
                    if set {
                        self.error(
                            &key(&["store", k]),
                            "only a store of kind = \"redis\" has it",
                        );
                    }
                }
                StoreSettings::Memory
            }
            "redis" => {
                if token.secret_env.is_none() {
                    self.error(
                        &key(&["token", "secret_env"]),
                        "a shared store ([store] kind = \"redis\") needs the token secret from an \
                         environment variable set alike on every instance",
                    );
                }
                StoreSettings::Redis(self.redis(s))
            }
            other => {
                self.error(
                    &key(&["store", "kind"]),
                    format!("{other:?} is not a store; write \"memory\" or \"redis\""),
                );
                StoreSettings::Memory
            }
        }
    }

    fn redis(&mut self, s: &StoreFile) -> RedisSettings {
        match (&s.url, &s.url_env) {
            (Some(_), Some(_)) => {
                self.error(
                    &key(&["store", "url_env"]),
                    "set `url` or `url_env`, not both",
                );
            }
            (None, None) => self.error(
                &key(&["store", "kind"]),
                "a redis store needs `url` (e.g. \"redis://127.0.0.1:6379/0\") or `url_env`",
            ),
            (Some(u), None) if redis_url(u).is_err() => {
                let why = redis_url(u).err().unwrap_or_default();
                self.error(&key(&["store", "url"]), why);
            }
            _ => {}
        }
        let key_prefix = s.key_prefix.clone().unwrap_or_else(|| "anteroom".into());
        if key_prefix.is_empty() || key_prefix.contains(['{', '}', ' ']) {
            self.error(
                &key(&["store", "key_prefix"]),
                "must be a non-empty word without braces or spaces",
            );
        }
        let timeout = self.duration(
            &key(&["store", "timeout"]),
            s.timeout.as_ref(),
            Duration::from_millis(250),
        );
        let on_error = match s.on_error.as_deref().unwrap_or("closed") {
            "closed" => OnStoreError::Closed,
            "open" => OnStoreError::Open,
            "local" => OnStoreError::Local,
            other => {
                self.error(
                    &key(&["store", "on_error"]),
                    format!("{other:?}: write \"closed\", \"open\" or \"local\""),
                );
                OnStoreError::Closed
            }
        };
        RedisSettings {
            url: s.url.clone(),
            url_env: s.url_env.clone(),
            key_prefix,
            timeout,
            on_error,
        }
    }
}

/// Whether `url` is one a Redis client opens: `redis://`, `rediss://` or `redis+unix://`.
pub(crate) fn redis_url(url: &str) -> Result<(), String> {
    let ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|s| url.starts_with(s));
    if ok && url.len() > url.find("://").unwrap_or(0) + 3 {
        Ok(())
    } else {
        Err(format!(
            "{url:?} is not a Redis URL; write e.g. \"redis://127.0.0.1:6379/0\""
        ))
    }
}
