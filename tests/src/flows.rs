//! The users' flows of `ledger-core/examples/users_flows.rs`, as signed transactions submitted
//! over HTTP to the nodes of a running network in turn. Every step prints what happened; any
//! step that does not behave as the rules say is an error. Every refusal is checked by its rule
//! code, the junior pledge's rank by a state proof checked client-side, and the evidence receipt
//! offline against the genesis.
//!
//! Names carry a random suffix, so the flows run again on the same network.

use crate::{random_key, sha256, Net, Outcome};
use anyhow::{bail, ensure, Context, Result};
use ipledger_client::text::utc;
use ledger_core::crypto::Digest;
use ledger_core::encoding;
use ledger_core::receipt::{verify_receipt, Receipt};
use ledger_core::state::{AssetRecord, PledgeRecord};
use ledger_core::tx::{Action, PledgeTerms, Valuation};
use ledger_core::types::{AssetId, EvidenceKind, Money, RightKind, WorkKind};
use rand_core::{OsRng, RngCore};

/// What the flows leave behind, for callers that check more.
#[derive(Debug)]
pub struct FlowsSummary {
    /// The rights holder's party id.
    pub holder: String,
    /// Steps committed.
    pub committed: usize,
    /// Steps refused as expected.
    pub refused: usize,
    /// The highest height a step was committed at.
    pub height: u64,
}

struct Flows<'a> {
    net: &'a mut Net,
    holder: String,
    committed: usize,
    refused: usize,
}

impl Flows<'_> {
    fn step(&mut self, what: &str, action: Action, signers: &[&str]) -> Result<(Digest, u64)> {
        let (tx, node, outcome) = self
            .net
            .submit(action, signers)
            .with_context(|| format!("step failed: {what}"))?;
        match outcome {
            Outcome::Committed {
                height,
                ledger_index,
            } => {
                self.committed += 1;
                println!("ok      {what} (via {}, height {height})", node.name);
                Ok((tx.id(), ledger_index))
            }
            Outcome::Refused { code, message } => {
                bail!(
                    "step failed: {what}: refused by {} with {code}: {message}",
                    node.name
                )
            }
        }
    }

    fn refused(&mut self, what: &str, action: Action, signers: &[&str], code: &str) -> Result<()> {
        let (_, node, outcome) = self
            .net
            .submit(action, signers)
            .with_context(|| format!("step failed: {what}"))?;
        match outcome {
            Outcome::Refused { code: got, message } if got == code => {
                self.refused += 1;
                println!("refused {what} (via {}): {code}: {message}", node.name);
                Ok(())
            }
            other => bail!(
                "{what}: expected refusal {code} from {}, got {other:?}",
                node.name
            ),
        }
    }

    fn terms(
        &self,
        assets: Vec<AssetId>,
        bank: &str,
        first_rank: bool,
        valuations: Vec<Valuation>,
    ) -> PledgeTerms {
        PledgeTerms {
            assets,
            pledgor: self.holder.as_str().into(),
            pledgee: bank.into(),
            registrar: "trading-center".into(),
            secured_amount: Money {
                minor_units: 300_000_000,
                currency: "CNY".into(),
            },
            maturity_ms: self.net.genesis.genesis_time_ms + 365 * 24 * 3_600_000,
            first_rank,
            valuations,
        }
    }
}

/// Runs the users' flows on `net`.
pub fn run(net: &mut Net) -> Result<FlowsSummary> {
    let mut suffix = [0u8; 4];
    OsRng.fill_bytes(&mut suffix);
    let suffix = hex::encode(suffix);
    let holder = format!("holder-li-{suffix}");
    println!(
        "genesis {} (chain {}), {} nodes: {}",
        net.genesis.hash(),
        net.genesis.chain_id,
        net.nodes.len(),
        net.nodes
            .iter()
            .map(|n| format!("{} {}", n.name, n.url))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let holder_key = random_key();
    let holder_public = holder_key.public_key();
    println!("        rights holder {holder} generated its key {holder_public} from OS randomness");
    net.add_key(&holder, holder_key);
    let mut flows = Flows {
        net,
        holder: holder.clone(),
        committed: 0,
        refused: 0,
    };
    let h = holder.as_str();

    // Enrolment and registration.
    let enroll = Action::EnrollRightsHolder {
        registrar: "trading-center".into(),
        party: holder.as_str().into(),
        name: "Li Wei".into(),
        key: holder_public,
        id_document_hash: sha256(format!("ID card scan {suffix}").as_bytes()),
    };
    flows.step(
        &format!("trading center enrols rights holder {h}"),
        enroll,
        &["trading-center", h],
    )?;
    let content_hash = sha256(format!("the song 'Jinli Street' {suffix}").as_bytes());
    let work = AssetId::Work { content_hash };
    let register = Action::RegisterWork {
        content_hash,
        title: "Jinli Street".into(),
        kind: WorkKind::Music,
        authors: vec!["Li Wei".into()],
        owner: holder.as_str().into(),
    };
    flows.step(
        &format!("{h} registers a work by its SHA-256 {content_hash}"),
        register,
        &[h],
    )?;
    let number = format!("ZL2021{suffix}.X");
    let patent = AssetId::Right {
        office: "CNIPA".into(),
        kind: RightKind::Patent,
        number: number.clone(),
    };
    let record_patent = Action::RecordRight {
        registrar: "trading-center".into(),
        office: "CNIPA".into(),
        kind: RightKind::Patent,
        number,
        title: "Lossless audio watermark".into(),
        owner: holder.as_str().into(),
    };
    flows.step(
        &format!("trading center records {h}'s patent"),
        record_patent,
        &["trading-center", h],
    )?;

    // Pledges.
    let valuation = Valuation {
        appraiser: "appraiser".into(),
        amount: Money {
            minor_units: 500_000_000,
            currency: "CNY".into(),
        },
        report_hash: sha256(b"valuation report"),
    };
    let first = flows.terms(
        vec![work.clone(), patent.clone()],
        "bank-a",
        true,
        vec![valuation],
    );
    let (first_id, _) = flows.step(
        "bank-a registers a first-rank pledge over the work and the patent, valued by the appraiser",
        Action::RegisterPledge(first),
        &[h, "bank-a", "trading-center", "appraiser"],
    )?;
    flows.refused(
        "transfer of the pledged work without bank-a's consent",
        Action::TransferAsset {
            asset: work.clone(),
            to: "bank-b".into(),
        },
        &[h],
        "missing_signature",
    )?;
    let junior = flows.terms(vec![work.clone()], "bank-b", false, Vec::new());
    let (junior_id, _) = flows.step(
        "bank-b registers a junior pledge over the work",
        Action::RegisterPledge(junior),
        &[h, "bank-b", "trading-center"],
    )?;
    let (node, value, proven_height) = flows.net.get_proven(&format!("/v1/pledges/{junior_id}"))?;
    let bytes = value.context("the junior pledge is proven absent")?;
    let record: PledgeRecord =
        encoding::decode(&bytes, "pledge record").context("pledge record")?;
    ensure!(
        record.ranks_at_registration == vec![2],
        "junior pledge ranks {:?}, expected [2]",
        record.ranks_at_registration
    );
    println!(
        "        bank-b's pledge ranks 2 on the work (state proof from {} at height {proven_height} verified against the genesis)",
        node.name
    );
    let demand = flows.terms(vec![work.clone()], "bank-b", true, Vec::new());
    flows.refused(
        "a first-rank demand on an encumbered work",
        Action::RegisterPledge(demand),
        &[h, "bank-b", "trading-center"],
        "first_rank_unavailable",
    )?;

    // Evidence, and its receipt checked offline.
    let evidence_file = format!("screenshot of an infringing page {suffix}").into_bytes();
    let evidence_hash = sha256(&evidence_file);
    let attest = Action::AttestEvidence {
        attestor: holder.as_str().into(),
        evidence_hash,
        kind: EvidenceKind::WebPage,
        case_ref: None,
        related_asset: None,
    };
    let (evidence_tx, _) = flows.step(
        &format!("{h} attests evidence of an infringement"),
        attest,
        &[h],
    )?;
    check_receipt(flows.net, evidence_tx, &evidence_file)?;

    // The court.
    let case_ref = "(2026)川01知民初100号".to_owned();
    flows.step(
        "the court freezes the work",
        Action::FreezeAsset {
            asset: work.clone(),
            court: "court".into(),
            case_ref: case_ref.clone(),
        },
        &["court"],
    )?;
    flows.refused(
        "enforcement of bank-a's pledge on the frozen work",
        Action::EnforcePledge {
            pledge: first_id,
            transferee: "bank-a".into(),
            court_order: None,
        },
        &["bank-a"],
        "asset_frozen",
    )?;
    flows.step(
        "the court unfreezes the work",
        Action::UnfreezeAsset {
            asset: work.clone(),
            court: "court".into(),
            case_ref,
        },
        &["court"],
    )?;
    flows.step(
        "bank-a releases its pledge",
        Action::ReleasePledge { pledge: first_id },
        &["bank-a"],
    )?;
    let (node, value, proven_height) =
        flows.net.get_proven(&format!("/v1/works/{content_hash}"))?;
    let bytes = value.context("the work is proven absent")?;
    let record: AssetRecord = encoding::decode(&bytes, "asset record").context("asset record")?;
    ensure!(
        record.active_pledges == vec![junior_id],
        "expected only bank-b's pledge on the work, found {:?}",
        record.active_pledges
    );
    println!(
        "        the work now carries only bank-b's pledge, which moved up to rank 1 (proven by {} at height {proven_height})",
        node.name
    );
    let summary = FlowsSummary {
        holder,
        committed: flows.committed,
        refused: flows.refused,
        height: flows.net.committed_height,
    };
    println!(
        "all steps behaved as the rules say: {} committed, {} refused by rule, up to height {}",
        summary.committed, summary.refused, summary.height
    );
    Ok(summary)
}

/// Fetches the evidence attestation's receipt, verifies it offline against the genesis, and
/// shows that a tampered receipt and a changed evidence file both fail.
fn check_receipt(net: &mut Net, tx_id: Digest, evidence_file: &[u8]) -> Result<()> {
    let (node, status, answer) = net.get(&format!("/v1/transactions/{tx_id}/receipt"))?;
    ensure!(
        status == 200,
        "receipt from {} answered {status}: {answer}",
        node.name
    );
    let receipt: Receipt = serde_json::from_value(answer).context("receipt JSON")?;
    let verified = verify_receipt(&receipt, &net.genesis)
        .context("the court's offline check of the evidence receipt")?;
    ensure!(
        verified.tx_id == tx_id,
        "the receipt is for another transaction"
    );
    println!(
        "        court verifies the evidence receipt from {} offline: attested at height {}, time {} ({} ms), signed by {}",
        node.name,
        verified.height,
        utc(verified.time_ms),
        verified.time_ms,
        verified
            .signers
            .iter()
            .map(|key| match net.party_of(key) {
                Some(party) => format!("{party} ({key})"),
                None => key.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut tampered = receipt.clone();
    tampered.leaf.time_ms -= 1;
    ensure!(
        verify_receipt(&tampered, &net.genesis).is_err(),
        "a receipt with a changed time verified"
    );
    println!("        a copy of the receipt with its time changed by 1 ms fails verification, as it must");
    let Action::AttestEvidence { evidence_hash, .. } = &receipt.leaf.tx.body.action else {
        bail!("the receipt's transaction is not an evidence attestation");
    };
    ensure!(
        *evidence_hash == sha256(evidence_file),
        "the receipt does not attest the original evidence file"
    );
    let mut modified = evidence_file.to_vec();
    modified[0] ^= 1;
    ensure!(
        *evidence_hash != sha256(&modified),
        "a modified evidence file matched the attested hash"
    );
    println!(
        "        the receipt attests {evidence_hash}: the original file matches it; a file changed in one bit hashes to {} and does not",
        sha256(&modified)
    );
    Ok(())
}
