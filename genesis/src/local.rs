//! A complete local test network in one directory.
//!
//! ```text
//! DIR/genesis.json              the genesis
//! DIR/consortium.toml           the spec it was assembled from (public keys and addresses)
//! DIR/keys/<org>.key            each organisation's signing key (0600; dir 0700)
//! DIR/node-<name>/config.toml   each validator node's configuration
//! DIR/node-<name>/node.key      its node key (0600; dir 0700)
//! DIR/node-<name>/genesis.json  a copy of the genesis
//! ```
//!
//! The organisations are those of [`LOCAL_ORGANISATIONS`]; the first four (trading center,
//! two banks, a court) run the validators in turn, one each for up to four validators, a
//! second node each (`<org>-2`) beyond that. Each goes through the same path as a real
//! consortium: a [`ConsortiumSpec`] assembled with [`ConsortiumSpec::to_genesis`] and configs
//! from [`NodeConfig::from_spec`].

use crate::address::P2pAddress;
use crate::config::{ConfigError, NodeConfig, CONFIG_FILE_NAME};
use crate::fsutil;
use crate::genesis_file::{write_genesis, GenesisFileError};
use crate::keyfile::{KeyFile, KeyFileError};
use crate::params::{ChainParamsSpec, ConsensusTimeouts};
use crate::spec::{ConsortiumSpec, OrganisationSpec, SpecError, ValidatorSpec};
use ledger_core::crypto::{Digest, PublicKey};
use ledger_core::genesis::Genesis;
use ledger_core::types::{PartyId, Role};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The organisations of a local network: id, display name, role. The first
/// [`LOCAL_VALIDATOR_ORGANISATIONS`] run validators.
pub const LOCAL_ORGANISATIONS: [(&str, &str, Role); 6] = [
    ("trading-center", "IP Trading Center", Role::TradingCenter),
    ("bank-a", "Bank A", Role::Bank),
    ("bank-b", "Bank B", Role::Bank),
    ("court", "IP Court", Role::Court),
    ("appraiser", "Appraiser", Role::Appraiser),
    ("regulator", "Regulator", Role::Regulator),
];
/// How many of [`LOCAL_ORGANISATIONS`] run validators.
pub const LOCAL_VALIDATOR_ORGANISATIONS: usize = 4;
/// The most validators a local network may have.
pub const LOCAL_VALIDATORS_MAX: usize = 16;
/// The default chain id of local networks.
pub const LOCAL_CHAIN_ID: &str = "ipledger-local";
/// Genesis time of seeded networks unless given: 2026-01-01T00:00:00Z.
pub const SEEDED_GENESIS_TIME_MS: u64 = 1_767_225_600_000;

/// What to create.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// The directory to create the network in; must be empty or absent.
    pub dir: PathBuf,
    /// How many validators, 1 to [`LOCAL_VALIDATORS_MAX`].
    pub validators: usize,
    /// **Test only**: derive every key from this seed ([`KeyFile::from_test_seed`]) and use a
    /// fixed genesis time, so the genesis is the same on every run. `None`: keys from the OS
    /// random number generator and the current time.
    pub seed: Option<String>,
    /// Node `i` (from 0) gets p2p port `base + 2i` and HTTP port `base + 2i + 1`. `None`: ask
    /// the OS for free ports.
    pub base_port: Option<u16>,
    /// The address every node listens on and is dialled at.
    pub host: IpAddr,
    /// The chain id.
    pub chain_id: String,
    /// The genesis time; `None`: see `seed`.
    pub genesis_time_ms: Option<u64>,
    /// The target block interval; `None`: the default. A shorter one answers sooner at light
    /// load (docs/PERFORMANCE.md, "Latency at 1,000 tx/s").
    pub block_interval_ms: Option<u64>,
}

impl LocalOptions {
    /// Defaults: 4 validators on 127.0.0.1, free ports, OS keys, chain id `ipledger-local`.
    pub fn new(dir: impl Into<PathBuf>) -> LocalOptions {
        LocalOptions {
            dir: dir.into(),
            validators: LOCAL_VALIDATOR_ORGANISATIONS,
            seed: None,
            base_port: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            chain_id: LOCAL_CHAIN_ID.into(),
            genesis_time_ms: None,
            block_interval_ms: None,
        }
    }
}

/// What was created.
#[derive(Debug)]
pub struct LocalNetwork {
    /// The genesis.
    pub genesis: Genesis,
    /// Its fingerprint, [`Genesis::hash`].
    pub fingerprint: Digest,
    /// `DIR/genesis.json`.
    pub genesis_path: PathBuf,
    /// `DIR/consortium.toml`.
    pub spec_path: PathBuf,
    /// The organisations and their key files.
    pub organisations: Vec<LocalOrganisation>,
    /// The validator nodes.
    pub nodes: Vec<LocalNode>,
}

/// An organisation of a local network.
#[derive(Clone, Debug)]
pub struct LocalOrganisation {
    /// Its id.
    pub party: PartyId,
    /// Its role.
    pub role: Role,
    /// Its public key.
    pub public_key: PublicKey,
    /// `DIR/keys/<org>.key`.
    pub key_path: PathBuf,
}

/// A node of a local network.
#[derive(Clone, Debug)]
pub struct LocalNode {
    /// Its name (`bank-a`, or `bank-a-2` for a second node).
    pub name: String,
    /// The organisation running it.
    pub organisation: PartyId,
    /// Its node key.
    pub public_key: PublicKey,
    /// `DIR/node-<name>`.
    pub home: PathBuf,
    /// `DIR/node-<name>/config.toml`.
    pub config_path: PathBuf,
    /// Its p2p address.
    pub p2p: P2pAddress,
    /// Its HTTP address.
    pub http: SocketAddr,
}

/// Why a local network could not be created.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// The directory already holds files.
    #[error("{} is not empty; `local` writes a new network into an empty or absent directory", .0.display())]
    NotEmpty(PathBuf),
    /// A directory could not be created or inspected.
    #[error("cannot create {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Free ports could not be obtained.
    #[error("cannot get a free port on {host}: {source}")]
    Ports {
        /// The host.
        host: IpAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A key could not be generated or written.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The spec does not make a genesis (a bug, or bad options such as the chain id).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The genesis could not be written.
    #[error(transparent)]
    Genesis(#[from] GenesisFileError),
    /// A config could not be written.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Creates a local network; see the module documentation for the layout.
pub fn create_local(options: &LocalOptions) -> Result<LocalNetwork, LocalError> {
    let n = options.validators;
    if !(1..=LOCAL_VALIDATORS_MAX).contains(&n) {
        return Err(LocalError::Options(format!(
            "--validators {n}: a local network has 1 to {LOCAL_VALIDATORS_MAX} validators"
        )));
    }
    let dir = &options.dir;
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| LocalError::Io { path, source }
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(LocalError::NotEmpty(dir.clone()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(dir)(e)),
    }
    let ports = choose_ports(options)?;

    let key = |name: &str| -> Result<KeyFile, KeyFileError> {
        match &options.seed {
            Some(seed) => Ok(KeyFile::from_test_seed(seed, name)),
            None => KeyFile::generate(),
        }
    };
    let org_keys = LOCAL_ORGANISATIONS
        .iter()
        .map(|(id, _, _)| key(id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut node_plans = Vec::with_capacity(n);
    for i in 0..n {
        let org = LOCAL_ORGANISATIONS[i % LOCAL_VALIDATOR_ORGANISATIONS].0;
        let round = i / LOCAL_VALIDATOR_ORGANISATIONS;
        let name = if round == 0 {
            org.to_owned()
        } else {
            format!("{org}-{}", round + 1)
        };
        let node_key = key(&format!("{name}/node"))?;
        let (p2p_port, http_port) = ports[i];
        node_plans.push((name, org, node_key, p2p_port, http_port));
    }

    let genesis_time_ms = match (options.genesis_time_ms, &options.seed) {
        (Some(ms), _) => ms,
        (None, Some(_)) => SEEDED_GENESIS_TIME_MS,
        (None, None) => now_ms_rounded(),
    };
    let mut consensus = ConsensusTimeouts::default();
    if let Some(block_interval_ms) = options.block_interval_ms {
        consensus.block_interval_ms = block_interval_ms;
    }
    let spec = ConsortiumSpec {
        chain_id: options.chain_id.clone(),
        genesis_time: None,
        genesis_time_ms: Some(genesis_time_ms),
        params: ChainParamsSpec::default(),
        consensus,
        organisations: LOCAL_ORGANISATIONS
            .iter()
            .zip(&org_keys)
            .map(|((id, name, role), key)| OrganisationSpec {
                id: PartyId::from(*id),
                name: Some(format!("{name} (local)")),
                role: *role,
                key: key.public_key(),
            })
            .collect(),
        validators: node_plans
            .iter()
            .map(|(_, org, key, p2p_port, _)| ValidatorSpec {
                organisation: PartyId::from(*org),
                key: key.public_key(),
                power: 1,
                p2p: P2pAddress::tcp(options.host, *p2p_port),
            })
            .collect(),
    };
    let genesis = spec.to_genesis()?;

    fsutil::create_dir(dir, 0o755).map_err(io_error(dir))?;
    let dir = std::path::absolute(dir).map_err(io_error(dir))?;
    let genesis_path = dir.join("genesis.json");
    write_genesis(&genesis_path, &genesis)?;
    let spec_path = dir.join("consortium.toml");
    let spec_text = format!(
        "# The public description of this local network, as `assemble` reads it.\n{}",
        spec.to_toml()
    );
    fsutil::write_atomic(
        &spec_path,
        spec_text.as_bytes(),
        0o644,
        fsutil::Existing::Refuse,
    )
    .map_err(io_error(&spec_path))?;

    let keys_dir = dir.join("keys");
    fsutil::create_dir(&keys_dir, 0o700).map_err(io_error(&keys_dir))?;
    let mut organisations = Vec::new();
    for ((id, _, role), key) in LOCAL_ORGANISATIONS.iter().zip(&org_keys) {
        let key_path = keys_dir.join(format!("{id}.key"));
        key.write(&key_path)?;
        organisations.push(LocalOrganisation {
            party: PartyId::from(*id),
            role: *role,
            public_key: key.public_key(),
            key_path,
        });
    }

    let mut nodes = Vec::new();
    for (name, org, node_key, p2p_port, http_port) in &node_plans {
        let home = dir.join(format!("node-{name}"));
        fsutil::create_dir(&home, 0o700).map_err(io_error(&home))?;
        let mut config =
            NodeConfig::from_spec(&spec, &genesis, &node_key.public_key(), home.clone());
        config.moniker = name.clone();
        config.http.listen = SocketAddr::new(options.host, *http_port);
        node_key.write(config.node_key_path())?;
        write_genesis(config.genesis_path(), &genesis)?;
        let config_path = home.join(CONFIG_FILE_NAME);
        config.save(&config_path)?;
        nodes.push(LocalNode {
            name: name.clone(),
            organisation: PartyId::from(*org),
            public_key: node_key.public_key(),
            home,
            config_path,
            p2p: P2pAddress::tcp(options.host, *p2p_port),
            http: config.http.listen,
        });
    }

    Ok(LocalNetwork {
        fingerprint: genesis.hash(),
        genesis,
        genesis_path,
        spec_path,
        organisations,
        nodes,
    })
}

/// (p2p, HTTP) ports for each node.
fn choose_ports(options: &LocalOptions) -> Result<Vec<(u16, u16)>, LocalError> {
    let n = options.validators;
    if let Some(base) = options.base_port {
        let last = u32::from(base) + 2 * n as u32 - 1;
        if base == 0 || last > u32::from(u16::MAX) {
            return Err(LocalError::Options(format!(
                "--base-port {base}: {n} validators need ports {base} to {last}, which must lie within 1 to 65535"
            )));
        }
        return Ok((0..n as u16)
            .map(|i| (base + 2 * i, base + 2 * i + 1))
            .collect());
    }
    let ports =
        crate::ports::free_ports(options.host, 2 * n).map_err(|source| LocalError::Ports {
            host: options.host,
            source,
        })?;
    Ok(ports.chunks(2).map(|pair| (pair[0], pair[1])).collect())
}

/// The current time in Unix milliseconds, rounded down to the second.
fn now_ms_rounded() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since_epoch.as_secs() * 1_000
}
