//! Validators refuse bad blocks; receipts verify offline and fail on any tampering.

use ledger_core::block::Block;
use ledger_core::crypto::Digest;
use ledger_core::execute::{execute_block, BlockError};
use ledger_core::receipt::{verify_receipt, Receipt};
use ledger_core::rules::VerifiedTx;
use ledger_core::testkit::{test_genesis, TestChain};
use ledger_core::tx::Action;
use ledger_core::types::EvidenceKind;

fn attest(chain: &mut TestChain, content: &[u8]) -> ledger_core::tx::SignedTx {
    let action = Action::AttestEvidence {
        attestor: "court".into(),
        evidence_hash: Digest::sha256(content),
        kind: EvidenceKind::Document,
        case_ref: Some("(2026)川01民初1号".into()),
        related_asset: None,
    };
    chain.tx(action, &["court"])
}

/// A chain with three blocks of attestations, and the block a validator is asked to check next.
fn chain_and_next_block() -> (TestChain, Block) {
    let mut chain = TestChain::new(4);
    for n in 0..3u8 {
        let txs = vec![attest(&mut chain, &[n, 0]), attest(&mut chain, &[n, 1])];
        assert!(chain.commit(txs).iter().all(Result::is_ok));
    }
    // Build the next block on a scratch copy so the chain itself stays at height 3.
    let mut scratch = TestChain::new(4);
    for block in &chain.blocks {
        scratch.commit(block.txs.clone());
    }
    let tx = attest(&mut scratch, b"next");
    scratch.commit(vec![tx]);
    let next = scratch.blocks.last().cloned().unwrap();
    (chain, next)
}

fn check(chain: &TestChain, block: &Block) -> Result<(), BlockError> {
    let verified: Vec<VerifiedTx> = VerifiedTx::verify_many(block.txs.clone())
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let parent = chain.blocks.last().unwrap().header.hash();
    execute_block(&chain.state(), block, &verified, parent).map(|_| ())
}

#[test]
fn honest_block_is_accepted_and_state_roots_agree() {
    let (chain, next) = chain_and_next_block();
    check(&chain, &next).expect("an honestly built block re-executes");
}

#[test]
fn block_with_wrong_state_root_is_refused() {
    let (chain, mut next) = chain_and_next_block();
    next.header.state_root = Digest::sha256(b"lie");
    assert_eq!(
        check(&chain, &next),
        Err(BlockError::HeaderMismatch {
            field: "state_root"
        })
    );
}

#[test]
fn block_with_a_failing_transaction_is_refused() {
    let (chain, mut next) = chain_and_next_block();
    let replay = chain.blocks[0].txs[0].clone();
    next.txs.push(replay);
    match check(&chain, &next) {
        Err(BlockError::InvalidTransaction {
            index: 1, error, ..
        }) => assert_eq!(error.code(), "already_committed"),
        other => panic!("expected the replayed transaction to invalidate the block, got {other:?}"),
    }
}

#[test]
fn block_with_time_going_backwards_is_refused() {
    let (chain, mut next) = chain_and_next_block();
    next.header.time_ms = chain.blocks.last().unwrap().header.time_ms;
    assert!(matches!(
        check(&chain, &next),
        Err(BlockError::TimeNotIncreasing { .. })
    ));
}

#[test]
fn block_with_a_short_last_commit_is_refused() {
    let (chain, mut next) = chain_and_next_block();
    let certificate = next.last_commit.as_mut().unwrap();
    certificate.signatures.truncate(2);
    assert!(
        matches!(check(&chain, &next), Err(BlockError::Certificate(_))),
        "2 of 4 signatures are not a quorum"
    );
}

fn receipt_chain() -> (TestChain, Receipt) {
    let mut chain = TestChain::new(4);
    for n in 0..5u8 {
        let txs = (0..3u8).map(|i| attest(&mut chain, &[n, i])).collect();
        chain.commit(txs);
    }
    let receipt = chain.receipt(7);
    (chain, receipt)
}

#[test]
fn receipt_verifies_offline_and_names_time_and_signer() {
    let (chain, receipt) = receipt_chain();
    let verified = verify_receipt(&receipt, &chain.genesis).expect("receipt verifies");
    assert_eq!(verified.height, 3);
    assert_eq!(verified.time_ms, chain.blocks[2].header.time_ms);
    assert_eq!(
        verified.signers,
        vec![ledger_core::testkit::test_key("court").public_key()]
    );
    assert_eq!(verified.genesis_hash, chain.genesis.hash());
}

#[test]
fn receipt_tampering_fails_verification() {
    let (chain, receipt) = receipt_chain();
    type Tamper = fn(&mut Receipt);
    let tampers: [(&str, Tamper); 10] = [
        ("leaf time", |r| r.leaf.time_ms += 1),
        ("leaf height", |r| r.leaf.height -= 1),
        ("transaction body", |r| r.leaf.tx.body.salt[3] ^= 1),
        ("inclusion index", |r| r.inclusion.leaf_index += 1),
        ("inclusion path", |r| {
            let Digest::Sha256(bytes) = &mut r.inclusion.path[0];
            bytes[0] ^= 1;
        }),
        ("header ledger root", |r| {
            r.certified.header.ledger_root = Digest::sha256(b"x")
        }),
        ("header time", |r| r.certified.header.time_ms += 1),
        ("certificate below quorum", |r| {
            r.certified.certificate.signatures.truncate(2)
        }),
        ("certificate round", |r| r.certified.certificate.round += 1),
        ("format version", |r| r.format_version = 2),
    ];
    for (what, tamper) in tampers {
        let mut changed = receipt.clone();
        tamper(&mut changed);
        assert!(
            verify_receipt(&changed, &chain.genesis).is_err(),
            "tampered {what} must not verify"
        );
    }
}

#[test]
fn receipt_against_another_genesis_fails() {
    let (_, receipt) = receipt_chain();
    let mut other = test_genesis(4);
    other.validators.truncate(3);
    assert!(verify_receipt(&receipt, &other).is_err());
    let mut renamed = test_genesis(4);
    renamed.chain_id = "someone-else".into();
    assert!(verify_receipt(&receipt, &renamed).is_err());
}

#[test]
fn single_validator_chain_is_the_same_code_with_n_one() {
    let mut chain = TestChain::new(1);
    let tx = attest(&mut chain, b"solo");
    chain.apply(tx).expect("a one-validator chain commits");
    verify_receipt(&chain.receipt(0), &chain.genesis).expect("its receipts verify");
}

/// A block streamed in chunks of any size decodes to exactly its pieces, and executing it piece
/// by piece gives the block and root `execute_block` gives.
#[test]
fn a_block_decoded_and_executed_as_it_streams_is_the_block() {
    use ledger_core::block::{BlockDecoder, BlockPiece};
    use ledger_core::execute::BlockExecution;
    let mut chain = TestChain::new(4);
    for n in 0..2u8 {
        let txs = (0..5u8).map(|i| attest(&mut chain, &[n, i])).collect();
        assert!(chain.commit(txs).iter().all(Result::is_ok));
    }
    let head = chain.blocks.pop().unwrap();
    let mut parent_chain = TestChain::new(4);
    for block in &chain.blocks {
        parent_chain.commit(block.txs.clone());
    }
    let bytes = head.encode();
    let parent = parent_chain.blocks.last().unwrap().header.hash();
    for chunk in [1, 7, 64, 1000, bytes.len()] {
        let mut decoder = BlockDecoder::default();
        let state = parent_chain.state();
        let mut execution = None;
        let mut txs = Vec::new();
        for part in bytes.chunks(chunk) {
            for piece in decoder.feed(part).expect("decodes") {
                match piece {
                    BlockPiece::Head {
                        header,
                        last_commit,
                    } => {
                        assert_eq!(header, head.header);
                        assert_eq!(last_commit, head.last_commit);
                        execution = Some(
                            BlockExecution::start(&state, header, last_commit, parent)
                                .expect("starts"),
                        );
                    }
                    BlockPiece::Tx(tx) => {
                        let vtx = VerifiedTx::verify(tx.clone()).expect("signed");
                        execution
                            .as_mut()
                            .expect("head first")
                            .push(&vtx)
                            .expect("valid");
                        txs.push(tx);
                    }
                }
            }
        }
        assert!(decoder.is_complete(), "chunk {chunk}");
        assert_eq!(txs, head.txs);
        let executed = execution.unwrap().finish(&state).expect("executes");
        assert_eq!(executed.block.encode(), bytes, "chunk {chunk}");
    }
    // A truncated block is never complete; a byte past the end is refused.
    let mut decoder = BlockDecoder::default();
    decoder
        .feed(&bytes[..bytes.len() - 1])
        .expect("a prefix decodes");
    assert!(!decoder.is_complete());
    let mut decoder = BlockDecoder::default();
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decoder.feed(&longer).is_err());
}
