//! The `ktx` binary: parses the command line, calls into the library crates and prints.
//! It holds no business logic of its own.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// ktx: metrics as code, with a private Python runtime managed for you.
#[derive(Debug, Parser)]
#[command(name = "ktx", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => {
            use clap::CommandFactory;
            // No subcommand: show help on stderr and signal a usage error.
            let _ = Cli::command().print_help();
            ExitCode::from(2)
        }
    }
}
