//! `cargo xtask`: builds the `electra` binary in release mode with the backend asked for and runs
//! it. Deliberately has no dependencies, so it never compiles burn itself.
//!
//! ```text
//! cargo xtask pretrain [--backend flex|ndarray|wgpu|cuda] [ARGS...]   electra pretrain ARGS
//! cargo xtask pretrain --processes N [ARGS...]                         a coordinator and N local ranks
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
    let processes = match take_value(&mut args, "--processes") {
        Ok(None) => None,
        Ok(Some(n)) => match n.parse::<usize>() {
            Ok(n) if n >= 1 && task == "pretrain" => Some(n),
            _ => {
                eprintln!("xtask: --processes needs a positive number and the pretrain task");
                return ExitCode::from(2);
            }
        },
        Err(msg) => {
            eprintln!("xtask: {msg}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = processes.filter(|&n| n > 1) {
        return run_ranks(&backend, n, &args);
    }
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

/// Removes `NAME VALUE` / `NAME=VALUE` from `args` and returns the value.
fn take_value(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    let mut value = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == name {
            value = Some(args.get(i + 1).cloned().ok_or_else(|| format!("{name} needs a value"))?);
            args.drain(i..i + 2);
        } else if let Some(v) = args[i].strip_prefix(&format!("{name}=")) {
            value = Some(v.to_string());
            args.remove(i);
        } else {
            i += 1;
        }
    }
    Ok(value)
}

/// A data-parallel run on this machine: builds `electra`, starts a coordinator on a free
/// loopback port and `n` ranks of `electra pretrain ARGS`, each with its share of the cores
/// (CPU backends; on GPU backends one process per GPU is the intent). Rank 0's output is shown;
/// every process must succeed.
fn run_ranks(backend: &str, n: usize, args: &[String]) -> ExitCode {
    let mut build = cargo();
    build.args(["build", "--release", "--quiet", "-p", "electra-cli", "--no-default-features", "--features", backend]);
    let code = status(build);
    if code != ExitCode::SUCCESS {
        return code;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let exe = target
        .join("release")
        .join(if cfg!(windows) { "electra.exe" } else { "electra" });
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => {
            eprintln!("xtask: no free port: {e}");
            return ExitCode::FAILURE;
        }
    };
    let address = format!("127.0.0.1:{port}");
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let threads = (cores / n).max(1).to_string();
    eprintln!("xtask: coordinator on {address}, {n} ranks with {threads} thread(s) each");
    let mut children = Vec::new();
    let coordinator = Command::new(&exe)
        .args(["coordinator", "--world", &n.to_string(), "--listen", &address])
        .spawn();
    match coordinator {
        Ok(c) => children.push(("coordinator".to_string(), c)),
        Err(e) => {
            eprintln!("xtask: cannot start {}: {e}", exe.display());
            return ExitCode::FAILURE;
        }
    }
    for rank in 0..n {
        let mut cmd = Command::new(&exe);
        cmd.arg("pretrain")
            .args(args)
            .args(["--world", &n.to_string(), "--rank", &rank.to_string(), "--coordinator", &address])
            .env("RAYON_NUM_THREADS", &threads);
        if rank > 0 {
            cmd.stdout(std::process::Stdio::null());
        }
        match cmd.spawn() {
            Ok(c) => children.push((format!("rank {rank}"), c)),
            Err(e) => {
                eprintln!("xtask: cannot start rank {rank}: {e}");
                for (_, c) in &mut children {
                    let _ = c.kill();
                }
                return ExitCode::FAILURE;
            }
        }
    }
    let mut code = ExitCode::SUCCESS;
    for (name, mut child) in children {
        match child.wait() {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("xtask: {name} exited with {s}");
                code = ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("xtask: {name}: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
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
