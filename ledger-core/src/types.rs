//! Identifiers and value types shared by transactions, records and the API.

use crate::crypto::Digest;
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest party identifier, in bytes.
pub const PARTY_ID_BYTES_MAX: usize = 64;
/// The longest free-text field (titles, names, authority names), in bytes.
pub const TEXT_BYTES_MAX: usize = 256;
/// The longest reference (case references, registration numbers, official numbers), in bytes.
pub const REFERENCE_BYTES_MAX: usize = 128;

/// A party's stable identifier, e.g. `bank-a` or `holder-zhang-wei`.
///
/// Parties are named rather than identified by key so that a key can be rotated without
/// changing who owns what. Lowercase ASCII letters, digits, `-`, `_` and `.`; 1 to 64 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartyId(pub String);

impl PartyId {
    /// Whether the identifier follows the format rule above.
    pub fn is_well_formed(&self) -> bool {
        let bytes = self.0.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= PARTY_ID_BYTES_MAX
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(b))
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl From<&str> for PartyId {
    fn from(text: &str) -> Self {
        PartyId(text.to_owned())
    }
}

/// What a party is allowed to do. Organisations get their role from the genesis or governance;
/// rights holders are enrolled by the trading center.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The IP trading center: the registrar. Enrols rights holders, co-signs pledges, records
    /// patents and trademarks.
    TradingCenter,
    /// A lender that takes pledges.
    Bank,
    /// A court: freezes, unfreezes and orders transfers.
    Court,
    /// A valuation firm whose valuations back pledges.
    Appraiser,
    /// An owner of works and rights.
    RightsHolder,
    /// A read-only observer; signs nothing.
    Regulator,
}

impl Role {
    /// The role's name in messages, e.g. "trading center".
    pub fn label(self) -> &'static str {
        match self {
            Role::TradingCenter => "trading center",
            Role::Bank => "bank",
            Role::Court => "court",
            Role::Appraiser => "appraiser",
            Role::RightsHolder => "rights holder",
            Role::Regulator => "regulator",
        }
    }
}

/// The kind of a copyright work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkKind {
    /// Computer software.
    Software,
    /// Written works.
    Literature,
    /// Musical works and recordings.
    Music,
    /// Films and audiovisual works.
    Film,
    /// Fine art and photography.
    Art,
    /// Industrial and graphic design.
    Design,
    /// Anything else.
    Other,
}

/// The kind of an officially registered right.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RightKind {
    /// Invention patent.
    Patent,
    /// Utility model patent.
    UtilityModel,
    /// Design patent.
    DesignPatent,
    /// Registered trademark.
    Trademark,
}

/// The kind of a piece of electronic evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A document (contract, report, PDF).
    Document,
    /// A still image or screenshot.
    Image,
    /// An audio recording.
    Audio,
    /// A video recording.
    Video,
    /// A captured web page.
    WebPage,
    /// An e-mail or chat log.
    Message,
    /// Anything else.
    Other,
}

/// An IP asset: a copyright work named by its content hash, or an officially registered right
/// named by office, kind and number. Every rule (transfer, licence, pledge, freeze) treats both
/// alike.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetId {
    /// A copyright work, by the SHA-256 of its content.
    Work {
        /// SHA-256 of the work's bytes.
        content_hash: Digest,
    },
    /// A patent or trademark, by its official identifier.
    Right {
        /// The issuing office, e.g. `CNIPA`.
        office: String,
        /// Patent, utility model, design patent or trademark.
        kind: RightKind,
        /// The official number, e.g. `ZL202110000001.X`.
        number: String,
    },
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssetId::Work { content_hash } => write!(f, "work:{content_hash}"),
            AssetId::Right {
                office,
                kind,
                number,
            } => write!(f, "{}:{office}:{number}", kind.label()),
        }
    }
}
impl fmt::Debug for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl RightKind {
    /// Every kind, in declaration order.
    pub const ALL: [RightKind; 4] = [
        RightKind::Patent,
        RightKind::UtilityModel,
        RightKind::DesignPatent,
        RightKind::Trademark,
    ];

    /// The label used in the text form of an [`AssetId`].
    pub fn label(self) -> &'static str {
        match self {
            RightKind::Patent => "patent",
            RightKind::UtilityModel => "utility-model",
            RightKind::DesignPatent => "design-patent",
            RightKind::Trademark => "trademark",
        }
    }
}

/// Why an asset id's (or a right kind's) text form did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} in {text:?}; expected work:sha256:<64 hex digits> or <patent|utility-model|design-patent|trademark>:<OFFICE>:<NUMBER>")]
pub struct ParseAssetIdError {
    text: String,
    problem: &'static str,
}

impl std::str::FromStr for RightKind {
    type Err = ParseAssetIdError;

    /// Reads a kind by its [`label`](RightKind::label).
    fn from_str(text: &str) -> Result<RightKind, ParseAssetIdError> {
        RightKind::ALL
            .into_iter()
            .find(|kind| kind.label() == text)
            .ok_or_else(|| ParseAssetIdError {
                text: text.chars().take(200).collect(),
                problem: "unknown right kind",
            })
    }
}

impl std::str::FromStr for AssetId {
    type Err = ParseAssetIdError;

    /// The inverse of `Display`: `work:sha256:<hex>` for a work, `<kind>:<OFFICE>:<NUMBER>` for
    /// a right. The office has no colon, so everything after the second colon is the number,
    /// which may hold colons itself.
    fn from_str(text: &str) -> Result<AssetId, ParseAssetIdError> {
        let error = |problem| ParseAssetIdError {
            text: text.chars().take(200).collect(),
            problem,
        };
        let (label, rest) = text.split_once(':').ok_or_else(|| error("no kind"))?;
        if label == "work" {
            let content_hash: Digest = rest.parse().map_err(|_| error("bad content hash"))?;
            return Ok(AssetId::Work { content_hash });
        }
        let kind: RightKind = label.parse().map_err(|_| error("unknown kind"))?;
        let (office, number) = rest
            .split_once(':')
            .ok_or_else(|| error("no office and number"))?;
        if office.is_empty() || number.is_empty() {
            return Err(error("empty office or number"));
        }
        Ok(AssetId::Right {
            office: office.to_owned(),
            kind,
            number: number.to_owned(),
        })
    }
}

/// An amount of money in integer minor units (fen for CNY), so that no rounding ever happens.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units.
    pub minor_units: u64,
    /// ISO 4217 code, three uppercase letters, e.g. `CNY`.
    pub currency: String,
}

impl Money {
    /// Whether the currency code is three uppercase ASCII letters.
    pub fn has_valid_currency(&self) -> bool {
        self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase())
    }
}

/// Whether `text` is a calendar date written `YYYY-MM-DD` (month 01-12, day 01-31).
pub fn is_iso_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = &text[range];
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    matches!(
        (digits(0..4), digits(5..7), digits(8..10)),
        (Some(_), Some(1..=12), Some(1..=31))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_id_format() {
        assert!(PartyId::from("bank-a").is_well_formed());
        assert!(!PartyId::from("Bank A").is_well_formed());
        assert!(!PartyId::from("").is_well_formed());
        assert!(!PartyId("x".repeat(65)).is_well_formed());
    }

    #[test]
    fn iso_dates() {
        assert!(is_iso_date("2026-11-26"));
        assert!(!is_iso_date("2026-13-01"));
        assert!(!is_iso_date("26-11-2026"));
        assert!(!is_iso_date("2026-1a-01"));
    }
}

#[cfg(test)]
mod asset_text_tests {
    use super::*;
    use crate::crypto::Digest;

    #[test]
    fn display_round_trips() {
        let assets = [
            AssetId::Work {
                content_hash: Digest::sha256(b"song"),
            },
            AssetId::Right {
                office: "CNIPA".into(),
                kind: RightKind::Patent,
                number: "ZL202110000001.X".into(),
            },
            AssetId::Right {
                office: "CNIPA".into(),
                kind: RightKind::UtilityModel,
                number: "a:b/c".into(),
            },
            AssetId::Right {
                office: "CTMO".into(),
                kind: RightKind::Trademark,
                number: "12345678".into(),
            },
            AssetId::Right {
                office: "CNIPA".into(),
                kind: RightKind::DesignPatent,
                number: "ZL2021".into(),
            },
        ];
        for asset in assets {
            assert_eq!(asset.to_string().parse::<AssetId>(), Ok(asset));
        }
    }

    #[test]
    fn garbage_is_refused() {
        for text in [
            "",
            "work",
            "work:abc",
            "work:sha256:zz",
            "copyright:X:1",
            "patent:CNIPA",
            "patent::1",
            "patent:CNIPA:",
        ] {
            assert!(text.parse::<AssetId>().is_err(), "{text:?} parsed");
        }
    }
}
