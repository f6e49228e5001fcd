//! The operator's overrides on disk: `<state dir>/overrides.json`, written atomically (temp
//! file, fsync, rename, fsync of the folder) on every change, read at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::room::Overrides;

const FILE: &str = "overrides.json";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    rooms: BTreeMap<String, Overrides>,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Overrides by room name. A missing file is no overrides; an unreadable one is set aside with a
/// loud log line, never fatal.
pub fn load(dir: &Path) -> BTreeMap<String, Overrides> {
    let p = path(dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(e) => {
            tracing::error!(file = %p.display(), error = %e, "cannot read the overrides");
            return BTreeMap::new();
        }
    };
    match serde_json::from_str::<OnDisk>(&text) {
        Ok(d) if d.version == VERSION => d.rooms,
        Ok(d) => {
            set_aside(&p, &format!("version {} is not {VERSION}", d.version));
            BTreeMap::new()
        }
        Err(e) => {
            set_aside(&p, &e.to_string());
            BTreeMap::new()
        }
    }
}

/// Overrides by room name, read without logging or moving anything (for `state inspect`).
pub fn load_quiet(dir: &Path) -> BTreeMap<String, Overrides> {
    std::fs::read_to_string(path(dir))
        .ok()
        .and_then(|t| serde_json::from_str::<OnDisk>(&t).ok())
        .filter(|d| d.version == VERSION)
        .map(|d| d.rooms)
        .unwrap_or_default()
}

fn set_aside(p: &Path, why: &str) {
    let aside = p.with_extension("json.corrupt");
    super::snapshot::set_aside_file(p, &aside, "the overrides file", &why);
}

/// Writes every room's overrides atomically.
pub fn save(dir: &Path, rooms: &BTreeMap<String, Overrides>) -> std::io::Result<()> {
    let doc = OnDisk {
        version: VERSION,
        rooms: rooms
            .iter()
            .filter(|(_, o)| !o.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let text = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
    super::snapshot::write_atomic(dir, FILE, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sets_a_corrupt_file_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut rooms = BTreeMap::new();
        rooms.insert(
            "shop".to_string(),
            Overrides {
                paused: Some(true),
                ..Overrides::default()
            },
        );
        rooms.insert("empty".to_string(), Overrides::default());
        save(dir.path(), &rooms).unwrap();
        let back = load(dir.path());
        assert_eq!(back.len(), 1);
        assert_eq!(back["shop"].paused, Some(true));
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        assert!(load(dir.path()).is_empty());
        assert!(dir.path().join("overrides.json.corrupt").exists());
        assert!(!dir.path().join(FILE).exists());
    }
}
