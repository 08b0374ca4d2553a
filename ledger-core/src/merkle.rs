//! The ledger-wide append-only Merkle tree of RFC 9162 (Certificate Transparency v2), §2.1.
//!
//! Every entry the ledger appends becomes a leaf. A client holding a signed root can check that an
//! entry is in the ledger (an inclusion proof) and that a later root extends an earlier one
//! without rewriting history (a consistency proof), from hashes alone, trusting no node's storage.
//! Hashing and proofs follow RFC 9162 exactly, so any RFC 9162 verifier can check them;
//! `docs/PROTOCOL.md` gives the algorithms step by step with test vectors.
//!
//! The node keeps a [`LedgerFrontier`], the O(log n) digests needed to append and to compute the
//! root, and stores every perfect subtree an append completes ([`CompletedNode`]). A proof for
//! any tree size up to the current one is then assembled from O(log n) reads of those nodes
//! through [`MerkleNodeReader`], without rescanning the ledger.

use crate::crypto::Digest;
use crate::storage::StorageError;
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The longest inclusion path accepted. A tree of fewer than 2^64 leaves is at most 64 levels
/// deep; longer paths are refused before any hashing, so a forged proof costs a verifier nothing.
pub const MERKLE_PATH_LEN_MAX: usize = 64;

/// The longest consistency path accepted: one more than [`MERKLE_PATH_LEN_MAX`], because besides
/// one hash per level the proof may start with a subtree of the old tree. Checked before hashing.
pub const CONSISTENCY_PATH_LEN_MAX: usize = MERKLE_PATH_LEN_MAX + 1;

/// Prefix of a leaf's hash input (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an interior node's hash input (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// The hash of a leaf, SHA-256(0x00 ‖ data) (RFC 9162 §2.1.1). The prefix differs from interior
/// nodes' 0x01, so a leaf can never be passed off as an interior node or the reverse.
pub fn leaf_hash(data: &[u8]) -> Digest {
    Digest::sha256_parts(&[&[LEAF_PREFIX], data])
}

/// The hash of an interior node, SHA-256(0x01 ‖ left ‖ right) over the raw 32-byte digests
/// (RFC 9162 §2.1.1). The algorithm tag of [`Digest`] is not hashed, as RFC 9162 verifiers expect.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    Digest::sha256_parts(&[&[NODE_PREFIX], left.as_bytes(), right.as_bytes()])
}

/// The root of the tree with no leaves: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub fn empty_root() -> Digest {
    Digest::sha256(b"")
}

/// Why a Merkle proof could not be built or did not verify, or why stored tree state is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The leaf is not in a tree of this size (this includes every leaf of the empty tree).
    #[error("leaf index {leaf_index} is outside a tree of {tree_size} leaves")]
    IndexOutOfRange {
        /// The requested or claimed leaf index.
        leaf_index: u64,
        /// The tree size it was checked against.
        tree_size: u64,
    },
    /// Consistency is only defined from a non-empty tree to a tree at least as large.
    #[error("no consistency proof from tree size {old_size} to {new_size}: need 0 < old <= new")]
    BadSizes {
        /// The earlier tree size.
        old_size: u64,
        /// The later tree size.
        new_size: u64,
    },
    /// The range is empty or not aligned like a subtree, so it has no node to read it from.
    #[error("leaves [{start}, {end}) do not form a subtree")]
    NotASubtree {
        /// First leaf of the range.
        start: u64,
        /// One past the last leaf of the range.
        end: u64,
    },
    /// The proof is longer than any tree of 2^64 leaves can need; refused before hashing.
    #[error("proof path of {len} hashes exceeds the limit of {max}")]
    PathTooLong {
        /// Length of the path received.
        len: usize,
        /// The limit for this kind of proof.
        max: usize,
    },
    /// The proof does not have the number of hashes its tree sizes call for.
    #[error("proof path has {got} hashes, but its tree sizes need {expected}")]
    WrongPathLength {
        /// The length the sizes (and index) determine.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The proof leads to a different root than the one the verifier trusts.
    #[error("proof yields root {computed} for tree size {tree_size}, expected {expected}")]
    RootMismatch {
        /// The size of the tree whose root did not match.
        tree_size: u64,
        /// The trusted root.
        expected: Digest,
        /// The root the proof leads to.
        computed: Digest,
    },
    /// Storage lacks a node that a tree of the requested size has completed.
    #[error("Merkle node at level {level}, index {index} is not in storage")]
    MissingNode {
        /// Height of the node (0 for a leaf).
        level: u8,
        /// Position of the node among those of its level.
        index: u64,
    },
    /// A stored frontier does not have one peak per set bit of its size.
    #[error("frontier of {size} leaves has {peaks} peaks, but needs {expected}")]
    CorruptFrontier {
        /// The frontier's leaf count.
        size: u64,
        /// How many peaks it holds.
        peaks: usize,
        /// How many it must hold: the number of set bits of `size`.
        expected: u32,
    },
    /// Reading a node from storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A perfect subtree that an append completed: its root hash and position.
///
/// The node at `level` L and `index` i covers leaves [i·2^L, (i+1)·2^L); level 0 is a leaf hash.
/// Storing exactly these lets [`inclusion_proof`] and [`consistency_proof`] serve any tree size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CompletedNode {
    /// Height of the subtree: it has 2^level leaves.
    pub level: u8,
    /// Position among the subtrees of this level, counted from the left.
    pub index: u64,
    /// The subtree's Merkle Tree Hash.
    pub hash: Digest,
}

/// The state needed to append leaves and compute the root, in O(log n) digests.
///
/// `peaks` are the roots of the perfect subtrees in the binary decomposition of `size`, largest
/// (leftmost) first: 13 = 8 + 4 + 1 leaves gives three peaks. A frontier read back from storage
/// must be checked with [`LedgerFrontier::validate`] before use.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LedgerFrontier {
    size: u64,
    peaks: Vec<Digest>,
}

impl LedgerFrontier {
    /// The frontier of the tree with no leaves.
    pub fn empty() -> LedgerFrontier {
        LedgerFrontier {
            size: 0,
            peaks: Vec::new(),
        }
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes, reading one node per
    /// peak; for recovery, or to check a stored frontier against the stored nodes.
    pub fn from_nodes<R>(reader: &R, size: u64) -> Result<LedgerFrontier, MerkleError>
    where
        R: MerkleNodeReader + ?Sized,
    {
        let peaks = perfect_subtrees(reader, 0, size)?;
        Ok(LedgerFrontier { size, peaks })
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 9162 Merkle Tree Hash of all leaves so far: each peak is the left child of the
    /// combination of the peaks to its right, which is how MTH splits at the largest power of two.
    pub fn root(&self) -> Digest {
        fold_peaks(&self.peaks).unwrap_or_else(empty_root)
    }

    /// Checks that there is one peak per set bit of the size, as every frontier built by
    /// [`LedgerFrontier::append`] has; a frontier decoded from storage may not.
    pub fn validate(&self) -> Result<(), MerkleError> {
        let expected = self.size.count_ones();
        if self.peaks.len() != expected as usize {
            return Err(MerkleError::CorruptFrontier {
                size: self.size,
                peaks: self.peaks.len(),
                expected,
            });
        }
        Ok(())
    }

    /// Appends a leaf, given as [`leaf_hash`] of its data, and returns every perfect subtree this
    /// completes: the leaf itself, then one node per level it merges into, lowest first. The
    /// caller stores them all so that proofs never need the ledger rescanned.
    ///
    /// Panics if the frontier is corrupt (see [`LedgerFrontier::validate`]) or already holds
    /// 2^64 − 1 leaves.
    pub fn append(&mut self, leaf: Digest) -> Vec<CompletedNode> {
        let index = self.size;
        let new_size = index
            .checked_add(1)
            .expect("the ledger cannot hold 2^64 leaves");
        // Each trailing one bit of the old size is a peak that the new leaf's subtree completes.
        // The old size is below 2^64 - 1, so there are at most 63 of them and levels fit a u8.
        let merges = index.trailing_ones() as u8;
        let mut completed = Vec::with_capacity(usize::from(merges) + 1);
        let mut hash = leaf;
        completed.push(CompletedNode {
            level: 0,
            index,
            hash,
        });
        for level in 1..=merges {
            let left = self
                .peaks
                .pop()
                .expect("a frontier has one peak per set bit of its size");
            hash = node_hash(&left, &hash);
            completed.push(CompletedNode {
                level,
                index: index >> level,
                hash,
            });
        }
        self.peaks.push(hash);
        self.size = new_size;
        assert_eq!(
            self.peaks.len(),
            self.size.count_ones() as usize,
            "frontier peaks out of step with its size"
        );
        completed
    }
}

/// Read access to the completed nodes a node has stored, so proofs can be built from storage.
pub trait MerkleNodeReader {
    /// The hash of the completed node at `level`, `index`, or `None` if none was stored.
    fn node(&self, level: u8, index: u64) -> Result<Option<Digest>, StorageError>;
}

/// Completed nodes kept in memory: for tests, and for callers that build small trees.
#[derive(Clone, Debug, Default)]
pub struct MemoryMerkleStore {
    nodes: HashMap<(u8, u64), Digest>,
}

impl MemoryMerkleStore {
    /// Stores nodes returned by [`LedgerFrontier::append`].
    pub fn insert(&mut self, nodes: &[CompletedNode]) {
        for node in nodes {
            self.nodes.insert((node.level, node.index), node.hash);
        }
    }

    /// How many nodes are stored: 2n − popcount(n) for a tree of n leaves.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is stored.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl MerkleNodeReader for MemoryMerkleStore {
    fn node(&self, level: u8, index: u64) -> Result<Option<Digest>, StorageError> {
        Ok(self.nodes.get(&(level, index)).copied())
    }
}

fn read_node<R: MerkleNodeReader + ?Sized>(
    reader: &R,
    level: u8,
    index: u64,
) -> Result<Digest, MerkleError> {
    reader
        .node(level, index)?
        .ok_or(MerkleError::MissingNode { level, index })
}

/// Reads the roots of the perfect subtrees that make up leaves [start, end), largest first. Each
/// is a completed node when `start` is a multiple of the largest piece, as callers ensure.
fn perfect_subtrees<R>(reader: &R, start: u64, end: u64) -> Result<Vec<Digest>, MerkleError>
where
    R: MerkleNodeReader + ?Sized,
{
    let width = end - start;
    let mut roots = Vec::with_capacity(width.count_ones() as usize);
    let mut offset = start;
    for level in (0..u64::BITS as u8).rev() {
        if width >> level & 1 == 1 {
            roots.push(read_node(reader, level, offset >> level)?);
            offset += 1 << level;
        }
    }
    Ok(roots)
}

/// Combines subtree roots given largest (leftmost) first as RFC 9162's MTH does: each root is the
/// left child of the combination of all roots to its right. `None` for no roots.
fn fold_peaks(roots: &[Digest]) -> Option<Digest> {
    roots
        .iter()
        .rev()
        .copied()
        .reduce(|right, left| node_hash(&left, &right))
}

/// The RFC 9162 Merkle Tree Hash of leaves [start, end), assembled from completed nodes with at
/// most 64 reads.
///
/// The range must be non-empty and `start` a multiple of the smallest power of two ≥ end − start:
/// every subtree the RFC's proofs use has this shape, and it is what makes each perfect piece a
/// completed node. Other ranges give [`MerkleError::NotASubtree`].
pub fn subtree_root<R>(reader: &R, start: u64, end: u64) -> Result<Digest, MerkleError>
where
    R: MerkleNodeReader + ?Sized,
{
    if start >= end || start.trailing_zeros() < ceil_log2(end - start) {
        return Err(MerkleError::NotASubtree { start, end });
    }
    let roots = perfect_subtrees(reader, start, end)?;
    Ok(fold_peaks(&roots).expect("a non-empty range has a perfect subtree"))
}

/// The smallest e with 2^e ≥ n, for n ≥ 1.
fn ceil_log2(n: u64) -> u32 {
    u64::BITS - (n - 1).leading_zeros()
}

/// RFC 9162's split point k: the largest power of two strictly less than n, for n ≥ 2.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2, "only trees of two or more leaves split");
    1 << (ceil_log2(n) - 1)
}

/// Proof that a leaf is in a tree of a given size (RFC 9162 §2.1.3): the sibling hashes on the
/// way from the leaf to the root, lowest first.
///
/// It proves membership only relative to a root the verifier trusts *for `tree_size`*: the caller
/// must check that `tree_size` (and `leaf_index`) are the ones it asked about, since for some
/// pairs of sizes the same path leads to the same root.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct InclusionProof {
    /// Position of the leaf, from 0.
    pub leaf_index: u64,
    /// Number of leaves of the tree whose root the proof leads to.
    pub tree_size: u64,
    /// The RFC 9162 inclusion path, lowest sibling first.
    pub path: Vec<Digest>,
}

/// Proof that a tree of `new_size` leaves extends the tree of its first `old_size` leaves
/// unchanged (RFC 9162 §2.1.4). As with [`InclusionProof`], the caller must check that the sizes
/// are those of the tree heads it holds.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// Size of the earlier tree; at least 1.
    pub old_size: u64,
    /// Size of the later tree; at least `old_size`.
    pub new_size: u64,
    /// The RFC 9162 consistency path; empty when the sizes are equal.
    pub path: Vec<Digest>,
}

/// Builds the RFC 9162 §2.1.3.1 inclusion proof for leaf `leaf_index` in the tree of the first
/// `tree_size` leaves. Needs only nodes that tree has completed, so historical sizes work too;
/// reads at most one node per path hash plus 64 for the one right-edge sibling that is not perfect.
pub fn inclusion_proof<R>(
    reader: &R,
    leaf_index: u64,
    tree_size: u64,
) -> Result<InclusionProof, MerkleError>
where
    R: MerkleNodeReader + ?Sized,
{
    if leaf_index >= tree_size {
        return Err(MerkleError::IndexOutOfRange {
            leaf_index,
            tree_size,
        });
    }
    // Walk down PATH(m, D[start:end]) from the whole tree, noting the sibling of the half that
    // holds the leaf; the RFC lists those siblings from the leaf upwards.
    let (mut start, mut end) = (0, tree_size);
    let mut path = Vec::new();
    while end - start > 1 {
        let mid = start + split_point(end - start);
        if leaf_index < mid {
            path.push(subtree_root(reader, mid, end)?);
            end = mid;
        } else {
            path.push(subtree_root(reader, start, mid)?);
            start = mid;
        }
    }
    path.reverse();
    Ok(InclusionProof {
        leaf_index,
        tree_size,
        path,
    })
}

/// Builds the RFC 9162 §2.1.4.1 consistency proof PROOF(old_size, D[new_size]), with the same
/// storage needs and read bound as [`inclusion_proof`]. Equal sizes give an empty path.
pub fn consistency_proof<R>(
    reader: &R,
    old_size: u64,
    new_size: u64,
) -> Result<ConsistencyProof, MerkleError>
where
    R: MerkleNodeReader + ?Sized,
{
    if old_size == 0 || old_size > new_size {
        return Err(MerkleError::BadSizes { old_size, new_size });
    }
    // Walk down SUBPROOF(m, D[start:end], b) from the whole tree while the old tree ends strictly
    // inside [start, end); `known` is b: the subtree reached is the old tree, whose root the
    // verifier holds, so it is left out.
    let (mut start, mut end, mut known) = (0, new_size, true);
    let mut path = Vec::new();
    while old_size < end {
        let mid = start + split_point(end - start);
        if old_size <= mid {
            path.push(subtree_root(reader, mid, end)?);
            end = mid;
        } else {
            path.push(subtree_root(reader, start, mid)?);
            start = mid;
            known = false;
        }
    }
    if !known {
        path.push(subtree_root(reader, start, end)?);
    }
    path.reverse();
    Ok(ConsistencyProof {
        old_size,
        new_size,
        path,
    })
}

/// One iteration of the index walk shared by RFC 9162's verification algorithms (§2.1.3.2 steps
/// 4b–4c, §2.1.4.2 steps 6b–6c). Returns whether the next path hash is a left sibling (LSB(fn) set
/// or fn = sn), then shifts fn and sn as those steps say.
fn walk_step(f_n: &mut u64, s_n: &mut u64) -> bool {
    let sibling_is_left = *f_n & 1 == 1 || *f_n == *s_n;
    if sibling_is_left {
        while *f_n & 1 == 0 && *f_n != 0 {
            *f_n >>= 1;
            *s_n >>= 1;
        }
    }
    *f_n >>= 1;
    *s_n >>= 1;
    sibling_is_left
}

/// How many path hashes the walk from (fn, sn) consumes before sn reaches 0: a proof of any other
/// length fails the RFC's checks (steps 4a/5, 6a/7), so it is refused before hashing.
fn walk_len(mut f_n: u64, mut s_n: u64) -> usize {
    let mut len = 0;
    while s_n != 0 {
        walk_step(&mut f_n, &mut s_n);
        len += 1;
    }
    len
}

/// Refuses a path over `max` hashes, then one of any length but `expected`, before any hashing.
fn check_path_len(got: usize, max: usize, expected: usize) -> Result<(), MerkleError> {
    if got > max {
        return Err(MerkleError::PathTooLong { len: got, max });
    }
    if got != expected {
        return Err(MerkleError::WrongPathLength { expected, got });
    }
    Ok(())
}

fn check_root(tree_size: u64, expected: &Digest, computed: Digest) -> Result<(), MerkleError> {
    if computed != *expected {
        return Err(MerkleError::RootMismatch {
            tree_size,
            expected: *expected,
            computed,
        });
    }
    Ok(())
}

impl InclusionProof {
    /// The root that this proof leads to from `leaf` (a [`leaf_hash`]), by RFC 9162 §2.1.3.2
    /// steps 1–4; for callers that look the root up rather than compare it.
    pub fn root_from_leaf(&self, leaf: &Digest) -> Result<Digest, MerkleError> {
        let (leaf_index, tree_size) = (self.leaf_index, self.tree_size);
        if leaf_index >= tree_size {
            return Err(MerkleError::IndexOutOfRange {
                leaf_index,
                tree_size,
            });
        }
        let (mut f_n, mut s_n) = (leaf_index, tree_size - 1);
        check_path_len(self.path.len(), MERKLE_PATH_LEN_MAX, walk_len(f_n, s_n))?;
        let mut r = *leaf;
        for p in &self.path {
            r = if walk_step(&mut f_n, &mut s_n) {
                node_hash(p, &r)
            } else {
                node_hash(&r, p)
            };
        }
        debug_assert_eq!(
            s_n, 0,
            "the length check guarantees the walk ends at sn = 0"
        );
        Ok(r)
    }

    /// Checks RFC 9162 §2.1.3.2: `leaf` (a [`leaf_hash`]) is leaf `leaf_index` of the tree of
    /// `tree_size` leaves whose root is `root`. The caller must hold `root` as the root for
    /// exactly `self.tree_size` (see [`InclusionProof`]).
    pub fn verify(&self, leaf: &Digest, root: &Digest) -> Result<(), MerkleError> {
        check_root(self.tree_size, root, self.root_from_leaf(leaf)?)
    }
}

impl ConsistencyProof {
    /// Checks RFC 9162 §2.1.4.2: the tree of `new_size` leaves with root `new_root` begins with
    /// the tree of `old_size` leaves with root `old_root`. Equal sizes need an empty path and
    /// equal roots. The caller must hold the roots for exactly these sizes.
    pub fn verify(&self, old_root: &Digest, new_root: &Digest) -> Result<(), MerkleError> {
        let (old_size, new_size) = (self.old_size, self.new_size);
        if old_size == 0 || old_size > new_size {
            return Err(MerkleError::BadSizes { old_size, new_size });
        }
        if old_size == new_size {
            check_path_len(self.path.len(), CONSISTENCY_PATH_LEN_MAX, 0)?;
            return check_root(new_size, new_root, *old_root);
        }
        // Steps 3-4.
        let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
        while f_n & 1 == 1 {
            f_n >>= 1;
            s_n >>= 1;
        }
        // Step 2: an old tree of 2^k leaves is itself a node of the new tree, so the proof omits
        // its root and the verifier supplies it. Steps 1 and 6a/7 are the length check.
        let omitted = old_size.is_power_of_two();
        let expected = walk_len(f_n, s_n) + usize::from(!omitted);
        check_path_len(self.path.len(), CONSISTENCY_PATH_LEN_MAX, expected)?;
        let (first, rest) = if omitted {
            (*old_root, &self.path[..])
        } else {
            (self.path[0], &self.path[1..])
        };
        // Steps 5-6.
        let (mut fr, mut sr) = (first, first);
        for c in rest {
            if walk_step(&mut f_n, &mut s_n) {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
            } else {
                sr = node_hash(&sr, c);
            }
        }
        debug_assert_eq!(
            s_n, 0,
            "the length check guarantees the walk ends at sn = 0"
        );
        // Step 7.
        check_root(old_size, old_root, fr)?;
        check_root(new_size, new_root, sr)
    }
}
