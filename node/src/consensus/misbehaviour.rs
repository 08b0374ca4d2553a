//! Misbehaviour the engine saw: double votes (what the ledger's `ReportMisbehaviour` carries) and
//! double proposals, kept so that an organisation can report them.
//!
//! The engine hands the evidence of each height over when it finalises the height
//! (`AppMsg::Finalized`). The node cannot report it itself: a report is signed by an enrolled
//! organisation, and a node holds only its node key. So the node converts each double vote into
//! the ledger-core [`SignedVote`] pair a report carries, checks it as the ledger rule will, and
//! appends it to `<data_dir>/misbehaviour.jsonl`, one JSON object per line:
//!
//! ```json
//! {"finalized_height":12,"double_vote":{"first":{"vote":{…},"validator":"ed25519:…","signature":"ed25519:…"},"second":{…}}}
//! {"finalized_height":12,"double_proposal":{"proposer":"ed25519:…","height":12,"round":0,"first_block":"sha256:…","second_block":"sha256:…"}}
//! ```
//!
//! `ipledger report-misbehaviour --evidence <that file> --key <organisation key>` submits every
//! double vote in it. Double proposals are kept for operators only: the ledger has no rule for
//! them (a double proposal that matters also shows as double votes).
//!
//! Architecture invariant: evidence never decides anything; a failure to keep it is logged and
//! consensus goes on (the in-memory list still serves [`MisbehaviourLog::records`]).

use super::context::{ConsensusSignature, IpledgerContext, Vote};
use anyhow::{Context as _, Result};
use ledger_core::crypto::{Digest, PublicKey, Signature};
use ledger_core::vote::SignedVote;
use malachitebft_app_channel::app::types::core::SignedMessage;
use malachitebft_app_channel::app::types::MisbehaviorEvidence;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{error, warn};

/// The evidence file's name inside the node's data directory.
pub const MISBEHAVIOUR_FILE_NAME: &str = "misbehaviour.jsonl";
/// The most records a node keeps (in memory and in the file); later ones are logged and dropped.
/// Malachite keeps at most a few pairs per validator and height, so this covers a lying
/// validator for over a thousand heights.
pub const MISBEHAVIOUR_RECORDS_MAX: usize = 4_096;
/// The longest line read back from the evidence file, in bytes (a double vote is about 700).
pub const MISBEHAVIOUR_LINE_BYTES_MAX: usize = 16 * 1024;

/// One piece of misbehaviour.
// A double vote is larger than a double proposal, but records are few (at most
// `MISBEHAVIOUR_RECORDS_MAX`), so boxing would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misbehaviour {
    /// Two votes one validator signed for the same type, height and round and different values
    /// (nil counts as a value): exactly what `Action::ReportMisbehaviour` carries.
    DoubleVote {
        /// The vote seen first.
        first: SignedVote,
        /// The conflicting vote.
        second: SignedVote,
    },
    /// Two proposals one proposer signed for the same height and round with different blocks.
    DoubleProposal {
        /// The proposer's consensus key.
        proposer: PublicKey,
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The block of the proposal seen first.
        first_block: Digest,
        /// The block of the conflicting proposal.
        second_block: Digest,
    },
}

impl Misbehaviour {
    /// What makes two records the same offence: the ledger records one double vote per
    /// validator, vote type, height and round.
    fn offence(&self) -> (PublicKey, u8, u64, u32) {
        match self {
            Misbehaviour::DoubleVote { first, .. } => (
                first.validator,
                match first.vote.vote_type {
                    ledger_core::vote::VoteType::Prevote => 0,
                    ledger_core::vote::VoteType::Precommit => 1,
                },
                first.vote.height,
                first.vote.round,
            ),
            Misbehaviour::DoubleProposal {
                proposer,
                height,
                round,
                ..
            } => (*proposer, 2, *height, *round),
        }
    }
}

/// A piece of misbehaviour and when the node learnt of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedMisbehaviour {
    /// The height whose finalisation handed the evidence over.
    pub finalized_height: u64,
    /// What was seen.
    #[serde(flatten)]
    pub misbehaviour: Misbehaviour,
}

/// The misbehaviour a node has seen, in memory and in its evidence file.
#[derive(Debug)]
pub struct MisbehaviourLog {
    path: PathBuf,
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    records: Vec<ObservedMisbehaviour>,
    offences: HashSet<(PublicKey, u8, u64, u32)>,
}

impl MisbehaviourLog {
    /// Opens the evidence file in `data_dir`, reading back what earlier runs kept.
    pub fn open(data_dir: &Path) -> Result<MisbehaviourLog> {
        let path = data_dir.join(MISBEHAVIOUR_FILE_NAME);
        let mut state = LogState::default();
        if path.exists() {
            for record in read_misbehaviour_file(&path)? {
                if state.records.len() < MISBEHAVIOUR_RECORDS_MAX
                    && state.offences.insert(record.misbehaviour.offence())
                {
                    state.records.push(record);
                }
            }
        }
        Ok(MisbehaviourLog {
            path,
            state: Mutex::new(state),
        })
    }

    /// The evidence file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything kept, oldest first.
    pub fn records(&self) -> Vec<ObservedMisbehaviour> {
        self.state
            .lock()
            .expect("misbehaviour lock")
            .records
            .clone()
    }

    /// The double votes kept, oldest first: what organisations can report.
    pub fn double_votes(&self) -> Vec<(SignedVote, SignedVote)> {
        self.records()
            .into_iter()
            .filter_map(|record| match record.misbehaviour {
                Misbehaviour::DoubleVote { first, second } => Some((first, second)),
                Misbehaviour::DoubleProposal { .. } => None,
            })
            .collect()
    }

    /// Keeps the offences not kept yet, appending them to the file; returns how many were new.
    pub fn record(&self, finalized_height: u64, seen: Vec<Misbehaviour>) -> usize {
        let mut state = self.state.lock().expect("misbehaviour lock");
        let mut new = Vec::new();
        for misbehaviour in seen {
            if state.records.len() >= MISBEHAVIOUR_RECORDS_MAX {
                warn!(
                    ?misbehaviour,
                    "misbehaviour not kept: {MISBEHAVIOUR_RECORDS_MAX} records already"
                );
                continue;
            }
            if state.offences.insert(misbehaviour.offence()) {
                let record = ObservedMisbehaviour {
                    finalized_height,
                    misbehaviour,
                };
                warn!(?record, "misbehaviour observed");
                state.records.push(record.clone());
                new.push(record);
            }
        }
        if let Err(error) = self.append(&new) {
            error!(%error, path = %self.path.display(), "cannot keep misbehaviour evidence on disk; it stays in memory");
        }
        new.len()
    }

    fn append(&self, records: &[ObservedMisbehaviour]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for record in records {
            text.push_str(&serde_json::to_string(record).context("encoding evidence")?);
            text.push('\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Reads an evidence file. A last line cut short (the node stopped mid-write) is skipped; any
/// other line that does not parse is an error.
pub fn read_misbehaviour_file(path: &Path) -> Result<Vec<ObservedMisbehaviour>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let last = index + 1 == lines.len();
        let parsed = match line.len() <= MISBEHAVIOUR_LINE_BYTES_MAX {
            true => serde_json::from_str::<ObservedMisbehaviour>(line).map_err(|e| e.to_string()),
            false => Err(format!("longer than {MISBEHAVIOUR_LINE_BYTES_MAX} bytes")),
        };
        match parsed {
            Ok(record) => records.push(record),
            Err(error) if last && !complete => {
                warn!(%error, path = %path.display(), "skipping a cut-short last line of the evidence file")
            }
            Err(error) => anyhow::bail!("{} line {}: {error}", path.display(), index + 1),
        }
    }
    Ok(records)
}

/// The misbehaviour in the engine's evidence of one height, as ledger-core values. A double
/// vote whose signatures do not check, or that is no double vote by the ledger's rule, is logged
/// and left out (the engine checked both, so this would be an adapter bug).
pub fn from_engine(
    evidence: &MisbehaviorEvidence<IpledgerContext>,
    chain_id: &str,
) -> Vec<Misbehaviour> {
    let mut seen = Vec::new();
    for (_, pairs) in &evidence.votes {
        for (first, second) in pairs {
            let (first, second) = (ledger_vote(first, chain_id), ledger_vote(second, chain_id));
            match check_double_vote(&first, &second) {
                Ok(()) => seen.push(Misbehaviour::DoubleVote { first, second }),
                Err(problem) => {
                    error!(%problem, ?first, ?second, "engine evidence is not a double vote")
                }
            }
        }
    }
    for (_, pairs) in &evidence.proposals {
        for (first, second) in pairs {
            if first.message.value == second.message.value {
                // Same block with another proof-of-lock round: not a conflicting value.
                continue;
            }
            seen.push(Misbehaviour::DoubleProposal {
                proposer: first.message.proposer.public_key(),
                height: first.message.height.0,
                round: super::context::defined_round(first.message.round),
                first_block: first.message.value.digest(),
                second_block: second.message.value.digest(),
            });
        }
    }
    seen
}

fn ledger_vote(signed: &SignedMessage<IpledgerContext, Vote>, chain_id: &str) -> SignedVote {
    let ConsensusSignature(signature) = signed.signature;
    SignedVote {
        vote: signed.message.to_ledger(chain_id),
        validator: signed.message.validator.public_key(),
        signature: Signature::Ed25519(signature),
    }
}

/// The checks the ledger's rule makes that need no state: one validator, same type, height and
/// round, different values, both signatures valid.
pub fn check_double_vote(
    first: &SignedVote,
    second: &SignedVote,
) -> std::result::Result<(), String> {
    let (a, b) = (&first.vote, &second.vote);
    if first.validator != second.validator {
        return Err("the votes are from different validators".into());
    }
    if (a.vote_type, a.height, a.round, &a.chain_id)
        != (b.vote_type, b.height, b.round, &b.chain_id)
    {
        return Err("the votes differ in type, height, round or chain".into());
    }
    if a.block_hash == b.block_hash {
        return Err("the votes are for the same value".into());
    }
    first.verify().map_err(|e| format!("first vote: {e}"))?;
    second.verify().map_err(|e| format!("second vote: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::testkit::test_key;
    use ledger_core::vote::{Vote as LedgerVote, VoteType};

    fn double_vote(height: u64, round: u32) -> Misbehaviour {
        let key = test_key("liar/node");
        let vote = |block: Option<Digest>| LedgerVote {
            vote_type: VoteType::Prevote,
            chain_id: "test".into(),
            height,
            round,
            block_hash: block,
        };
        Misbehaviour::DoubleVote {
            first: vote(Some(Digest::sha256(b"a"))).sign(&key),
            second: vote(None).sign(&key),
        }
    }

    #[test]
    fn kept_once_per_offence_and_read_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = MisbehaviourLog::open(dir.path()).unwrap();
        assert_eq!(log.record(5, vec![double_vote(5, 0), double_vote(5, 0)]), 1);
        assert_eq!(log.record(6, vec![double_vote(5, 0), double_vote(6, 1)]), 1);
        let (first, second) = log.double_votes()[0].clone();
        assert_eq!(check_double_vote(&first, &second), Ok(()));
        let reopened = MisbehaviourLog::open(dir.path()).unwrap();
        assert_eq!(reopened.records(), log.records());
        assert_eq!(reopened.record(7, vec![double_vote(6, 1)]), 0);
    }

    #[test]
    fn a_cut_short_last_line_is_skipped_and_a_bad_line_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = MisbehaviourLog::open(dir.path()).unwrap();
        log.record(5, vec![double_vote(5, 0)]);
        let mut text = std::fs::read_to_string(log.path()).unwrap();
        text.push_str("{\"finalized_height\":6,\"double_vo");
        std::fs::write(log.path(), &text).unwrap();
        assert_eq!(read_misbehaviour_file(log.path()).unwrap().len(), 1);
        text.push('\n');
        std::fs::write(log.path(), &text).unwrap();
        assert!(read_misbehaviour_file(log.path()).is_err());
    }

    #[test]
    fn a_forged_or_same_value_pair_is_not_a_double_vote() {
        let Misbehaviour::DoubleVote { first, second } = double_vote(3, 0) else {
            unreachable!()
        };
        let same = check_double_vote(&first, &first.clone()).unwrap_err();
        assert!(same.contains("same value"), "{same}");
        let mut other_round = second.clone();
        other_round.vote.round = 1;
        let other_round = check_double_vote(&first, &other_round).unwrap_err();
        assert!(other_round.contains("differ"), "{other_round}");
        let mut forged = second;
        forged.vote.block_hash = Some(Digest::sha256(b"not what was signed"));
        let forged = check_double_vote(&first, &forged).unwrap_err();
        assert!(forged.contains("second vote"), "{forged}");
    }
}
