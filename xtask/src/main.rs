//! `cargo xtask`: builds the `electra` binary in release mode with the backend asked for and runs
//! it. Deliberately has no dependencies, so it never compiles burn itself.
//!
//! ```text
//! cargo xtask pretrain [--backend flex|ndarray|wgpu|cuda] [ARGS...]   electra pretrain ARGS
//! cargo xtask prepare-data [--backend ...] [ARGS...]                    electra prepare ARGS
//! cargo xtask finetune [ARGS...]                                        electra finetune ARGS
//! cargo xtask bench [ARGS...]                                           electra bench ARGS
//! cargo xtask electra SUBCOMMAND [ARGS...]                              any electra subcommand
//! cargo xtask check-backends                                            cargo check every backend feature
//! ```

use std::process::{Command, ExitCode};

const BACKENDS: [&str; 4] = ["flex", "ndarray", "wgpu", "cuda"];
/// The fastest CPU backend measured on the development machine (see docs/performance.md).
const DEFAULT_BACKEND: &str = "flex";

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <pretrain|prepare-data|finetune|bench|electra SUBCOMMAND|check-backends> \
         [--backend flex|ndarray|wgpu|cuda] [ARGS...]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return usage();
    }
    let task = args.remove(0);
    let backend = match take_backend(&mut args) {
        Ok(b) => b,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            return ExitCode::from(2);
        }
    };
    let subcommand = match task.as_str() {
        "pretrain" => "pretrain".to_string(),
        "prepare-data" => "prepare".to_string(),
        "finetune" => "finetune".to_string(),
        "bench" => "bench".to_string(),
        "electra" if !args.is_empty() => args.remove(0),
        "check-backends" => return check_backends(),
        "-h" | "--help" | "help" => {
            usage();
            return ExitCode::SUCCESS;
        }
        _ => return usage(),
    };
    run_electra(&backend, &subcommand, &args)
}

/// Removes `--backend X` / `--backend=X` from `args`.
fn take_backend(args: &mut Vec<String>) -> Result<String, String> {
    let mut backend = DEFAULT_BACKEND.to_string();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--backend" {
            let Some(value) = args.get(i + 1).cloned() else {
                return Err("--backend needs a value".into());
            };
            backend = value;
            args.drain(i..i + 2);
        } else if let Some(value) = args[i].strip_prefix("--backend=") {
            backend = value.to_string();
            args.remove(i);
        } else {
            i += 1;
        }
    }
    if !BACKENDS.contains(&backend.as_str()) {
        return Err(format!("unknown backend `{backend}` (one of {})", BACKENDS.join(", ")));
    }
    Ok(backend)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run_electra(backend: &str, subcommand: &str, args: &[String]) -> ExitCode {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "electra-cli", "--no-default-features", "--features"])
        .arg(backend)
        .args(["--", subcommand])
        .args(args);
    status(cmd)
}

fn check_backends() -> ExitCode {
    for backend in BACKENDS {
        eprintln!("xtask: cargo check -p electra-cli --features {backend}");
        let mut cmd = cargo();
        cmd.args(["check", "-p", "electra-cli", "--no-default-features", "--features", backend]);
        let code = status(cmd);
        if code != ExitCode::SUCCESS {
            return code;
        }
    }
    ExitCode::SUCCESS
}

fn status(mut cmd: Command) -> ExitCode {
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("xtask: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}
