//! Where the token keys come from: an environment variable named in the file, or a key
//! generated once into the state directory (mode 0600) and reused.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::Config;
use crate::error::StartError;
use crate::token::{Keys, MIN_SECRET};

const KEY_FILE: &str = "token.key";

pub fn load(config: &Config) -> Result<Keys, StartError> {
    let current = match config.token.secret_env.as_deref().and_then(env_secret) {
        Some(s) => check(s, config.token.secret_env.as_deref().unwrap_or_default())?,
        None => state_key(&config.state.dir)?,
    };
    let mut previous = Vec::new();
    for name in &config.token.previous_secret_envs {
        if let Some(s) = env_secret(name) {
            previous.push(check(s, name)?);
        }
    }
    Ok(Keys::new(current, previous))
}

fn env_secret(name: &str) -> Option<Vec<u8>> {
    std::env::var_os(name).map(|v| v.into_encoded_bytes())
}

fn check(secret: Vec<u8>, name: &str) -> Result<Vec<u8>, StartError> {
    if secret.len() < MIN_SECRET {
        return Err(StartError::Key(format!(
            "the secret in ${name} is {} bytes; at least {MIN_SECRET} are needed",
            secret.len()
        )));
    }
    Ok(secret)
}

/// Reads the generated key, or makes one.
fn state_key(dir: &Path) -> Result<Vec<u8>, StartError> {
    let path = dir.join(KEY_FILE);
    let err =
        |what: &str, e: std::io::Error| StartError::Key(format!("{what} {}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = STANDARD
                .decode(text.trim())
                .map_err(|e| StartError::Key(format!("{} is not a key: {e}", path.display())))?;
            return check(key, &path.display().to_string());
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err("cannot read", e)),
        Err(_) => {}
    }
    std::fs::create_dir_all(dir).map_err(|e| err("cannot create the folder of", e))?;
    let mut key = vec![0u8; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut key);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&path).map_err(|e| err("cannot create", e))?;
    f.write_all(STANDARD.encode(&key).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| err("cannot write", e))?;
    Ok(key)
}
