//! Reading values from the command line and writing them for people: asset ids, amounts of
//! money, dates, and what a transaction asks for.

use crate::error::{ClientError, Result};
use ledger_core::tx::{Action, GovernanceAction};
use ledger_core::types::{AssetId, Money, ParseAssetIdError, RightKind};

/// Parses an asset's text form (what `AssetId`'s `Display` writes, ledger-core's `FromStr`):
/// `work:sha256:<hex>` for a work, `<kind>:<OFFICE>:<NUMBER>` for a patent or trademark; a bare
/// `sha256:<hex>` is taken as the work with that content hash.
pub fn parse_asset(text: &str) -> Result<AssetId> {
    let full = if text.starts_with("sha256:") {
        format!("work:{text}")
    } else {
        text.to_owned()
    };
    full.parse()
        .map_err(|error: ParseAssetIdError| ClientError::usage(error.to_string()))
}

/// Parses a right kind by its label (`patent`, `utility-model`, `design-patent`, `trademark`).
pub fn parse_right_kind(text: &str) -> Result<RightKind> {
    text.parse().map_err(|_| {
        ClientError::usage(format!(
            "unknown right kind {text:?}; use patent, utility-model, design-patent or trademark"
        ))
    })
}

/// Parses an amount in major units with at most two decimals (`5000000`, `5000000.50`) into
/// minor units of `currency`. No floating point is involved.
pub fn parse_money(amount: &str, currency: &str) -> Result<Money> {
    let error = || {
        ClientError::usage(format!(
            "amount {amount:?} is not a number with at most two decimals, like 5000000 or 5000000.50"
        ))
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = match amount.split_once('.') {
        Some((whole, fraction)) if digits(fraction) => (whole, fraction),
        Some(_) => return Err(error()),
        None => (amount, ""),
    };
    if !digits(whole) || fraction.len() > 2 {
        return Err(error());
    }
    let whole: u64 = whole.parse().map_err(|_| error())?;
    let fraction: u64 = format!("{fraction:0<2}").parse().map_err(|_| error())?;
    let minor_units = whole
        .checked_mul(100)
        .and_then(|units| units.checked_add(fraction))
        .ok_or_else(error)?;
    let money = Money {
        minor_units,
        currency: currency.to_owned(),
    };
    if !money.has_valid_currency() {
        return Err(ClientError::usage(format!(
            "currency {currency:?} is not three uppercase letters (ISO 4217), like CNY"
        )));
    }
    Ok(money)
}

/// Writes money as `5,000,000.00 CNY`.
pub fn money(money: &Money) -> String {
    let whole = (money.minor_units / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!(
        "{grouped}.{:02} {}",
        money.minor_units % 100,
        money.currency
    )
}

/// Parses a date `YYYY-MM-DD` (midnight UTC) or Unix milliseconds into Unix milliseconds.
pub fn parse_date_ms(text: &str) -> Result<u64> {
    if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        return text
            .parse()
            .map_err(|_| ClientError::usage(format!("{text:?} is too large for a time")));
    }
    if !ledger_core::types::is_iso_date(text) {
        return Err(ClientError::usage(format!(
            "{text:?} is not a date YYYY-MM-DD (or Unix milliseconds)"
        )));
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap_or(0);
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400_000)
        .map_err(|_| ClientError::usage(format!("{text:?} is before 1970")))
}

/// Unix milliseconds as `YYYY-MM-DD hh:mm:ss.mmm UTC` (proleptic Gregorian calendar).
pub fn utc(ms: u64) -> String {
    let (days, rest) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000,
    );
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}.{milli:03} UTC")
}

/// What a transaction's action asks for, in lines a signer reads before signing.
pub fn describe_action(action: &Action) -> Vec<String> {
    match action {
        Action::RegisterPledge(terms) => {
            let mut lines = vec![
                format!("register a pledge by {} to bank {}", terms.pledgor, terms.pledgee),
                format!("  registrar        {}", terms.registrar),
                format!("  secured amount   {}", money(&terms.secured_amount)),
                format!("  maturity         {}", utc(terms.maturity_ms)),
                format!(
                    "  rank             {}",
                    if terms.first_rank { "first rank demanded" } else { "by registration order" }
                ),
            ];
            for asset in &terms.assets {
                lines.push(format!("  asset            {asset}"));
            }
            for valuation in &terms.valuations {
                lines.push(format!(
                    "  valuation        {} by {} (report {})",
                    money(&valuation.amount),
                    valuation.appraiser,
                    valuation.report_hash
                ));
            }
            lines
        }
        Action::Governance(decision) => vec![match decision {
            GovernanceAction::AdmitOrganisation { party, name, role, key } => {
                format!("governance: admit organisation {party} ({name}) as {} with key {key}", role.label())
            }
            GovernanceAction::RemoveOrganisation { party } => {
                format!("governance: remove organisation {party}")
            }
            GovernanceAction::ChangeValidators { validators, effective_height } => format!(
                "governance: change the validator set to {} validators from height {effective_height}: {}",
                validators.len(),
                validators
                    .iter()
                    .map(|v| format!("{} (key {}, power {})", v.organisation, v.key, v.power))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            GovernanceAction::RotateKey { party, new_key } => {
                format!("governance: replace {party}'s key with {new_key}")
            }
        }],
        other => vec![format!("{other:?}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::crypto::Digest;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00.000 UTC");
        assert_eq!(utc(1_795_668_068_965), "2026-11-26 04:41:08.965 UTC");
    }

    #[test]
    fn money_parses_exactly_without_floating_point() {
        assert_eq!(
            parse_money("5000000", "CNY").unwrap().minor_units,
            500_000_000
        );
        assert_eq!(parse_money("0.5", "CNY").unwrap().minor_units, 50);
        assert_eq!(parse_money("12.34", "USD").unwrap().minor_units, 1_234);
        for bad in [
            "",
            "1.234",
            "-1",
            "1e6",
            "1,000",
            ".5",
            "5.",
            "184467440737095517",
        ] {
            assert!(parse_money(bad, "CNY").is_err(), "{bad:?} parsed");
        }
        assert!(parse_money("1", "cny").is_err());
        assert_eq!(
            money(&parse_money("5000000.5", "CNY").unwrap()),
            "5,000,000.50 CNY"
        );
    }

    #[test]
    fn dates_round_trip_through_utc() {
        assert_eq!(parse_date_ms("1970-01-01").unwrap(), 0);
        assert_eq!(parse_date_ms("2000-02-29").unwrap(), 951_782_400_000);
        assert_eq!(
            utc(parse_date_ms("2027-06-30").unwrap()),
            "2027-06-30 00:00:00.000 UTC"
        );
        assert_eq!(parse_date_ms("1795668068965").unwrap(), 1_795_668_068_965);
        assert!(parse_date_ms("2027-13-01").is_err());
        assert!(parse_date_ms("30/06/2027").is_err());
    }

    #[test]
    fn assets_parse_from_their_display_form() {
        let work = AssetId::Work {
            content_hash: Digest::sha256(b"song"),
        };
        assert_eq!(parse_asset(&work.to_string()).unwrap(), work);
        assert_eq!(
            parse_asset(&Digest::sha256(b"song").to_string()).unwrap(),
            work
        );
        let patent = AssetId::Right {
            office: "CNIPA".into(),
            kind: RightKind::Patent,
            number: "ZL2021:1.X".into(),
        };
        assert_eq!(parse_asset(&patent.to_string()).unwrap(), patent);
        for bad in ["", "work:abc", "copyright:X:1", "patent:CNIPA", "patent::1"] {
            assert!(parse_asset(bad).is_err(), "{bad:?} parsed");
        }
    }
}
