//! `ipledger`: the client binary. Parsing, running and verification live in the library
//! (`ipledger_client`); this prints the result and turns errors into exit codes.

use clap::Parser;
use ipledger_client::{cli::Cli, error_json, run};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.global.json;
    match run(cli) {
        Ok(output) => {
            // A closed pipe (`ipledger ... | head`) is not an error of the command.
            let mut stdout = std::io::stdout().lock();
            let _ = if json {
                writeln!(stdout, "{}", output.json)
            } else {
                output
                    .lines
                    .iter()
                    .try_for_each(|line| writeln!(stdout, "{line}"))
            };
            ExitCode::SUCCESS
        }
        Err(error) => {
            if json {
                let _ = writeln!(std::io::stdout(), "{}", error_json(&error));
            }
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
