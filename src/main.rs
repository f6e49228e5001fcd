//! The `anteroom` command: run the gateway, or check a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// anteroom: a virtual waiting room that runs inline as a reverse proxy.
///
/// With no command, runs the gateway with ./gateway.toml.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (for `run`, the default command).
    #[arg(long, short, default_value = "gateway.toml", global = true)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default): listen, queue, forward, until SIGTERM or Ctrl-C.
    Run,
    /// Validate FILE without starting: print every error with its line and key, exit 1 on error.
    Check {
        /// The configuration file to check (default: the `--config` file).
        file: Option<PathBuf>,
    },
    /// Ask the running gateway's admin listener (`[listen] admin` of the configuration) for
    /// `/healthz`: exit 0 when it answers 200 within 2 s (a container's HEALTHCHECK).
    Health,
    /// Look at a state folder.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// Summarize the snapshot in DIR: rooms, queue depth, admitted visitors, ages.
    Inspect {
        /// The state folder (`[state] dir`).
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { file }) => check(file.as_deref().unwrap_or(&cli.config)),
        Some(Command::Health) => health(&cli.config),
        Some(Command::State {
            command: StateCommand::Inspect { dir },
        }) => match anteroom::inspect::inspect(&dir) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("anteroom: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Run) | None => run(cli.config),
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    match anteroom::config::load(file) {
        Ok(c) => {
            if let Err(e) = anteroom::keys::check_env(&c) {
                eprintln!("{}: {e}", file.display());
                return ExitCode::FAILURE;
            }
            let n = c.rooms.len();
            let rooms = if n == 1 { "room" } else { "rooms" };
            println!("{}: ok ({n} {rooms})", file.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn health(config: &std::path::Path) -> ExitCode {
    let c = match anteroom::config::load(config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let Some(addr) = c.listen.admin else {
        eprintln!(
            "{}: no [listen] admin to ask for /healthz",
            config.display()
        );
        return ExitCode::FAILURE;
    };
    match anteroom::health::probe(addr, std::time::Duration::from_secs(2)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("anteroom at {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs as `[log] format` says, read before anything logs (a file that does not load is
/// reported by the start, in text).
fn init_logs(config: &std::path::Path) {
    let json = anteroom::config::load(config).is_ok_and(|c| c.log_json);
    let logs = tracing_subscriber::fmt()
        .with_target(false)
        .with_max_level(tracing::Level::INFO);
    if json {
        logs.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_target(true)
            .init();
    } else {
        // Colours for a terminal only: log files and collectors get plain text.
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }
}

fn run(config: PathBuf) -> ExitCode {
    init_logs(&config);
    // On one core (a container with one CPU, a process pinned to one) a single-threaded
    // scheduler does the same work without the cross-thread machinery: about a third more
    // requests per second through the proxy (docs/figures.md).
    let one_core = std::thread::available_parallelism().map_or(true, |n| n.get() == 1);
    let rt = if one_core {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        // Listening for the stop signals before saying where we listen: a SIGTERM sent as soon
        // as the address is printed must stop gracefully, not kill.
        let mut stop = StopSignals::listen();
        let running = match anteroom::start(&config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("anteroom: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(demo) = running.demo_addr {
            println!("demo origin on http://{demo}");
        }
        if let Some(admin) = running.admin_addr {
            println!("admin API on http://{admin}");
        }
        if let Some(https) = running.https_addr {
            println!("anteroom on https://{https}");
        }
        println!("anteroom on http://{}", running.http_addr);
        stop.next().await;
        tracing::info!("stopping: draining in-flight requests (a second signal stops at once)");
        tokio::select! {
            saved = running.shutdown() => if saved { ExitCode::SUCCESS } else { ExitCode::FAILURE },
            () = stop.next() => {
                tracing::warn!("second signal: stopping without draining or a final snapshot");
                // At once: nothing in flight is waited for, not even a blocking write.
                std::process::exit(130)
            }
        }
    })
}

/// SIGTERM and SIGINT, registered once for the whole run.
struct StopSignals {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    fn listen() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .ok();
            StopSignals { signals }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// The next stop signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
