//! The `ktx` binary: parses the command line, calls into the library crates and prints.
//! It holds no business logic of its own.
//!
//! Layout: one module per command group (`runtime.rs` for `ktx runtime ...`). To add a group:
//! write `mod group;` with a `#[derive(clap::Args)] pub struct Args` and
//! `pub fn run(args: Args, global: &GlobalArgs) -> Result<ExitCode, CliError>`, then add one
//! variant to [`Command`] and one arm to the match in `main`.

mod daemon_cmd;
mod demo_cmd;
mod embed_cmd;
mod output;
mod runtime;
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
    /// Never prompt and never install; fail with the command to run instead.
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
}

fn main() -> ExitCode {
    // Ctrl-C / SIGTERM: kill installer children (their process groups) so no uv or pip keeps
    // writing after we are gone. The install receipt is written last, so nothing half-done is
    // ever trusted; the next install cleans the leftovers.
    let _ = ctrlc::set_handler(|| {
        ktx_runtime::process::kill_active_children();
        eprintln!("\ninterrupted");
        std::process::exit(130);
    });
    quiet_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help / --version exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            Ok(ExitCode::from(2))
        }
        Some(Command::Runtime(args)) => runtime::run(args, &cli.global),
        Some(Command::Embed(args)) => embed_cmd::run(args, &cli.global),
        Some(Command::Sl(args)) => sl_cmd::run(args, &cli.global),
        Some(Command::Demo(args)) => demo_cmd::run(args, &cli.global),
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}

/// `ktx runtime status | head -1`: the reader goes away and `println!` panics on EPIPE. Exit
/// quietly instead, as a SIGPIPE-killed tool would (141), after stopping any installer child.
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
