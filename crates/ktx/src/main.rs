//! The `ktx` binary: parses the command line, calls into the library crates and prints.
//! It holds no policy of its own: what to install and when to ask (`ktx_runner`, including
//! the large feature's consent in `ktx_runner::local_embeddings`), which project a command
//! works on (`ktx_runner::project`), what an op takes and answers (`ktx_runner::ops`, typed),
//! what prune may remove and when it refuses (`ktx_runtime::prune`), what the doctor checks
//! (`ktx_runtime::doctor`, plus the daemon check in `ktx_runner::daemon`), and the stable
//! sentences black-box checks parse (`ktx_runtime::messages`). What stays here is clap, the
//! mapping of results to text or `--json`, and exit codes.
//!
//! Layout: one module per command group (`runtime.rs` for `ktx runtime ...`). To add a group:
//! write `mod group;` with a `#[derive(clap::Args)] pub struct Args` and
//! `pub fn run(args: Args, global: &GlobalArgs) -> Result<ExitCode, CliError>`, then add one
//! variant to [`Command`] and one arm to the match in `main`.
//!
//! Output: commands print on stdout only through [`output`] (`emit`, `emit_json`, and
//! `op_error` for how an op's error reads), which owns
//! the policy for a closed or full stdout and puts `schemaVersion` first in every `--json`
//! document; each document's shape is in `docs/json-output.md`. Progress, notes and errors go
//! to stderr.

mod bundle_cmd;
mod daemon_cmd;
mod demo_cmd;
mod embed_cmd;
mod output;
mod python_cmd;
mod runtime;
mod script_cmd;
mod sl_cmd;

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

pub use output::CliError;

/// ktx: metrics as code, with a private Python runtime managed for you.
#[derive(Debug, Parser)]
#[command(
    name = "ktx",
    version,
    about,
    long_about = None,
    propagate_version = true,
    // `ktx` alone: the help on stderr, exit 2 (clap's convention for a missing subcommand).
    arg_required_else_help = true,
    after_help = "Start here: `ktx demo` creates a sample project and prints queries to try.\n\
                  Something wrong? `ktx runtime doctor` says what and how to fix it."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Flags every Python-backed command understands (accepted before or after the subcommand).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Answer yes: install the Python runtime without asking when a command needs it, and
    /// confirm `ktx runtime prune`.
    #[arg(long, global = true, conflicts_with = "no_input")]
    pub yes: bool,
    /// Never prompt: when a command needs the Python runtime and it is not ready, fail with
    /// the command that installs it instead of asking (`ktx runtime install` still installs:
    /// running it is the request).
    #[arg(long, global = true)]
    pub no_input: bool,
    /// Use (or start) the background Python daemon for faster repeated calls [env: KTX_DAEMON=1].
    #[arg(long, global = true)]
    pub daemon: bool,
}

impl GlobalArgs {
    /// The lazy-install policy and call options these flags select.
    pub fn call_options(&self) -> Result<ktx_runner::CallOptions, CliError> {
        let policy = ktx_runner::Policy::from_flags(self.yes, self.no_input)?;
        let mut opts = ktx_runner::CallOptions::new(policy);
        opts.daemon |= self.daemon;
        Ok(opts)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    // No doc comments on these variants: clap would let them replace the `Args` structs' own
    // long help. Each group documents itself on its `Args`.
    Runtime(runtime::Args),
    Embed(embed_cmd::Args),
    Sl(sl_cmd::Args),
    Demo(demo_cmd::Args),
    Bundle(bundle_cmd::Args),
    Script(script_cmd::Args),
    Python(python_cmd::Args),
}

fn main() -> ExitCode {
    // Ctrl-C / SIGTERM: kill installer children (their process groups) so no uv or pip keeps
    // writing after we are gone. The install receipt is written last, so nothing half-done is
    // ever trusted; the next install cleans the leftovers.
    //
    // The handler runs on ctrlc's own thread while the main thread may sit anywhere, e.g. in a
    // prompt's blocking read: it must never wait for a lock the main thread could hold (the
    // stderr lock of `eprintln!` was one: Ctrl-C at `Install it now?` then did nothing). So the
    // message goes straight to file descriptor 2, and `exit` only try-locks stdout.
    // `kill_active_children` takes a mutex that is only ever held for a push or a copy.
    let _ = ctrlc::set_handler(|| {
        ktx_runtime::process::kill_active_children();
        write_stderr_unlocked(b"\ninterrupted\n");
        std::process::exit(130);
    });
    quiet_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // Usage errors, and `ktx` alone (help on stderr): exit 2.
            let _ = e.print();
            return ExitCode::from(2);
        }
        // --help / --version: stdout, through the one output path (a full disk is an error).
        Err(e) => {
            return match output::emit_styled(&e.render()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => finish(Err(err)),
            }
        }
    };
    let result = match cli.command {
        None => {
            // Only global flags (`ktx --yes`): the same as `ktx` alone.
            use clap::CommandFactory;
            use std::io::IsTerminal;
            let help = Cli::command().render_help();
            if std::io::stderr().is_terminal() {
                eprint!("{}", help.ansi());
            } else {
                eprint!("{help}");
            }
            Ok(ExitCode::from(2))
        }
        Some(Command::Runtime(args)) => runtime::run(args, &cli.global),
        Some(Command::Embed(args)) => embed_cmd::run(args, &cli.global),
        Some(Command::Sl(args)) => sl_cmd::run(args, &cli.global),
        Some(Command::Demo(args)) => demo_cmd::run(args, &cli.global),
        Some(Command::Bundle(args)) => bundle_cmd::run(args, &cli.global),
        Some(Command::Script(args)) => script_cmd::run(args, &cli.global),
        Some(Command::Python(args)) => python_cmd::run(args, &cli.global),
    };
    finish(result)
}

/// The exit code of a command's result, after reporting its error. A closed stdout also stops
/// any installer child, as a SIGPIPE would have.
fn finish(result: Result<ExitCode, CliError>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            if err.code == output::BROKEN_PIPE_EXIT {
                ktx_runtime::process::kill_active_children();
            }
            err.report()
        }
    }
}

/// Writes `bytes` to file descriptor 2 without Rust's stderr lock (best effort: from the signal
/// handler thread, which must not wait on a lock another thread holds).
fn write_stderr_unlocked(bytes: &[u8]) {
    #[cfg(unix)]
    // SAFETY: write(2) on fd 2 with a valid buffer and its length; errors are ignored.
    unsafe {
        libc::write(2, bytes.as_ptr().cast(), bytes.len());
    }
    #[cfg(not(unix))]
    let _ = bytes;
}

/// Standard output goes through [`output::emit`], which handles EPIPE itself; this hook is the
/// safety net for `eprintln!` on a closed stderr (`ktx ... 2>&- `, a reader of `2>&1 |` that
/// went away), which panics with "failed printing to stderr": exit quietly instead, as a
/// SIGPIPE-killed tool would (141), after stopping any installer child.
///
/// Why not restore SIGPIPE's default action: writing a request into a one-shot child's stdin
/// after the child died would then kill ktx silently instead of reporting the failure.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            ktx_runtime::process::kill_active_children();
            std::process::exit(141);
        }
        default(info);
    }));
}
