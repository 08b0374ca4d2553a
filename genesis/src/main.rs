//! `ipledger-genesis`: sets up an ipledger consortium. See `genesis/README.md`.
//!
//! Results meant for other programs or for copying (a public key, a fingerprint) go to standard
//! output; notes go to standard error. No command ever prints a secret key.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ipledger_genesis::config::CONFIG_FILE_NAME;
use ipledger_genesis::spec::role_name;
use ipledger_genesis::{
    create_local, read_genesis, write_genesis, ConsortiumSpec, KeyFile, LocalOptions, NodeConfig,
    P2pAddress,
};
use ledger_core::crypto::Digest;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const TEST_SEED_WARNING: &str =
    "warning: --seed derives every key from the seed text, which is not secret: \
     use it for tests only, never for a real consortium";

#[derive(Parser)]
#[command(
    name = "ipledger-genesis",
    version,
    about = "Sets up an ipledger consortium: keys, genesis.json and node configurations",
    long_about = "Sets up an ipledger consortium.\n\n\
        In a real consortium every organisation runs `keygen` on its own host and sends only the \
        public keys (and each node's host:port) to the trading center, which lists them in a \
        consortium.toml, runs `assemble` and distributes genesis.json, consortium.toml and the \
        fingerprint. Each organisation checks the fingerprint out of band and runs `config`. \
        For a test network on one machine, `local` does all of this at once.",
    after_help = "Examples:\n  \
        ipledger-genesis keygen --out keys --name bank-a\n  \
        ipledger-genesis assemble --spec consortium.toml --out genesis.json\n  \
        ipledger-genesis config --spec consortium.toml --genesis genesis.json --node-key keys/bank-a-node.key --home /var/lib/ipledger\n  \
        ipledger-genesis local --dir ./testnet --validators 4\n\n\
        See genesis/README.md for the operator's walkthrough."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates a key file DIR/NAME.key (mode 0600) and prints only its public key.
    #[command(after_help = "Examples:\n  \
        ipledger-genesis keygen --out keys --name bank-a        # the organisation's key\n  \
        ipledger-genesis keygen --out keys --name bank-a-node   # its validator node's key\n\n\
        Send the printed public keys to the trading center; the key files never leave this host.")]
    Keygen {
        /// Directory for the key file (created with mode 0700 if absent).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The key's name; the file is DIR/NAME.key. Letters, digits, '-', '_', '.'.
        #[arg(long)]
        name: String,
        /// TEST ONLY: derive the key from this seed and the name instead of the OS RNG.
        #[arg(long, value_name = "SEED")]
        seed: Option<String>,
    },
    /// Builds genesis.json from a consortium spec of public keys and prints its fingerprint.
    #[command(after_help = "Example:\n  \
        ipledger-genesis assemble --spec consortium.toml --out genesis.json\n\n\
        The printed fingerprint (sha256:…) is the genesis hash; every organisation compares it \
        out of band. The spec format is described in genesis/README.md.")]
    Assemble {
        /// The consortium spec (TOML).
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
        /// Where to write the genesis (replaced if present).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Writes one node's config.toml from the distributed spec and genesis and its node key.
    #[command(after_help = "Example:\n  \
        ipledger-genesis config --spec consortium.toml --genesis genesis.json \\\n      \
        --node-key keys/bank-a-node.key --home /var/lib/ipledger \\\n      \
        --expect-fingerprint sha256:… --http-listen 127.0.0.1:26657\n\n\
        The node is a validator if the spec lists its key; its peers are the other validators.")]
    Config {
        /// The consortium spec the genesis was assembled from.
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
        /// The genesis (must be the one the spec describes).
        #[arg(long, value_name = "FILE")]
        genesis: PathBuf,
        /// This node's key file.
        #[arg(long, value_name = "FILE")]
        node_key: PathBuf,
        /// The node's home directory; config.toml is written there.
        #[arg(long, value_name = "DIR")]
        home: PathBuf,
        /// Refuse unless the genesis has this fingerprint (as received out of band).
        #[arg(long, value_name = "sha256:HEX")]
        expect_fingerprint: Option<Digest>,
        /// The HTTP API's listen address.
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:26657")]
        http_listen: SocketAddr,
        /// The p2p listen address [default: the node's address in the spec; all interfaces
        /// for a DNS name].
        #[arg(long, value_name = "MULTIADDR|HOST:PORT")]
        p2p_listen: Option<P2pAddress>,
        /// The node's log level.
        #[arg(long, default_value = "info")]
        log_level: String,
        /// Replace an existing config.toml.
        #[arg(long)]
        force: bool,
    },
    /// Creates a whole local test network in DIR: keys, genesis.json, one config per validator.
    #[command(after_help = "Examples:\n  \
        ipledger-genesis local --dir ./testnet                        # 4 validators, free ports\n  \
        ipledger-genesis local --dir ./testnet --base-port 26656      # p2p 26656, http 26657, …\n  \
        ipledger-genesis local --dir ./t --validators 1 --seed demo   # deterministic (tests only)\n\n\
        Organisations: trading-center, bank-a, bank-b, court (validators), appraiser, regulator.\n\
        Layout: DIR/genesis.json, DIR/consortium.toml, DIR/keys/<org>.key,\n\
        DIR/node-<org>/{config.toml,node.key,genesis.json}.")]
    Local {
        /// The directory to create (must be empty or absent).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// How many validators (1 to 16).
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// TEST ONLY: derive every key from this seed, with a fixed genesis time.
        #[arg(long, value_name = "SEED")]
        seed: Option<String>,
        /// Node i gets p2p port BASE+2i and HTTP port BASE+2i+1 [default: free ports from the OS].
        #[arg(long, value_name = "PORT")]
        base_port: Option<u16>,
        /// The address the nodes listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// The chain id.
        #[arg(long, default_value = ipledger_genesis::local::LOCAL_CHAIN_ID)]
        chain_id: String,
        /// The genesis time in Unix milliseconds [default: now, or 2026-01-01 with --seed].
        #[arg(long, value_name = "MS")]
        genesis_time_ms: Option<u64>,
        /// The target interval between blocks, in milliseconds [default: 1000].
        #[arg(long, value_name = "MS")]
        block_interval_ms: Option<u64>,
    },
    /// Validates a genesis.json and prints its fingerprint.
    #[command(after_help = "Example:\n  ipledger-genesis fingerprint genesis.json")]
    Fingerprint {
        /// The genesis file.
        genesis: PathBuf,
    },
    /// Prints the public key of a key file.
    #[command(after_help = "Example:\n  ipledger-genesis pubkey keys/bank-a.key")]
    Pubkey {
        /// The key file.
        key: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line per cause, without a backtrace: this is for operators.
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Keygen { out, name, seed } => keygen(&out, &name, seed.as_deref()),
        Command::Assemble { spec, out } => assemble(&spec, &out),
        Command::Config {
            spec,
            genesis,
            node_key,
            home,
            expect_fingerprint,
            http_listen,
            p2p_listen,
            log_level,
            force,
        } => {
            let mut config = node_config(&spec, &genesis, &node_key, &home, expect_fingerprint)?;
            config.http.listen = http_listen;
            if let Some(listen) = p2p_listen {
                config.p2p.listen = listen;
            }
            config.log_level = log_level;
            config
                .validate()
                .map_err(anyhow::Error::msg)
                .context("the options make an invalid config")?;
            let path = config.home.join(CONFIG_FILE_NAME);
            if path.exists() && !force {
                bail!(
                    "{} already exists; pass --force to replace it",
                    path.display()
                );
            }
            config.save(&path)?;
            eprintln!(
                "wrote {} ({}, p2p {}, http {}, {} peers)",
                path.display(),
                if config.validator {
                    "validator"
                } else {
                    "not a validator"
                },
                config.p2p.listen,
                config.http.listen,
                config.p2p.peers.len()
            );
            Ok(())
        }
        Command::Local {
            dir,
            validators,
            seed,
            base_port,
            host,
            chain_id,
            genesis_time_ms,
            block_interval_ms,
        } => {
            if seed.is_some() {
                eprintln!("{TEST_SEED_WARNING}");
            }
            let options = LocalOptions {
                dir,
                validators,
                seed,
                base_port,
                host,
                chain_id,
                genesis_time_ms,
                block_interval_ms,
            };
            let network = create_local(&options)?;
            println!("genesis      {}", network.genesis_path.display());
            println!("fingerprint  {}", network.fingerprint);
            for org in &network.organisations {
                println!(
                    "organisation {:<15} {:<15} key {}",
                    org.party.0,
                    role_name(org.role),
                    org.key_path.display()
                );
            }
            for node in &network.nodes {
                println!(
                    "node         {:<15} p2p {}  http {}  config {}",
                    node.name,
                    node.p2p,
                    node.http,
                    node.config_path.display()
                );
            }
            Ok(())
        }
        Command::Fingerprint { genesis } => {
            println!("{}", read_genesis(&genesis)?.hash());
            Ok(())
        }
        Command::Pubkey { key } => {
            println!("{}", KeyFile::read(&key)?.public_key());
            Ok(())
        }
    }
}

fn keygen(out: &Path, name: &str, seed: Option<&str>) -> Result<()> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        bail!(
            "--name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        );
    }
    let key = match seed {
        Some(seed) => {
            eprintln!("{TEST_SEED_WARNING}");
            KeyFile::from_test_seed(seed, name)
        }
        None => KeyFile::generate()?,
    };
    create_private_dir(out)?;
    let path = out.join(format!("{name}.key"));
    key.write(&path)?;
    println!("{}", key.public_key());
    eprintln!(
        "wrote {} (mode 0600); send only the public key above, the key file stays on this host",
        path.display()
    );
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
}

fn assemble(spec_path: &Path, out: &Path) -> Result<()> {
    let spec = ConsortiumSpec::load(spec_path)?;
    let genesis = spec
        .to_genesis()
        .with_context(|| format!("cannot assemble a genesis from {}", spec_path.display()))?;
    write_genesis(out, &genesis)?;
    println!("{}", genesis.hash());
    eprintln!(
        "wrote {} ({} organisations, {} validators); distribute it with {} and the fingerprint above",
        out.display(),
        genesis.organisations.len(),
        genesis.validators.len(),
        spec_path.display()
    );
    Ok(())
}

fn node_config(
    spec_path: &Path,
    genesis_path: &Path,
    node_key_path: &Path,
    home: &Path,
    expect_fingerprint: Option<Digest>,
) -> Result<NodeConfig> {
    let genesis = read_genesis(genesis_path)?;
    let fingerprint = genesis.hash();
    match expect_fingerprint {
        Some(expected) if expected != fingerprint => bail!(
            "{} has fingerprint {fingerprint}, not the expected {expected}: do not use it",
            genesis_path.display()
        ),
        Some(_) => eprintln!("fingerprint {fingerprint} matches"),
        None => eprintln!(
            "fingerprint {fingerprint}: compare it with the one the trading center announced"
        ),
    }
    let spec = ConsortiumSpec::load(spec_path)?;
    spec.check_matches(&genesis).with_context(|| {
        format!(
            "{} does not describe {}",
            spec_path.display(),
            genesis_path.display()
        )
    })?;
    let key = KeyFile::read(node_key_path)?;
    create_private_dir(home)?;
    let home = std::path::absolute(home)?;
    let mut config = NodeConfig::from_spec(&spec, &genesis, &key.public_key(), home);
    config.chain.genesis = std::path::absolute(genesis_path)?;
    config.chain.node_key = std::path::absolute(node_key_path)?;
    if !config.validator {
        eprintln!(
            "note: the spec lists no validator with key {}; this node will not vote",
            key.public_key()
        );
    }
    Ok(config)
}
