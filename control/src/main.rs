//! `wgdp --config FILE`: run the gateway described by FILE.
//! `wgdp --check --config FILE`: only validate FILE.
//! `wgdp reload --config FILE`: validate FILE, then have the running gateway read it
//! again (SIGHUP to the process named by the pid file).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: wgdp [--check] --config FILE [--pid-file FILE]\n       \
                     wgdp reload --config FILE [--pid-file FILE]";

/// Where a running wgdp writes its process id unless told otherwise.
const DEFAULT_PID_FILE: &str = "/run/wgdp.pid";

fn main() -> ExitCode {
    let mut config: Option<PathBuf> = None;
    let mut pid_file = PathBuf::from(DEFAULT_PID_FILE);
    let mut check = false;
    let mut reload = false;
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("reload") {
        reload = true;
        args.next();
    }
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" | "--pid-file" => match args.next() {
                Some(p) if a == "--pid-file" => pid_file = p.into(),
                Some(p) => config = Some(p.into()),
                None => {
                    eprintln!("{a} needs a file\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--check" => check = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--version" | "-V" => {
                println!("wgdp {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = config else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
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
    if check {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    if reload {
        return match signal_running(&pid_file) {
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
        };
    }
    let rt = control::gateway::Runtime {
        config_path: &path,
        pid_file: Some(&pid_file),
    };
    match control::gateway::run(cfg, rt) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wgdp: {e}");
            ExitCode::from(1)
        }
    }
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
