//! What the fuzz targets check, in one place: the cargo-fuzz targets in `fuzz/` call these
//! functions on libFuzzer's inputs, and `tests/fuzz_corpus_replay.rs` calls them on every kept
//! corpus file, so CI replays exactly the checks the fuzzer ran.
//!
//! Each function takes arbitrary bytes and returns normally whether the bytes are accepted or
//! refused. It panics only on a real bug: a decoder that panics, a decoded value that does not
//! re-encode to the bytes it came from (the encoding is canonical), or two decoders of the same
//! format that disagree.

use crate::admission;
use crate::consensus::codec::BorshCodec;
use crate::consensus::context::{
    Address, BlockHash, ConsensusSignature, Height, IpledgerContext, Proposal, ProposalPart, Vote,
};
use bytes::Bytes;
use ledger_core::block::{Block, BlockDecoder, BlockPiece, CommitCertificate};
use ledger_core::encoding;
use ledger_core::genesis::Genesis;
use ledger_core::receipt::{verify_receipt, Receipt};
use ledger_core::tx::{SignedTx, TX_BYTES_MAX};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_codec::Codec;
use malachitebft_core_consensus::{LivenessMsg, ProposedValue, SignedConsensusMsg};
use malachitebft_core_types::{
    ExtendedCommitCertificate, ExtendedCommitSignature, NilOrVal, PolkaCertificate, PolkaSignature,
    Round, SignedMessage, ValidatorProof, Validity, VoteType,
};
use malachitebft_sync::{RawDecidedValue, Request, Response, Status, ValueRequest, ValueResponse};
use std::sync::OnceLock;

/// Every fuzz target, by the name of its file in `fuzz/fuzz_targets/` and its corpus directory
/// in `fuzz/corpus/`.
pub const TARGETS: [&str; 8] = [
    "signed_tx",
    "block",
    "certificate",
    "receipt",
    "gossip_batch",
    "consensus_message",
    "tx_json",
    "genesis_json",
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
/// (modulo [`ENGINE_MESSAGE_KINDS`], in the order of [`consensus_message_seeds`]), the rest is
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
