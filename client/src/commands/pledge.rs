//! `ipledger pledge`: the file-based pledge flow (draft, value, sign, submit) and the bank's
//! commands (show, release, enforce, list).

use super::{new_tx, party_id, sign_and_submit, sign_draft, submit_draft, Context, Signers};
use crate::cli::{PledgeCommand, PledgeDraftArgs};
use crate::error::{ClientError, Result};
use crate::files::{hash_file, Draft};
use crate::text::{describe_action, money, parse_asset, parse_date_ms, parse_money, utc};
use crate::Output;
use ledger_core::crypto::Digest;
use ledger_core::state::{PledgeRecord, PledgeStatus, StateKey};
use ledger_core::tx::{Action, CourtOrder, PledgeTerms, TxId, Valuation};
use ledger_core::types::{AssetId, Role};
use serde_json::json;

pub(crate) fn run(context: &Context, command: PledgeCommand) -> Result<Output> {
    match command {
        PledgeCommand::Draft(args) => draft(context, args),
        PledgeCommand::Value {
            file,
            amount,
            currency,
            report,
            signing,
        } => value(context, &file, &amount, &currency, &report, &signing),
        PledgeCommand::Sign(args) => {
            sign_draft(&context.genesis()?, &args.file, &args.key, args.yes)
        }
        PledgeCommand::Submit(args) => submit_draft(context, &args.file, args.receipt.as_deref()),
        PledgeCommand::Show { id } => show(context, &id),
        PledgeCommand::Release {
            id,
            signing,
            submission,
        } => {
            let trust = context.trust()?;
            let pledge = parse_pledge_id(&id)?;
            let signers = Signers::read(&signing)?;
            sign_and_submit(
                &trust,
                &context.node(),
                Action::ReleasePledge { pledge },
                &signers,
                &submission,
                None,
                &format!("release of pledge {pledge}"),
            )
        }
        PledgeCommand::Enforce {
            id,
            transferee,
            court,
            case_ref,
            signing,
            submission,
        } => {
            let trust = context.trust()?;
            let node = context.node();
            let pledge = parse_pledge_id(&id)?;
            let transferee = match transferee {
                Some(party) => party_id(&party)?,
                None => {
                    let (record, _) = trust.read_present::<PledgeRecord>(&node, &StateKey::Pledge(pledge), |height| {
                        ClientError::usage(format!("pledge {pledge} is not on the ledger (proven absent at height {height})"))
                    })?;
                    record.pledgee
                }
            };
            let court_order = match (court, case_ref) {
                (Some(court), Some(case_ref)) => Some(CourtOrder {
                    court: party_id(&court)?,
                    case_ref,
                }),
                _ => None,
            };
            let what = format!("enforcement of pledge {pledge}: the assets go to {transferee}");
            let action = Action::EnforcePledge {
                pledge,
                transferee,
                court_order,
            };
            let signers = Signers::read(&signing)?;
            sign_and_submit(&trust, &node, action, &signers, &submission, None, &what)
        }
        PledgeCommand::List { bank } => list(context, &bank),
    }
}

fn draft(context: &Context, args: PledgeDraftArgs) -> Result<Output> {
    let PledgeDraftArgs {
        pledgor,
        bank,
        registrar,
        assets,
        work_files,
        amount,
        currency,
        maturity,
        first_rank,
        valid_for,
        out,
    } = args;
    let genesis = context.genesis()?;
    let registrar = match registrar {
        Some(registrar) => party_id(&registrar)?,
        None => genesis
            .organisations
            .iter()
            .find(|org| org.role == Role::TradingCenter)
            .map(|org| org.party.clone())
            .ok_or_else(|| {
                ClientError::usage("the genesis names no trading center; pass --registrar")
            })?,
    };
    let mut pledged: Vec<AssetId> = assets
        .iter()
        .map(|text| parse_asset(text))
        .collect::<Result<_>>()?;
    for file in &work_files {
        pledged.push(AssetId::Work {
            content_hash: hash_file(file)?,
        });
    }
    if pledged.is_empty() {
        return Err(ClientError::usage(
            "name at least one pledged asset with --asset or --work-file",
        ));
    }
    let terms = PledgeTerms {
        assets: pledged,
        pledgor: party_id(&pledgor)?,
        pledgee: party_id(&bank)?,
        registrar,
        secured_amount: parse_money(&amount, &currency)?,
        maturity_ms: parse_date_ms(&maturity)?,
        first_rank,
        valuations: Vec::new(),
    };
    let tx = new_tx(
        &genesis,
        &context.node(),
        Action::RegisterPledge(terms),
        valid_for.unwrap_or(u64::MAX),
    )?;
    let draft = Draft::new(tx);
    draft.write(&out)?;
    let mut lines = vec![format!("wrote unsigned pledge draft {}:", out.display())];
    lines.extend(describe_action(&draft.tx.body.action));
    lines.push(format!(
        "  valid until height {}; next: `ipledger pledge value` (appraiser), then `ipledger pledge sign` by pledgor, bank and trading center",
        draft.tx.body.valid_until
    ));
    Ok(Output::new(
        lines,
        json!({"ok": true, "draft": out, "tx_id": draft.tx_id, "valid_until": draft.tx.body.valid_until}),
    ))
}

fn value(
    context: &Context,
    file: &std::path::Path,
    amount: &str,
    currency: &str,
    report: &std::path::Path,
    signing: &crate::cli::Signing,
) -> Result<Output> {
    let mut draft = Draft::read(file)?;
    if !draft.tx.signatures.is_empty() {
        return Err(ClientError::bad_file(
            file,
            format!(
                "the draft already carries {} signature(s), and a valuation changes what they signed; add valuations before anyone signs (start again from `pledge draft`)",
                draft.tx.signatures.len()
            ),
        ));
    }
    let signers = Signers::read(signing)?;
    let appraiser = match &signers.as_party {
        Some(party) => party.clone(),
        None => signers.actor(&context.trust()?, &context.node())?,
    };
    let valuation = Valuation {
        appraiser: appraiser.clone(),
        amount: parse_money(amount, currency)?,
        report_hash: hash_file(report)?,
    };
    let Action::RegisterPledge(terms) = &mut draft.tx.body.action else {
        return Err(ClientError::bad_file(file, "the draft is not a pledge"));
    };
    terms.valuations.push(valuation.clone());
    draft.tx_id = draft.tx.id();
    for key in &signers.keys {
        draft.tx.sign(key);
    }
    draft.write(file)?;
    Ok(Output::new(
        vec![
            format!(
                "{appraiser} values the pledge at {} (report {}; the report stays here) and signs",
                money(&valuation.amount),
                valuation.report_hash
            ),
            format!(
                "draft {} is now transaction {}",
                file.display(),
                draft.tx_id
            ),
        ],
        json!({"ok": true, "draft": file, "tx_id": draft.tx_id, "valuation": valuation}),
    ))
}

fn parse_pledge_id(text: &str) -> Result<TxId> {
    text.parse::<Digest>().map_err(|_| {
        ClientError::usage(format!("pledge id {text:?} is not sha256:<64 hex digits>"))
    })
}

fn describe_pledge(record: &PledgeRecord) -> Vec<String> {
    let mut lines = vec![
        format!("  pledgor    {}", record.pledgor),
        format!("  bank       {}", record.pledgee),
        format!("  secured    {}", money(&record.secured_amount)),
        format!("  maturity   {}", utc(record.maturity_ms)),
        format!(
            "  registered at height {}, {}",
            record.registered.height,
            utc(record.registered.time_ms)
        ),
        format!(
            "  status     {}",
            match &record.status {
                PledgeStatus::Active => "active".to_owned(),
                PledgeStatus::Released { recorded } =>
                    format!("released at height {}", recorded.height),
                PledgeStatus::Enforced {
                    recorded,
                    transferee,
                    ..
                } => {
                    format!("enforced at height {} for {transferee}", recorded.height)
                }
            }
        ),
    ];
    for (asset, rank) in record.assets.iter().zip(&record.ranks_at_registration) {
        lines.push(format!(
            "  asset      {asset} (rank {rank} when registered)"
        ));
    }
    for valuation in &record.valuations {
        lines.push(format!(
            "  valuation  {} by {} (report {})",
            money(&valuation.amount),
            valuation.appraiser,
            valuation.report_hash
        ));
    }
    lines
}

fn show(context: &Context, id: &str) -> Result<Output> {
    let trust = context.trust()?;
    let pledge = parse_pledge_id(id)?;
    let proven = trust.read::<PledgeRecord>(&context.node(), &StateKey::Pledge(pledge))?;
    let Some(record) = proven.value else {
        return Ok(Output::new(
            vec![format!(
                "pledge {pledge} is not on the ledger (proven absent at height {})",
                proven.height
            )],
            json!({"ok": true, "pledge": pledge, "record": null, "proven_height": proven.height}),
        ));
    };
    let mut lines = vec![format!(
        "pledge {pledge} (proven at height {})",
        proven.height
    )];
    lines.extend(describe_pledge(&record));
    Ok(Output::new(
        lines,
        json!({"ok": true, "pledge": pledge, "record": record, "proven_height": proven.height}),
    ))
}

fn list(context: &Context, bank: &str) -> Result<Output> {
    let trust = context.trust()?;
    let node = context.node();
    let bank = party_id(bank)?;
    let ids = trust.bank_pledges(&node, &bank)?;
    let mut lines = vec![format!(
        "{bank} took {} pledge(s), complete as of height {} (count and every entry proven)",
        ids.entries.len(),
        ids.height
    )];
    let mut records = Vec::new();
    for id in &ids.entries {
        let (record, height) =
            trust.read_present::<PledgeRecord>(&node, &StateKey::Pledge(*id), |height| {
                ClientError::verification(format!(
                    "{bank}'s list names pledge {id}, proven absent at height {height}"
                ))
            })?;
        lines.push(format!("pledge {id} (proven at height {height})"));
        lines.extend(describe_pledge(&record));
        records.push(record);
    }
    Ok(Output::new(
        lines,
        json!({"ok": true, "bank": bank, "proven_height": ids.height, "pledges": records}),
    ))
}
