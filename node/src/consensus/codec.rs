//! The wire and WAL codec for engine messages.
//!
//! Most engine messages have borsh encodings in Malachite (behind its `borsh` features); those
//! are used as they are. Two kinds have none in 0.8.2 — validator proofs and sync messages,
//! which carry the new `ExtendedCommitCertificate` — so they travel as the explicit wire
//! structs below. Every decode is bounded by [`ENGINE_MESSAGE_BYTES_MAX`] and refuses trailing
//! bytes.

use super::context::{
    Address, BlockHash, ConsensusSignature, Height, IpledgerContext, ProposalPart,
};
use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_codec::{Codec, HasEncodedLen};
use malachitebft_core_consensus::{LivenessMsg, ProposedValue, SignedConsensusMsg};
use malachitebft_core_types::{
    ExtendedCommitCertificate, ExtendedCommitSignature, PolkaCertificate, Round, ValidatorProof,
};
use malachitebft_peer::PeerId;
use malachitebft_sync::{RawDecidedValue, Request, Response, Status, ValueRequest, ValueResponse};

/// The largest engine message decoded, in bytes: a proposal part is at most 256 KiB and a sync
/// response at most 64 blocks; the genesis bounds a block at 16 MiB.
pub const ENGINE_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The codec for every engine message.
#[derive(Clone, Copy, Debug, Default)]
pub struct BorshCodec;

/// Why an engine message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The message exceeds [`ENGINE_MESSAGE_BYTES_MAX`].
    #[error("engine message of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// borsh refused the bytes (truncated, trailing bytes, bad variant, ...).
    #[error("malformed engine message: {0}")]
    Borsh(#[from] std::io::Error),
    /// A field holds a value the wire form cannot carry.
    #[error("malformed engine message: {0}")]
    Field(String),
}

fn decode_bounded<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > ENGINE_MESSAGE_BYTES_MAX {
        return Err(CodecError::TooLong {
            len: bytes.len(),
            max: ENGINE_MESSAGE_BYTES_MAX,
        });
    }
    // `try_from_slice` refuses trailing bytes.
    Ok(T::try_from_slice(bytes)?)
}

macro_rules! borsh_codec {
    ($($ty:ty),* $(,)?) => {$(
        impl Codec<$ty> for BorshCodec {
            type Error = CodecError;
            fn decode(&self, bytes: Bytes) -> Result<$ty, CodecError> {
                decode_bounded(&bytes)
            }
            fn encode(&self, msg: &$ty) -> Result<Bytes, CodecError> {
                Ok(Bytes::from(borsh::to_vec(msg)?))
            }
        }
    )*};
}

borsh_codec!(
    ProposalPart,
    SignedConsensusMsg<IpledgerContext>,
    LivenessMsg<IpledgerContext>,
    StreamMessage<ProposalPart>,
    ProposedValue<IpledgerContext>,
    PolkaCertificate<IpledgerContext>,
);

/// Wire form of a validator proof (binds a consensus key to a libp2p peer id).
#[derive(BorshSerialize, BorshDeserialize)]
struct ValidatorProofWire {
    public_key: Vec<u8>,
    peer_id: Vec<u8>,
    signature: ConsensusSignature,
}

/// Wire form of a sync status.
#[derive(BorshSerialize, BorshDeserialize)]
struct StatusWire {
    peer_id: Vec<u8>,
    tip_height: Height,
    history_min_height: Height,
}

/// Wire form of a sync request: a range of heights.
#[derive(BorshSerialize, BorshDeserialize)]
struct RequestWire {
    start: Height,
    end: Height,
}

/// Wire form of a decided value: the encoded block and its commit certificate.
#[derive(BorshSerialize, BorshDeserialize)]
struct DecidedWire {
    value_bytes: Vec<u8>,
    height: Height,
    round: Round,
    value_id: BlockHash,
    signatures: Vec<(Address, ConsensusSignature)>,
}

/// Wire form of a sync response.
#[derive(BorshSerialize, BorshDeserialize)]
struct ResponseWire {
    start_height: Height,
    values: Vec<DecidedWire>,
}

macro_rules! wire_codec {
    ($ty:ty, $wire:ty, $to_wire:expr, $from_wire:expr) => {
        impl Codec<$ty> for BorshCodec {
            type Error = CodecError;
            fn decode(&self, bytes: Bytes) -> Result<$ty, CodecError> {
                let wire: $wire = decode_bounded(&bytes)?;
                $from_wire(wire)
            }
            fn encode(&self, msg: &$ty) -> Result<Bytes, CodecError> {
                let wire: $wire = $to_wire(msg)?;
                Ok(Bytes::from(borsh::to_vec(&wire)?))
            }
        }
    };
}

wire_codec!(
    ValidatorProof<IpledgerContext>,
    ValidatorProofWire,
    |p: &ValidatorProof<IpledgerContext>| Ok::<_, CodecError>(ValidatorProofWire {
        public_key: p.public_key.clone(),
        peer_id: p.peer_id.clone(),
        signature: p.signature,
    }),
    |w: ValidatorProofWire| Ok(ValidatorProof::new(w.public_key, w.peer_id, w.signature))
);

wire_codec!(
    Status<IpledgerContext>,
    StatusWire,
    |s: &Status<IpledgerContext>| Ok::<_, CodecError>(StatusWire {
        peer_id: s.peer_id.to_bytes(),
        tip_height: s.tip_height,
        history_min_height: s.history_min_height,
    }),
    |w: StatusWire| {
        let peer_id = PeerId::from_bytes(&w.peer_id)
            .map_err(|e| CodecError::Field(format!("peer id: {e}")))?;
        Ok(Status {
            peer_id,
            tip_height: w.tip_height,
            history_min_height: w.history_min_height,
        })
    }
);

wire_codec!(
    Request<IpledgerContext>,
    RequestWire,
    |r: &Request<IpledgerContext>| {
        let Request::ValueRequest(request) = r;
        Ok::<_, CodecError>(RequestWire {
            start: *request.range.start(),
            end: *request.range.end(),
        })
    },
    |w: RequestWire| Ok(Request::ValueRequest(ValueRequest::new(w.start..=w.end)))
);

fn decided_to_wire(value: &RawDecidedValue<IpledgerContext>) -> Result<DecidedWire, CodecError> {
    let certificate = &value.certificate;
    let mut signatures = Vec::with_capacity(certificate.commit_signatures.len());
    for signature in &certificate.commit_signatures {
        if signature.extension.is_some() {
            return Err(CodecError::Field(
                "vote extensions are disabled, yet a certificate carries one".into(),
            ));
        }
        signatures.push((signature.address, signature.signature));
    }
    Ok(DecidedWire {
        value_bytes: value.value_bytes.to_vec(),
        height: certificate.height,
        round: certificate.round,
        value_id: certificate.value_id,
        signatures,
    })
}

fn decided_from_wire(wire: DecidedWire) -> RawDecidedValue<IpledgerContext> {
    let certificate = ExtendedCommitCertificate {
        height: wire.height,
        round: wire.round,
        value_id: wire.value_id,
        commit_signatures: wire
            .signatures
            .into_iter()
            .map(|(address, signature)| ExtendedCommitSignature::new(address, signature, None))
            .collect(),
    };
    RawDecidedValue::new(Bytes::from(wire.value_bytes), certificate)
}

fn response_to_wire(response: &Response<IpledgerContext>) -> Result<ResponseWire, CodecError> {
    let Response::ValueResponse(response) = response;
    let values = response
        .values
        .iter()
        .map(decided_to_wire)
        .collect::<Result<_, _>>()?;
    Ok(ResponseWire {
        start_height: response.start_height,
        values,
    })
}

wire_codec!(
    Response<IpledgerContext>,
    ResponseWire,
    response_to_wire,
    |w: ResponseWire| {
        let values = w.values.into_iter().map(decided_from_wire).collect();
        Ok(Response::ValueResponse(ValueResponse::new(
            w.start_height,
            values,
        )))
    }
);

impl HasEncodedLen<Response<IpledgerContext>> for BorshCodec {
    fn encoded_len(&self, msg: &Response<IpledgerContext>) -> Result<usize, CodecError> {
        Ok(borsh::object_length(&response_to_wire(msg)?)?)
    }
}
