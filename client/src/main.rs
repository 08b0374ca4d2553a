//! `ipledger`: the client binary. Parsing, running and verification live in the library
//! (`ipledger_client`); this prints the result and turns errors into exit codes.

use clap::Parser;
use ipledger_client::{cli::Cli, error_json, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.global.json;
    match run(cli) {
        Ok(output) => {
            if json {
                println!("{}", output.json);
            } else {
                for line in &output.lines {
                    println!("{line}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            if json {
                println!("{}", error_json(&error));
            }
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
