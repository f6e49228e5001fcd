//! Where the token keys come from: an environment variable named in the file (which must then
//! be set), or, with none named, a key generated once into the state directory (mode 0600) and
//! reused.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::Config;
use crate::error::StartError;
use crate::token::{Keys, MIN_SECRET};

const KEY_FILE: &str = "token.key";

/// Checks the secrets the environment holds for `config` without creating anything (for
/// `anteroom check`).
pub fn check_env(config: &Config) -> Result<(), StartError> {
    let env = crate::env::Env::process();
    secrets(config, |name| env.get(name)).map(|_| ())
}

/// The signing key and the rotation keys, with the variables looked up in `env`.
pub fn load_with(
    config: &Config,
    env: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Keys, StartError> {
    let (current, previous) = secrets(config, env)?;
    let current = match current {
        Some(s) => s,
        None => state_key(&config.state.dir)?,
    };
    Ok(Keys::new(current, previous))
}

/// The secrets named in `[token]` that are set: the current one and those of a rotation.
type Secrets = (Option<Vec<u8>>, Vec<Vec<u8>>);

fn secrets(config: &Config, env: impl Fn(&str) -> Option<Vec<u8>>) -> Result<Secrets, StartError> {
    // A named variable that is not set is an error, not a fall back to the generated key: the
    // operator asked for a key that outlives the state folder (or is shared with other
    // instances), and a restart without the variable would invalidate every token.
    let current = match config.token.secret_env.as_deref() {
        Some(name) => {
            let Some(secret) = env(name) else {
                return Err(StartError::Key(format!(
                    "token.secret_env: ${name} is not set; set it to a secret of at least \
                     {MIN_SECRET} bytes, or remove token.secret_env to use a key generated into \
                     the state folder"
                )));
            };
            Some(check(secret, "token.secret_env", name)?)
        }
        None => None,
    };
    let mut previous = Vec::new();
    // Unset rotation variables are skipped: a rotation that has ended leaves them unset.
    for name in &config.token.previous_secret_envs {
        if let Some(s) = env(name) {
            previous.push(check(s, "token.previous_secret_envs", name)?);
        }
    }
    Ok((current, previous))
}

fn check(secret: Vec<u8>, key: &str, name: &str) -> Result<Vec<u8>, StartError> {
    if secret.len() < MIN_SECRET {
        return Err(StartError::Key(format!(
            "{key}: the secret in ${name} is {} bytes; at least {MIN_SECRET} are needed",
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
            let key = check(key, "generated key", &path.display().to_string())?;
            tracing::info!(path = %path.display(), "token key read from {}", path.display());
            return Ok(key);
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
    tracing::info!(path = %path.display(), "token key generated at {}", path.display());
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Claims, room_id};

    fn config(dir: &Path, toml: &str) -> Config {
        let path = dir.join("gateway.toml");
        std::fs::write(
            &path,
            format!("{toml}\n[state]\ndir = \"state\"\n[[room]]\nname = \"a\"\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:1\"\nactive_users = 1\n"),
        )
        .unwrap();
        crate::config::load(&path).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            room_id: room_id("a"),
            session: crate::room::SessionId::from_u128(9),
            ticket: 3,
            issued_at: 1,
        }
    }

    #[test]
    fn a_generated_key_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), "");
        let first = load_with(&c, |_| None).unwrap();
        let token = first.encode(&claims());
        let again = load_with(&c, |_| None).unwrap();
        assert_eq!(again.decode(room_id("a"), &token), Some(claims()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("state").join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_env_secret_wins_and_old_secrets_verify_during_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(
            dir.path(),
            "[token]\nsecret_env = \"NEW\"\nprevious_secret_envs = [\"OLD\", \"UNSET\"]",
        );
        let old = vec![b'o'; 32];
        let new = vec![b'n'; 40];
        let before = load_with(&c, |n| (n == "NEW").then(|| old.clone())).unwrap();
        let token = before.encode(&claims());
        let during = load_with(&c, |n| match n {
            "NEW" => Some(new.clone()),
            "OLD" => Some(old.clone()),
            _ => None,
        })
        .unwrap();
        assert_eq!(during.decode(room_id("a"), &token), Some(claims()));
        let after = load_with(&c, |n| (n == "NEW").then(|| new.clone())).unwrap();
        assert_eq!(after.decode(room_id("a"), &token), None);
        assert!(!dir.path().join("state").join(KEY_FILE).exists());
    }

    /// A configured variable that is not set is an error, never a silent fall back to a
    /// generated key: after a restart without it every token would stop verifying.
    #[test]
    fn an_unset_secret_env_is_refused_naming_the_key_and_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), "[token]\nsecret_env = \"MISSING\"");
        let e = load_with(&c, |_| None).unwrap_err().to_string();
        assert!(
            e.contains("token.secret_env") && e.contains("$MISSING") && e.contains("not set"),
            "{e}"
        );
        assert!(
            !dir.path().join("state").join(KEY_FILE).exists(),
            "no key generated in its place"
        );
        let e = secrets(&c, |_| None).unwrap_err().to_string();
        assert!(e.contains("$MISSING"), "{e}");
        // Set but empty counts as too short.
        let e = load_with(&c, |_| Some(Vec::new())).unwrap_err().to_string();
        assert!(e.contains("0 bytes"), "{e}");
    }

    #[test]
    fn a_short_secret_is_refused_naming_the_key_and_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(
            dir.path(),
            "[token]\nsecret_env = \"S\"\nprevious_secret_envs = [\"P\"]",
        );
        let e = load_with(&c, |n| (n == "S").then(|| b"short".to_vec())).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("token.secret_env") && text.contains("$S"),
            "{text}"
        );
        assert!(text.contains("5 bytes"), "{text}");
        let e = load_with(&c, |n| match n {
            "S" => Some(vec![b's'; 32]),
            _ => Some(b"tiny".to_vec()),
        })
        .unwrap_err();
        assert!(e.to_string().contains("token.previous_secret_envs"), "{e}");
    }
}
