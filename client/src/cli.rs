//! The command line (clap derive). Every command has an example in its `--help`; every command
//! takes `--json`.

use crate::trust::MAX_AGE_DEFAULT_S;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The `ipledger` command.
#[derive(Debug, Parser)]
#[command(
    name = "ipledger",
    version,
    about = "The ipledger client: register works, pledge them, attest evidence, verify receipts",
    long_about = "The ipledger client. Each user runs it on their own machine with their own key \
        file; keys are never printed or sent. Nothing the node says is trusted: every receipt and \
        every state answer is checked against certified headers and the genesis before it is \
        printed, together with the height it was proven at.\n\n\
        Exit codes: 0 success, 1 refused by the ledger (the rule code is printed), 2 bad usage or \
        bad input file, 3 node unreachable, 4 verification failed.",
    after_help = "Examples:\n  \
        export IPLEDGER_NODE=http://127.0.0.1:26657 IPLEDGER_GENESIS=genesis.json\n  \
        ipledger keys create li.key\n  \
        ipledger work register song.flac --title 'Jinli Street' --kind music --author 'Li Wei' --key li.key\n  \
        ipledger work show --file song.flac\n  \
        ipledger evidence verify page.html --receipt page.html.receipt.json --genesis genesis.json"
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The node's HTTP API.
    #[arg(
        long,
        global = true,
        env = "IPLEDGER_NODE",
        default_value = "http://127.0.0.1:26657",
        value_name = "URL"
    )]
    pub node: String,
    /// The consortium's genesis.json, which every answer is checked against.
    #[arg(
        long,
        global = true,
        env = "IPLEDGER_GENESIS",
        default_value = "genesis.json",
        value_name = "FILE"
    )]
    pub genesis: PathBuf,
    /// Refuse state answers whose certified header is older than this.
    #[arg(long, global = true, env = "IPLEDGER_MAX_AGE", default_value_t = MAX_AGE_DEFAULT_S, value_name = "SECONDS")]
    pub max_age: u64,
    /// Print the result (or the error) as one JSON object on standard output.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Key files: create one, show its public key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Copyright works: register, show, history, transfer, license.
    #[command(subcommand)]
    Work(WorkCommand),
    /// Pledges: draft, value, sign, submit, show, release, enforce, list.
    #[command(subcommand)]
    Pledge(PledgeCommand),
    /// Electronic evidence: attest a file, verify a receipt offline.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Court orders: freeze, unfreeze, order a transfer.
    #[command(subcommand)]
    Court(CourtCommand),
    /// Parties: enrol a rights holder (trading center).
    #[command(subcommand)]
    Party(PartyCommand),
    /// Patents and trademarks: record one by its official number (trading center).
    #[command(subcommand)]
    Asset(AssetCommand),
    /// Consortium decisions, collected as signed files: draft, sign, submit.
    #[command(subcommand)]
    Gov(GovCommand),
    /// The node's height, head, peers and sync state, and the height certified against the genesis.
    #[command(after_help = "Example:\n  ipledger status --node http://127.0.0.1:26657")]
    Status,
    /// Reports the double votes a node saw, from its evidence file (an organisation signs).
    #[command(
        name = "report-misbehaviour",
        after_help = "Example:\n  ipledger report-misbehaviour --evidence node-bank-a/data/misbehaviour.jsonl --key bank-a.key\n\n\
        A node writes every double vote its consensus engine saw to <data_dir>/misbehaviour.jsonl; \
        it cannot report them itself, since a report is signed by an enrolled organisation. Each \
        double vote is checked here first (one validator, same vote type, height and round, \
        different values, both signatures valid), skipped if the ledger already records it, \
        and otherwise submitted; the record is then read back with its proof."
    )]
    ReportMisbehaviour {
        /// The node's evidence file, `<data_dir>/misbehaviour.jsonl`.
        #[arg(long, value_name = "FILE")]
        evidence: PathBuf,
        /// Who reports.
        #[command(flatten)]
        signing: Signing,
    },
}

/// The keys that sign, and whom the first one acts for.
#[derive(Debug, Args)]
pub struct Signing {
    /// A key file that signs (mode 0600); repeat for co-signers. The first key acts.
    #[arg(long = "key", value_name = "KEY_FILE", required = true)]
    pub keys: Vec<PathBuf>,
    /// The party the first key acts for (default: the party the ledger proves holds that key).
    #[arg(long = "as", value_name = "PARTY")]
    pub as_party: Option<String>,
}

/// What to do with a transaction once signed.
#[derive(Debug, Args)]
pub struct Submission {
    /// Where to save the verified receipt (JSON).
    #[arg(long, value_name = "FILE")]
    pub receipt: Option<PathBuf>,
    /// Do not submit: write the signed transaction as a draft, for co-signers to `pledge sign`.
    #[arg(long, value_name = "FILE")]
    pub draft: Option<PathBuf>,
}

/// An asset named by its text form, or a work by its file.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct AssetArg {
    /// The asset: work:sha256:<hex> (or sha256:<hex>), or <patent|utility-model|design-patent|trademark>:<OFFICE>:<NUMBER>.
    #[arg(value_name = "ASSET")]
    pub asset: Option<String>,
    /// A work, by its file (hashed locally; the file is not sent).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `ipledger keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Creates a key file (mode 0600, never overwritten) and prints its public key only.
    #[command(after_help = "Example:\n  ipledger keys create li.key\n\n\
        Give the printed public key to the trading center to be enrolled; the key file never leaves this machine.")]
    Create {
        /// The new key file.
        file: PathBuf,
    },
    /// Prints a key file's public key (never the secret).
    #[command(after_help = "Example:\n  ipledger keys show li.key")]
    Show {
        /// The key file.
        file: PathBuf,
    },
}

/// Kinds of work, as the ledger knows them.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WorkKindArg {
    /// Computer software.
    Software,
    /// Written works.
    Literature,
    /// Music and recordings.
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

/// Kinds of evidence.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EvidenceKindArg {
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

/// `ipledger work`.
#[derive(Debug, Subcommand)]
pub enum WorkCommand {
    /// Hashes a file locally (streaming; the file never leaves this machine), registers the work
    /// by its SHA-256, waits for the commit and saves the verified receipt.
    #[command(
        after_help = "Example:\n  ipledger work register song.flac --title 'Jinli Street' --kind music --author 'Li Wei' --key li.key\n\n\
        The receipt is saved as FILE.receipt.json unless --receipt says otherwise."
    )]
    Register {
        /// The work's file.
        file: PathBuf,
        /// Title.
        #[arg(long)]
        title: String,
        /// Kind of work.
        #[arg(long, value_enum, default_value = "other")]
        kind: WorkKindArg,
        /// An author's name; repeat for several.
        #[arg(long = "author", value_name = "NAME")]
        authors: Vec<String>,
        /// Signing keys (the owner's).
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
    /// Shows an asset's owner, pledges in rank order, licences and freeze, proven.
    #[command(
        after_help = "Examples:\n  ipledger work show --file song.flac\n  ipledger work show patent:CNIPA:ZL202110000001.X"
    )]
    Show {
        /// The asset.
        #[command(flatten)]
        asset: AssetArg,
    },
    /// Lists an asset's whole history (owner changes, licences, pledges, freezes, evidence),
    /// proven complete.
    #[command(after_help = "Example:\n  ipledger work history --file song.flac")]
    History {
        /// The asset.
        #[command(flatten)]
        asset: AssetArg,
    },
    /// Transfers an asset; every active pledgee must co-sign (add their --key, or pass a --draft).
    #[command(
        after_help = "Example:\n  ipledger work transfer --file song.flac --to holder-wang --key li.key --key bank-a.key"
    )]
    Transfer {
        /// The asset.
        #[command(flatten)]
        asset: AssetArg,
        /// The new owner.
        #[arg(long, value_name = "PARTY")]
        to: String,
        /// Signing keys (the owner's, and every pledgee's).
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
    /// Grants a licence; every active pledgee must co-sign.
    #[command(
        after_help = "Example:\n  ipledger work license --file song.flac --to studio-x --start 2026-01-01 --end 2027-01-01 --key li.key"
    )]
    License {
        /// The asset.
        #[command(flatten)]
        asset: AssetArg,
        /// The licensee.
        #[arg(long, value_name = "PARTY")]
        to: String,
        /// No other licence may overlap its term.
        #[arg(long)]
        exclusive: bool,
        /// Start of the term (YYYY-MM-DD, UTC, inclusive; or Unix ms).
        #[arg(long, value_name = "DATE")]
        start: String,
        /// End of the term (YYYY-MM-DD, UTC, exclusive; or Unix ms).
        #[arg(long, value_name = "DATE")]
        end: String,
        /// Signing keys.
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
}

/// `ipledger pledge`.
#[derive(Debug, Subcommand)]
pub enum PledgeCommand {
    /// Writes an unsigned pledge draft, to be valued, signed by pledgor, bank and trading center,
    /// and submitted.
    #[command(
        after_help = "Example:\n  ipledger pledge draft --pledgor holder-li --bank bank-a --asset work:sha256:… --asset patent:CNIPA:ZL2021.X \\\n      \
        --amount 3000000 --maturity 2027-06-30 --first-rank --out pledge.json\n\n\
        Then: pledge value (appraiser), pledge sign (pledgor, bank, trading center), pledge submit."
    )]
    Draft(PledgeDraftArgs),
    /// Adds the appraiser's signed valuation to an unsigned draft: the amount and the report's
    /// SHA-256 (the report itself stays here).
    #[command(
        after_help = "Example:\n  ipledger pledge value pledge.json --amount 5000000 --report valuation-report.pdf --key appraiser.key"
    )]
    Value {
        /// The draft.
        file: PathBuf,
        /// The appraised value, in major units with at most two decimals.
        #[arg(long)]
        amount: String,
        /// Its currency.
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// The valuation report (hashed locally).
        #[arg(long, value_name = "FILE")]
        report: PathBuf,
        /// The appraiser's key.
        #[command(flatten)]
        signing: Signing,
    },
    /// Shows what the draft asks for, then adds the signer's signature.
    #[command(after_help = "Example:\n  ipledger pledge sign pledge.json --key bank-a.key")]
    Sign(SignArgs),
    /// Submits a fully signed draft, waits for the commit and saves the verified receipt.
    #[command(
        after_help = "Example:\n  ipledger pledge submit pledge.json --receipt pledge.receipt.json"
    )]
    Submit(SubmitArgs),
    /// Shows a pledge, proven.
    #[command(after_help = "Example:\n  ipledger pledge show sha256:…")]
    Show {
        /// The pledge id (its registration transaction's id).
        id: String,
    },
    /// Releases a pledge (the bank).
    #[command(after_help = "Example:\n  ipledger pledge release sha256:… --key bank-a.key")]
    Release {
        /// The pledge id.
        id: String,
        /// The bank's key.
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
    /// Enforces a pledge after maturity, or at any time on a court order (the court co-signs).
    #[command(
        after_help = "Example:\n  ipledger pledge enforce sha256:… --key bank-a.key --court court --case-ref '(2026)川01知民初100号' --key court.key"
    )]
    Enforce {
        /// The pledge id.
        id: String,
        /// Who receives the assets (default: the bank).
        #[arg(long, value_name = "PARTY")]
        transferee: Option<String>,
        /// The court whose order authorises enforcement.
        #[arg(long, value_name = "PARTY", requires = "case_ref")]
        court: Option<String>,
        /// The court's case reference.
        #[arg(long, value_name = "REF", requires = "court")]
        case_ref: Option<String>,
        /// Signing keys (the bank's; the court's with a court order).
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
    /// Lists every pledge a bank took, proven complete.
    #[command(after_help = "Example:\n  ipledger pledge list --bank bank-a")]
    List {
        /// The bank.
        #[arg(long, value_name = "PARTY")]
        bank: String,
    },
}

/// `ipledger pledge draft`.
#[derive(Debug, Args)]
pub struct PledgeDraftArgs {
    /// The owner pledging the assets.
    #[arg(long, value_name = "PARTY")]
    pub pledgor: String,
    /// The lending bank.
    #[arg(long, value_name = "PARTY")]
    pub bank: String,
    /// The registering trading center (default: the genesis' trading center).
    #[arg(long, value_name = "PARTY")]
    pub registrar: Option<String>,
    /// A pledged asset by its text form; repeat for several.
    #[arg(long = "asset", value_name = "ASSET")]
    pub assets: Vec<String>,
    /// A pledged work by its file; repeat for several.
    #[arg(long = "work-file", value_name = "FILE")]
    pub work_files: Vec<PathBuf>,
    /// The secured amount, in major units with at most two decimals.
    #[arg(long)]
    pub amount: String,
    /// Its currency (ISO 4217).
    #[arg(long, default_value = "CNY")]
    pub currency: String,
    /// Maturity (YYYY-MM-DD, UTC; or Unix ms).
    #[arg(long, value_name = "DATE")]
    pub maturity: String,
    /// Demand first rank: refused if any asset already carries an active pledge.
    #[arg(long)]
    pub first_rank: bool,
    /// How many heights the draft stays valid (default: the genesis' maximum).
    #[arg(long, value_name = "HEIGHTS")]
    pub valid_for: Option<u64>,
    /// The draft file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Signing a draft.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The draft.
    pub file: PathBuf,
    /// The signer's key file.
    #[arg(long, value_name = "KEY_FILE")]
    pub key: PathBuf,
    /// Sign without asking, even on a terminal.
    #[arg(long)]
    pub yes: bool,
}

/// Submitting a draft.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The draft.
    pub file: PathBuf,
    /// Where to save the verified receipt.
    #[arg(long, value_name = "FILE")]
    pub receipt: Option<PathBuf>,
}

/// `ipledger evidence`.
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Hashes a file locally and attests it; saves the verified receipt (FILE.receipt.json).
    #[command(
        after_help = "Example:\n  ipledger evidence attest page.html --kind web-page --case-ref '(2026)川01知民初100号' --key li.key"
    )]
    Attest {
        /// The evidence file.
        file: PathBuf,
        /// Kind of evidence.
        #[arg(long, value_enum, default_value = "other")]
        kind: EvidenceKindArg,
        /// The court case it belongs to.
        #[arg(long, value_name = "REF")]
        case_ref: Option<String>,
        /// The asset it concerns.
        #[arg(long, value_name = "ASSET")]
        asset: Option<String>,
        /// The attestor's key.
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
    /// Verifies offline (no node, no network) that FILE was attested: hashes it, checks the
    /// receipt's inclusion proof, header and commit certificate against the genesis validators
    /// and the certified validator-set changes, and prints when and by whom, with the genesis
    /// fingerprint to compare with the consortium's published one.
    #[command(
        after_help = "Example:\n  ipledger evidence verify page.html --receipt page.html.receipt.json --genesis genesis.json"
    )]
    Verify {
        /// The evidence file.
        file: PathBuf,
        /// The receipt file.
        #[arg(long, value_name = "FILE")]
        receipt: PathBuf,
        /// Fail unless the genesis has this fingerprint (sha256:…, as the consortium publishes it).
        #[arg(long, value_name = "FINGERPRINT")]
        expect_fingerprint: Option<String>,
    },
}

/// `ipledger court`.
#[derive(Debug, Subcommand)]
pub enum CourtCommand {
    /// Freezes an asset in a dispute: no transfer, licence, pledge or enforcement until unfrozen.
    #[command(
        after_help = "Example:\n  ipledger court freeze work:sha256:… --case-ref '(2026)川01知民初100号' --key court.key"
    )]
    Freeze {
        /// The asset.
        #[command(flatten)]
        asset: AssetArg,
        /// The case reference.
        #[arg(long, value_name = "REF")]
        case_ref: String,
        /// The court's key.
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
    /// Lifts the court's freeze.
    #[command(
        after_help = "Example:\n  ipledger court unfreeze work:sha256:… --case-ref '(2026)川01知民初100号' --key court.key"
    )]
    Unfreeze {
        /// The asset.
        #[command(flatten)]
        asset: AssetArg,
        /// The case reference the freeze was made under.
        #[arg(long, value_name = "REF")]
        case_ref: String,
        /// The court's key.
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
    /// Orders an asset transferred (allowed while frozen or pledged; pledges stay attached).
    #[command(
        after_help = "Example:\n  ipledger court order-transfer work:sha256:… --to holder-wang --case-ref '(2026)川01知民初100号' --key court.key"
    )]
    OrderTransfer {
        /// The asset.
        #[command(flatten)]
        asset: AssetArg,
        /// The new owner.
        #[arg(long, value_name = "PARTY")]
        to: String,
        /// The case reference.
        #[arg(long, value_name = "REF")]
        case_ref: String,
        /// The court's key.
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
}

/// `ipledger party`.
#[derive(Debug, Subcommand)]
pub enum PartyCommand {
    /// Enrols a rights holder (trading center); the holder co-signs to prove it holds its key.
    #[command(
        after_help = "Example:\n  ipledger party enroll --party holder-li --name 'Li Wei' --id-document id-scan.pdf \\\n      \
        --public-key ed25519:… --key trading-center.key --key li.key\n\n\
        Only the identity document's SHA-256 goes on the ledger. On two machines: --draft enrol.json, \
        then the holder runs `ipledger pledge sign enrol.json --key li.key` and anyone `pledge submit`."
    )]
    Enroll {
        /// The new party's id (lowercase letters, digits, '-', '_', '.').
        #[arg(long, value_name = "PARTY")]
        party: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// The identity document the trading center checked (hashed locally).
        #[arg(long, value_name = "FILE")]
        id_document: PathBuf,
        /// The holder's public key (from `ipledger keys show`).
        #[arg(long, value_name = "KEY")]
        public_key: String,
        /// Signing keys: the trading center's first, and the holder's if on this machine.
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
}

/// `ipledger asset`.
#[derive(Debug, Subcommand)]
pub enum AssetCommand {
    /// Records a patent or trademark by its official number (trading center; the owner co-signs).
    #[command(
        after_help = "Example:\n  ipledger asset record --kind patent --office CNIPA --number ZL202110000001.X \\\n      \
        --title 'Lossless audio watermark' --owner holder-li --key trading-center.key --key li.key"
    )]
    Record {
        /// patent, utility-model, design-patent or trademark.
        #[arg(long)]
        kind: String,
        /// The issuing office (uppercase letters and digits), e.g. CNIPA.
        #[arg(long)]
        office: String,
        /// The official number.
        #[arg(long)]
        number: String,
        /// Title of the patent or the mark.
        #[arg(long)]
        title: String,
        /// The owner.
        #[arg(long, value_name = "PARTY")]
        owner: String,
        /// Signing keys: the trading center's first, then the owner's.
        #[command(flatten)]
        signing: Signing,
        /// Receipt or draft.
        #[command(flatten)]
        submission: Submission,
    },
}

/// Roles an organisation may be admitted with.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// An IP trading center.
    TradingCenter,
    /// A bank.
    Bank,
    /// A court.
    Court,
    /// A valuation firm.
    Appraiser,
    /// A read-only regulator.
    Regulator,
}

/// `ipledger gov`.
#[derive(Debug, Subcommand)]
pub enum GovCommand {
    /// Writes an unsigned governance draft, to be signed by more than two thirds of the validator
    /// organisations.
    #[command(
        after_help = "Examples:\n  ipledger gov draft --out admit.json admit --party bank-c --name 'Bank C' --role bank --public-key ed25519:…\n  \
        ipledger gov draft --out rotate.json rotate-key --party bank-a --public-key ed25519:…"
    )]
    Draft {
        /// The draft file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// How many heights the draft stays valid (default: the genesis' maximum).
        #[arg(long, value_name = "HEIGHTS")]
        valid_for: Option<u64>,
        /// The decision.
        #[command(subcommand)]
        decision: GovDecision,
    },
    /// Shows the decision, then adds the signer's signature.
    #[command(after_help = "Example:\n  ipledger gov sign admit.json --key bank-a.key")]
    Sign(SignArgs),
    /// Submits the signed decision, waits for the commit and saves the verified receipt.
    #[command(after_help = "Example:\n  ipledger gov submit admit.json")]
    Submit(SubmitArgs),
}

/// A governance decision.
#[derive(Debug, Subcommand)]
pub enum GovDecision {
    /// Admit an organisation.
    Admit {
        /// Its id.
        #[arg(long, value_name = "PARTY")]
        party: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Its role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Its public key.
        #[arg(long, value_name = "KEY")]
        public_key: String,
    },
    /// Remove an organisation.
    Remove {
        /// Its id.
        #[arg(long, value_name = "PARTY")]
        party: String,
    },
    /// Replace a party's key.
    RotateKey {
        /// The party.
        #[arg(long, value_name = "PARTY")]
        party: String,
        /// Its new public key.
        #[arg(long, value_name = "KEY")]
        public_key: String,
    },
    /// Replace the validator set from a height on.
    ChangeValidators {
        /// A JSON file with the new set: [{"organisation", "key", "power"}, ...].
        #[arg(long, value_name = "FILE")]
        validators: PathBuf,
        /// The first height the new set decides.
        #[arg(long, value_name = "HEIGHT")]
        effective_height: u64,
    },
}
