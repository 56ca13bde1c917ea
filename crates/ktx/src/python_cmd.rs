//! `ktx python -c CODE | FILE.py [ARGS...]`: Python (CPython 3.12 for WASI, from the signed
//! `lang-python` bundle) in a WebAssembly sandbox with hard limits. The policy (limits and
//! their defaults, which bundle, the `sandbox` feature, the calls) is `ktx_runner::sandbox`'s;
//! this module parses, reads the script and the input, prints and picks the exit code (the
//! table in docs/json-output.md, `SandboxRunResult::cli_exit_code`).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use ktx_runner::sandbox::{self, Limits, Program};
use ktx_runtime::Runtime;

use crate::output::{emit, emit_json};
use crate::{CliError, GlobalArgs};

/// The most bytes `--input` passes to the guest (they travel in the request).
const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Run Python in a sandbox: no files, no network, no subprocesses, hard limits.
///
/// The code runs in CPython 3.12 compiled to WebAssembly (the signed lang-python bundle that
/// ships with ktx), hosted by wasmtime in the KTX Python runtime (the `sandbox` feature,
/// about 10 MB, installed on first use: asks, or --yes). It sees no filesystem, no network,
/// no environment variables and no host processes. The first run compiles the module (a few
/// seconds, cached afterwards).
///
/// Output: the guest's stdout and stderr as they were (each cut at --max-output), and a
/// one-line note on stderr when a limit stopped it or a stream was cut. Exit code: the
/// guest's own (an uncaught exception is 1), 124 timeout, 125 out of fuel, 126 memory limit,
/// 127 crash (a WebAssembly trap); 1 or 2 when ktx itself failed. ktx's flags go before
/// FILE.py and before the guest's arguments: everything from there on is the guest's.
///
/// Examples:
///   ktx python -c "print(1+1)"
///   ktx python --input data.txt script.py arg1 arg2
///   echo hello | ktx python -c "import sys; print(sys.stdin.read().upper())" --input -
///   ktx python -c "while True: pass" --timeout 2 --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The program, as a string (its traceback file name is `<string>`).
    #[arg(short = 'c', value_name = "CODE")]
    code: Option<String>,
    /// FILE.py (without -c), then the guest's arguments (its sys.argv[1:]).
    #[arg(
        value_name = "FILE.py | ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<String>,
    /// Bytes for the guest's standard input: a file, or `-` for ktx's own stdin (default:
    /// empty).
    #[arg(long, value_name = "FILE|-")]
    input: Option<PathBuf>,
    /// Print {schemaVersion, status, exitCode, stdout, stderr, stdoutTruncated,
    /// stderrTruncated, wallMs, fuel} (the exit code is the same as without it).
    #[arg(long)]
    json: bool,
    /// Wall-clock limit in seconds, sleeps and blocking reads included.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = sandbox::parse_timeout)]
    timeout: std::time::Duration,
    /// Memory limit of the guest, e.g. 128MiB, 1GiB (16MiB to 4GiB).
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = sandbox::parse_memory)]
    memory: u64,
    /// Fuel budget (about one unit per WebAssembly instruction; CPython's start-up alone
    /// takes about 200 million). Default: unmetered.
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Bytes kept of each of stdout and stderr, e.g. 1MiB; the rest is dropped and flagged.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = sandbox::parse_max_output)]
    max_output: u64,
    /// Fixed random seed and clocks: the same program gives the same output and fuel.
    #[arg(long)]
    deterministic: bool,
}

/// The `--json` document (keys in this order, after `schemaVersion`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Doc<'a> {
    status: &'static str,
    exit_code: u8,
    stdout: &'a str,
    stderr: &'a str,
    stdout_truncated: bool,
    stderr_truncated: bool,
    wall_ms: f64,
    fuel: Option<u64>,
}

/// Runs `ktx python`.
pub fn run(args: Args, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let opts = global.call_options()?;
    let program = program(&args)?;
    let limits = Limits {
        timeout: args.timeout,
        memory_bytes: args.memory,
        fuel: args.fuel,
        max_output_bytes: args.max_output,
        deterministic: args.deterministic,
    };
    let rt = Runtime::from_env()?;
    let result = sandbox::run(&rt, &program, &limits, &opts)?;
    let code = result.cli_exit_code();
    if args.json {
        emit_json(&Doc {
            status: result.status.as_str(),
            exit_code: code,
            stdout: &result.stdout,
            stderr: &result.stderr,
            stdout_truncated: result.stdout_truncated,
            stderr_truncated: result.stderr_truncated,
            wall_ms: result.wall_ms,
            fuel: result.fuel,
        })?;
    } else {
        emit(&result.stdout)?;
        eprint!("{}", result.stderr);
        if let Some(note) = sandbox::note(&result, &limits) {
            eprintln!("{note}");
        }
    }
    Ok(ExitCode::from(code))
}

fn usage(message: String) -> CliError {
    CliError { code: 2, message }
}

/// The program from `-c` or FILE.py, its arguments and its input.
fn program(args: &Args) -> Result<Program, CliError> {
    let (code, filename, argv) = match &args.code {
        Some(code) => (code.clone(), "<string>".to_string(), args.args.clone()),
        None => {
            let Some((file, rest)) = args.args.split_first() else {
                return Err(usage(
                    "nothing to run: pass -c CODE or FILE.py (see `ktx python --help`)".into(),
                ));
            };
            let bytes = std::fs::read(file)
                .map_err(|e| CliError::failure(format!("cannot read the script {file}: {e}")))?;
            let code = String::from_utf8(bytes).map_err(|_| {
                CliError::failure(format!(
                    "the script {file} is not UTF-8 text: save it as UTF-8 and retry"
                ))
            })?;
            (code, file.clone(), rest.to_vec())
        }
    };
    let stdin = args.input.as_ref().map(read_input).transpose()?;
    Ok(Program {
        code,
        filename,
        argv,
        stdin,
    })
}

/// `--input`'s bytes (at most [`MAX_INPUT_BYTES`]).
fn read_input(path: &PathBuf) -> Result<Vec<u8>, CliError> {
    let mut bytes = Vec::new();
    let (name, read) = if path.as_os_str() == "-" {
        (
            "standard input".to_string(),
            std::io::stdin()
                .lock()
                .take(MAX_INPUT_BYTES + 1)
                .read_to_end(&mut bytes),
        )
    } else {
        let file = std::fs::File::open(path).map_err(|e| {
            CliError::failure(format!(
                "cannot read the input file {}: {e}",
                path.display()
            ))
        })?;
        (
            path.display().to_string(),
            file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes),
        )
    };
    read.map_err(|e| CliError::failure(format!("cannot read {name}: {e}")))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(CliError::failure(format!(
            "{name} is larger than the {} MiB --input takes",
            MAX_INPUT_BYTES >> 20
        )));
    }
    Ok(bytes)
}
