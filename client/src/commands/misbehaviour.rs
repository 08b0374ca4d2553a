//! `ipledger report-misbehaviour`: an organisation reports the double votes a node saw.
//!
//! A node keeps every double vote its consensus engine reports in `<data_dir>/misbehaviour.jsonl`
//! (one JSON object per line; `ipledger_node::consensus::misbehaviour` writes it). The node cannot
//! report them itself, because `ReportMisbehaviour` is signed by an enrolled organisation and a
//! node holds only its node key. This command reads the file, checks each double vote as the
//! ledger rule will, skips those the ledger (proven) already records, submits the others, and
//! reads each record back with its proof.

use super::{new_tx, submit_signed, Context, Signers, TX_LIFETIME_HEIGHTS};
use crate::cli::Signing;
use crate::error::{ClientError, Result};
use crate::node::NodeClient;
use crate::trust::Trust;
use crate::Output;
use ledger_core::state::{MisbehaviourRecord, StateKey};
use ledger_core::tx::Action;
use ledger_core::types::PartyId;
use ledger_core::vote::{SignedVote, VoteType};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;

/// The largest evidence file read, in bytes (a double vote takes about 1 KiB).
pub const EVIDENCE_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// One line of the evidence file; lines of other kinds (double proposals) are skipped.
#[derive(Deserialize)]
struct EvidenceLine {
    finalized_height: u64,
    double_vote: Option<DoubleVote>,
}

#[derive(Clone, Deserialize)]
struct DoubleVote {
    first: SignedVote,
    second: SignedVote,
}

impl DoubleVote {
    fn key(&self) -> StateKey {
        let vote = &self.first.vote;
        StateKey::Misbehaviour {
            validator: self.first.validator,
            height: vote.height,
            round: vote.round,
            vote_type: vote.vote_type,
        }
    }

    fn describe(&self) -> String {
        let vote = &self.first.vote;
        let kind = match vote.vote_type {
            VoteType::Prevote => "prevote",
            VoteType::Precommit => "precommit",
        };
        format!(
            "validator {} double {kind} at height {} round {}",
            self.first.validator, vote.height, vote.round
        )
    }
}

/// Reads the double votes of an evidence file, checking each as the ledger rule does without
/// state. A cut-short last line (the node stopped mid-write) is skipped.
fn read_double_votes(path: &Path, chain_id: &str) -> Result<Vec<DoubleVote>> {
    let size = std::fs::metadata(path)
        .map_err(|error| ClientError::bad_file(path, format!("cannot read: {error}")))?
        .len();
    if size > EVIDENCE_FILE_BYTES_MAX {
        return Err(ClientError::bad_file(
            path,
            format!(
                "{size} bytes, more than the {EVIDENCE_FILE_BYTES_MAX} an evidence file may hold"
            ),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| ClientError::bad_file(path, format!("cannot read: {error}")))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut votes: Vec<DoubleVote> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cut_short = index + 1 == lines.len() && !text.ends_with('\n');
        let parsed: EvidenceLine = match serde_json::from_str(line) {
            Ok(parsed) => parsed,
            Err(_) if cut_short => continue,
            Err(error) => {
                return Err(ClientError::bad_file(
                    path,
                    format!("line {} is not evidence: {error}", index + 1),
                ))
            }
        };
        let Some(double) = parsed.double_vote else {
            continue;
        };
        check(&double, chain_id).map_err(|problem| {
            ClientError::bad_file(
                path,
                format!(
                    "line {} (finalised at height {}) is not a double vote: {problem}",
                    index + 1,
                    parsed.finalized_height
                ),
            )
        })?;
        if votes.iter().all(|seen| seen.key() != double.key()) {
            votes.push(double);
        }
    }
    Ok(votes)
}

/// One validator, same type, height, round and chain, different values, both signatures valid.
fn check(double: &DoubleVote, chain_id: &str) -> std::result::Result<(), String> {
    let (first, second) = (&double.first, &double.second);
    let (a, b) = (&first.vote, &second.vote);
    if first.validator != second.validator {
        return Err("the votes are from different validators".into());
    }
    if (a.vote_type, a.height, a.round) != (b.vote_type, b.height, b.round) {
        return Err("the votes differ in type, height or round".into());
    }
    if a.chain_id != chain_id || b.chain_id != chain_id {
        return Err(format!("the votes are not for chain {chain_id:?}"));
    }
    if a.block_hash == b.block_hash {
        return Err("the votes are for the same value".into());
    }
    first.verify().map_err(|e| format!("first vote: {e}"))?;
    second.verify().map_err(|e| format!("second vote: {e}"))
}

/// `ipledger report-misbehaviour --evidence FILE --key KEY`.
pub(crate) fn report(context: &Context, evidence: &Path, signing: &Signing) -> Result<Output> {
    let trust = context.trust()?;
    let node = context.node();
    let votes = read_double_votes(evidence, &trust.genesis.chain_id)?;
    let signers = Signers::read(signing)?;
    let reporter = signers.actor(&trust, &node)?;
    let mut lines = Vec::new();
    let mut reports = Vec::new();
    for double in &votes {
        let (line, report) = report_one(&trust, &node, &signers, &reporter, double)?;
        lines.push(line);
        reports.push(report);
    }
    if votes.is_empty() {
        lines.push(format!(
            "{} holds no double vote: nothing to report",
            evidence.display()
        ));
    }
    Ok(Output::new(
        lines,
        json!({"ok": true, "reporter": reporter, "reports": reports}),
    ))
}

/// Reports one double vote unless the ledger already records it; returns a line and its JSON.
fn report_one(
    trust: &Trust,
    node: &NodeClient,
    signers: &Signers,
    reporter: &PartyId,
    double: &DoubleVote,
) -> Result<(String, Value)> {
    let key = double.key();
    let what = double.describe();
    if let Some(record) = trust.read::<MisbehaviourRecord>(node, &key)?.value {
        return Ok(recorded_line(&what, &record, "already recorded", None));
    }
    let action = Action::ReportMisbehaviour {
        reporter: reporter.clone(),
        first: double.first.clone(),
        second: double.second.clone(),
    };
    let mut tx = new_tx(&trust.genesis, node, action, TX_LIFETIME_HEIGHTS)?;
    for key in &signers.keys {
        tx.sign(key);
    }
    let status = match submit_signed(trust, node, &tx, None, &what) {
        Ok(_) => "recorded",
        Err(error) if error.rule_code() == Some("misbehaviour_already_recorded") => {
            "already recorded"
        }
        Err(error) => return Err(error),
    };
    let proven = trust.read::<MisbehaviourRecord>(node, &key)?;
    let record = proven.value.ok_or_else(|| {
        ClientError::verification(format!(
            "the report of {what} committed, yet the ledger proves no record of it at height {}",
            proven.height
        ))
    })?;
    Ok(recorded_line(&what, &record, status, Some(proven.height)))
}

fn recorded_line(
    what: &str,
    record: &MisbehaviourRecord,
    status: &str,
    proven_at: Option<u64>,
) -> (String, Value) {
    let proven = proven_at
        .map(|height| format!(", proven at height {height}"))
        .unwrap_or_default();
    let line = format!(
        "{status}: {what} (organisation {}), reported by {} in transaction {} at height {}{proven}",
        record.organisation, record.reporter, record.recorded.tx, record.recorded.height
    );
    let json = json!({
        "status": status.replace(' ', "_"),
        "validator": record.first.validator,
        "organisation": record.organisation,
        "vote_type": record.first.vote.vote_type,
        "height": record.first.vote.height,
        "round": record.first.vote.round,
        "reporter": record.reporter,
        "tx_id": record.recorded.tx,
        "recorded_height": record.recorded.height,
    });
    (line, json)
}
