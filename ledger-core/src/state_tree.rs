//! The authenticated state map: a Jellyfish Merkle Tree (the `jmt` crate, SHA-256) over the
//! state's keys, with our own proof format and verifier.
//!
//! The tree is versioned by block height: the genesis state is version 0 and block `h` writes
//! version `h`. [`StateTree`] is a read-only view of one committed version. It reads the node's
//! storage through jmt's [`TreeReader`] and never writes: [`StateTree::apply`] returns the new
//! root with a [`StateTreeUpdate`], which the node commits in the same database transaction as
//! the block.
//!
//! A key is any byte string (the canonical encoding of a state key); the tree is indexed by
//! SHA-256 of the key, so keys are not stored in the tree. A [`StateProof`] shows that a key holds
//! a value, or holds none, under a root. Its format and [`StateProof::verify`] are ours and do not
//! use jmt, so that a client can check proofs from `docs/protocol-parts/state.md` alone; proofs
//! are also built here, by walking the tree's nodes, because jmt keeps the fields of its own
//! proofs private. The tests check both against jmt on random trees.

use crate::crypto::Digest;
use crate::storage::StorageError;
use bincode::{Decode, Encode};
use jmt::storage::{LeafNode, NibblePath, Node, NodeKey, StaleNodeIndex, TreeUpdateBatch};
use jmt::{KeyHash, Sha256Jmt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// jmt's storage interface, implemented by the node on its database and by [`MemoryStateStore`].
///
/// `get_node_option` returns the node stored under a key, or `None`. `get_value_option(v, h)`
/// returns the newest value written for key hash `h` at a version `<= v`, and `None` if there is
/// none or if that newest write is a deletion. `get_rightmost_leaf` serves only jmt's state-sync
/// restore, which ledger-core never calls.
pub use jmt::storage::TreeReader;

/// The root of the empty tree: jmt's placeholder for an empty subtree, the 32 ASCII bytes
/// `SPARSE_MERKLE_PLACEHOLDER_HASH__` (not the hash of anything). It is the root "before genesis"
/// and the root of a version whose keys were all deleted.
pub const EMPTY_STATE_ROOT: Digest = Digest::Sha256(PLACEHOLDER);

/// The most siblings a [`StateProof`] may carry: one per bit of a SHA-256 key hash.
pub const STATE_PROOF_SIBLINGS_MAX: usize = 256;

const PLACEHOLDER: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";
const LEAF_DOMAIN_SEPARATOR: &[u8] = b"JMT::LeafNode";
const INTERNAL_DOMAIN_SEPARATOR: &[u8] = b"JMT::IntrnalNode";
/// Nibbles (4-bit digits) in a key hash: the deepest a jmt path can go.
const KEY_HASH_NIBBLES: usize = 64;

/// A read-only view of the committed state at one version.
pub struct StateTree<'r, R: TreeReader> {
    reader: &'r R,
    version: Option<u64>,
}

impl<'r, R: TreeReader> StateTree<'r, R> {
    /// A view of `version` in `reader`; `None` is the empty state before genesis, which reads
    /// nothing from storage.
    pub fn new(reader: &'r R, version: Option<u64>) -> Self {
        StateTree { reader, version }
    }

    /// The version this view reads.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The value of `key` at this version, or `None` if it has none.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(version) = self.version else {
            return Ok(None);
        };
        self.jmt()
            .get(KeyHash(key_hash(key)), version)
            .map_err(|error| storage_error("reading a state value", version, error))
    }

    /// The root hash committing to the whole map at this version ([`EMPTY_STATE_ROOT`] for an
    /// empty map). Fails if the version has no root in storage (never written, or pruned).
    pub fn root(&self) -> Result<Digest, StorageError> {
        let Some(version) = self.version else {
            return Ok(EMPTY_STATE_ROOT);
        };
        let root = self
            .jmt()
            .get_root_hash(version)
            .map_err(|error| storage_error("reading the state root", version, error))?;
        Ok(Digest::Sha256(root.0))
    }

    /// The value of `key` at this version with a proof of it, or of its absence, under
    /// [`StateTree::root`]. Reads one node per level of the key's path (about log16 of the number
    /// of keys), plus one value.
    pub fn prove(&self, key: &[u8]) -> Result<(Option<Vec<u8>>, StateProof), StorageError> {
        let Some(version) = self.version else {
            return Ok((
                None,
                StateProof {
                    leaf: None,
                    siblings: Vec::new(),
                },
            ));
        };
        let key_hash = key_hash(key);
        let mut path: Vec<u8> = Vec::new();
        let mut siblings_from_top: Vec<[u8; 32]> = Vec::new();
        let mut node = self.read_node(version, &path)?;
        while let Node::Internal(internal) = node {
            if path.len() == KEY_HASH_NIBBLES {
                return Err(corrupt(version, "an internal node below the last nibble"));
            }
            let slots: Slots = std::array::from_fn(|index| {
                internal.child((index as u8).into()).map(|child| Slot {
                    hash: child.hash,
                    version: child.version,
                    is_leaf: child.is_leaf(),
                })
            });
            let nibble = nibble_at(&key_hash, path.len());
            let Some((child_nibble, child_version)) =
                descend(&slots, nibble, &mut siblings_from_top)
            else {
                return Ok((None, StateProof::new(None, siblings_from_top)));
            };
            path.push(child_nibble);
            node = self.read_node(child_version, &path)?;
        }
        match node {
            Node::Leaf(leaf) => self.finish_at_leaf(version, &key_hash, &leaf, siblings_from_top),
            Node::Null if path.is_empty() => Ok((None, StateProof::new(None, Vec::new()))),
            _ => Err(corrupt(version, "a null node below the root")),
        }
    }

    /// Computes the root of version `new_version` after setting (`Some`) or deleting (`None`)
    /// each key of `changes`, and returns it with the nodes and values to write. Nothing is
    /// written: the node commits the [`StateTreeUpdate`], after which a view of `new_version`
    /// reads the new state. Reads O(changes × log n) nodes.
    ///
    /// Fails if this version's root is missing: jmt would otherwise start from an empty tree.
    ///
    /// # Panics
    ///
    /// If `new_version` is not this version plus one (0 for the view before genesis): applying
    /// onto any other version would fork the state, a bug in the caller.
    pub fn apply(
        &self,
        changes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        new_version: u64,
    ) -> Result<(Digest, StateTreeUpdate), StorageError> {
        let next_version = self
            .version
            .map_or(Some(0), |version| version.checked_add(1));
        assert_eq!(
            Some(new_version),
            next_version,
            "state tree version {:?} can only be followed by the next version",
            self.version
        );
        if self.version.is_some() {
            self.root()?;
        }
        let value_set = changes
            .iter()
            .map(|(key, value)| (KeyHash(key_hash(key)), value.clone()));
        let (root, batch) = self
            .jmt()
            .put_value_set(value_set, new_version)
            .map_err(|error| storage_error("computing the state tree", new_version, error))?;
        Ok((Digest::Sha256(root.0), StateTreeUpdate { batch }))
    }

    fn jmt(&self) -> Sha256Jmt<'r, R> {
        Sha256Jmt::new(self.reader)
    }

    /// Reads the node at `path` (nibbles from the root) written at `version`; it must exist.
    fn read_node(&self, version: u64, path: &[u8]) -> Result<Node, StorageError> {
        let nibble_path: NibblePath = path.iter().map(|&nibble| nibble.into()).collect();
        let node_key = NodeKey::new(version, nibble_path);
        match self.reader.get_node_option(&node_key) {
            Ok(Some(node)) => Ok(node),
            Ok(None) => Err(StorageError(format!(
                "state tree node {node_key:?} is missing"
            ))),
            Err(error) => Err(StorageError(format!(
                "reading state tree node {node_key:?}: {error:#}"
            ))),
        }
    }

    /// Ends a proof at the leaf the key's path reached: the key's own (presence) or another key's
    /// sharing the path so far (absence). jmt leaves hold no value, so it is read to rebuild the
    /// leaf's value hash, and checked against the leaf's hash.
    fn finish_at_leaf(
        &self,
        version: u64,
        key_hash: &[u8; 32],
        leaf: &LeafNode,
        siblings_from_top: Vec<[u8; 32]>,
    ) -> Result<(Option<Vec<u8>>, StateProof), StorageError> {
        let leaf_key_hash = leaf.key_hash().0;
        let value = self
            .jmt()
            .get(leaf.key_hash(), version)
            .map_err(|error| storage_error("reading a state value", version, error))?
            .ok_or_else(|| corrupt(version, "a leaf whose value is missing"))?;
        let proof_leaf = StateProofLeaf {
            key_hash: Digest::Sha256(leaf_key_hash),
            value_hash: Digest::sha256(&value),
        };
        if proof_leaf.hash() != leaf.hash::<sha2::Sha256>() {
            return Err(corrupt(
                version,
                "a leaf that does not match its stored value",
            ));
        }
        let found = (leaf_key_hash == *key_hash).then_some(value);
        Ok((found, StateProof::new(Some(proof_leaf), siblings_from_top)))
    }
}

/// The writes that commit one new version of the state tree, from [`StateTree::apply`].
///
/// The node must persist [`nodes`](Self::nodes) and [`values`](Self::values) in the block's
/// database transaction, so that its [`TreeReader`] returns them. [`stale_nodes`](Self::stale_nodes)
/// lists the nodes this version replaced; they are needed only to read older versions and may be
/// deleted once no version older than their `stale_since_version` is served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateTreeUpdate {
    batch: TreeUpdateBatch,
}

impl StateTreeUpdate {
    /// New tree nodes by key. Keys are never rewritten: each names the version that wrote it.
    pub fn nodes(&self) -> &BTreeMap<NodeKey, Node> {
        self.batch.node_batch.nodes()
    }

    /// New values by (version, key hash); `None` records a deletion, which the reader must return
    /// as "no value" for this and later versions until the key is written again.
    pub fn values(&self) -> &BTreeMap<(u64, KeyHash), Option<Vec<u8>>> {
        self.batch.node_batch.values()
    }

    /// Nodes made stale by this version, for pruning.
    pub fn stale_nodes(&self) -> &BTreeSet<StaleNodeIndex> {
        &self.batch.stale_node_index_batch
    }

    /// jmt's own batch, for a node that persists it whole (with its per-version statistics).
    pub fn into_batch(self) -> TreeUpdateBatch {
        self.batch
    }
}

/// An in-memory [`TreeReader`] for tests and examples. It keeps every version (it never prunes,
/// so it ignores stale nodes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStateStore {
    nodes: BTreeMap<NodeKey, Node>,
    /// Values by (key hash, version), so the newest version up to a bound is a range's last entry.
    values: BTreeMap<([u8; 32], u64), Option<Vec<u8>>>,
}

impl MemoryStateStore {
    /// An empty store: no version has been written.
    pub fn new() -> Self {
        MemoryStateStore::default()
    }

    /// Commits an update, as the node does in its database transaction.
    pub fn write(&mut self, update: &StateTreeUpdate) {
        let nodes = update.nodes().iter();
        self.nodes
            .extend(nodes.map(|(key, node)| (key.clone(), node.clone())));
        let values = update.values().iter();
        self.values.extend(
            values.map(|((version, key_hash), value)| ((key_hash.0, *version), value.clone())),
        );
    }
}

impl TreeReader for MemoryStateStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.nodes.get(node_key).cloned())
    }

    fn get_value_option(
        &self,
        max_version: u64,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        let mut history = self
            .values
            .range((key_hash.0, 0)..=(key_hash.0, max_version));
        Ok(history.next_back().and_then(|(_, value)| value.clone()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("get_rightmost_leaf serves only jmt's restore, which ledger-core never uses")
    }
}

/// A proof that a key holds a given value, or no value, under a state root.
///
/// `siblings` run from the bottom of the key's path up to the root; see [`StateProof::verify`]
/// and `docs/protocol-parts/state.md` for the exact rules.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct StateProof {
    /// The leaf where the key's path ends: the key's own leaf (presence), another key's leaf
    /// sharing the path (absence), or `None` if the path ends in an empty subtree (absence).
    pub leaf: Option<StateProofLeaf>,
    /// The hash of the other child at each level of the path, deepest first.
    pub siblings: Vec<Digest>,
}

/// The leaf of a [`StateProof`]: a key hash and the hash of the value it holds.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct StateProofLeaf {
    /// SHA-256 of the key.
    pub key_hash: Digest,
    /// SHA-256 of the value.
    pub value_hash: Digest,
}

/// Why a [`StateProof`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateProofError {
    /// More siblings than a 256-bit key hash has bits; refused before any hashing.
    #[error("state proof has {count} siblings, more than the {max} allowed")]
    TooManySiblings {
        /// Siblings in the proof.
        count: usize,
        /// [`STATE_PROOF_SIBLINGS_MAX`].
        max: usize,
    },
    /// A value was claimed, but the proof's leaf belongs to another key.
    #[error("state proof leaf is for key hash {found}, not {expected}")]
    KeyMismatch {
        /// SHA-256 of the claimed key.
        expected: Digest,
        /// The leaf's key hash.
        found: Digest,
    },
    /// A value was claimed, but the proof's leaf holds a different one.
    #[error(
        "state proof leaf holds value hash {found}, but the claimed value hashes to {expected}"
    )]
    ValueMismatch {
        /// SHA-256 of the claimed value.
        expected: Digest,
        /// The leaf's value hash.
        found: Digest,
    },
    /// A value was claimed, but the proof ends in an empty subtree (it proves absence).
    #[error("state proof ends in an empty subtree, so it cannot show a value")]
    MissingLeaf,
    /// Absence was claimed, but the proof's leaf is the key's own (it proves presence).
    #[error("state proof shows key hash {key_hash} present, so it cannot show absence")]
    UnexpectedLeaf {
        /// SHA-256 of the key.
        key_hash: Digest,
    },
    /// Absence was claimed, but the proof's leaf is not on the key's path, so the key could be
    /// elsewhere in the tree.
    #[error(
        "state proof leaf {leaf_key_hash} shares {shared_bits} leading bits with key hash \
         {key_hash}, fewer than the proof's {depth} levels"
    )]
    LeafOffPath {
        /// SHA-256 of the key.
        key_hash: Digest,
        /// The leaf's key hash.
        leaf_key_hash: Digest,
        /// Leading bits the two hashes share.
        shared_bits: usize,
        /// Levels of the proof (its number of siblings).
        depth: usize,
    },
    /// The proof does not lead to the expected root.
    #[error("state proof leads to root {computed}, not {expected}")]
    RootMismatch {
        /// The trusted root.
        expected: Digest,
        /// The root the proof leads to.
        computed: Digest,
    },
}

impl StateProof {
    /// Builds a proof from siblings collected from the root down (the order a walk finds them).
    fn new(leaf: Option<StateProofLeaf>, mut siblings_from_top: Vec<[u8; 32]>) -> StateProof {
        siblings_from_top.reverse();
        let siblings = siblings_from_top.into_iter().map(Digest::Sha256).collect();
        StateProof { leaf, siblings }
    }

    /// Checks that under `root`, `key` holds `value` (`Some`) or holds nothing (`None`).
    ///
    /// Implemented from the specification, independently of jmt (the tests check that it agrees
    /// with jmt's `SparseMerkleProof::verify`): check the leaf against the claim, then hash from
    /// the leaf (or the placeholder) up through the siblings, taking the key hash's bits from the
    /// deepest level up to choose left or right, and compare with `root`.
    pub fn verify(
        &self,
        root: &Digest,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateProofError> {
        if self.siblings.len() > STATE_PROOF_SIBLINGS_MAX {
            return Err(StateProofError::TooManySiblings {
                count: self.siblings.len(),
                max: STATE_PROOF_SIBLINGS_MAX,
            });
        }
        let key_hash = Digest::sha256(key);
        self.check_leaf(&key_hash, value)?;
        let computed = self.computed_root(key_hash.as_bytes());
        if computed != *root {
            return Err(StateProofError::RootMismatch {
                expected: *root,
                computed,
            });
        }
        Ok(())
    }

    /// Checks the leaf against the claim: presence needs the key's own leaf holding the value;
    /// absence needs no leaf, or another key's leaf whose hash shares the path's bits.
    fn check_leaf(&self, key_hash: &Digest, value: Option<&[u8]>) -> Result<(), StateProofError> {
        match (value, &self.leaf) {
            (Some(_), None) => Err(StateProofError::MissingLeaf),
            (Some(value), Some(leaf)) => {
                if leaf.key_hash != *key_hash {
                    return Err(StateProofError::KeyMismatch {
                        expected: *key_hash,
                        found: leaf.key_hash,
                    });
                }
                let value_hash = Digest::sha256(value);
                if leaf.value_hash != value_hash {
                    return Err(StateProofError::ValueMismatch {
                        expected: value_hash,
                        found: leaf.value_hash,
                    });
                }
                Ok(())
            }
            (None, Some(leaf)) => {
                if leaf.key_hash == *key_hash {
                    return Err(StateProofError::UnexpectedLeaf {
                        key_hash: *key_hash,
                    });
                }
                let shared_bits = common_prefix_bits(key_hash.as_bytes(), leaf.key_hash.as_bytes());
                if shared_bits < self.siblings.len() {
                    return Err(StateProofError::LeafOffPath {
                        key_hash: *key_hash,
                        leaf_key_hash: leaf.key_hash,
                        shared_bits,
                        depth: self.siblings.len(),
                    });
                }
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    /// Hashes from the bottom of the path to the root. The sibling at index `i` sits at depth
    /// `d = len - 1 - i`; bit `d` of the key hash (0 = most significant) says whether the path
    /// goes right (1: sibling on the left) or left (0: sibling on the right).
    fn computed_root(&self, key_hash: &[u8; 32]) -> Digest {
        let bottom = self.leaf.as_ref().map_or(PLACEHOLDER, StateProofLeaf::hash);
        let depth = self.siblings.len();
        let root = self
            .siblings
            .iter()
            .enumerate()
            .fold(bottom, |node, (index, sibling)| {
                if bit_at(key_hash, depth - 1 - index) {
                    internal_hash(sibling.as_bytes(), &node)
                } else {
                    internal_hash(&node, sibling.as_bytes())
                }
            });
        Digest::Sha256(root)
    }
}

impl StateProofLeaf {
    /// SHA-256("JMT::LeafNode" ‖ key hash ‖ value hash).
    fn hash(&self) -> [u8; 32] {
        let parts: [&[u8]; 3] = [
            LEAF_DOMAIN_SEPARATOR,
            self.key_hash.as_bytes(),
            self.value_hash.as_bytes(),
        ];
        *Digest::sha256_parts(&parts).as_bytes()
    }
}

/// SHA-256("JMT::IntrnalNode" ‖ left ‖ right): jmt's separator, with its missing vowel.
fn internal_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    *Digest::sha256_parts(&[INTERNAL_DOMAIN_SEPARATOR, left, right]).as_bytes()
}

fn key_hash(key: &[u8]) -> [u8; 32] {
    *Digest::sha256(key).as_bytes()
}

/// Bit `index` of `hash`, 0 being the most significant bit of the first byte.
fn bit_at(hash: &[u8; 32], index: usize) -> bool {
    (hash[index / 8] >> (7 - index % 8)) & 1 == 1
}

/// Nibble `index` of `hash`, 0 being the high half of the first byte (jmt's path order).
fn nibble_at(hash: &[u8; 32], index: usize) -> u8 {
    let byte = hash[index / 2];
    if index % 2 == 0 {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

fn common_prefix_bits(a: &[u8; 32], b: &[u8; 32]) -> usize {
    (0..256)
        .take_while(|&index| bit_at(a, index) == bit_at(b, index))
        .count()
}

/// What an internal node records about one child: enough to hash it and to find it.
#[derive(Clone, Copy)]
struct Slot {
    hash: [u8; 32],
    version: u64,
    is_leaf: bool,
}

/// The 16 children of a jmt internal node, indexed by nibble.
type Slots = [Option<Slot>; 16];

/// Walks the four binary levels inside one internal node toward child `nibble`, pushing the
/// sibling hash of each level, top first. Returns the child to read next (its nibble and
/// version), or `None` if the path ends in an empty subtree. As jmt's `get_with_proof` does, it
/// stops early where the path's range holds a single leaf, since jmt hashes such a range as that
/// leaf: the leaf is the key's own or proves the key absent.
fn descend(slots: &Slots, nibble: u8, siblings_from_top: &mut Vec<[u8; 32]>) -> Option<(u8, u64)> {
    for height in (0..4).rev() {
        let width = 1u8 << height;
        let start = nibble & !(width - 1);
        siblings_from_top.push(subtree_hash(slots, start ^ width, width));
        let mut occupied = (start..start + width)
            .filter_map(|index| slots[usize::from(index)].map(|slot| (index, slot)));
        match (occupied.next(), occupied.next()) {
            (None, _) => return None,
            (Some((index, slot)), None) if width == 1 || slot.is_leaf => {
                return Some((index, slot.version))
            }
            _ => {}
        }
    }
    unreachable!("a range one child wide holds at most one child")
}

/// The hash of the binary subtree over children `start .. start + width` of an internal node,
/// as jmt computes it: the placeholder if empty, the child's own hash if it is the only child and
/// a leaf (or the range is one child wide), else the internal hash of the two halves.
fn subtree_hash(slots: &Slots, start: u8, width: u8) -> [u8; 32] {
    let mut occupied = (start..start + width).filter_map(|index| slots[usize::from(index)]);
    match (occupied.next(), occupied.next()) {
        (None, _) => PLACEHOLDER,
        (Some(slot), None) if width == 1 || slot.is_leaf => slot.hash,
        _ => {
            let half = width / 2;
            internal_hash(
                &subtree_hash(slots, start, half),
                &subtree_hash(slots, start + half, half),
            )
        }
    }
}

fn storage_error(what: &str, version: u64, error: anyhow::Error) -> StorageError {
    StorageError(format!("{what} at state version {version}: {error:#}"))
}

fn corrupt(version: u64, what: &str) -> StorageError {
    StorageError(format!(
        "state tree at version {version} is corrupt: {what}"
    ))
}
