//! The `wgdp` command (docs/operations.md):
//!
//! - `wgdp [run] --config FILE [--pid-file FILE]`: run the gateway described by FILE;
//! - `wgdp check --config FILE` (also `wgdp --check --config FILE`): only validate FILE;
//! - `wgdp reload --config FILE [--pid-file FILE]`: validate FILE, then have the running
//!   gateway read it again (SIGHUP to the process named by the pid file);
//! - `wgdp runtime --config FILE [--clear]`: the running gateway's clocks per stage.
//!
//! Exit status: 0 done, 1 the gateway or the command failed, 2 a usage or
//! configuration error.

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

/// Where a running wgdp writes its process id unless told otherwise.
const DEFAULT_PID_FILE: &str = "/run/wgdp.pid";
/// Where `wgdp runtime --clear` keeps the start of its measurement window.
const DEFAULT_RUNTIME_STATE: &str = "/run/wgdp.runtime";

/// A WireGuard VPN concentrator on DPDK.
#[derive(Parser)]
#[command(name = "wgdp", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: run (or, with --check, validate) as `wgdp run` does.
    #[command(flatten)]
    run: RunArgs,
    /// Only validate the configuration (the same as `wgdp check`).
    #[arg(long)]
    check: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run(RunArgs),
    /// Validate the configuration file and exit.
    Check(ConfigArg),
    /// Validate the configuration file, then have the running gateway read it again.
    Reload(RunArgs),
    /// Print the running gateway's runtime accounting: clocks per packet per stage.
    Runtime(RuntimeArgs),
}

#[derive(Args)]
struct ConfigArg {
    /// The YAML configuration (docs/configuration.md).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The file holding the running gateway's process id.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_PID_FILE)]
    pid_file: PathBuf,
}

#[derive(Args)]
struct RuntimeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Start a new measurement window: later runs show only what happened after it.
    #[arg(long)]
    clear: bool,
    /// Where the start of the measurement window is kept.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_RUNTIME_STATE)]
    state: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (what, run) = match cli.command {
        None if cli.check => (What::Check, cli.run),
        None => (What::Run, cli.run),
        Some(Command::Run(r)) => (What::Run, r),
        Some(Command::Check(c)) => (
            What::Check,
            RunArgs {
                config: c,
                pid_file: DEFAULT_PID_FILE.into(),
            },
        ),
        Some(Command::Reload(r)) => (What::Reload, r),
        Some(Command::Runtime(r)) => {
            let Some(path) = r.config.config else {
                return usage("runtime needs --config FILE");
            };
            return runtime(&path, r.clear, &r.state);
        }
    };
    let Some(path) = run.config.config else {
        return usage("--config FILE is required");
    };
    // Before the configuration is read, which may warn (key files open to others).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WGDP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = match control::config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match what {
        What::Check => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        What::Reload => match signal_running(&run.pid_file) {
            Ok(pid) => {
                println!(
                    "{}: ok; asked wgdp (pid {pid}) to reload it",
                    path.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wgdp reload: {e}");
                ExitCode::from(1)
            }
        },
        What::Run => {
            let rt = control::gateway::Runtime {
                config_path: &path,
                pid_file: Some(&run.pid_file),
            };
            match control::gateway::run(cfg, rt) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wgdp: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

enum What {
    Run,
    Check,
    Reload,
}

/// A usage error, in clap's words and with its exit status.
fn usage(msg: &str) -> ExitCode {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.error(clap::error::ErrorKind::MissingRequiredArgument, msg)
        .print()
        .ok();
    ExitCode::from(2)
}

/// `wgdp runtime`: the table of the gateway configured in `path`, since `--clear` if
/// the state file holds a window of this gateway's run.
fn runtime(path: &Path, clear: bool, state: &Path) -> ExitCode {
    let cfg = match control::config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(metrics) = cfg.metrics else {
        eprintln!(
            "wgdp runtime: {} has no metrics.listen; wgdp runtime reads the gateway's metrics",
            path.display()
        );
        return ExitCode::from(2);
    };
    let now = match control::runtime::fetch(metrics.listen) {
        Ok(text) => control::runtime::parse(&text),
        Err(e) => {
            eprintln!("wgdp runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if now.stages.is_empty() {
        eprintln!(
            "wgdp runtime: no wgdp_worker_stage_* figures at {}",
            metrics.listen
        );
        return ExitCode::from(1);
    }
    if clear {
        let text = control::runtime::save(&now, SystemTime::now());
        return match std::fs::write(state, text) {
            Ok(()) => {
                println!("new measurement window from now ({})", state.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wgdp runtime: {}: {e}", state.display());
                ExitCode::from(1)
            }
        };
    }
    let base = std::fs::read_to_string(state)
        .ok()
        .and_then(|t| control::runtime::load(&t));
    let (figures, since) = match base {
        Some((b, at)) => match control::runtime::since(&now, &b) {
            Some(d) => {
                let ago = SystemTime::now()
                    .duration_since(at)
                    .map_or(0, |d| d.as_secs());
                (d, format!("since wgdp runtime --clear, {ago} s ago"))
            }
            None => (
                now,
                "since the gateway started (it restarted after the last --clear)".into(),
            ),
        },
        None => (now, "since the gateway started".into()),
    };
    println!("wgdp runtime, {since}");
    print!("{}", control::runtime::table(&figures));
    ExitCode::SUCCESS
}

/// Sends SIGHUP to the process whose id is in `pid_file`.
fn signal_running(pid_file: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(pid_file).map_err(|e| {
        format!(
            "{}: {e} (is wgdp running? see --pid-file)",
            pid_file.display()
        )
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{}: no process id in it", pid_file.display()))?;
    // A pid file left by a wgdp that died may name an unrelated process by now.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "wgdp" {
        return Err(format!(
            "pid {pid} from {} is not a running wgdp",
            pid_file.display()
        ));
    }
    // SAFETY: kill has no memory preconditions.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(format!(
            "pid {pid} from {}: {}",
            pid_file.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(pid)
}
