//! `ipledger work`: a rights holder's works (and, for show and history, any asset).

use super::{sign_and_submit, Context, Signers};
use crate::cli::{AssetArg, Signing, Submission, WorkCommand, WorkKindArg};
use crate::error::{ClientError, Result};
use crate::files::hash_file;
use crate::text::{parse_asset, parse_date_ms, utc};
use crate::Output;
use ledger_core::state::{AssetDetails, AssetEvent, AssetRecord, HistoryEntry, StateKey};
use ledger_core::tx::Action;
use ledger_core::types::{AssetId, WorkKind};
use serde_json::json;
use std::path::{Path, PathBuf};

pub(crate) fn run(context: &Context, command: WorkCommand) -> Result<Output> {
    match command {
        WorkCommand::Register {
            file,
            title,
            kind,
            authors,
            signing,
            submission,
        } => register(context, &file, title, kind, authors, &signing, &submission),
        WorkCommand::Show { asset } => show(context, &asset),
        WorkCommand::History { asset } => history(context, &asset),
        WorkCommand::Transfer {
            asset,
            to,
            signing,
            submission,
        } => {
            let trust = context.trust()?;
            let asset = resolve_asset(&asset)?;
            let to = super::party_id(&to)?;
            let action = Action::TransferAsset {
                asset: asset.clone(),
                to: to.clone(),
            };
            let signers = Signers::read(&signing)?;
            sign_and_submit(
                &trust,
                &context.node(),
                action,
                &signers,
                &submission,
                None,
                &format!("transfer of {asset} to {to}"),
            )
        }
        WorkCommand::License {
            asset,
            to,
            exclusive,
            start,
            end,
            signing,
            submission,
        } => {
            let trust = context.trust()?;
            let asset = resolve_asset(&asset)?;
            let licensee = super::party_id(&to)?;
            let (start_ms, end_ms) = (parse_date_ms(&start)?, parse_date_ms(&end)?);
            let action = Action::GrantLicence {
                asset: asset.clone(),
                licensee: licensee.clone(),
                exclusive,
                start_ms,
                end_ms,
            };
            let signers = Signers::read(&signing)?;
            let what = format!(
                "{} licence of {asset} to {licensee} from {} to {}",
                if exclusive {
                    "an exclusive"
                } else {
                    "a non-exclusive"
                },
                utc(start_ms),
                utc(end_ms)
            );
            sign_and_submit(
                &trust,
                &context.node(),
                action,
                &signers,
                &submission,
                None,
                &what,
            )
        }
    }
}

fn register(
    context: &Context,
    file: &Path,
    title: String,
    kind: WorkKindArg,
    authors: Vec<String>,
    signing: &Signing,
    submission: &Submission,
) -> Result<Output> {
    let trust = context.trust()?;
    let node = context.node();
    let content_hash = hash_file(file)?;
    let signers = Signers::read(signing)?;
    let owner = signers.actor(&trust, &node)?;
    let action = Action::RegisterWork {
        content_hash,
        title: title.clone(),
        kind: work_kind(kind),
        authors,
        owner: owner.clone(),
    };
    let default_receipt = Some(receipt_beside(file));
    let mut output = sign_and_submit(
        &trust,
        &node,
        action,
        &signers,
        submission,
        default_receipt,
        &format!(
            "{owner} registers {title:?} as work:{content_hash} (only the hash left this machine)"
        ),
    )?;
    output.json["asset"] = json!(AssetId::Work { content_hash }.to_string());
    Ok(output)
}

/// `FILE.receipt.json`.
pub(crate) fn receipt_beside(file: &std::path::Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".receipt.json");
    PathBuf::from(name)
}

/// The asset an [`AssetArg`] names; a file is hashed locally.
pub(crate) fn resolve_asset(arg: &AssetArg) -> Result<AssetId> {
    match (&arg.asset, &arg.file) {
        (Some(text), None) => parse_asset(text),
        (None, Some(file)) => Ok(AssetId::Work {
            content_hash: hash_file(file)?,
        }),
        _ => Err(ClientError::usage(
            "name the asset, or a work by --file FILE",
        )),
    }
}

fn work_kind(kind: WorkKindArg) -> WorkKind {
    match kind {
        WorkKindArg::Software => WorkKind::Software,
        WorkKindArg::Literature => WorkKind::Literature,
        WorkKindArg::Music => WorkKind::Music,
        WorkKindArg::Film => WorkKind::Film,
        WorkKindArg::Art => WorkKind::Art,
        WorkKindArg::Design => WorkKind::Design,
        WorkKindArg::Other => WorkKind::Other,
    }
}

fn show(context: &Context, asset: &AssetArg) -> Result<Output> {
    let trust = context.trust()?;
    let node = context.node();
    let asset = resolve_asset(asset)?;
    let proven = trust.read::<AssetRecord>(&node, &StateKey::Asset(asset.clone()))?;
    let Some(record) = proven.value else {
        return Ok(Output::new(
            vec![format!(
                "{asset} is not on the ledger (proven absent at height {})",
                proven.height
            )],
            json!({"ok": true, "asset": asset.to_string(), "record": null, "proven_height": proven.height}),
        ));
    };
    let mut lines = vec![format!(
        "{asset} (proven at height {}, {})",
        proven.height,
        utc(proven.time_ms)
    )];
    lines.extend(describe_record(&record));
    Ok(Output::new(
        lines,
        json!({"ok": true, "asset": asset.to_string(), "record": record, "proven_height": proven.height}),
    ))
}

/// An asset record in lines.
pub(crate) fn describe_record(record: &AssetRecord) -> Vec<String> {
    let mut lines = match &record.details {
        AssetDetails::Work {
            title,
            kind,
            authors,
        } => vec![format!(
            "  work       {title:?} ({kind:?}) by {}",
            if authors.is_empty() {
                "-".into()
            } else {
                authors.join(", ")
            }
        )],
        AssetDetails::Right { kind, title } => vec![format!("  {:<10} {title:?}", kind.label())],
    };
    lines.push(format!("  owner      {}", record.owner));
    lines.push(format!(
        "  registered by {} at height {}, {} (tx {})",
        record.registrant,
        record.registered.height,
        utc(record.registered.time_ms),
        record.registered.tx
    ));
    if record.active_pledges.is_empty() {
        lines.push("  pledges    none active".into());
    }
    for (rank, pledge) in record.active_pledges.iter().enumerate() {
        lines.push(format!("  pledge     rank {}: {pledge}", rank + 1));
    }
    for licence in &record.licences {
        lines.push(format!(
            "  licence    {} to {} from {} to {}",
            if licence.exclusive {
                "exclusive"
            } else {
                "non-exclusive"
            },
            licence.licensee,
            utc(licence.start_ms),
            utc(licence.end_ms)
        ));
    }
    match &record.freeze {
        Some(freeze) => lines.push(format!(
            "  FROZEN     by {} in case {} since height {}",
            freeze.court, freeze.case_ref, freeze.recorded.height
        )),
        None => lines.push("  freeze     none".into()),
    }
    lines.push(format!(
        "  history    {} entries (ipledger work history)",
        record.history_len
    ));
    lines
}

fn history(context: &Context, asset: &AssetArg) -> Result<Output> {
    let trust = context.trust()?;
    let node = context.node();
    let asset = resolve_asset(asset)?;
    let (record, list) = trust.asset_history(&node, &asset)?;
    let mut lines = vec![format!(
        "{asset}: {} history entries, complete as of height {} (count and every entry proven)",
        list.entries.len(),
        list.height
    )];
    for (index, entry) in list.entries.iter().enumerate() {
        lines.push(format!(
            "  {index:>4}  height {:>6}  {}  {}",
            entry.recorded.height,
            utc(entry.recorded.time_ms),
            describe_event(entry)
        ));
    }
    Ok(Output::new(
        lines,
        json!({
            "ok": true,
            "asset": asset.to_string(),
            "owner": record.owner,
            "proven_height": list.height,
            "entries": list.entries,
        }),
    ))
}

fn describe_event(entry: &HistoryEntry) -> String {
    match &entry.event {
        AssetEvent::Registered { owner } => format!("registered to {owner}"),
        AssetEvent::Transferred { from, to } => format!("transferred from {from} to {to}"),
        AssetEvent::Licensed {
            licensee,
            exclusive,
        } => format!(
            "{} licence to {licensee}",
            if *exclusive {
                "exclusive"
            } else {
                "non-exclusive"
            }
        ),
        AssetEvent::Pledged { pledge, rank } => format!("pledged at rank {rank} ({pledge})"),
        AssetEvent::PledgeReleased { pledge } => format!("pledge released ({pledge})"),
        AssetEvent::PledgeEnforced { pledge, from, to } => {
            format!("pledge {pledge} enforced: from {from} to {to}")
        }
        AssetEvent::Frozen { court, case_ref } => format!("frozen by {court} in case {case_ref}"),
        AssetEvent::Unfrozen { court, case_ref } => {
            format!("unfrozen by {court} in case {case_ref}")
        }
        AssetEvent::CourtTransferred {
            court,
            case_ref,
            from,
            to,
        } => {
            format!("transferred by order of {court} in case {case_ref} from {from} to {to}")
        }
        AssetEvent::EvidenceAttested { evidence_hash } => {
            format!("evidence attested: {evidence_hash}")
        }
    }
}
