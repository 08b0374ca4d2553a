//! What each command does. Every command returns an [`Output`]; nothing here prints, except the
//! progress bar while hashing and the confirmation question of `sign` on a terminal.

mod evidence;
mod keys;
mod ledger;
mod misbehaviour;
mod pledge;
mod status;
mod work;

pub use evidence::verify as verify_evidence;

use crate::cli::{Command, GlobalArgs, Signing, Submission};
use crate::error::{ClientError, Result};
use crate::files::{read_genesis_file, read_key, write_receipt, Draft};
use crate::node::NodeClient;
use crate::text::utc;
use crate::trust::Trust;
use crate::Output;
use ledger_core::crypto::SigningKey;
use ledger_core::genesis::Genesis;
use ledger_core::tx::{Action, SignedTx, TxBody};
use ledger_core::types::PartyId;
use rand_core::{OsRng, RngCore};
use serde_json::json;
use std::path::{Path, PathBuf};

/// How many heights past the node's head a directly submitted transaction stays valid (capped
/// by the genesis' `tx_lifetime_max`). Drafts get the genesis maximum, since they travel.
pub const TX_LIFETIME_HEIGHTS: u64 = 100;

/// What every command may need: the node, the genesis, the freshness bound.
pub struct Context {
    node_url: String,
    genesis_path: PathBuf,
    max_age_s: u64,
}

impl Context {
    /// The context the global options describe.
    pub fn new(global: &GlobalArgs) -> Context {
        Context {
            node_url: global.node.clone(),
            genesis_path: global.genesis.clone(),
            max_age_s: global.max_age,
        }
    }

    /// The genesis file's path.
    pub fn genesis_path(&self) -> &Path {
        &self.genesis_path
    }

    /// Reads the genesis.
    pub fn genesis(&self) -> Result<Genesis> {
        read_genesis_file(&self.genesis_path)
    }

    /// The genesis and freshness bound answers are checked against.
    pub fn trust(&self) -> Result<Trust> {
        Ok(Trust {
            genesis: self.genesis()?,
            max_age_ms: self.max_age_s.saturating_mul(1000),
        })
    }

    /// A client of the node.
    pub fn node(&self) -> NodeClient {
        NodeClient::new(&self.node_url)
    }
}

/// Runs a command.
pub fn run(context: &Context, command: Command) -> Result<Output> {
    match command {
        Command::Keys(command) => keys::run(command),
        Command::Work(command) => work::run(context, command),
        Command::Pledge(command) => pledge::run(context, command),
        Command::Evidence(command) => evidence::run(context, command),
        Command::Court(command) => ledger::court(context, command),
        Command::Party(command) => ledger::party(context, command),
        Command::Asset(command) => ledger::asset(context, command),
        Command::Gov(command) => ledger::gov(context, command),
        Command::Status => status::run(context),
        Command::ReportMisbehaviour { evidence, signing } => {
            misbehaviour::report(context, &evidence, &signing)
        }
    }
}

/// The signing keys of a command, and the party the first one acts for.
pub(crate) struct Signers {
    keys: Vec<SigningKey>,
    as_party: Option<PartyId>,
}

impl Signers {
    pub(crate) fn read(signing: &Signing) -> Result<Signers> {
        let keys = signing
            .keys
            .iter()
            .map(|path| read_key(path))
            .collect::<Result<Vec<_>>>()?;
        let as_party = signing.as_party.as_deref().map(party_id).transpose()?;
        Ok(Signers { keys, as_party })
    }

    /// The party the first key acts for: `--as`, or the party the ledger proves holds it.
    pub(crate) fn actor(&self, trust: &Trust, node: &NodeClient) -> Result<PartyId> {
        if let Some(party) = &self.as_party {
            return Ok(party.clone());
        }
        trust.party_of_key(node, &self.keys[0].public_key())
    }
}

/// A well-formed party id.
pub(crate) fn party_id(text: &str) -> Result<PartyId> {
    let party = PartyId(text.to_owned());
    if !party.is_well_formed() {
        return Err(ClientError::usage(format!(
            "party id {text:?} is not 1 to 64 lowercase letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(party)
}

/// `action` as a transaction for the genesis' chain with a random salt, valid for `lifetime`
/// heights past the node's head (at most the genesis' `tx_lifetime_max`).
pub(crate) fn new_tx(
    genesis: &Genesis,
    node: &NodeClient,
    action: Action,
    lifetime: u64,
) -> Result<SignedTx> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let lifetime = lifetime.min(genesis.params.tx_lifetime_max);
    let height = node.height()?;
    Ok(SignedTx::unsigned(TxBody {
        chain_id: genesis.chain_id.clone(),
        salt,
        valid_until: height + lifetime,
        action,
    }))
}

/// Signs `action` with every key and submits it (or writes a draft with `--draft`).
pub(crate) fn sign_and_submit(
    trust: &Trust,
    node: &NodeClient,
    action: Action,
    signers: &Signers,
    submission: &Submission,
    default_receipt: Option<PathBuf>,
    what: &str,
) -> Result<Output> {
    let lifetime = match submission.draft {
        Some(_) => u64::MAX,
        None => TX_LIFETIME_HEIGHTS,
    };
    let mut tx = new_tx(&trust.genesis, node, action, lifetime)?;
    for key in &signers.keys {
        tx.sign(key);
    }
    if let Some(path) = &submission.draft {
        let draft = Draft::new(tx);
        draft.write(path)?;
        return Ok(Output::new(
            vec![
                format!("wrote draft {} of: {what}", path.display()),
                format!("transaction {} with {} signature(s); co-signers run `ipledger pledge sign {}`, then `ipledger pledge submit {}`", draft.tx_id, draft.tx.signatures.len(), path.display(), path.display()),
            ],
            json!({"ok": true, "draft": path, "tx_id": draft.tx_id, "signatures": draft.tx.signatures.len()}),
        ));
    }
    let receipt_path = submission.receipt.clone().or(default_receipt);
    submit_signed(trust, node, &tx, receipt_path.as_deref(), what)
}

/// Submits a signed transaction, waits for its commit, fetches its receipt, verifies the
/// receipt against the genesis, and saves it if asked.
pub(crate) fn submit_signed(
    trust: &Trust,
    node: &NodeClient,
    tx: &SignedTx,
    receipt_path: Option<&Path>,
    what: &str,
) -> Result<Output> {
    let id = tx.id();
    let committed = node.submit(tx)?;
    let receipt = node.receipt(&id)?;
    let verified = trust.verify_receipt(&receipt, Some(&id))?;
    if verified.height != committed.height {
        return Err(ClientError::verification(format!(
            "the node said transaction {id} was committed at height {}, its receipt proves height {}",
            committed.height, verified.height
        )));
    }
    if let Some(path) = receipt_path {
        write_receipt(path, &receipt)?;
    }
    let mut lines = vec![
        format!("committed: {what}"),
        format!(
            "  transaction {id} at height {}, {}",
            verified.height,
            utc(verified.time_ms)
        ),
        format!(
            "  receipt verified against genesis {} (certified at height {})",
            verified.genesis_hash, verified.certified_height
        ),
    ];
    if let Some(path) = receipt_path {
        lines.push(format!("  receipt saved to {}", path.display()));
    }
    Ok(Output::new(
        lines,
        json!({
            "ok": true,
            "status": "committed",
            "tx_id": id,
            "height": verified.height,
            "time_ms": verified.time_ms,
            "ledger_index": committed.ledger_index,
            "certified_height": verified.certified_height,
            "genesis_fingerprint": verified.genesis_hash,
            "receipt": receipt_path,
        }),
    ))
}

/// Shows a draft's action and adds `key`'s signature, asking first on a terminal unless `yes`.
pub(crate) fn sign_draft(
    genesis: &Genesis,
    path: &Path,
    key_path: &Path,
    yes: bool,
) -> Result<Output> {
    let mut draft = Draft::read(path)?;
    let key = read_key(key_path)?;
    if draft.tx.body.chain_id != genesis.chain_id {
        return Err(ClientError::bad_file(
            path,
            format!(
                "the draft is for chain {:?}, the genesis for {:?}",
                draft.tx.body.chain_id, genesis.chain_id
            ),
        ));
    }
    let mut shown = vec![format!(
        "signing transaction {} (chain {}, valid until height {}) as {}:",
        draft.tx_id,
        draft.tx.body.chain_id,
        draft.tx.body.valid_until,
        key.public_key()
    )];
    shown.extend(crate::text::describe_action(&draft.tx.body.action));
    if !yes && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        for line in &shown {
            eprintln!("{line}");
        }
        eprint!("sign this? [y/N] ");
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|error| ClientError::usage(format!("cannot read the answer: {error}")))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(ClientError::usage("not signed: the signer declined"));
        }
    }
    draft.tx.sign(&key);
    draft.write(path)?;
    shown.push(format!(
        "signed; the draft now carries {} signature(s)",
        draft.tx.signatures.len()
    ));
    Ok(Output::new(
        shown,
        json!({
            "ok": true,
            "draft": path,
            "tx_id": draft.tx_id,
            "signer": key.public_key(),
            "signatures": draft.tx.signatures.len(),
            "action": draft.tx.body.action,
        }),
    ))
}

/// Submits a draft.
pub(crate) fn submit_draft(
    context: &Context,
    path: &Path,
    receipt: Option<&Path>,
) -> Result<Output> {
    let trust = context.trust()?;
    let draft = Draft::read(path)?;
    if draft.tx.signatures.is_empty() {
        return Err(ClientError::bad_file(
            path,
            "the draft carries no signatures; signers run `ipledger pledge sign` first",
        ));
    }
    let what = crate::text::describe_action(&draft.tx.body.action).join("\n  ");
    let mut output = submit_signed(&trust, &context.node(), &draft.tx, receipt, &what)?;
    if matches!(draft.tx.body.action, Action::RegisterPledge(_)) {
        output.lines.push(format!(
            "  pledge id {} (its registration transaction's id)",
            draft.tx_id
        ));
        output.json["pledge_id"] = json!(draft.tx_id);
    }
    Ok(output)
}
