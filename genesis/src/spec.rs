//! The consortium spec (`consortium.toml`): everything public about a consortium, from which
//! `assemble` builds the genesis and `config` writes each node's peer list.
//!
//! ```toml
//! chain_id = "ipledger-shanghai-1"
//! genesis_time = 2026-03-01T00:00:00Z   # or: genesis_time_ms = 1772323200000
//!
//! [params]                  # optional; these are the defaults
//! tx_lifetime_max = 86400
//! block_txs_max = 10000
//! block_bytes_max = 8388608
//!
//! [consensus]               # optional; these are the defaults
//! block_interval_ms = 1000
//! propose_timeout_ms = 2000
//! vote_timeout_ms = 1000
//! clock_skew_max_ms = 5000
//!
//! [[organisation]]
//! id = "trading-center"                 # party id: lowercase letters, digits, - _ .
//! name = "Shanghai IP Trading Center"   # optional; defaults to the id
//! role = "trading_center"               # trading_center, bank, court, appraiser, regulator
//! key = "ed25519:…"                     # the organisation's signing key (from keygen)
//!
//! [[validator]]
//! organisation = "trading-center"       # must be listed above, and not a regulator
//! key = "ed25519:…"                     # the node's key (from keygen), not the org key
//! power = 1                             # optional; default 1
//! p2p = "10.0.0.1:26656"                # host:port or /ip4/…/tcp/PORT, /dns/…/tcp/PORT
//! ```
//!
//! Every key must be distinct: an organisation's key, the keys of the nodes it runs and every
//! other organisation's keys.

use crate::address::P2pAddress;
use crate::params::{ChainParamsSpec, ConsensusTimeouts};
use ledger_core::crypto::PublicKey;
use ledger_core::genesis::{Genesis, GenesisError, Organisation, Validator, VOTING_POWER_MAX};
use ledger_core::types::{PartyId, Role, TEXT_BYTES_MAX};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::value::{Datetime, Offset};

/// The public description of a consortium.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsortiumSpec {
    /// The chain's name: 1 to 64 printable ASCII characters.
    pub chain_id: String,
    /// Genesis time as a TOML offset date-time (`2026-03-01T00:00:00Z`). Give this or
    /// `genesis_time_ms`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis_time: Option<Datetime>,
    /// Genesis time in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis_time_ms: Option<u64>,
    /// Ledger limits (defaults apply to missing fields).
    #[serde(default)]
    pub params: ChainParamsSpec,
    /// Consensus timing (defaults apply to missing fields).
    #[serde(default)]
    pub consensus: ConsensusTimeouts,
    /// `[[organisation]]` tables: the founding organisations.
    #[serde(default, rename = "organisation")]
    pub organisations: Vec<OrganisationSpec>,
    /// `[[validator]]` tables: the first validator set.
    #[serde(default, rename = "validator")]
    pub validators: Vec<ValidatorSpec>,
}

/// One founding organisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganisationSpec {
    /// Its party identifier.
    pub id: PartyId,
    /// Display name; defaults to the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its role (`trading_center`, `bank`, `court`, `appraiser`, `regulator`).
    pub role: Role,
    /// Its signing key.
    pub key: PublicKey,
}

/// One validator node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSpec {
    /// The organisation running it.
    pub organisation: PartyId,
    /// The node's consensus key.
    pub key: PublicKey,
    /// Voting power, 1 to [`VOTING_POWER_MAX`].
    #[serde(default = "default_power")]
    pub power: u64,
    /// Where the other nodes reach it.
    pub p2p: P2pAddress,
}

fn default_power() -> u64 {
    1
}

/// Why a spec could not be read or does not make a valid genesis.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read consortium spec {}: {source}", path.display())]
    Read {
        /// The spec file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Not valid TOML, or not the spec's shape (an unknown role, a malformed key…).
    #[error("consortium spec {} is malformed: {message}", path.display())]
    Parse {
        /// The spec file.
        path: PathBuf,
        /// The parser's message, with the line and the offending text.
        message: String,
    },
    /// The spec is well formed but inconsistent.
    #[error("consortium spec: {0}")]
    Invalid(String),
    /// The genesis built from the spec fails [`Genesis::validate`].
    #[error("consortium spec: the genesis it describes is invalid: {0}")]
    Genesis(#[from] GenesisError),
}

impl ConsortiumSpec {
    /// Reads a spec from a TOML file.
    pub fn load(path: impl AsRef<Path>) -> Result<ConsortiumSpec, SpecError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        ConsortiumSpec::from_toml(&text).map_err(|message| SpecError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses a spec from TOML text; the error is the parser's message.
    pub fn from_toml(text: &str) -> Result<ConsortiumSpec, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The spec as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a consortium spec always serialises")
    }

    /// The genesis time in Unix milliseconds.
    pub fn genesis_time_ms(&self) -> Result<u64, SpecError> {
        match (&self.genesis_time, self.genesis_time_ms) {
            (Some(_), Some(_)) => Err(SpecError::Invalid(
                "give genesis_time or genesis_time_ms, not both".into(),
            )),
            (None, None) => Err(SpecError::Invalid(
                "genesis_time is missing (e.g. genesis_time = 2026-03-01T00:00:00Z)".into(),
            )),
            (None, Some(ms)) => Ok(ms),
            (Some(datetime), None) => datetime_to_unix_ms(datetime).map_err(|problem| {
                SpecError::Invalid(format!("genesis_time {datetime}: {problem}"))
            }),
        }
    }

    /// The validator whose node key is `key`.
    pub fn validator(&self, key: &PublicKey) -> Option<&ValidatorSpec> {
        self.validators.iter().find(|v| &v.key == key)
    }

    /// Checks the spec and builds the genesis from it (validators sorted by key), then checks
    /// that with [`Genesis::validate`]. Every refusal names the organisation, key or field.
    pub fn to_genesis(&self) -> Result<Genesis, SpecError> {
        let genesis_time_ms = self.genesis_time_ms()?;
        if self.organisations.is_empty() {
            return invalid("no [[organisation]] is listed".into());
        }
        if self.validators.is_empty() {
            return invalid("no [[validator]] is listed".into());
        }
        if let Some(field) = self.consensus.zero_field() {
            return invalid(format!("consensus.{field} must be positive"));
        }

        let mut roles: BTreeMap<&PartyId, Role> = BTreeMap::new();
        // Every key, with a description of its holder, to name both holders of a duplicate.
        let mut keys: BTreeMap<PublicKey, String> = BTreeMap::new();
        let mut claim_key = |key: &PublicKey, holder: String| -> Result<(), SpecError> {
            if key.check_strong().is_err() {
                return invalid(format!(
                    "the key of {holder} ({key}) is malformed or of small order"
                ));
            }
            if let Some(first) = keys.insert(*key, holder.clone()) {
                return invalid(format!(
                    "key {key} is listed twice, for {first} and for {holder}; every organisation and every node needs its own key"
                ));
            }
            Ok(())
        };

        for org in &self.organisations {
            let id = &org.id;
            if !id.is_well_formed() {
                return invalid(format!(
                    "organisation id {:?} is not well formed: use 1 to 64 lowercase letters, digits, '-', '_' or '.'",
                    id.0
                ));
            }
            if roles.insert(id, org.role).is_some() {
                return invalid(format!("organisation `{id}` is listed twice"));
            }
            if org.role == Role::RightsHolder {
                return invalid(format!(
                    "organisation `{id}` has role rights_holder; rights holders are enrolled by the trading center, not founded (roles: trading_center, bank, court, appraiser, regulator)"
                ));
            }
            if let Some(name) = &org.name {
                if name.trim().is_empty() || name.len() > TEXT_BYTES_MAX {
                    return invalid(format!(
                        "organisation `{id}` has a name that is empty or longer than {TEXT_BYTES_MAX} bytes"
                    ));
                }
            }
            claim_key(&org.key, format!("organisation `{id}`"))?;
        }
        if !roles.values().any(|role| *role == Role::TradingCenter) {
            return invalid("no organisation has role trading_center; a genesis needs one".into());
        }

        let mut addresses: BTreeMap<&P2pAddress, &PublicKey> = BTreeMap::new();
        for validator in &self.validators {
            let org = &validator.organisation;
            let key = &validator.key;
            match roles.get(org) {
                None => {
                    return invalid(format!(
                        "validator {key} is run by organisation `{org}`, which is not listed as an [[organisation]]"
                    ))
                }
                Some(Role::Regulator) => {
                    return invalid(format!(
                        "validator {key} is run by `{org}`, a regulator; regulators observe and may not run validators"
                    ))
                }
                Some(_) => {}
            }
            if validator.power == 0 || validator.power > VOTING_POWER_MAX {
                return invalid(format!(
                    "validator {key} of `{org}` has power {}; allowed 1 to {VOTING_POWER_MAX}",
                    validator.power
                ));
            }
            claim_key(key, format!("a validator node of `{org}`"))?;
            if let Some(other) = addresses.insert(&validator.p2p, key) {
                return invalid(format!(
                    "validators {other} and {key} have the same p2p address {}",
                    validator.p2p
                ));
            }
        }

        let organisations = self
            .organisations
            .iter()
            .map(|org| Organisation {
                party: org.id.clone(),
                name: org.name.clone().unwrap_or_else(|| org.id.0.clone()),
                role: org.role,
                key: org.key,
            })
            .collect();
        let mut validators: Vec<Validator> = self
            .validators
            .iter()
            .map(|v| Validator {
                organisation: v.organisation.clone(),
                key: v.key,
                power: v.power,
            })
            .collect();
        validators.sort_by_key(|v| v.key);
        let genesis = Genesis {
            chain_id: self.chain_id.clone(),
            genesis_time_ms,
            organisations,
            validators,
            params: (&self.params).into(),
            consensus: (&self.consensus).into(),
        };
        genesis.validate()?;
        Ok(genesis)
    }

    /// Checks that `genesis` is the one this spec describes (as `config` does before writing a
    /// node's peer list from the spec).
    pub fn check_matches(&self, genesis: &Genesis) -> Result<(), SpecError> {
        let built = self.to_genesis()?;
        if &built != genesis {
            return Err(SpecError::Invalid(format!(
                "it describes the genesis {}, not the given genesis {}; use the spec and the genesis.json that were distributed together",
                built.hash(),
                genesis.hash()
            )));
        }
        Ok(())
    }
}

/// A role as spelt in specs and in `genesis.json` (`trading_center`, `bank`, …).
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::TradingCenter => "trading_center",
        Role::Bank => "bank",
        Role::Court => "court",
        Role::Appraiser => "appraiser",
        Role::RightsHolder => "rights_holder",
        Role::Regulator => "regulator",
    }
}

fn invalid<T>(text: String) -> Result<T, SpecError> {
    Err(SpecError::Invalid(text))
}

/// Unix milliseconds of a TOML offset date-time; refuses local times and dates before 1970.
fn datetime_to_unix_ms(datetime: &Datetime) -> Result<u64, &'static str> {
    let (Some(date), Some(time), Some(offset)) = (datetime.date, datetime.time, datetime.offset)
    else {
        return Err("write a full date and time with an offset, e.g. 2026-03-01T00:00:00Z");
    };
    let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let year = i64::from(date.year);
    let month_days = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&date.month)
        || date.day == 0
        || date.day > month_days[usize::from(date.month) - 1]
    {
        return Err("no such date");
    }
    let second = time.second.unwrap_or(0);
    if time.hour > 23 || time.minute > 59 || second > 59 {
        return Err("no such time of day");
    }
    // Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil).
    let y = if date.month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (i64::from(date.month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(date.day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let offset_minutes = match offset {
        Offset::Z => 0,
        Offset::Custom { minutes } => i64::from(minutes),
    };
    let seconds = days * 86_400
        + i64::from(time.hour) * 3_600
        + i64::from(time.minute) * 60
        + i64::from(second)
        - offset_minutes * 60;
    let millis = seconds * 1_000 + i64::from(time.nanosecond.unwrap_or(0) / 1_000_000);
    u64::try_from(millis).map_err(|_| "dates before 1970 are not supported")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> Result<u64, &'static str> {
        datetime_to_unix_ms(&text.parse::<Datetime>().unwrap())
    }

    #[test]
    fn role_names_are_the_serde_names() {
        for role in [
            Role::TradingCenter,
            Role::Bank,
            Role::Court,
            Role::Appraiser,
            Role::RightsHolder,
            Role::Regulator,
        ] {
            assert_eq!(
                serde_json::to_string(&role).unwrap(),
                format!("\"{}\"", role_name(role))
            );
        }
    }

    #[test]
    fn genesis_times() {
        assert_eq!(ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(ms("2026-01-01T00:00:00Z"), Ok(1_767_225_600_000));
        assert_eq!(ms("2026-01-01T08:00:00+08:00"), Ok(1_767_225_600_000));
        assert_eq!(ms("2024-02-29T12:34:56.789Z"), Ok(1_709_210_096_789));
        assert!(ms("2026-01-01T00:00:00").is_err());
        assert!(ms("2026-01-01").is_err());
        assert!(ms("1969-12-31T23:59:59Z").is_err());
    }
}
