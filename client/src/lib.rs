//! The `ipledger` client: the command each user (rights holder, bank, appraiser, court, trading
//! center) runs on their own machine with their own key file.
//!
//! Nothing here trusts the node it talks to. A submitted transaction's receipt is verified
//! against the genesis before the client reports the commit ([`trust::Trust::verify_receipt`]);
//! every state answer is checked against a certified header no older than a freshness bound and
//! its state proof ([`trust::Trust::check_state_answer`]); lists are proven complete by a proven
//! count and one proven entry per index. `evidence verify` needs no node at all.
//!
//! - [`cli`]: the command line (clap);
//! - [`commands`]: what each command does, returning an [`Output`];
//! - [`node`]: the HTTP API client; [`trust`]: verification; [`files`]: hashing, key, genesis,
//!   receipt and draft files; [`text`]: parsing and formatting values;
//! - [`error`]: [`ClientError`] and the exit codes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod error;
pub mod files;
pub mod node;
pub mod text;
pub mod trust;

pub use commands::verify_evidence;
pub use error::{ClientError, Result};

use serde_json::Value;

/// What a command prints: lines for people, or one JSON object with `--json`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// The human-readable lines.
    pub lines: Vec<String>,
    /// The machine-readable result.
    pub json: Value,
}

impl Output {
    /// An output of `lines` and `json`.
    pub fn new(lines: Vec<String>, json: Value) -> Output {
        Output { lines, json }
    }
}

/// Runs one parsed command line: the binary's whole job apart from printing.
pub fn run(cli: cli::Cli) -> Result<Output> {
    let context = commands::Context::new(&cli.global);
    commands::run(&context, cli.command)
}

/// The JSON printed for an error with `--json`.
pub fn error_json(error: &ClientError) -> Value {
    serde_json::json!({
        "ok": false,
        "error": {
            "kind": error.kind(),
            "code": error.rule_code(),
            "exit_code": error.exit_code(),
            "message": error.to_string(),
        }
    })
}
