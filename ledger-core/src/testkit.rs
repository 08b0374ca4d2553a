//! An in-memory chain for tests and benchmarks: a consortium with deterministic keys, blocks
//! built, certified by every validator, re-executed as a validator would, and committed to
//! in-memory stores. Compiled only with the `testkit` feature (and in this crate's own tests).

use crate::block::{Block, CommitCertificate, CommitSignature};
use crate::crypto::{Digest, SigningKey};
use crate::execute::{execute_block, execute_genesis, BlockBuilder, ExecutedBlock, Parent};
use crate::genesis::{ChainParams, ConsensusParams, Genesis, Organisation, Validator};
use crate::merkle::{inclusion_proof, MemoryMerkleStore};
use crate::receipt::{CertifiedHeader, Receipt, ValidatorChange, RECEIPT_FORMAT_VERSION};
use crate::rejection::TxError;
use crate::rules::{BlockContext, VerifiedTx};
use crate::state::{Overlay, StateKey};
use crate::state_tree::{MemoryStateStore, StateTree};
use crate::tx::{Action, SignedTx, TxBody};
use crate::types::{PartyId, Role};
use std::collections::BTreeMap;

/// The chain id of test chains.
pub const TEST_CHAIN_ID: &str = "ipledger-test";
/// Genesis time of test chains: 2026-01-01T00:00:00Z.
pub const TEST_GENESIS_TIME_MS: u64 = 1_767_225_600_000;
/// Block interval of test chains.
pub const TEST_BLOCK_INTERVAL_MS: u64 = 1_000;

/// A deterministic key derived from a name, for tests only.
pub fn test_key(name: &str) -> SigningKey {
    SigningKey::from_seed(
        *Digest::sha256_parts(&[b"ipledger/test-key/", name.as_bytes()]).as_bytes(),
    )
}

/// The founding organisations of test chains, with their roles. The first four run validators.
pub const TEST_ORGANISATIONS: [(&str, Role); 7] = [
    ("trading-center", Role::TradingCenter),
    ("bank-a", Role::Bank),
    ("bank-b", Role::Bank),
    ("court", Role::Court),
    ("appraiser", Role::Appraiser),
    ("regulator", Role::Regulator),
    ("court-2", Role::Court),
];

/// A genesis with [`TEST_ORGANISATIONS`] and `n_validators` validators (1 to 4), run by the
/// first organisations in order.
pub fn test_genesis(n_validators: usize) -> Genesis {
    assert!(
        (1..=4).contains(&n_validators),
        "test chains have 1 to 4 validators"
    );
    let organisations = TEST_ORGANISATIONS
        .iter()
        .map(|(name, role)| Organisation {
            party: PartyId::from(*name),
            name: format!("{name} (test)"),
            role: *role,
            key: test_key(name).public_key(),
        })
        .collect();
    let mut validators: Vec<Validator> = TEST_ORGANISATIONS[..n_validators]
        .iter()
        .map(|(name, _)| Validator {
            organisation: PartyId::from(*name),
            key: test_key(&format!("{name}/node")).public_key(),
            power: 1,
        })
        .collect();
    validators.sort_by_key(|v| v.key);
    Genesis {
        chain_id: TEST_CHAIN_ID.into(),
        genesis_time_ms: TEST_GENESIS_TIME_MS,
        organisations,
        validators,
        params: ChainParams {
            tx_lifetime_max: 100,
            block_txs_max: 10_000,
            block_bytes_max: 8 * 1024 * 1024,
        },
        consensus: ConsensusParams {
            block_interval_ms: TEST_BLOCK_INTERVAL_MS,
            propose_timeout_ms: 3_000,
            vote_timeout_ms: 1_000,
            clock_skew_max_ms: 5_000,
        },
    }
}

/// A chain held in memory.
pub struct TestChain {
    /// The genesis.
    pub genesis: Genesis,
    /// State tree storage.
    pub state_store: MemoryStateStore,
    /// Ledger-tree nodes.
    pub merkle_store: MemoryMerkleStore,
    /// Committed blocks, `blocks[h - 1]` at height h.
    pub blocks: Vec<Block>,
    /// Their certificates, same indexing.
    pub certificates: Vec<CommitCertificate>,
    /// Every committed leaf, by ledger index.
    pub leaf_count: u64,
    salt_counter: u64,
}

impl TestChain {
    /// A chain at height 0 with `n_validators` validators.
    pub fn new(n_validators: usize) -> TestChain {
        let genesis = test_genesis(n_validators);
        let mut state_store = MemoryStateStore::new();
        let (_, update) = execute_genesis(&StateTree::new(&state_store, None), &genesis)
            .expect("test genesis is valid");
        state_store.write(&update);
        TestChain {
            genesis,
            state_store,
            merkle_store: MemoryMerkleStore::default(),
            blocks: Vec::new(),
            certificates: Vec::new(),
            leaf_count: 0,
            salt_counter: 0,
        }
    }

    /// The committed height.
    pub fn height(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// The committed state.
    pub fn state(&self) -> StateTree<'_, MemoryStateStore> {
        StateTree::new(&self.state_store, Some(self.height()))
    }

    /// Reads a typed record from the committed state.
    pub fn get<V: bincode::Decode<()>>(&self, key: &StateKey) -> Option<V> {
        let state = self.state();
        Overlay::new(&state)
            .get(key)
            .expect("memory state never fails")
    }

    /// A transaction body for this chain, valid for the next 50 heights, with a fresh salt.
    pub fn body(&mut self, action: Action) -> TxBody {
        self.salt_counter += 1;
        let mut salt = [0u8; 16];
        salt[..8].copy_from_slice(&self.salt_counter.to_le_bytes());
        TxBody {
            chain_id: self.genesis.chain_id.clone(),
            salt,
            valid_until: self.height() + 50,
            action,
        }
    }

    /// A transaction signed by the test keys of `signers` (party names).
    pub fn tx(&mut self, action: Action, signers: &[&str]) -> SignedTx {
        let mut tx = SignedTx::unsigned(self.body(action));
        for name in signers {
            tx.sign(&test_key(name));
        }
        tx
    }

    /// Commits one block holding whichever of `txs` the rules accept, and returns each
    /// transaction's outcome.
    pub fn commit(&mut self, txs: Vec<SignedTx>) -> Vec<Result<(), TxError>> {
        let height = self.height() + 1;
        let ctx = BlockContext {
            height,
            time_ms: TEST_GENESIS_TIME_MS + height * TEST_BLOCK_INTERVAL_MS,
        };
        let state = self.state();
        let mut builder = BlockBuilder::new(&state, ctx).expect("next block starts");
        let mut outcomes = Vec::with_capacity(txs.len());
        for tx in txs {
            let outcome = VerifiedTx::verify(tx)
                .map_err(TxError::from)
                .and_then(|vtx| {
                    let included = builder.push(&vtx)?;
                    assert!(included, "test blocks are never full");
                    Ok(())
                });
            outcomes.push(outcome);
        }
        let proposer =
            self.genesis.validators[(height as usize) % self.genesis.validators.len()].key;
        let parent = self.parent();
        let executed = builder
            .finish(&state, proposer, parent)
            .expect("block finishes");
        let checked = self.reexecute(&executed.block);
        assert_eq!(
            checked.block, executed.block,
            "a validator re-executing the block gets the same block"
        );
        self.store(executed);
        outcomes
    }

    /// Commits one block with one transaction and returns its outcome.
    pub fn apply(&mut self, tx: SignedTx) -> Result<(), TxError> {
        self.commit(vec![tx]).pop().expect("one outcome")
    }

    fn parent(&self) -> Parent {
        match self.blocks.last() {
            None => Parent {
                hash: self.genesis.hash(),
                certificate: None,
            },
            Some(block) => Parent {
                hash: block.header.hash(),
                certificate: self.certificates.last().cloned(),
            },
        }
    }

    /// Re-executes a block as a validator would.
    pub fn reexecute(&self, block: &Block) -> ExecutedBlock {
        let state = self.state();
        let verified: Vec<VerifiedTx> = VerifiedTx::verify_many(block.txs.clone())
            .into_iter()
            .map(|r| r.expect("block txs verify"))
            .collect();
        execute_block(&state, block, &verified, self.parent().hash)
            .expect("a built block re-executes")
    }

    fn store(&mut self, executed: ExecutedBlock) {
        let header = &executed.block.header;
        let validators = self.validators_at(header.height);
        let certificate = certify(
            &self.genesis.chain_id,
            header.height,
            header.hash(),
            &validators,
        );
        self.state_store.commit(&executed);
        self.merkle_store.insert(&executed.ledger_nodes);
        self.leaf_count += executed.leaves.len() as u64;
        assert_eq!(self.leaf_count, header.ledger_size);
        self.blocks.push(executed.block);
        self.certificates.push(certificate);
    }

    /// The validators deciding `height`.
    pub fn validators_at(&self, height: u64) -> Vec<Validator> {
        let schedule: crate::state::ValidatorSchedule = self
            .get(&StateKey::ValidatorSchedule)
            .expect("schedule exists");
        schedule.set_at(height).expect("set exists").to_vec()
    }

    /// A receipt for ledger leaf `index`, against the latest certified header.
    pub fn receipt(&self, index: u64) -> Receipt {
        let header = self.blocks.last().expect("a block exists").header.clone();
        let inclusion =
            inclusion_proof(&self.merkle_store, index, header.ledger_size).expect("proof");
        let leaf = self.leaf(index);
        let certified = CertifiedHeader {
            header,
            certificate: self.certificates.last().cloned().expect("certified"),
        };
        Receipt {
            format_version: RECEIPT_FORMAT_VERSION,
            leaf,
            inclusion,
            certified,
            validator_changes: self.validator_changes(),
        }
    }

    /// Ledger leaf `index`, found by walking the blocks.
    pub fn leaf(&self, index: u64) -> crate::block::LedgerLeaf {
        let mut first = 0u64;
        for block in &self.blocks {
            let count = block.txs.len() as u64;
            if index < first + count {
                let tx = block.txs[(index - first) as usize].clone();
                return crate::block::LedgerLeaf {
                    height: block.header.height,
                    time_ms: block.header.time_ms,
                    tx,
                };
            }
            first += count;
        }
        panic!("leaf {index} is beyond the ledger's {first} leaves")
    }

    /// Every certified validator-set change below the latest header.
    pub fn validator_changes(&self) -> Vec<ValidatorChange> {
        let tip = self.height();
        self.blocks
            .iter()
            .zip(&self.certificates)
            .filter(|(block, _)| block.header.height < tip)
            .filter(|(block, _)| {
                block.header.next_validator_set_hash != block.header.validator_set_hash
            })
            .map(|(block, certificate)| ValidatorChange {
                certified: CertifiedHeader {
                    header: block.header.clone(),
                    certificate: certificate.clone(),
                },
                next_validators: self.validators_at(block.header.height + 1),
            })
            .collect()
    }
}

/// A certificate signed by every validator of the test key naming scheme.
pub fn certify(
    chain_id: &str,
    height: u64,
    block_hash: Digest,
    validators: &[Validator],
) -> CommitCertificate {
    let mut certificate = CommitCertificate {
        height,
        round: 0,
        block_hash,
        signatures: Vec::new(),
    };
    let message = certificate.precommit_for(chain_id).sign_bytes();
    let keys: BTreeMap<_, _> = TEST_ORGANISATIONS
        .iter()
        .map(|(name, _)| test_key(&format!("{name}/node")))
        .map(|key| (key.public_key(), key))
        .collect();
    for validator in validators {
        let key = keys
            .get(&validator.key)
            .expect("test validators use test keys");
        certificate.signatures.push(CommitSignature {
            validator: validator.key,
            signature: key.sign(&message),
        });
    }
    certificate.signatures.sort_by_key(|s| s.validator);
    certificate
}

/// Transactions that tests in every crate build again and again, signed by the test keys of the
/// parties that must sign them.
pub mod txs {
    use super::{test_key, TestChain};
    use crate::crypto::Digest;
    use crate::tx::{Action, SignedTx};
    use crate::types::{AssetId, RightKind, WorkKind};

    /// Enrolment of rights holder `name` by the trading center (the holder co-signs).
    pub fn enroll(chain: &mut TestChain, name: &str) -> SignedTx {
        let action = Action::EnrollRightsHolder {
            registrar: "trading-center".into(),
            party: name.into(),
            name: format!("{name} (holder)"),
            key: test_key(name).public_key(),
            id_document_hash: Digest::sha256(name.as_bytes()),
        };
        chain.tx(action, &["trading-center", name])
    }

    /// The asset id of the work whose content is `content`.
    pub fn work(content: &str) -> AssetId {
        AssetId::Work {
            content_hash: Digest::sha256(content.as_bytes()),
        }
    }

    /// A patent of the test office.
    pub fn patent(number: &str) -> AssetId {
        AssetId::Right {
            office: "CNIPA".into(),
            kind: RightKind::Patent,
            number: number.into(),
        }
    }

    /// Registration by `owner` of the work whose content is `content`.
    pub fn register_work(chain: &mut TestChain, content: &str, owner: &str) -> SignedTx {
        let action = Action::RegisterWork {
            content_hash: Digest::sha256(content.as_bytes()),
            title: format!("Work {content}"),
            kind: WorkKind::Software,
            authors: vec![owner.to_owned()],
            owner: owner.into(),
        };
        chain.tx(action, &[owner])
    }

    /// Recording of patent `number` for `owner` by the trading center.
    pub fn record_patent(chain: &mut TestChain, number: &str, owner: &str) -> SignedTx {
        let action = Action::RecordRight {
            registrar: "trading-center".into(),
            office: "CNIPA".into(),
            kind: RightKind::Patent,
            number: number.into(),
            title: "A method".into(),
            owner: owner.into(),
        };
        chain.tx(action, &["trading-center", owner])
    }
}

/// Governance every test of validator-set changes needs: admits organisation `bank-c` and
/// schedules a fifth validator it runs (key `test_key("court-2/node")`) three heights later,
/// in two committed blocks. Returns the new set and its effective height.
pub fn add_bank_c_validator(chain: &mut TestChain) -> (Vec<Validator>, u64) {
    use crate::tx::{Action, GovernanceAction};
    let admit = Action::Governance(GovernanceAction::AdmitOrganisation {
        party: "bank-c".into(),
        name: "bank-c bank".into(),
        role: Role::Bank,
        key: test_key("bank-c").public_key(),
    });
    let tx = chain.tx(admit, &["trading-center", "bank-a", "bank-b"]);
    chain.apply(tx).expect("bank-c is admitted");
    let mut validators = chain.validators_at(chain.height() + 1);
    validators.push(Validator {
        organisation: "bank-c".into(),
        key: test_key("court-2/node").public_key(),
        power: 1,
    });
    validators.sort_by_key(|v| v.key);
    let effective_height = chain.height() + 3;
    let change = Action::Governance(GovernanceAction::ChangeValidators {
        validators: validators.clone(),
        effective_height,
    });
    let tx = chain.tx(change, &["trading-center", "bank-a", "court"]);
    chain.apply(tx).expect("the validator change is scheduled");
    (validators, effective_height)
}
