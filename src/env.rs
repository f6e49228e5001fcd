//! The process environment as a value. anteroom reads its secrets (`[token] secret_env`,
//! `previous_secret_envs`, `[admin] token_env`) from it at start and at each reload, never per
//! request; tests hand in their own instead of changing the process's environment while other
//! tests run.

use std::collections::HashMap;
use std::sync::Arc;

/// A variable's bytes by name.
type Lookup = dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync;

/// Where named variables are looked up.
#[derive(Clone)]
pub struct Env(Arc<Lookup>);

impl Env {
    /// The process environment.
    pub fn process() -> Env {
        Env(Arc::new(|name| {
            std::env::var_os(name).map(|v| v.into_encoded_bytes())
        }))
    }

    /// Exactly these variables, nothing from the process.
    pub fn of(pairs: &[(&str, &str)]) -> Env {
        let map: HashMap<String, Vec<u8>> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
            .collect();
        Env(Arc::new(move |name| map.get(name).cloned()))
    }

    /// The variable's bytes, if it is set.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        (self.0)(name)
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}
