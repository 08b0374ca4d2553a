//! `ipledger court`, `party`, `asset` and `gov`: the organisations' actions.

use super::work::resolve_asset;
use super::{new_tx, party_id, sign_and_submit, sign_draft, submit_draft, Context, Signers};
use crate::cli::{AssetCommand, CourtCommand, GovCommand, GovDecision, PartyCommand, RoleArg};
use crate::error::{ClientError, Result};
use crate::files::{hash_file, Draft};
use crate::text::{describe_action, parse_right_kind};
use crate::Output;
use ledger_core::crypto::PublicKey;
use ledger_core::genesis::Validator;
use ledger_core::tx::{Action, GovernanceAction};
use ledger_core::types::Role;
use serde_json::json;

/// The largest validator-set file read, in bytes.
pub const VALIDATORS_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// What a court orders, once the asset and the court are known.
enum CourtOrderKind {
    Freeze,
    Unfreeze,
    Transfer(String),
}

pub(crate) fn court(context: &Context, command: CourtCommand) -> Result<Output> {
    let trust = context.trust()?;
    let node = context.node();
    let (asset, case_ref, signing, submission, order) = match command {
        CourtCommand::Freeze {
            asset,
            case_ref,
            signing,
            submission,
        } => (asset, case_ref, signing, submission, CourtOrderKind::Freeze),
        CourtCommand::Unfreeze {
            asset,
            case_ref,
            signing,
            submission,
        } => (
            asset,
            case_ref,
            signing,
            submission,
            CourtOrderKind::Unfreeze,
        ),
        CourtCommand::OrderTransfer {
            asset,
            to,
            case_ref,
            signing,
            submission,
        } => (
            asset,
            case_ref,
            signing,
            submission,
            CourtOrderKind::Transfer(to),
        ),
    };
    let asset = resolve_asset(&asset)?;
    let signers = Signers::read(&signing)?;
    let court = signers.actor(&trust, &node)?;
    let (what, action) = match order {
        CourtOrderKind::Freeze => (
            format!("{court} freezes {asset} in case {case_ref}"),
            Action::FreezeAsset {
                asset,
                court,
                case_ref,
            },
        ),
        CourtOrderKind::Unfreeze => (
            format!("{court} unfreezes {asset} (case {case_ref})"),
            Action::UnfreezeAsset {
                asset,
                court,
                case_ref,
            },
        ),
        CourtOrderKind::Transfer(to) => {
            let to = party_id(&to)?;
            (
                format!("{court} orders {asset} transferred to {to} (case {case_ref})"),
                Action::CourtOrderTransfer {
                    asset,
                    court,
                    to,
                    case_ref,
                },
            )
        }
    };
    sign_and_submit(&trust, &node, action, &signers, &submission, None, &what)
}

pub(crate) fn party(context: &Context, command: PartyCommand) -> Result<Output> {
    let PartyCommand::Enroll {
        party,
        name,
        id_document,
        public_key,
        signing,
        submission,
    } = command;
    let trust = context.trust()?;
    let node = context.node();
    let party = party_id(&party)?;
    let key = parse_public_key(&public_key)?;
    let signers = Signers::read(&signing)?;
    let registrar = signers.actor(&trust, &node)?;
    let action = Action::EnrollRightsHolder {
        registrar: registrar.clone(),
        party: party.clone(),
        name: name.clone(),
        key,
        id_document_hash: hash_file(&id_document)?,
    };
    let what = format!("{registrar} enrols rights holder {party} ({name}) with key {key}; only the identity document's hash left this machine");
    sign_and_submit(&trust, &node, action, &signers, &submission, None, &what)
}

pub(crate) fn asset(context: &Context, command: AssetCommand) -> Result<Output> {
    let AssetCommand::Record {
        kind,
        office,
        number,
        title,
        owner,
        signing,
        submission,
    } = command;
    let trust = context.trust()?;
    let node = context.node();
    let kind = parse_right_kind(&kind)?;
    let owner = party_id(&owner)?;
    let signers = Signers::read(&signing)?;
    let registrar = signers.actor(&trust, &node)?;
    let what = format!(
        "{registrar} records {}:{office}:{number} ({title:?}) for {owner}",
        kind.label()
    );
    let action = Action::RecordRight {
        registrar,
        office,
        kind,
        number,
        title,
        owner,
    };
    sign_and_submit(&trust, &node, action, &signers, &submission, None, &what)
}

pub(crate) fn gov(context: &Context, command: GovCommand) -> Result<Output> {
    match command {
        GovCommand::Draft {
            out,
            valid_for,
            decision,
        } => {
            let genesis = context.genesis()?;
            let decision = governance_action(decision)?;
            let tx = new_tx(
                &genesis,
                &context.node(),
                Action::Governance(decision),
                valid_for.unwrap_or(u64::MAX),
            )?;
            let draft = Draft::new(tx);
            draft.write(&out)?;
            let mut lines = vec![format!(
                "wrote unsigned governance draft {}:",
                out.display()
            )];
            lines.extend(describe_action(&draft.tx.body.action));
            lines.push(format!(
                "  valid until height {}; more than two thirds of the validator organisations run `ipledger gov sign {}`, then `ipledger gov submit {}`",
                draft.tx.body.valid_until,
                out.display(),
                out.display()
            ));
            Ok(Output::new(
                lines,
                json!({"ok": true, "draft": out, "tx_id": draft.tx_id}),
            ))
        }
        GovCommand::Sign(args) => sign_draft(&context.genesis()?, &args.file, &args.key, args.yes),
        GovCommand::Submit(args) => submit_draft(context, &args.file, args.receipt.as_deref()),
    }
}

fn governance_action(decision: GovDecision) -> Result<GovernanceAction> {
    Ok(match decision {
        GovDecision::Admit {
            party,
            name,
            role,
            public_key,
        } => GovernanceAction::AdmitOrganisation {
            party: party_id(&party)?,
            name,
            role: match role {
                RoleArg::TradingCenter => Role::TradingCenter,
                RoleArg::Bank => Role::Bank,
                RoleArg::Court => Role::Court,
                RoleArg::Appraiser => Role::Appraiser,
                RoleArg::Regulator => Role::Regulator,
            },
            key: parse_public_key(&public_key)?,
        },
        GovDecision::Remove { party } => GovernanceAction::RemoveOrganisation {
            party: party_id(&party)?,
        },
        GovDecision::RotateKey { party, public_key } => GovernanceAction::RotateKey {
            party: party_id(&party)?,
            new_key: parse_public_key(&public_key)?,
        },
        GovDecision::ChangeValidators {
            validators,
            effective_height,
        } => {
            let size = std::fs::metadata(&validators)
                .map_err(|error| {
                    ClientError::bad_file(&validators, format!("cannot read it: {error}"))
                })?
                .len();
            if size > VALIDATORS_FILE_BYTES_MAX {
                return Err(ClientError::bad_file(
                    &validators,
                    format!("{size} bytes is more than a validator set file holds"),
                ));
            }
            let text = std::fs::read_to_string(&validators).map_err(|error| {
                ClientError::bad_file(&validators, format!("cannot read it: {error}"))
            })?;
            let mut set: Vec<Validator> = serde_json::from_str(&text).map_err(|error| {
                ClientError::bad_file(&validators, format!("not a validator set ({error}); expected [{{\"organisation\": \"bank-a\", \"key\": \"ed25519:…\", \"power\": 1}}, …]"))
            })?;
            set.sort_by_key(|validator| validator.key);
            GovernanceAction::ChangeValidators {
                validators: set,
                effective_height,
            }
        }
    })
}

fn parse_public_key(text: &str) -> Result<PublicKey> {
    text.parse().map_err(|_| {
        ClientError::usage(format!(
            "public key {text:?} is not ed25519:<64 hex digits> (see `ipledger keys show`)"
        ))
    })
}
