//! Reading an [`AssetId`] from its text form, the inverse of its `Display`: `work:sha256:<hex>`
//! for a work, `<kind>:<OFFICE>:<NUMBER>` for a right, where kind is `patent`, `utility-model`,
//! `design-patent` or `trademark` ([`RightKind::label`]).
//!
//! The office has no colon (uppercase letters and digits), so everything after the second colon
//! is the number, which may hold colons itself. This parser belongs beside `Display` in
//! ledger-core (`impl FromStr for AssetId`); it lives here until it moves there.

use ledger_core::crypto::Digest;
use ledger_core::types::{AssetId, RightKind};

/// Why an asset's text form did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} in asset {text:?}; expected work:sha256:<64 hex digits> or <patent|utility-model|design-patent|trademark>:<OFFICE>:<NUMBER>")]
pub struct ParseAssetIdError {
    text: String,
    problem: &'static str,
}

const KINDS: [RightKind; 4] = [
    RightKind::Patent,
    RightKind::UtilityModel,
    RightKind::DesignPatent,
    RightKind::Trademark,
];

/// Parses the text form of an asset id (what `AssetId`'s `Display` writes).
pub fn parse_asset_id(text: &str) -> Result<AssetId, ParseAssetIdError> {
    let error = |problem| ParseAssetIdError {
        text: text.chars().take(200).collect(),
        problem,
    };
    let (label, rest) = text.split_once(':').ok_or_else(|| error("no kind"))?;
    if label == "work" {
        let content_hash: Digest = rest.parse().map_err(|_| error("bad content hash"))?;
        return Ok(AssetId::Work { content_hash });
    }
    let kind = KINDS
        .into_iter()
        .find(|kind| kind.label() == label)
        .ok_or_else(|| error("unknown kind"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(parse_asset_id(&asset.to_string()), Ok(asset));
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
            assert!(parse_asset_id(text).is_err(), "{text:?} parsed");
        }
    }
}
