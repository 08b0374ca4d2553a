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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{decode, encode};
    use proptest::prelude::*;
    use std::cell::Cell;
    use std::sync::OnceLock;

    // ---- Reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 transcribed literally, recursion and
    // all, hashing with SHA-256 directly rather than through the functions under test. ----

    fn ref_hash(prefix: u8, parts: &[&[u8]]) -> Digest {
        let mut input = vec![prefix];
        for part in parts {
            input.extend_from_slice(part);
        }
        Digest::sha256(&input)
    }

    fn ref_k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn ref_mth(data: &[Vec<u8>]) -> Digest {
        match data.len() {
            0 => Digest::sha256(b""),
            1 => ref_hash(0x00, &[&data[0]]),
            n => {
                let k = ref_k(n);
                ref_hash(
                    0x01,
                    &[
                        ref_mth(&data[..k]).as_bytes(),
                        ref_mth(&data[k..]).as_bytes(),
                    ],
                )
            }
        }
    }

    fn ref_path(m: usize, data: &[Vec<u8>]) -> Vec<Digest> {
        let n = data.len();
        if n == 1 {
            return Vec::new();
        }
        let k = ref_k(n);
        let (mut path, sibling) = if m < k {
            (ref_path(m, &data[..k]), &data[k..])
        } else {
            (ref_path(m - k, &data[k..]), &data[..k])
        };
        path.push(ref_mth(sibling));
        path
    }

    fn ref_subproof(m: usize, data: &[Vec<u8>], b: bool) -> Vec<Digest> {
        let n = data.len();
        if m == n {
            return if b { Vec::new() } else { vec![ref_mth(data)] };
        }
        let k = ref_k(n);
        let (mut proof, sibling) = if m <= k {
            (ref_subproof(m, &data[..k], b), &data[k..])
        } else {
            (ref_subproof(m - k, &data[k..], false), &data[..k])
        };
        proof.push(ref_mth(sibling));
        proof
    }

    // ---- Fixtures. ----

    fn leaf_data(i: u64) -> Vec<u8> {
        format!("leaf-{i}").into_bytes()
    }

    fn data_upto(n: u64) -> Vec<Vec<u8>> {
        (0..n).map(leaf_data).collect()
    }

    /// A tree grown one leaf at a time; `store` holds only what the appends so far completed, so
    /// a proof that read a node a tree of this size lacks would fail with `MissingNode`.
    struct Tree {
        frontier: LedgerFrontier,
        store: MemoryMerkleStore,
        leaves: Vec<Digest>,
        /// `roots[n]` is the root of the first n leaves, as the frontier computed it.
        roots: Vec<Digest>,
    }

    impl Tree {
        fn new() -> Tree {
            let frontier = LedgerFrontier::empty();
            let roots = vec![frontier.root()];
            Tree {
                frontier,
                store: MemoryMerkleStore::default(),
                leaves: Vec::new(),
                roots,
            }
        }

        fn grown(n: u64) -> Tree {
            let mut tree = Tree::new();
            for _ in 0..n {
                tree.grow();
            }
            tree
        }

        fn grow(&mut self) -> Vec<CompletedNode> {
            let leaf = leaf_hash(&leaf_data(self.frontier.size()));
            let completed = self.frontier.append(leaf);
            self.store.insert(&completed);
            self.leaves.push(leaf);
            self.roots.push(self.frontier.root());
            completed
        }

        fn root(&self, size: u64) -> Digest {
            self.roots[size as usize]
        }

        fn leaf(&self, index: u64) -> Digest {
            self.leaves[index as usize]
        }
    }

    /// One tree of 100,000 leaves shared by the tests that only need a store for large sizes.
    fn big_tree() -> &'static Tree {
        static BIG: OnceLock<Tree> = OnceLock::new();
        BIG.get_or_init(|| Tree::grown(100_000))
    }

    fn flip(digest: &Digest, byte: usize, mask: u8) -> Digest {
        let mut bytes = *digest.as_bytes();
        bytes[byte] ^= mask;
        Digest::Sha256(bytes)
    }

    fn digest(hex_text: &str) -> Digest {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut bytes).expect("test vector is 32 bytes of hex");
        Digest::Sha256(bytes)
    }

    // ---- Known answers. ----

    #[test]
    fn empty_tree_root_is_sha256_of_the_empty_string() {
        let expected = digest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(empty_root(), expected);
        assert_eq!(LedgerFrontier::empty().root(), expected);
    }

    /// The Certificate Transparency project's published RFC 6962 test vectors (same hashing as
    /// RFC 9162), recomputed by `docs/verifier/check_merkle_vectors.py` with hashlib.
    #[test]
    fn hashing_matches_certificate_transparency_vectors() {
        let inputs = [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut frontier = LedgerFrontier::empty();
        let mut store = MemoryMerkleStore::default();
        for (input, root) in inputs.iter().zip(roots) {
            store.insert(&frontier.append(leaf_hash(&hex::decode(input).unwrap())));
            assert_eq!(
                frontier.root(),
                digest(root),
                "root of {} leaves",
                frontier.size()
            );
        }
        let path = |hexes: &[&str]| hexes.iter().map(|h| digest(h)).collect::<Vec<_>>();
        let (h1, h2, h3) = (
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        );
        let (h4, h5, h6) = (
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        );
        let h7 = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a";
        assert_eq!(
            inclusion_proof(&store, 0, 8).unwrap().path,
            path(&[h1, h2, h3])
        );
        assert_eq!(
            inclusion_proof(&store, 5, 8).unwrap().path,
            path(&[h4, h5, h6])
        );
        assert_eq!(
            consistency_proof(&store, 2, 8).unwrap().path,
            path(&[h2, h3])
        );
        assert_eq!(
            consistency_proof(&store, 6, 8).unwrap().path,
            path(&[h7, h5, h6])
        );
    }

    // ---- The frontier and the completed nodes. ----

    #[test]
    fn frontier_root_matches_reference_mth_for_every_size_to_1000() {
        let data = data_upto(1000);
        let mut tree = Tree::new();
        assert_eq!(tree.root(0), ref_mth(&[]));
        for n in 1..=1000 {
            tree.grow();
            assert_eq!(tree.frontier.root(), ref_mth(&data[..n]), "size {n}");
        }
    }

    #[test]
    fn completed_nodes_are_exactly_the_perfect_subtrees_with_reference_roots() {
        let data = data_upto(1000);
        let mut tree = Tree::new();
        for n in 1..=1000u64 {
            for node in tree.grow() {
                let width = 1u64 << node.level;
                let (start, end) = (node.index * width, (node.index + 1) * width);
                assert_eq!(
                    end, n,
                    "a node completes exactly when its last leaf arrives"
                );
                assert_eq!(
                    node.hash,
                    ref_mth(&data[start as usize..end as usize]),
                    "node {node:?}"
                );
            }
            // A tree of n leaves has 2n - popcount(n) perfect aligned subtrees, all now stored.
            assert_eq!(tree.store.len() as u64, 2 * n - u64::from(n.count_ones()));
        }
    }

    #[test]
    fn frontier_rebuilt_from_stored_nodes_equals_the_appended_one() {
        let mut tree = Tree::new();
        for _ in 0..1000 {
            tree.grow();
            assert_eq!(
                LedgerFrontier::from_nodes(&tree.store, tree.frontier.size()),
                Ok(tree.frontier.clone())
            );
        }
        let missing = LedgerFrontier::from_nodes(&tree.store, 1024);
        assert_eq!(
            missing,
            Err(MerkleError::MissingNode {
                level: 10,
                index: 0
            })
        );
    }

    #[test]
    fn frontier_with_wrong_peak_count_is_refused() {
        let frontier = Tree::grown(13).frontier;
        assert_eq!(frontier.validate(), Ok(()));
        let mut bytes = encode(&frontier);
        bytes[0] = 12; // size 12 = 8 + 4 needs two peaks, but three follow.
        let corrupt: LedgerFrontier = decode(&bytes, "frontier").unwrap();
        assert_eq!(
            corrupt.validate(),
            Err(MerkleError::CorruptFrontier {
                size: 12,
                peaks: 3,
                expected: 2
            })
        );
    }

    #[test]
    #[should_panic(expected = "one peak per set bit")]
    fn append_to_a_corrupt_frontier_panics() {
        let frontier = Tree::grown(13).frontier;
        let mut bytes = encode(&frontier);
        bytes[0] = 15; // size 15 = 8 + 4 + 2 + 1 needs four peaks, but three follow.
        let mut corrupt: LedgerFrontier = decode(&bytes, "frontier").unwrap();
        corrupt.append(leaf_hash(b"x"));
    }

    #[test]
    fn subtree_root_matches_reference_for_aligned_ranges_and_refuses_others() {
        let tree = Tree::grown(64);
        let data = data_upto(64);
        for start in 0..64u64 {
            for end in start..=64 {
                let result = subtree_root(&tree.store, start, end);
                let width = end - start;
                let aligned = width > 0 && start % width.next_power_of_two() == 0;
                if aligned {
                    assert_eq!(
                        result,
                        Ok(ref_mth(&data[start as usize..end as usize])),
                        "[{start}, {end})"
                    );
                } else {
                    assert_eq!(result, Err(MerkleError::NotASubtree { start, end }));
                }
            }
        }
    }

    // ---- Proofs are right, for every shape of tree. ----

    #[test]
    fn inclusion_proofs_equal_the_reference_path_for_every_index_to_size_128() {
        let data = data_upto(128);
        let mut tree = Tree::new();
        for n in 1..=128u64 {
            tree.grow();
            for i in 0..n {
                let proof = inclusion_proof(&tree.store, i, n).unwrap();
                assert_eq!(
                    proof.path,
                    ref_path(i as usize, &data[..n as usize]),
                    "leaf {i} of {n}"
                );
            }
        }
    }

    #[test]
    fn inclusion_proofs_verify_for_every_index_of_every_size_to_1000() {
        let mut tree = Tree::new();
        for n in 1..=1000u64 {
            tree.grow();
            for i in 0..n {
                let proof = inclusion_proof(&tree.store, i, n).unwrap();
                assert_eq!(
                    proof.verify(&tree.leaf(i), &tree.root(n)),
                    Ok(()),
                    "leaf {i} of {n}"
                );
            }
        }
    }

    #[test]
    fn consistency_proofs_equal_the_reference_and_verify_for_all_pairs_to_64() {
        let data = data_upto(64);
        let mut tree = Tree::new();
        for n in 1..=64u64 {
            tree.grow();
            for m in 1..=n {
                let proof = consistency_proof(&tree.store, m, n).unwrap();
                assert_eq!(
                    proof.path,
                    ref_subproof(m as usize, &data[..n as usize], true),
                    "{m} -> {n}"
                );
                assert_eq!(
                    proof.verify(&tree.root(m), &tree.root(n)),
                    Ok(()),
                    "{m} -> {n}"
                );
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_for_all_old_sizes_of_sampled_sizes_to_1000() {
        let mut tree = Tree::new();
        for n in 1..=1000u64 {
            tree.grow();
            if n % 7 != 0 && !(n - 1).is_power_of_two() && !(n + 1).is_power_of_two() {
                continue;
            }
            for m in 1..=n {
                let proof = consistency_proof(&tree.store, m, n).unwrap();
                assert_eq!(
                    proof.verify(&tree.root(m), &tree.root(n)),
                    Ok(()),
                    "{m} -> {n}"
                );
            }
        }
    }

    /// A tree of 2^64 - 1 identical leaves, whose nodes are the same at each level: it lets proofs
    /// run at the largest sizes a u64 can count, where paths reach their maximum lengths.
    struct UniformTree {
        levels: Vec<Digest>,
    }

    impl MerkleNodeReader for UniformTree {
        fn node(&self, level: u8, _index: u64) -> Result<Option<Digest>, StorageError> {
            Ok(self.levels.get(usize::from(level)).copied())
        }
    }

    #[test]
    fn proofs_reach_the_length_limits_at_the_largest_sizes() {
        let mut levels = vec![leaf_hash(b"same")];
        while levels.len() < 64 {
            let below = levels[levels.len() - 1];
            levels.push(node_hash(&below, &below));
        }
        let tree = UniformTree { levels };
        let root = |size| subtree_root(&tree, 0, size).unwrap();
        let leaf = tree.levels[0];
        for (index, size) in [
            (0, u64::MAX),
            (u64::MAX - 1, u64::MAX),
            ((1 << 63) - 1, (1 << 63) + 1),
        ] {
            let proof = inclusion_proof(&tree, index, size).unwrap();
            assert!(proof.path.len() <= MERKLE_PATH_LEN_MAX);
            assert_eq!(
                proof.verify(&leaf, &root(size)),
                Ok(()),
                "leaf {index} of {size}"
            );
        }
        assert_eq!(
            inclusion_proof(&tree, 0, u64::MAX).unwrap().path.len(),
            MERKLE_PATH_LEN_MAX
        );
        for (old, new) in [
            (3, u64::MAX),
            (u64::MAX - 1, u64::MAX),
            (1 << 63, u64::MAX),
            (1, u64::MAX),
        ] {
            let proof = consistency_proof(&tree, old, new).unwrap();
            assert!(proof.path.len() <= CONSISTENCY_PATH_LEN_MAX);
            assert_eq!(
                proof.verify(&root(old), &root(new)),
                Ok(()),
                "{old} -> {new}"
            );
        }
        assert_eq!(
            consistency_proof(&tree, 3, u64::MAX).unwrap().path.len(),
            CONSISTENCY_PATH_LEN_MAX
        );
    }

    /// Counts node reads, to check that proofs cost O(log n) storage reads.
    struct CountingReader<'a> {
        inner: &'a MemoryMerkleStore,
        reads: Cell<usize>,
    }

    impl MerkleNodeReader for CountingReader<'_> {
        fn node(&self, level: u8, index: u64) -> Result<Option<Digest>, StorageError> {
            self.reads.set(self.reads.get() + 1);
            self.inner.node(level, index)
        }
    }

    #[test]
    fn proofs_read_at_most_two_nodes_per_level() {
        let tree = big_tree();
        let reader = CountingReader {
            inner: &tree.store,
            reads: Cell::new(0),
        };
        for n in [1u64, 2, 3, 1000, 65_535, 65_537, 99_999, 100_000] {
            let bound = 2 * ceil_log2(n) as usize + 1;
            for i in [0, n / 3, n / 2, n - 1] {
                reader.reads.set(0);
                inclusion_proof(&reader, i, n).unwrap();
                assert!(
                    reader.reads.get() <= bound,
                    "leaf {i} of {n}: {} reads",
                    reader.reads.get()
                );
                reader.reads.set(0);
                consistency_proof(&reader, i + 1, n).unwrap();
                assert!(
                    reader.reads.get() <= bound,
                    "{} -> {n}: {} reads",
                    i + 1,
                    reader.reads.get()
                );
            }
        }
    }

    #[test]
    fn proofs_outside_the_tree_or_the_store_are_refused() {
        let tree = Tree::grown(10);
        let out_of_range = |leaf_index, tree_size| MerkleError::IndexOutOfRange {
            leaf_index,
            tree_size,
        };
        assert_eq!(inclusion_proof(&tree.store, 0, 0), Err(out_of_range(0, 0)));
        assert_eq!(
            inclusion_proof(&tree.store, 10, 10),
            Err(out_of_range(10, 10))
        );
        assert_eq!(
            inclusion_proof(&tree.store, 3, 11),
            Err(MerkleError::MissingNode {
                level: 0,
                index: 10
            })
        );
        let bad_sizes = |old_size, new_size| MerkleError::BadSizes { old_size, new_size };
        assert_eq!(consistency_proof(&tree.store, 0, 5), Err(bad_sizes(0, 5)));
        assert_eq!(consistency_proof(&tree.store, 6, 5), Err(bad_sizes(6, 5)));
        assert_eq!(
            consistency_proof(&tree.store, 5, 12),
            Err(MerkleError::MissingNode { level: 2, index: 2 })
        );
    }

    struct FailingReader;

    impl MerkleNodeReader for FailingReader {
        fn node(&self, _level: u8, _index: u64) -> Result<Option<Digest>, StorageError> {
            Err(StorageError("disk on fire".into()))
        }
    }

    #[test]
    fn storage_failures_are_reported_as_such() {
        let storage = MerkleError::Storage(StorageError("disk on fire".into()));
        assert_eq!(inclusion_proof(&FailingReader, 1, 4), Err(storage.clone()));
        assert_eq!(
            consistency_proof(&FailingReader, 1, 4),
            Err(storage.clone())
        );
        assert_eq!(LedgerFrontier::from_nodes(&FailingReader, 4), Err(storage));
    }

    // ---- Verification refuses anything changed. ----

    #[test]
    fn inclusion_verification_fails_on_any_changed_byte_to_size_64() {
        let tree = Tree::grown(64);
        for n in 1..=64u64 {
            for i in 0..n {
                let proof = inclusion_proof(&tree.store, i, n).unwrap();
                let (leaf, root) = (tree.leaf(i), tree.root(n));
                for byte in 0..32 {
                    assert!(
                        proof.verify(&flip(&leaf, byte, 1), &root).is_err(),
                        "leaf byte {byte}, {i}/{n}"
                    );
                    assert!(
                        proof.verify(&leaf, &flip(&root, byte, 1)).is_err(),
                        "root byte {byte}, {i}/{n}"
                    );
                    for k in 0..proof.path.len() {
                        let mut bad = proof.clone();
                        bad.path[k] = flip(&bad.path[k], byte, 1);
                        assert!(
                            bad.verify(&leaf, &root).is_err(),
                            "path[{k}] byte {byte}, {i}/{n}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn inclusion_verification_fails_for_a_wrong_index_size_or_path_length_to_size_64() {
        let tree = Tree::grown(66);
        for n in 1..=64u64 {
            for i in 0..n {
                let proof = inclusion_proof(&tree.store, i, n).unwrap();
                let leaf = tree.leaf(i);
                for j in (0..=n).filter(|&j| j != i) {
                    let moved = InclusionProof {
                        leaf_index: j,
                        ..proof.clone()
                    };
                    assert!(
                        moved.verify(&leaf, &tree.root(n)).is_err(),
                        "leaf {i} of {n} claimed at {j}"
                    );
                }
                for size in (1..=65).filter(|&size| size != n) {
                    let resized = InclusionProof {
                        tree_size: size,
                        ..proof.clone()
                    };
                    assert!(
                        resized.verify(&leaf, &tree.root(size)).is_err(),
                        "leaf {i} of {n} claimed in {size}"
                    );
                }
                let mut longer = proof.clone();
                longer.path.push(tree.leaf(0));
                let got = longer.path.len();
                assert_eq!(
                    longer.verify(&leaf, &tree.root(n)),
                    Err(MerkleError::WrongPathLength {
                        expected: got - 1,
                        got
                    })
                );
                if let Some((_, shorter)) = proof.path.split_last() {
                    let shorter = InclusionProof {
                        path: shorter.to_vec(),
                        ..proof.clone()
                    };
                    let err = MerkleError::WrongPathLength {
                        expected: shorter.path.len() + 1,
                        got: shorter.path.len(),
                    };
                    assert_eq!(shorter.verify(&leaf, &tree.root(n)), Err(err));
                }
            }
        }
    }

    #[test]
    fn consistency_verification_fails_on_any_changed_byte_to_size_64() {
        let tree = Tree::grown(64);
        for n in 1..=64u64 {
            for m in 1..=n {
                let proof = consistency_proof(&tree.store, m, n).unwrap();
                let (old, new) = (tree.root(m), tree.root(n));
                for byte in 0..32 {
                    assert!(
                        proof.verify(&flip(&old, byte, 1), &new).is_err(),
                        "old root byte {byte}, {m} -> {n}"
                    );
                    assert!(
                        proof.verify(&old, &flip(&new, byte, 1)).is_err(),
                        "new root byte {byte}, {m} -> {n}"
                    );
                    for k in 0..proof.path.len() {
                        let mut bad = proof.clone();
                        bad.path[k] = flip(&bad.path[k], byte, 1);
                        assert!(
                            bad.verify(&old, &new).is_err(),
                            "path[{k}] byte {byte}, {m} -> {n}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn consistency_verification_fails_for_wrong_sizes_or_path_length_to_size_64() {
        let tree = Tree::grown(65);
        for n in 1..=64u64 {
            for m in 1..=n {
                let proof = consistency_proof(&tree.store, m, n).unwrap();
                let (old, new) = (tree.root(m), tree.root(n));
                for size in (0..=65).filter(|&size| size != m) {
                    let moved = ConsistencyProof {
                        old_size: size,
                        ..proof.clone()
                    };
                    assert!(
                        moved.verify(&tree.root(size), &new).is_err(),
                        "{m} -> {n} claimed from {size}"
                    );
                }
                for size in (1..=65).filter(|&size| size != n) {
                    let moved = ConsistencyProof {
                        new_size: size,
                        ..proof.clone()
                    };
                    assert!(
                        moved.verify(&old, &tree.root(size)).is_err(),
                        "{m} -> {n} claimed to {size}"
                    );
                }
                let mut longer = proof.clone();
                longer.path.push(tree.leaf(0));
                let got = longer.path.len();
                assert_eq!(
                    longer.verify(&old, &new),
                    Err(MerkleError::WrongPathLength {
                        expected: got - 1,
                        got
                    })
                );
                if let Some((_, shorter)) = proof.path.split_last() {
                    let shorter = ConsistencyProof {
                        path: shorter.to_vec(),
                        ..proof.clone()
                    };
                    let err = MerkleError::WrongPathLength {
                        expected: shorter.path.len() + 1,
                        got: shorter.path.len(),
                    };
                    assert_eq!(shorter.verify(&old, &new), Err(err));
                }
            }
        }
    }

    #[test]
    fn overlong_paths_are_refused_before_hashing() {
        let leaf = leaf_hash(b"x");
        let path = vec![leaf; MERKLE_PATH_LEN_MAX + 1];
        let inclusion = InclusionProof {
            leaf_index: 0,
            tree_size: u64::MAX,
            path: path.clone(),
        };
        assert_eq!(
            inclusion.verify(&leaf, &leaf),
            Err(MerkleError::PathTooLong { len: 65, max: 64 })
        );
        let consistency = ConsistencyProof {
            old_size: 3,
            new_size: u64::MAX,
            path: vec![leaf; 66],
        };
        assert_eq!(
            consistency.verify(&leaf, &leaf),
            Err(MerkleError::PathTooLong { len: 66, max: 65 })
        );
    }

    /// RFC 9162 proofs do not commit to the tree size by themselves: the size is bound to the root
    /// by the signed tree head. Here a proof for leaf 2 of 3 leaves, relabelled as leaf 1 of 2,
    /// still leads to the root of 3 leaves; a caller that trusts that root for size 3 must refuse
    /// the proof because its `tree_size` is not 3. This test pins that contract.
    #[test]
    fn a_proof_binds_index_and_size_only_through_the_size_the_caller_checks() {
        let tree = Tree::grown(4);
        let proof = inclusion_proof(&tree.store, 2, 3).unwrap();
        let relabelled = InclusionProof {
            leaf_index: 1,
            tree_size: 2,
            path: proof.path.clone(),
        };
        assert_eq!(relabelled.verify(&tree.leaf(2), &tree.root(3)), Ok(()));
        assert!(relabelled.verify(&tree.leaf(2), &tree.root(2)).is_err());
    }

    // ---- Large trees, sampled. ----

    fn large_leaf() -> impl Strategy<Value = (u64, u64)> {
        (65u64..=100_000).prop_flat_map(|size| (0..size, Just(size)))
    }

    fn large_pair() -> impl Strategy<Value = (u64, u64)> {
        (65u64..=100_000).prop_flat_map(|new| (1..=new, Just(new)))
    }

    proptest! {
        #[test]
        fn inclusion_proofs_in_large_trees_verify_and_fail_when_a_bit_flips(
            (index, size) in large_leaf(),
            element: prop::sample::Index,
            byte in 0usize..32,
            bit in 0u8..8,
        ) {
            let tree = big_tree();
            let (leaf, root) = (tree.leaf(index), tree.root(size));
            let proof = inclusion_proof(&tree.store, index, size).unwrap();
            prop_assert_eq!(proof.verify(&leaf, &root), Ok(()));
            let mut bad = proof.clone();
            let k = element.index(bad.path.len());
            bad.path[k] = flip(&bad.path[k], byte, 1 << bit);
            prop_assert!(bad.verify(&leaf, &root).is_err());
            prop_assert!(proof.verify(&flip(&leaf, byte, 1 << bit), &root).is_err());
            prop_assert!(proof.verify(&leaf, &flip(&root, byte, 1 << bit)).is_err());
        }

        #[test]
        fn inclusion_proofs_in_large_trees_fail_for_another_index_or_size(
            (index, size) in large_leaf(),
            other_index in 0u64..100_000,
            other_size in 1u64..=100_000,
        ) {
            let tree = big_tree();
            let leaf = tree.leaf(index);
            let proof = inclusion_proof(&tree.store, index, size).unwrap();
            let moved = InclusionProof { leaf_index: other_index, ..proof.clone() };
            prop_assert_eq!(moved.verify(&leaf, &tree.root(size)).is_ok(), other_index == index);
            let resized = InclusionProof { tree_size: other_size, ..proof };
            let accepted = resized.verify(&leaf, &tree.root(other_size)).is_ok();
            prop_assert_eq!(accepted, other_size == size);
        }

        #[test]
        fn consistency_proofs_in_large_trees_verify_and_fail_when_a_bit_flips(
            (old, new) in large_pair(),
            element: prop::sample::Index,
            byte in 0usize..32,
            bit in 0u8..8,
        ) {
            let tree = big_tree();
            let (old_root, new_root) = (tree.root(old), tree.root(new));
            let proof = consistency_proof(&tree.store, old, new).unwrap();
            prop_assert_eq!(proof.verify(&old_root, &new_root), Ok(()));
            prop_assert!(proof.verify(&flip(&old_root, byte, 1 << bit), &new_root).is_err());
            prop_assert!(proof.verify(&old_root, &flip(&new_root, byte, 1 << bit)).is_err());
            if !proof.path.is_empty() {
                let mut bad = proof.clone();
                let k = element.index(bad.path.len());
                bad.path[k] = flip(&bad.path[k], byte, 1 << bit);
                prop_assert!(bad.verify(&old_root, &new_root).is_err());
            }
        }

        #[test]
        fn consistency_proofs_in_large_trees_fail_for_other_sizes(
            (old, new) in large_pair(),
            other_old in 1u64..=100_000,
            other_new in 1u64..=100_000,
        ) {
            let tree = big_tree();
            let proof = consistency_proof(&tree.store, old, new).unwrap();
            let moved = ConsistencyProof { old_size: other_old, ..proof.clone() };
            let accepted = moved.verify(&tree.root(other_old), &tree.root(new)).is_ok();
            prop_assert_eq!(accepted, other_old == old);
            let moved = ConsistencyProof { new_size: other_new, ..proof };
            let accepted = moved.verify(&tree.root(old), &tree.root(other_new)).is_ok();
            prop_assert_eq!(accepted, other_new == new);
        }
    }

    // ---- Encodings, and the vectors of the protocol document. ----

    #[test]
    fn proofs_and_frontier_round_trip_through_bincode_and_json() {
        let tree = Tree::grown(13);
        let inclusion = inclusion_proof(&tree.store, 5, 13).unwrap();
        let consistency = consistency_proof(&tree.store, 6, 13).unwrap();
        assert_eq!(
            decode::<InclusionProof>(&encode(&inclusion), "inclusion proof"),
            Ok(inclusion.clone())
        );
        assert_eq!(
            decode::<ConsistencyProof>(&encode(&consistency), "consistency proof"),
            Ok(consistency.clone())
        );
        assert_eq!(
            decode::<LedgerFrontier>(&encode(&tree.frontier), "frontier"),
            Ok(tree.frontier.clone())
        );
        let json = serde_json::to_string(&inclusion).unwrap();
        assert_eq!(
            serde_json::from_str::<InclusionProof>(&json).unwrap(),
            inclusion
        );
        let json = serde_json::to_string(&consistency).unwrap();
        assert_eq!(
            serde_json::from_str::<ConsistencyProof>(&json).unwrap(),
            consistency
        );
        let json = serde_json::to_string(&tree.frontier).unwrap();
        assert_eq!(
            serde_json::from_str::<LedgerFrontier>(&json).unwrap(),
            tree.frontier
        );
    }

    /// The vector block of the Merkle section of `docs/PROTOCOL.md`, verbatim; the document's copy is also
    /// recomputed independently by `docs/verifier/check_merkle_vectors.py`.
    const PROTOCOL_VECTORS: &str = "\
leaf_data[0] = 6c6561662d30
leaf_hash[0] = 305df59f9590c3c9ac63d2b2743c388e3792449078cebf7fb3dbe6471643b2b7
leaf_data[1] = 6c6561662d31
leaf_hash[1] = 3145c409f259b7c53e32036090ff76751025a2498ba9823ef718cac50b4e616f
leaf_data[2] = 6c6561662d32
leaf_hash[2] = fca89f57c9f8c8eb4047a7ff9d333acf9e0f3384b20b255bceab0f216dcca267
leaf_data[3] = 6c6561662d33
leaf_hash[3] = f76836325aec5699d8d71f8e42e9d47c5c29b08059ba296384f7ca40ad3a40ae
leaf_data[4] = 6c6561662d34
leaf_hash[4] = ea9fc1a1b6e191b460d0d6306e3e870c173f39330f13cda1b70cfc72bdc398ba
leaf_data[5] = 6c6561662d35
leaf_hash[5] = 8f1593cb92f429d9340b9bbc1f0bb122adf8026c42a4a42142e2168931727236
leaf_data[6] = 6c6561662d36
leaf_hash[6] = 676f3782f5b3a5fb4370ed49572cedc523f4a66322269c85f2af0509d17b0a4d
mth[0:2] = 60a53eed0de87a90c8e59427c59c46253c33a76a09502a51801300927b7e6bdc
mth[2:4] = bd45ff28796704d88bdac51b1df553fda59837b616d6d1cb2114dbc3b087ff69
mth[0:4] = bdd1c5ff55b19cb6b0e7c761bf9a6ccaa27fbbfc07b74f1fabb6e911a0bd2ab3
mth[4:6] = 985bb5d36b927800876871da925a7e82abe83a9ddba5882920a007a55ea2b376
mth[4:7] = 8eae6bd3b3a07f1f75ee72a531629e6eb31e42e62f760e47de52a53c3641ef23
root[3] = cf763a041c81ceef1578a6083f75c61bef2e0014f2a3e683a97fcfca5be7f19a
root[7] = 0b007fb915eb9b2a146f54b1c86ec53b664f8e455b7660b0b6ee13edc0d921c0
inclusion_proof(3,7).path[0] = fca89f57c9f8c8eb4047a7ff9d333acf9e0f3384b20b255bceab0f216dcca267
inclusion_proof(3,7).path[1] = 60a53eed0de87a90c8e59427c59c46253c33a76a09502a51801300927b7e6bdc
inclusion_proof(3,7).path[2] = 8eae6bd3b3a07f1f75ee72a531629e6eb31e42e62f760e47de52a53c3641ef23
inclusion_proof(3,7).encoded = 03000000000000000700000000000000030000000000000000000000fca89f57c9f8c8eb4047a7ff9d333acf9e0f3384b20b255bceab0f216dcca2670000000060a53eed0de87a90c8e59427c59c46253c33a76a09502a51801300927b7e6bdc000000008eae6bd3b3a07f1f75ee72a531629e6eb31e42e62f760e47de52a53c3641ef23
consistency_proof(3,7).path[0] = fca89f57c9f8c8eb4047a7ff9d333acf9e0f3384b20b255bceab0f216dcca267
consistency_proof(3,7).path[1] = f76836325aec5699d8d71f8e42e9d47c5c29b08059ba296384f7ca40ad3a40ae
consistency_proof(3,7).path[2] = 60a53eed0de87a90c8e59427c59c46253c33a76a09502a51801300927b7e6bdc
consistency_proof(3,7).path[3] = 8eae6bd3b3a07f1f75ee72a531629e6eb31e42e62f760e47de52a53c3641ef23
consistency_proof(3,7).encoded = 03000000000000000700000000000000040000000000000000000000fca89f57c9f8c8eb4047a7ff9d333acf9e0f3384b20b255bceab0f216dcca26700000000f76836325aec5699d8d71f8e42e9d47c5c29b08059ba296384f7ca40ad3a40ae0000000060a53eed0de87a90c8e59427c59c46253c33a76a09502a51801300927b7e6bdc000000008eae6bd3b3a07f1f75ee72a531629e6eb31e42e62f760e47de52a53c3641ef23
";

    #[test]
    fn protocol_document_vectors_are_what_the_code_computes() {
        let tree = Tree::grown(7);
        let hex_of = |d: Digest| hex::encode(d.as_bytes());
        let mut lines = Vec::new();
        for i in 0..7 {
            lines.push(format!("leaf_data[{i}] = {}", hex::encode(leaf_data(i))));
            lines.push(format!("leaf_hash[{i}] = {}", hex_of(tree.leaf(i))));
        }
        for (start, end) in [(0, 2), (2, 4), (0, 4), (4, 6), (4, 7)] {
            lines.push(format!(
                "mth[{start}:{end}] = {}",
                hex_of(subtree_root(&tree.store, start, end).unwrap())
            ));
        }
        lines.push(format!("root[3] = {}", hex_of(tree.root(3))));
        lines.push(format!("root[7] = {}", hex_of(tree.root(7))));
        let inclusion = inclusion_proof(&tree.store, 3, 7).unwrap();
        assert_eq!(inclusion.verify(&tree.leaf(3), &tree.root(7)), Ok(()));
        for (k, hash) in inclusion.path.iter().enumerate() {
            lines.push(format!(
                "inclusion_proof(3,7).path[{k}] = {}",
                hex_of(*hash)
            ));
        }
        lines.push(format!(
            "inclusion_proof(3,7).encoded = {}",
            hex::encode(encode(&inclusion))
        ));
        let consistency = consistency_proof(&tree.store, 3, 7).unwrap();
        assert_eq!(consistency.verify(&tree.root(3), &tree.root(7)), Ok(()));
        for (k, hash) in consistency.path.iter().enumerate() {
            lines.push(format!(
                "consistency_proof(3,7).path[{k}] = {}",
                hex_of(*hash)
            ));
        }
        lines.push(format!(
            "consistency_proof(3,7).encoded = {}",
            hex::encode(encode(&consistency))
        ));
        assert_eq!(lines.join("\n") + "\n", PROTOCOL_VECTORS);
        let spec = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"));
        for line in PROTOCOL_VECTORS.lines() {
            assert!(
                spec.lines().any(|spec_line| spec_line == line),
                "merkle.md lacks {line}"
            );
        }
    }
}
