//! The `kubemint` command: argument parsing and dispatch only. The commands
//! are `kubemint::cli::args`; running them, `kubemint::cli::dispatch`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use kubemint::cli::args::Cli;
use kubemint::cli::dispatch::{self, CommandError, Outcome};

fn main() -> ExitCode {
    report(dispatch::run(Cli::parse()))
}

/// The exit status ([`dispatch::exit_code`] decides it), after printing why
/// the command failed, with every cause.
fn report(result: Result<Outcome, CommandError>) -> ExitCode {
    let code = dispatch::exit_code(&result);
    if let Err(e) = result {
        eprintln!("error: {:#}", anyhow::Error::from(e));
    }
    ExitCode::from(code)
}
