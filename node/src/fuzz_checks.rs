//! What the fuzz targets check, in one place: the cargo-fuzz targets in `fuzz/` call these
//! functions on libFuzzer's inputs, and `tests/fuzz_corpus_replay.rs` calls them on every kept
//! corpus file, so CI replays exactly the checks the fuzzer ran.
//!
//! Each function takes arbitrary bytes and returns normally whether the bytes are accepted or
//! refused. It panics only on a real bug: a decoder that panics, a decoded value that does not
//! re-encode to the bytes it came from (the encoding is canonical), two decoders of the same
//! format that disagree, or (`http_request`) an HTTP API answer outside the API's contract.

use crate::admission;
use crate::api::{self, ApiState, TxState, TxStatus};
use crate::consensus::codec::BorshCodec;
use crate::consensus::context::{
    Address, BlockHash, ConsensusSignature, Height, IpledgerContext, Proposal, ProposalPart, Vote,
};
use crate::mempool::Mempool;
use crate::store::Store;
use bytes::Bytes;
use ledger_core::block::{Block, BlockDecoder, BlockPiece, CommitCertificate, CommitSignature};
use ledger_core::crypto::{Digest, SigningKey};
use ledger_core::encoding;
use ledger_core::execute::{BlockBuilder, Parent};
use ledger_core::genesis::Genesis;
use ledger_core::receipt::{verify_receipt, Receipt};
use ledger_core::rules::{BlockContext, VerifiedTx};
use ledger_core::state::StateKey;
use ledger_core::tx::{Action, PledgeTerms, SignedTx, TxBody, TxId, TX_BYTES_MAX};
use ledger_core::types::{AssetId, EvidenceKind, Money, RightKind, WorkKind};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_codec::Codec;
use malachitebft_core_consensus::{LivenessMsg, ProposedValue, SignedConsensusMsg};
use malachitebft_core_types::{
    ExtendedCommitCertificate, ExtendedCommitSignature, NilOrVal, PolkaCertificate, PolkaSignature,
    Round, SignedMessage, ValidatorProof, Validity, VoteType,
};
use malachitebft_sync::{RawDecidedValue, Request, Response, Status, ValueRequest, ValueResponse};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;
use tower::ServiceExt;

/// Every fuzz target, by the name of its file in `fuzz/fuzz_targets/` and its corpus directory
/// in `fuzz/corpus/`.
pub const TARGETS: [&str; 9] = [
    "signed_tx",
    "block",
    "certificate",
    "receipt",
    "gossip_batch",
    "consensus_message",
    "tx_json",
    "genesis_json",
    "http_request",
];

/// Runs the check of fuzz target `target` on `data`.
///
/// # Panics
/// On an unknown target name, or when the check finds a bug.
pub fn check(target: &str, data: &[u8]) {
    match target {
        "signed_tx" => signed_tx(data),
        "block" => block(data),
        "certificate" => certificate(data),
        "receipt" => receipt(data),
        "gossip_batch" => gossip_batch(data),
        "consensus_message" => consensus_message(data),
        "tx_json" => tx_json(data),
        "genesis_json" => genesis_json(data),
        "http_request" => http_request(data),
        other => panic!("no fuzz target named {other}"),
    }
}

/// The four-validator test genesis of `docs/vectors/genesis_4.json`, against which decoded
/// certificates and receipts are verified (the seeds were made on it), so that mutated seeds
/// reach the verification code, not only the decoder.
fn test_genesis() -> &'static Genesis {
    static GENESIS: OnceLock<Genesis> = OnceLock::new();
    GENESIS.get_or_init(|| {
        serde_json::from_str(include_str!("../../docs/vectors/genesis_4.json"))
            .expect("the genesis vector parses")
    })
}

/// A signed transaction in its canonical encoding (HTTP body, block entry): decoding never
/// panics, an accepted encoding is the only one of its value, and checking its signatures
/// never panics.
pub fn signed_tx(data: &[u8]) {
    let Ok(tx) = SignedTx::decode(data) else {
        return;
    };
    assert_eq!(
        tx.encode(),
        data,
        "a decoded transaction re-encodes differently"
    );
    let _ = tx.verify_signatures();
}

/// A block: [`Block::decode`] is canonical, and the streaming [`BlockDecoder`], fed the same
/// bytes in two chunks split at the first byte's value, agrees with it: complete with the same
/// pieces exactly when the whole decode succeeds.
pub fn block(data: &[u8]) {
    let decoded = Block::decode(data);
    if let Ok(block) = &decoded {
        assert_eq!(
            block.encode(),
            data,
            "a decoded block re-encodes differently"
        );
    }
    let split = data
        .first()
        .map_or(0, |&first| usize::from(first))
        .min(data.len());
    let mut decoder = BlockDecoder::default();
    let streamed = decoder.feed(&data[..split]).and_then(|mut pieces| {
        pieces.extend(decoder.feed(&data[split..])?);
        Ok(pieces)
    });
    match (decoded, streamed) {
        (Ok(block), Ok(pieces)) => {
            assert!(
                decoder.is_complete(),
                "the block decodes, the stream is incomplete"
            );
            let mut expected = vec![BlockPiece::Head {
                header: block.header,
                last_commit: block.last_commit,
            }];
            expected.extend(block.txs.into_iter().map(BlockPiece::Tx));
            assert_eq!(pieces, expected, "the stream decodes other pieces");
        }
        (Ok(_), Err(error)) => panic!("the block decodes, the stream refuses it: {error}"),
        (Err(error), Ok(_)) => assert!(
            !decoder.is_complete(),
            "the stream completes a block that does not decode: {error}"
        ),
        (Err(_), Err(_)) => {}
    }
}

/// A commit certificate (stored with each block, carried in the next one and in receipts):
/// canonical, and verifying it against the test validators never panics.
pub fn certificate(data: &[u8]) {
    let Ok(certificate) = encoding::decode::<CommitCertificate>(data, "commit certificate") else {
        return;
    };
    assert_eq!(
        encoding::encode(&certificate),
        data,
        "a decoded certificate re-encodes differently"
    );
    let genesis = test_genesis();
    let _ = certificate.verify(
        &genesis.chain_id,
        certificate.height,
        &certificate.block_hash,
        &genesis.validators,
    );
}

/// A receipt, as the same bytes read in its canonical binary form and in its JSON file form
/// (docs/PROTOCOL.md section 16.1): decoding never panics, the binary form is canonical, the
/// JSON form reads back the same receipt it writes, and verifying either never panics.
pub fn receipt(data: &[u8]) {
    if let Ok(receipt) = encoding::decode::<Receipt>(data, "receipt") {
        assert_eq!(
            encoding::encode(&receipt),
            data,
            "a decoded receipt re-encodes differently"
        );
        let _ = verify_receipt(&receipt, test_genesis());
    }
    if let Ok(receipt) = serde_json::from_slice::<Receipt>(data) {
        let text = serde_json::to_string_pretty(&receipt).expect("a receipt always serialises");
        let again: Receipt = serde_json::from_str(&text).expect("a written receipt reads back");
        assert_eq!(again, receipt, "a receipt file reads back another receipt");
        let bytes = encoding::encode(&receipt);
        assert_eq!(
            encoding::decode::<Receipt>(&bytes, "receipt"),
            Ok(receipt.clone()),
            "a receipt read from JSON does not decode from its own encoding"
        );
        let _ = verify_receipt(&receipt, test_genesis());
    }
}

/// A transaction gossip message, decoded as `gossip.rs` does: never panics, canonical.
pub fn gossip_batch(data: &[u8]) {
    let Ok(txs) = encoding::decode::<Vec<SignedTx>>(data, "transaction gossip batch") else {
        return;
    };
    assert_eq!(
        encoding::encode(&txs),
        data,
        "a decoded gossip batch re-encodes differently"
    );
}

/// The number of engine message types [`consensus_message`] selects from.
const ENGINE_MESSAGE_KINDS: u8 = 10;

/// Decodes `bytes` as one engine message type with the node's codec; if it decodes, encoding it
/// must not panic, and what it encodes to must decode again (a relayed or WAL-written message
/// can be read back).
/// Returns whether it decoded.
fn engine_round_trip<T>(bytes: Bytes) -> bool
where
    BorshCodec: Codec<T>,
{
    let Ok(message) = Codec::<T>::decode(&BorshCodec, bytes) else {
        return false;
    };
    if let Ok(encoded) = Codec::<T>::encode(&BorshCodec, &message) {
        assert!(
            Codec::<T>::decode(&BorshCodec, encoded).is_ok(),
            "an engine message does not decode from its own encoding"
        );
    }
    true
}

/// An engine message (consensus network, WAL, sync): the first byte picks the message type
/// (modulo `ENGINE_MESSAGE_KINDS`, in the order of [`consensus_message_seeds`]), the rest is
/// the message as the node's codec reads it.
pub fn consensus_message(data: &[u8]) {
    let _ = engine_message_decodes(data);
}

/// Runs the [`consensus_message`] check and returns whether the message decoded.
pub fn engine_message_decodes(data: &[u8]) -> bool {
    let Some((&kind, rest)) = data.split_first() else {
        return false;
    };
    let bytes = Bytes::copy_from_slice(rest);
    match kind % ENGINE_MESSAGE_KINDS {
        0 => engine_round_trip::<ProposalPart>(bytes),
        1 => engine_round_trip::<SignedConsensusMsg<IpledgerContext>>(bytes),
        2 => engine_round_trip::<LivenessMsg<IpledgerContext>>(bytes),
        3 => engine_round_trip::<StreamMessage<ProposalPart>>(bytes),
        4 => engine_round_trip::<ProposedValue<IpledgerContext>>(bytes),
        5 => engine_round_trip::<PolkaCertificate<IpledgerContext>>(bytes),
        6 => engine_round_trip::<ValidatorProof<IpledgerContext>>(bytes),
        7 => engine_round_trip::<Status<IpledgerContext>>(bytes),
        8 => engine_round_trip::<Request<IpledgerContext>>(bytes),
        _ => engine_round_trip::<Response<IpledgerContext>>(bytes),
    }
}

/// The body of `POST /v1/transactions` as JSON, read by [`admission::decode_json`]: never
/// panics; an accepted transaction encodes, and its encoding (if within the size limit) and
/// its JSON both read back the same transaction.
pub fn tx_json(data: &[u8]) {
    let Ok(tx) = admission::decode_json(data) else {
        return;
    };
    let bytes = tx.encode();
    let _ = tx.id();
    if bytes.len() <= TX_BYTES_MAX {
        assert_eq!(
            SignedTx::decode(&bytes),
            Ok(tx.clone()),
            "a JSON transaction does not decode from its own encoding"
        );
    }
    let text = serde_json::to_vec(&tx).expect("a transaction always serialises");
    assert_eq!(
        admission::decode_json(&text).ok(),
        Some(tx),
        "a JSON transaction reads back another transaction"
    );
}

/// A genesis file (JSON, as the node, the client and `ipledger-genesis` read it): reading and
/// validating never panic, and its canonical encoding (which its fingerprint hashes) decodes
/// back to it.
pub fn genesis_json(data: &[u8]) {
    let Ok(genesis) = serde_json::from_slice::<Genesis>(data) else {
        return;
    };
    let _ = genesis.validate();
    let _ = genesis.hash();
    assert_eq!(
        encoding::decode::<Genesis>(&encoding::encode(&genesis), "genesis"),
        Ok(genesis),
        "a genesis does not decode from its own encoding"
    );
}

/// One engine message of each type [`consensus_message`] reads, prefixed with its selector
/// byte: seeds for the `consensus_message` corpus, built from real values with the node's
/// codec so that the fuzzer starts from well-formed messages.
pub fn consensus_message_seeds() -> Vec<Vec<u8>> {
    let address = Address([0x11; 32]);
    let signature = ConsensusSignature([0x22; 64]);
    let hash = BlockHash([0x33; 32]);
    let height = Height(4);
    let round = Round::new(0);
    let vote = Vote {
        vote_type: VoteType::Precommit,
        height,
        round,
        value: NilOrVal::Val(hash),
        validator: address,
    };
    let proposal = Proposal {
        height,
        round,
        value: hash,
        pol_round: Round::Nil,
        proposer: address,
    };
    let init = ProposalPart::Init {
        height,
        round,
        pol_round: Round::Nil,
        proposer: address,
        block_len: 5,
    };
    let stream_id = StreamId::new(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
    let peer_id = libp2p_identity::Keypair::ed25519_from_bytes([0x44; 32])
        .ok()
        .and_then(|keypair| {
            malachitebft_peer::PeerId::from_bytes(&keypair.public().to_peer_id().to_bytes()).ok()
        });
    let mut seeds = Vec::new();
    let mut add = |kind: u8, encoded: Bytes| {
        let mut seed = vec![kind];
        seed.extend_from_slice(&encoded);
        seeds.push(seed);
    };
    let codec = BorshCodec;
    for part in [
        init.clone(),
        ProposalPart::Data(vec![1, 2, 3, 4, 5]),
        ProposalPart::Fin(signature),
    ] {
        add(0, codec.encode(&part).expect("encodes"));
    }
    let signed_vote = SignedMessage::new(vote, signature);
    let signed_proposal = SignedMessage::new(proposal, signature);
    for message in [
        SignedConsensusMsg::Vote(signed_vote.clone()),
        SignedConsensusMsg::Proposal(signed_proposal),
    ] {
        add(1, codec.encode(&message).expect("encodes"));
    }
    let polka = PolkaCertificate {
        height,
        round,
        value_id: hash,
        polka_signatures: vec![PolkaSignature::new(address, signature)],
    };
    for message in [
        LivenessMsg::Vote(signed_vote),
        LivenessMsg::PolkaCertificate(polka.clone()),
    ] {
        add(2, codec.encode(&message).expect("encodes"));
    }
    for (sequence, content) in [
        (0, StreamContent::Data(init)),
        (1, StreamContent::Data(ProposalPart::Data(vec![9; 5]))),
        (2, StreamContent::Data(ProposalPart::Fin(signature))),
        (3, StreamContent::Fin),
    ] {
        let message = StreamMessage::new(stream_id.clone(), sequence, content);
        add(3, codec.encode(&message).expect("encodes"));
    }
    let proposed = ProposedValue::<IpledgerContext> {
        height,
        round,
        valid_round: Round::Nil,
        proposer: address,
        value: hash,
        validity: Validity::Valid,
    };
    add(4, codec.encode(&proposed).expect("encodes"));
    add(5, codec.encode(&polka).expect("encodes"));
    let proof = ValidatorProof::<IpledgerContext>::new(vec![0x11; 32], vec![0x55; 38], signature);
    add(6, codec.encode(&proof).expect("encodes"));
    {
        let peer_id = peer_id.expect("a peer id from a fixed ed25519 seed");
        let status = Status::<IpledgerContext> {
            peer_id,
            tip_height: height,
            history_min_height: Height(1),
        };
        add(7, codec.encode(&status).expect("encodes"));
    }
    let request = Request::<IpledgerContext>::ValueRequest(ValueRequest::new(Height(1)..=height));
    add(8, codec.encode(&request).expect("encodes"));
    let certificate = ExtendedCommitCertificate::<IpledgerContext> {
        height,
        round,
        value_id: hash,
        commit_signatures: vec![ExtendedCommitSignature::new(address, signature, None)],
    };
    let decided = RawDecidedValue::new(Bytes::from_static(&[1, 2, 3]), certificate);
    let response =
        Response::<IpledgerContext>::ValueResponse(ValueResponse::new(height, vec![decided]));
    add(9, codec.encode(&response).expect("encodes"));
    seeds
}

// The HTTP API (`http_request`): requests sent in-process to the node's real router, over a
// store holding a small chain.

/// The API clock of the [`http_request`] fixture, Unix milliseconds: well after its blocks.
const HTTP_NOW_MS: u64 = 1_767_225_600_000 + 1_000_000;

/// The node's router over a store with a three-block chain on the `genesis_4` test genesis,
/// and the runtime that drives it: built once per process, shared by every [`http_request`].
struct HttpFixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    mempool: Arc<Mutex<Mempool>>,
    /// Real names in the chain, for [`http_request_seeds`].
    names: FixtureNames,
}

/// What the fixture's chain holds, by the forms the API's routes take.
struct FixtureNames {
    /// Every committed transaction, in order: alice's and bob's enrolments (block 1), works
    /// "song" (alice) and "film" (bob), patent ZL1 (bob), evidence "exhibit-1" (block 2), and
    /// the pledge of "song" by alice to bank-a (block 3).
    txs: Vec<SignedTx>,
    /// A transaction the chain has not seen, which the API admits: alice registers "novel".
    fresh: SignedTx,
}

/// The key of a test party or, for `"<organisation>/node"`, of a test validator: the
/// derivation of ledger-core's testkit, which the node's library does not link, so that the
/// `genesis_4` vector's keys sign the fixture's transactions and certificates.
fn fixture_key(name: &str) -> SigningKey {
    SigningKey::from_seed(
        *Digest::sha256_parts(&[b"ipledger/test-key/", name.as_bytes()]).as_bytes(),
    )
}

/// Builds blocks on a store the way a validator does (ledger-core's `BlockBuilder` on the
/// store's committed state) and commits each with a certificate of every genesis validator.
struct FixtureChain {
    store: Store,
    genesis: Genesis,
    salt: u64,
}

impl FixtureChain {
    fn tx(&mut self, action: Action, signers: &[&str]) -> SignedTx {
        self.salt += 1;
        let mut salt = [0u8; 16];
        salt[..8].copy_from_slice(&self.salt.to_le_bytes());
        let head = self.store.head_height().expect("the fixture store reads");
        let mut tx = SignedTx::unsigned(TxBody {
            chain_id: self.genesis.chain_id.clone(),
            salt,
            valid_until: head + 50,
            action,
        });
        for name in signers {
            tx.sign(&fixture_key(name));
        }
        tx
    }

    fn commit(&self, txs: &[SignedTx]) {
        let snapshot = self.store.snapshot().expect("snapshot");
        let head = snapshot.head_height().expect("head");
        let height = head + 1;
        let state = snapshot.state(head);
        let context = BlockContext {
            height,
            time_ms: self.genesis.genesis_time_ms + height * 1_000,
        };
        let mut builder = BlockBuilder::new(&state, context).expect("the next block starts");
        for tx in txs {
            let vtx = VerifiedTx::verify(tx.clone()).expect("fixture transactions verify");
            assert_eq!(
                builder.push(&vtx),
                Ok(true),
                "a fixture transaction applies"
            );
        }
        let parent = match head {
            0 => Parent {
                hash: self.genesis.hash(),
                certificate: None,
            },
            _ => Parent {
                hash: snapshot.header(head).expect("header").expect("head").hash(),
                certificate: snapshot.certificate(head).expect("certificate"),
            },
        };
        let proposer = self.genesis.validators[0].key;
        let executed = builder
            .finish(&state, proposer, parent)
            .expect("the block finishes");
        let mut certificate = CommitCertificate {
            height,
            round: 0,
            block_hash: executed.block.header.hash(),
            signatures: Vec::new(),
        };
        let message = certificate
            .precommit_for(&self.genesis.chain_id)
            .sign_bytes();
        for validator in &self.genesis.validators {
            let key = fixture_key(&format!("{}/node", validator.organisation));
            assert_eq!(key.public_key(), validator.key, "a test validator key");
            certificate.signatures.push(CommitSignature {
                validator: validator.key,
                signature: key.sign(&message),
            });
        }
        certificate
            .signatures
            .sort_by_key(|signature| signature.validator);
        drop(snapshot);
        self.store
            .commit_block(&executed, &certificate)
            .expect("the fixture block commits");
    }
}

fn http_fixture() -> &'static HttpFixture {
    static FIXTURE: OnceLock<HttpFixture> = OnceLock::new();
    FIXTURE.get_or_init(build_http_fixture)
}

fn build_http_fixture() -> HttpFixture {
    let genesis = test_genesis().clone();
    // A store file of its own, unlinked once open (the open database keeps it), so that no
    // process leaves one behind.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let dir =
        std::env::temp_dir().join(format!("ipledger-fuzz-http-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let store = Store::open(&dir.join("ledger.redb")).expect("a new store opens");
    let _ = std::fs::remove_dir_all(&dir);
    store
        .init_genesis(&genesis)
        .expect("the genesis is written");
    let mut chain = FixtureChain {
        store,
        genesis,
        salt: 0,
    };
    let enroll = |chain: &mut FixtureChain, name: &str| {
        let action = Action::EnrollRightsHolder {
            registrar: "trading-center".into(),
            party: name.into(),
            name: format!("{name} (holder)"),
            key: fixture_key(name).public_key(),
            id_document_hash: Digest::sha256(name.as_bytes()),
        };
        chain.tx(action, &["trading-center", name])
    };
    let register_work = |chain: &mut FixtureChain, content: &str, owner: &str| {
        let action = Action::RegisterWork {
            content_hash: Digest::sha256(content.as_bytes()),
            title: format!("Work {content}"),
            kind: WorkKind::Software,
            authors: vec![owner.to_owned()],
            owner: owner.into(),
        };
        chain.tx(action, &[owner])
    };
    let block_1 = vec![enroll(&mut chain, "alice"), enroll(&mut chain, "bob")];
    chain.commit(&block_1);
    let patent = Action::RecordRight {
        registrar: "trading-center".into(),
        office: "CNIPA".into(),
        kind: RightKind::Patent,
        number: "ZL1".into(),
        title: "A method".into(),
        owner: "bob".into(),
    };
    let evidence = Action::AttestEvidence {
        attestor: "court".into(),
        evidence_hash: Digest::sha256(b"exhibit-1"),
        kind: EvidenceKind::Document,
        case_ref: Some("(2026)京01民初1号".into()),
        related_asset: Some(AssetId::Work {
            content_hash: Digest::sha256(b"song"),
        }),
    };
    let block_2 = vec![
        register_work(&mut chain, "song", "alice"),
        register_work(&mut chain, "film", "bob"),
        chain.tx(patent, &["trading-center", "bob"]),
        chain.tx(evidence, &["court"]),
    ];
    chain.commit(&block_2);
    let pledge = Action::RegisterPledge(PledgeTerms {
        assets: vec![AssetId::Work {
            content_hash: Digest::sha256(b"song"),
        }],
        pledgor: "alice".into(),
        pledgee: "bank-a".into(),
        registrar: "trading-center".into(),
        secured_amount: Money {
            minor_units: 100_000_000,
            currency: "CNY".into(),
        },
        maturity_ms: HTTP_NOW_MS + 3_600_000,
        first_rank: false,
        valuations: Vec::new(),
    });
    let block_3 = vec![chain.tx(pledge, &["alice", "bank-a", "trading-center"])];
    chain.commit(&block_3);
    let fresh = register_work(&mut chain, "novel", "alice");
    let FixtureChain { store, genesis, .. } = chain;
    let mempool = Arc::new(Mutex::new(Mempool::default()));
    let (committed, _) = broadcast::channel(16);
    let state = ApiState::new(
        Arc::new(store),
        Arc::new(genesis),
        mempool.clone(),
        committed,
        Arc::new(|| HTTP_NOW_MS),
    );
    // No block is ever committed here, so a submission with `?wait=true` would wait out its
    // timeout (30 s by default); shutting down makes every wait answer at once.
    state.begin_shutdown();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    HttpFixture {
        runtime,
        router: api::router(state),
        mempool,
        names: FixtureNames {
            txs: [block_1, block_2, block_3].concat(),
            fresh,
        },
    }
}

/// An `http_request` input in the form the target reads: a request line
/// `METHOD SP path-and-query`, a line with the `Content-Type` (empty for none), then the body.
pub fn http_request_bytes(method: &str, target: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{method} {target}\n{content_type}\n").into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Reads an `http_request` input (see [`http_request_bytes`]) into a request; `None` for one
/// that HTTP itself cannot carry (a method that is not a token, a target that is not a URI, a
/// header value with control characters), which a server refuses before the router.
fn parse_http_request(data: &[u8]) -> Option<axum::http::Request<axum::body::Body>> {
    fn split(bytes: &[u8], at: u8) -> (&[u8], &[u8]) {
        match bytes.iter().position(|&byte| byte == at) {
            Some(index) => (&bytes[..index], &bytes[index + 1..]),
            None => (bytes, &[]),
        }
    }
    let (line, rest) = split(data, b'\n');
    let (content_type, body) = split(rest, b'\n');
    let (method, target) = split(line, b' ');
    let method = axum::http::Method::from_bytes(method).ok()?;
    let uri = axum::http::Uri::try_from(target).ok()?;
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    if !content_type.is_empty() {
        let value = axum::http::HeaderValue::from_bytes(content_type).ok()?;
        request = request.header(axum::http::header::CONTENT_TYPE, value);
    }
    request.body(axum::body::Body::from(body.to_vec())).ok()
}

/// The router's answer to an `http_request` input: its status, `Content-Type` and body; `None`
/// if the input is not a request HTTP can carry. The mempool is emptied after every request, so
/// each input meets the same node.
pub fn http_answer(data: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let request = parse_http_request(data)?;
    let fixture = http_fixture();
    let (status, content_type, body) = fixture.runtime.block_on(async {
        let response = match fixture.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("an answer's body reads");
        let content_type = parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default();
        (parts.status.as_u16(), content_type, body.to_vec())
    });
    let mut mempool = fixture
        .mempool
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let pooled: HashSet<TxId> = mempool.iter().map(VerifiedTx::id).collect();
    mempool.remove(&pooled);
    Some((status, content_type, body))
}

/// The error code of an answer that is exactly `{"error": {"code": "...", "message": "..."}}`
/// in JSON; `None` for any other body.
fn error_code(content_type: &str, body: &[u8]) -> Option<String> {
    if content_type != "application/json" {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let top = value.as_object()?;
    let error = top.get("error")?.as_object()?;
    let code = error.get("code")?.as_str()?;
    error.get("message")?.as_str()?;
    (top.len() == 1 && error.len() == 2).then(|| code.to_owned())
}

/// A request to the HTTP API (method, path and query, `Content-Type`, body; see
/// [`http_request_bytes`]), sent to the node's real router over a store with a small chain:
/// no panic; never a server failure (500); every refusal a 4xx (or 503 `shutting_down` for a
/// submission that waits, 504 for one whose wait ends) with the API's JSON error object; every
/// success JSON (`/metrics` its text format; `HEAD` no body).
pub fn http_request(data: &[u8]) {
    let Some((status, content_type, body)) = http_answer(data) else {
        return;
    };
    let head = data.starts_with(b"HEAD ");
    let shown = || {
        String::from_utf8_lossy(&body)
            .chars()
            .take(300)
            .collect::<String>()
    };
    if head && body.is_empty() {
        assert!(status < 500, "HEAD answers {status}");
        return;
    }
    match status {
        200..=299 => {
            if content_type == api::METRICS_CONTENT_TYPE {
                assert!(std::str::from_utf8(&body).is_ok(), "metrics are not text");
            } else {
                assert_eq!(
                    content_type,
                    "application/json",
                    "a {status} answer is not JSON: {}",
                    shown()
                );
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
                    "a {status} answer does not parse: {}",
                    shown()
                );
            }
        }
        400..=499 => {
            assert!(
                error_code(&content_type, &body).is_some(),
                "a {status} answer is not the API's error object: {content_type} {}",
                shown()
            );
        }
        503 => {
            assert_eq!(
                error_code(&content_type, &body).as_deref(),
                Some("shutting_down"),
                "503: {}",
                shown()
            );
        }
        504 => {
            let answer: TxStatus = serde_json::from_slice(&body)
                .unwrap_or_else(|error| panic!("504 is not a transaction status: {error}"));
            assert_eq!(answer.status, TxState::Pending, "504 {}", shown());
        }
        _ => panic!("the API answers {status}: {content_type} {}", shown()),
    }
}

/// Real requests to every route of the [`http_request`] fixture, named: what each route
/// serves (with the chain's own ids, heights, hashes and keys), the submission of a new
/// transaction (plain, waiting, with other content types), of committed ones, and refusals
/// the fuzzer should start near (bad query, unknown route, other method, bad ids).
pub fn http_request_seeds() -> Vec<(String, Vec<u8>)> {
    let names = &http_fixture().names;
    let id = |index: usize| names.txs[index].id().to_string();
    let json = "application/json";
    let get = |target: String| http_request_bytes("GET", &target, "", b"");
    let mut seeds: Vec<(String, Vec<u8>)> = vec![
        ("status".into(), get("/v1/status".into())),
        ("headers_latest".into(), get("/v1/headers/latest".into())),
        ("header_1".into(), get("/v1/headers/1".into())),
        ("block_2".into(), get("/v1/blocks/2".into())),
        ("block_9_absent".into(), get("/v1/blocks/9".into())),
        ("tx".into(), get(format!("/v1/transactions/{}", id(0)))),
        (
            "tx_bare_hex".into(),
            get(format!(
                "/v1/transactions/{}",
                hex::encode(names.txs[3].id().as_bytes())
            )),
        ),
        (
            "receipt".into(),
            get(format!("/v1/transactions/{}/receipt", id(5))),
        ),
        (
            "state_party".into(),
            get(format!(
                "/v1/state/{}",
                hex::encode(StateKey::Party("alice".into()).encode())
            )),
        ),
        (
            "state_chain".into(),
            get(format!(
                "/v1/state/{}",
                hex::encode(StateKey::Chain.encode())
            )),
        ),
        (
            "work".into(),
            get(format!("/v1/works/{}", Digest::sha256(b"song"))),
        ),
        (
            "asset_work".into(),
            get(format!(
                "/v1/assets/{}",
                AssetId::Work {
                    content_hash: Digest::sha256(b"film")
                }
            )),
        ),
        (
            "asset_patent".into(),
            get("/v1/assets/patent:CNIPA:ZL1".into()),
        ),
        ("pledge".into(), get(format!("/v1/pledges/{}", id(6)))),
        (
            "evidence".into(),
            get(format!("/v1/evidence/{}", Digest::sha256(b"exhibit-1"))),
        ),
        ("party".into(), get("/v1/parties/alice".into())),
        ("party_bad".into(), get("/v1/parties/Alice%20B".into())),
        ("metrics".into(), get("/metrics".into())),
        ("openapi".into(), get("/openapi.json".into())),
        ("no_route".into(), get("/v2/status?x=1".into())),
        (
            "head_status".into(),
            http_request_bytes("HEAD", "/v1/status", "", b""),
        ),
        (
            "delete_status".into(),
            http_request_bytes("DELETE", "/v1/status", "", b""),
        ),
    ];
    let fresh = serde_json::to_vec(&names.fresh).expect("a transaction serialises");
    let committed = serde_json::to_vec_pretty(&names.txs[6]).expect("a transaction serialises");
    for (name, target, content_type, body) in [
        ("submit", "/v1/transactions", json, &fresh),
        ("submit_committed", "/v1/transactions", json, &committed),
        ("submit_no_type", "/v1/transactions", "", &fresh),
        ("submit_text", "/v1/transactions", "text/plain", &fresh),
        ("submit_wait", "/v1/transactions?wait=true", json, &fresh),
        (
            "submit_wait_0",
            "/v1/transactions?wait=true&timeout_ms=0",
            json,
            &fresh,
        ),
        (
            "submit_wait_max",
            "/v1/transactions?wait=true&timeout_ms=60001",
            json,
            &fresh,
        ),
        (
            "submit_no_wait",
            "/v1/transactions?wait=false&timeout_ms=10",
            json,
            &fresh,
        ),
        (
            "submit_bad_query",
            "/v1/transactions?wait=yes&other=1",
            json,
            &fresh,
        ),
    ] {
        seeds.push((
            name.into(),
            http_request_bytes("POST", target, content_type, body),
        ));
    }
    seeds
}
