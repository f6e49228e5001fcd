//! Snapshots of every room in `<state dir>/snapshot.bin`: written every `snapshot_every`, on
//! `POST /api/v1/snapshot` and at shutdown, read once at start.
//!
//! The file is a fixed header then a postcard payload:
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | magic `ANTROOM\0` |
//! | 4 | format version, little-endian (this build writes and reads 1) |
//! | 8 | payload length, little-endian |
//! | 4 | CRC-32 of the payload, little-endian |
//! | n | payload: [`Snapshot`] in postcard |
//!
//! It is written atomically (temp file, fsync, rename, fsync of the folder), so a crash leaves
//! the old snapshot or the new one, never half of one. A file that does not read back (torn by
//! the disk, edited, or from a newer anteroom) is renamed aside with a loud log line and the
//! gateway starts without it: a snapshot never stops a start.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::room::{EventMarks, Image};

pub const FILE: &str = "snapshot.bin";
const MAGIC: &[u8; 8] = b"ANTROOM\0";
/// The format this build writes. Format 2 added session states 3 to 5 (missed, not yet back,
/// at the front) to the same layout; format 3 the rooms' scheduled-event marks at the end.
pub const VERSION: u32 = 3;
/// The oldest format this build reads.
const OLDEST: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 4;

/// Every room at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Wall clock when written (unix milliseconds).
    pub written_unix_ms: u64,
    /// Room name and state, every room the gateway holds (rooms taken out of the file included,
    /// so putting a room back after a restart restores its line).
    pub rooms: Vec<(String, Image)>,
    /// What each room did about scheduled events (format 3 on; rooms without any are left out).
    pub events: Vec<(String, EventMarks)>,
}

/// Formats 1 and 2: the same without the event marks.
#[derive(Deserialize)]
struct SnapshotV2 {
    written_unix_ms: u64,
    rooms: Vec<(String, Image)>,
}

/// Why a snapshot file was not used.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is not an anteroom snapshot")]
    NotSnapshot(PathBuf),
    #[error(
        "{0} is format {1}, written by a newer anteroom; this one reads formats {OLDEST} to {VERSION}"
    )]
    Newer(PathBuf, u32),
    #[error("{0} is damaged: {1}")]
    Damaged(PathBuf, String),
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The file's bytes for `snap`.
pub fn encode(snap: &Snapshot) -> std::io::Result<Vec<u8>> {
    let payload = postcard::to_stdvec(snap).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&header(payload.len() as u64, crc32fast::hash(&payload)));
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Reads a snapshot file's bytes back; `file` names it in errors.
pub fn decode(file: &Path, bytes: &[u8]) -> Result<Snapshot, ReadError> {
    let damaged = |why: &str| ReadError::Damaged(file.to_path_buf(), why.to_string());
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(ReadError::NotSnapshot(file.to_path_buf()));
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = word(8);
    if version > VERSION {
        return Err(ReadError::Newer(file.to_path_buf(), version));
    }
    if version < OLDEST {
        return Err(damaged(&format!("unknown format {version}")));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[12..20]);
    let len = u64::from_le_bytes(len);
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(damaged(&format!(
            "the payload is {} bytes, the header says {len}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != word(20) {
        return Err(damaged("checksum mismatch"));
    }
    if version < 3 {
        let old: SnapshotV2 = postcard::from_bytes(payload).map_err(|e| damaged(&e.to_string()))?;
        return Ok(Snapshot {
            written_unix_ms: old.written_unix_ms,
            rooms: old.rooms,
            events: Vec::new(),
        });
    }
    postcard::from_bytes(payload).map_err(|e| damaged(&e.to_string()))
}

/// Writes `bytes` to `dir/name` atomically: a temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `snap` into `dir` atomically (a temp file, fsync, rename, fsync of the folder),
/// encoding it straight into the file: no copy of the payload is held in memory, which at a
/// million queued visitors is tens of megabytes at the peak. Returns the file's size. The
/// bytes are [`encode`]'s.
pub fn write(dir: &Path, snap: &Snapshot) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let size = {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&[0u8; HEADER])?;
        let (len, crc) = {
            let mut sink = Summing {
                out: std::io::BufWriter::with_capacity(1 << 16, &mut f),
                crc: crc32fast::Hasher::new(),
                len: 0,
            };
            postcard::to_io(snap, &mut sink).map_err(std::io::Error::other)?;
            sink.out.flush()?;
            (sink.len, sink.crc.clone().finalize())
        };
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&header(len, crc))?;
        f.sync_all()?;
        HEADER as u64 + len
    };
    std::fs::rename(&tmp, dir.join(FILE))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(size)
}

/// The file's header: magic, format, the payload's length and CRC-32.
fn header(len: u64, crc: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&len.to_le_bytes());
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A writer that counts and checksums what passes through it.
struct Summing<W> {
    out: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads `dir`'s snapshot without touching it (for `anteroom state inspect`). `Ok(None)`: there
/// is none.
pub fn read(dir: &Path) -> Result<Option<Snapshot>, ReadError> {
    let p = path(dir);
    match std::fs::read(&p) {
        Ok(bytes) => decode(&p, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReadError::Io(p, e)),
    }
}

/// Reads `dir`'s snapshot at start. A file that does not read back is renamed aside (never
/// deleted) with an error in the log, and the gateway starts without it.
pub fn load(dir: &Path) -> Option<Snapshot> {
    match read(dir) {
        Ok(s) => s,
        Err(e) => {
            set_aside(dir, &e);
            None
        }
    }
}

/// Moves a snapshot that cannot be used out of the way, keeping it for a post-mortem.
pub fn set_aside(dir: &Path, why: &dyn std::fmt::Display) {
    let aside = dir.join(format!("{FILE}.corrupt-{}", unix_ms() / 1000));
    set_aside_file(&path(dir), &aside, "the snapshot", why);
}

/// Moves a state file that cannot be used to `aside`, or to `aside-1`, `aside-2`, ... when that
/// name is taken (never deleting or overwriting anything), with an error in the log saying what
/// starts without it.
pub fn set_aside_file(file: &Path, aside: &Path, what: &str, why: &dyn std::fmt::Display) {
    let moved = move_to_free_name(file, aside);
    let (aside, moved) = match &moved {
        Ok(p) => (p.as_path(), true),
        Err(_) => (aside, false),
    };
    tracing::error!(
        file = %file.display(),
        aside = %aside.display(),
        moved,
        error = %why,
        "{what} is unusable: set aside, starting without it"
    );
}

/// Moves `file` to `aside` or the first `aside-N` not taken. A hard link fails when the name
/// exists, so two files set aside at once cannot take the same name; a rename alone would
/// silently replace the older one. Where hard links are not supported, a checked rename.
fn move_to_free_name(file: &Path, aside: &Path) -> std::io::Result<PathBuf> {
    for n in 0..1000u32 {
        let candidate = if n == 0 {
            aside.to_path_buf()
        } else {
            let mut name = aside.as_os_str().to_owned();
            name.push(format!("-{n}"));
            PathBuf::from(name)
        };
        match std::fs::hard_link(file, &candidate) {
            Ok(()) => {
                std::fs::remove_file(file)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(e),
            Err(_) if candidate.exists() => continue,
            Err(_) => {
                std::fs::rename(file, &candidate)?;
                return Ok(candidate);
            }
        }
    }
    Err(std::io::Error::other("no free name to set the file aside"))
}

#[cfg(test)]
mod tests;
