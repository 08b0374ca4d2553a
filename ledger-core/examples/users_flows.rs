//! The users' flows, run through the ledger core on an in-memory four-validator chain: every
//! block is built, re-executed as a validator would, and certified by all four validators.
//! Each step prints what happened; the program exits non-zero if any step does not behave as
//! the rules say, and every refusal is checked by its rule's code.
//!
//! Run: `cargo run -p ledger-core --features testkit --example users_flows`

use anyhow::{bail, ensure, Context, Result};
use ledger_core::crypto::Digest;
use ledger_core::receipt::verify_receipt;
use ledger_core::rejection::TxError;
use ledger_core::state::{AssetRecord, PledgeRecord, StateKey};
use ledger_core::testkit::{test_key, TestChain, TEST_GENESIS_TIME_MS};
use ledger_core::tx::{Action, PledgeTerms, SignedTx, Valuation};
use ledger_core::types::{AssetId, EvidenceKind, Money, RightKind, WorkKind};

fn main() -> Result<()> {
    let mut chain = TestChain::new(4);
    println!(
        "genesis {} with 4 validators (trading center, two banks, a court)",
        chain.genesis.hash()
    );
    let work = AssetId::Work {
        content_hash: Digest::sha256(b"the song 'Jinli Street'"),
    };
    let patent = AssetId::Right {
        office: "CNIPA".into(),
        kind: RightKind::Patent,
        number: "ZL202110000001.X".into(),
    };
    enroll_and_register(&mut chain, &work)?;
    let first = pledges(&mut chain, &work, &patent)?;
    let receipt_index = evidence(&mut chain)?;
    court(&mut chain, &work, first)?;
    let receipt = chain.receipt(receipt_index);
    let verified =
        verify_receipt(&receipt, &chain.genesis).context("court's offline check of the receipt")?;
    println!(
        "court verifies the evidence receipt offline: attested at height {} (time {} ms) by {:?}",
        verified.height, verified.time_ms, verified.signers
    );
    let mut tampered = receipt;
    tampered.leaf.time_ms -= 1;
    ensure!(
        verify_receipt(&tampered, &chain.genesis).is_err(),
        "a receipt with a changed time verified"
    );
    println!("a receipt with a changed time fails verification, as it must");
    println!(
        "all steps behaved as the rules say; {} blocks committed",
        chain.height()
    );
    Ok(())
}

fn step(chain: &mut TestChain, what: &str, tx: SignedTx) -> Result<()> {
    chain
        .apply(tx)
        .with_context(|| format!("step failed: {what}"))?;
    println!("ok      {what} (height {})", chain.height());
    Ok(())
}

fn refused(chain: &mut TestChain, what: &str, tx: SignedTx, code: &str) -> Result<()> {
    match chain.apply(tx) {
        Err(TxError::Rejected(rejection)) if rejection.code() == code => {
            println!("refused {what}: {rejection}");
            Ok(())
        }
        other => bail!("{what}: expected refusal {code}, got {other:?}"),
    }
}

fn enroll_and_register(chain: &mut TestChain, work: &AssetId) -> Result<()> {
    let enroll = Action::EnrollRightsHolder {
        registrar: "trading-center".into(),
        party: "holder-li".into(),
        name: "Li Wei".into(),
        key: test_key("holder-li").public_key(),
        id_document_hash: Digest::sha256(b"ID card scan"),
    };
    let tx = chain.tx(enroll, &["trading-center", "holder-li"]);
    step(chain, "trading center enrols rights holder holder-li", tx)?;
    let AssetId::Work { content_hash } = work else {
        unreachable!("a work")
    };
    let register = Action::RegisterWork {
        content_hash: *content_hash,
        title: "Jinli Street".into(),
        kind: WorkKind::Music,
        authors: vec!["Li Wei".into()],
        owner: "holder-li".into(),
    };
    let tx = chain.tx(register.clone(), &["holder-li"]);
    step(chain, "holder-li registers a work by its SHA-256", tx)?;
    let record_patent = Action::RecordRight {
        registrar: "trading-center".into(),
        office: "CNIPA".into(),
        kind: RightKind::Patent,
        number: "ZL202110000001.X".into(),
        title: "Lossless audio watermark".into(),
        owner: "holder-li".into(),
    };
    let tx = chain.tx(record_patent, &["trading-center", "holder-li"]);
    step(chain, "trading center records holder-li's patent", tx)
}

fn terms(
    assets: Vec<AssetId>,
    bank: &str,
    first_rank: bool,
    valuations: Vec<Valuation>,
) -> PledgeTerms {
    PledgeTerms {
        assets,
        pledgor: "holder-li".into(),
        pledgee: bank.into(),
        registrar: "trading-center".into(),
        secured_amount: Money {
            minor_units: 300_000_000,
            currency: "CNY".into(),
        },
        maturity_ms: TEST_GENESIS_TIME_MS + 365 * 24 * 3_600_000,
        first_rank,
        valuations,
    }
}

fn pledges(chain: &mut TestChain, work: &AssetId, patent: &AssetId) -> Result<Digest> {
    let valuation = Valuation {
        appraiser: "appraiser".into(),
        amount: Money {
            minor_units: 500_000_000,
            currency: "CNY".into(),
        },
        report_hash: Digest::sha256(b"valuation report"),
    };
    let first = terms(
        vec![work.clone(), patent.clone()],
        "bank-a",
        true,
        vec![valuation],
    );
    let tx = chain.tx(
        Action::RegisterPledge(first),
        &["holder-li", "bank-a", "trading-center", "appraiser"],
    );
    let first_id = tx.id();
    step(chain, "bank-a registers a first-rank pledge over the work and the patent, valued by the appraiser", tx)?;
    let transfer = Action::TransferAsset {
        asset: work.clone(),
        to: "bank-b".into(),
    };
    let tx = chain.tx(transfer, &["holder-li"]);
    refused(
        chain,
        "transfer of the pledged work without bank-a's consent",
        tx,
        "missing_signature",
    )?;
    let junior = terms(vec![work.clone()], "bank-b", false, Vec::new());
    let tx = chain.tx(
        Action::RegisterPledge(junior),
        &["holder-li", "bank-b", "trading-center"],
    );
    let junior_id = tx.id();
    step(chain, "bank-b registers a junior pledge over the work", tx)?;
    let record: PledgeRecord = chain
        .get(&StateKey::Pledge(junior_id))
        .context("junior pledge recorded")?;
    ensure!(
        record.ranks_at_registration == vec![2],
        "junior pledge ranks {:?}",
        record.ranks_at_registration
    );
    println!("        bank-b's pledge ranks 2 on the work");
    let demand = terms(vec![work.clone()], "bank-b", true, Vec::new());
    let tx = chain.tx(
        Action::RegisterPledge(demand),
        &["holder-li", "bank-b", "trading-center"],
    );
    refused(
        chain,
        "a first-rank demand on an encumbered work",
        tx,
        "first_rank_unavailable",
    )?;
    Ok(first_id)
}

fn evidence(chain: &mut TestChain) -> Result<u64> {
    let attest = Action::AttestEvidence {
        attestor: "holder-li".into(),
        evidence_hash: Digest::sha256(b"screenshot of an infringing page"),
        kind: EvidenceKind::WebPage,
        case_ref: None,
        related_asset: None,
    };
    let tx = chain.tx(attest, &["holder-li"]);
    step(chain, "holder-li attests evidence of an infringement", tx)?;
    Ok(chain.leaf_count - 1)
}

fn court(chain: &mut TestChain, work: &AssetId, first: Digest) -> Result<()> {
    let case_ref = "(2026)川01知民初100号".to_owned();
    let freeze = Action::FreezeAsset {
        asset: work.clone(),
        court: "court".into(),
        case_ref: case_ref.clone(),
    };
    let tx = chain.tx(freeze, &["court"]);
    step(chain, "the court freezes the work", tx)?;
    let enforce = Action::EnforcePledge {
        pledge: first,
        transferee: "bank-a".into(),
        court_order: None,
    };
    let tx = chain.tx(enforce, &["bank-a"]);
    refused(
        chain,
        "enforcement of bank-a's pledge on the frozen work",
        tx,
        "asset_frozen",
    )?;
    let unfreeze = Action::UnfreezeAsset {
        asset: work.clone(),
        court: "court".into(),
        case_ref,
    };
    let tx = chain.tx(unfreeze, &["court"]);
    step(chain, "the court unfreezes the work", tx)?;
    let tx = chain.tx(Action::ReleasePledge { pledge: first }, &["bank-a"]);
    step(chain, "bank-a releases its pledge", tx)?;
    let record: AssetRecord = chain
        .get(&StateKey::Asset(work.clone()))
        .context("work recorded")?;
    ensure!(
        record.active_pledges.len() == 1,
        "one pledge (bank-b's) remains, found {}",
        record.active_pledges.len()
    );
    println!("        the work now carries only bank-b's pledge, which moved up to rank 1");
    Ok(())
}
