//! How the room code (`room.lua`, `events.lua`, `run.lua`) runs in Redis: as a library function
//! (Redis 7 and later, Valkey), loaded once per connection and called with FCALL, so its helpers
//! are defined once at load rather than on every call; or, where functions are not available,
//! as a script (EVALSHA, loaded on demand).
//! Both forms come from the same source, and a library's name carries the source's hash, so
//! instances of different versions sharing one Redis never call each other's code.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ::redis::aio::ConnectionManager;
use ::redis::{RedisError, Script, Value};

/// The room code, without the line that runs it: the line (`room.lua`), scheduled events
/// (`events.lua`, which assigns helpers `room.lua` declares) and the operations by name
/// (`run.lua`), one chunk.
const ROOM_LUA: &str = concat!(
    include_str!("room.lua"),
    "\n",
    include_str!("events.lua"),
    "\n",
    include_str!("run.lua")
);

/// The room code in both forms, and which one this connection uses.
#[derive(Clone)]
pub(super) struct RoomCode {
    script: Script,
    /// The library's and its function's name: `anteroom_` and the script's hash.
    name: Arc<str>,
    library: Arc<str>,
    /// Whether the library is loaded (FCALL); else the script runs (EVALSHA).
    functions: Arc<AtomicBool>,
}

impl RoomCode {
    pub(super) fn new() -> Self {
        let script = Script::new(&format!("{ROOM_LUA}\nreturn run(KEYS, ARGV)\n"));
        let name: Arc<str> = format!("anteroom_{}", &script.get_hash()[..16]).into();
        let library =
            format!("#!lua name={name}\n{ROOM_LUA}\nredis.register_function('{name}', run)\n")
                .into();
        RoomCode {
            script,
            name,
            library,
            functions: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Loads the library; a Redis without functions (before 7.0) or one that refuses them
    /// keeps the script form.
    pub(super) async fn load(&self, conn: &mut ConnectionManager) {
        match self.load_library(conn).await {
            Ok(()) => self.functions.store(true, Ordering::Relaxed),
            Err(e) => {
                tracing::info!(error = %e, "the shared store runs its code as a script (no functions)");
                self.functions.store(false, Ordering::Relaxed);
            }
        }
    }

    async fn load_library(&self, conn: &mut ConnectionManager) -> Result<(), RedisError> {
        ::redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(&*self.library)
            .query_async::<Value>(conn)
            .await
            .map(|_| ())
    }

    /// Whether calls go to the library function (else to the script).
    pub(super) fn functions(&self) -> bool {
        self.functions.load(Ordering::Relaxed)
    }

    /// Runs the code as a script from now on, as on a Redis without functions.
    pub(super) fn use_script(&self) {
        self.functions.store(false, Ordering::Relaxed);
    }

    /// Runs operation `op` on the room `key` with `args` (the settings, then the operation's).
    /// A Redis that lost the library (restarted without persistence, flushed) gets it again.
    pub(super) async fn run(
        &self,
        conn: &mut ConnectionManager,
        key: &str,
        args: &[&str],
    ) -> Result<Value, RedisError> {
        if !self.functions.load(Ordering::Relaxed) {
            let mut inv = self.script.key(key);
            for a in args {
                inv.arg(*a);
            }
            return inv.invoke_async::<Value>(conn).await;
        }
        let mut cmd = ::redis::cmd("FCALL");
        cmd.arg(&*self.name).arg(1).arg(key);
        for a in args {
            cmd.arg(*a);
        }
        match cmd.query_async::<Value>(conn).await {
            Err(e) if e.to_string().contains("Function not found") => {
                self.load_library(conn).await?;
                cmd.query_async::<Value>(conn).await
            }
            other => other,
        }
    }
}
