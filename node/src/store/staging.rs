//! Staged indexes: a block's rows for the hash-keyed tables, written by height at its commit and
//! merged into those tables behind the commits.
//!
//! `state_values` and `tx_index` are keyed by hashes, so a block's rows fall on random pages. In a
//! copy-on-write B-tree every page a row lands on is rewritten, and once a table has more pages
//! than a block has rows, each row costs a page: at the 60 s load's ledger sizes these two tables
//! were three quarters of the bytes a block's durable commit wrote (docs/PERFORMANCE.md). So a
//! block's commit writes them to `staged_values` and `staged_tx_index`, keyed by height, where
//! its rows are appended on a few new pages, and [`super::Store::merge_step`] moves a batch of
//! [`super::MERGE_BATCH_HEIGHTS`] heights into the hash-keyed tables later, rewriting each page they
//! touch once for the whole batch.
//!
//! Reads see one index either way. The store keeps, for every staged height, the key hashes its
//! values were written under and its transactions' locations ([`StagedHeights`]); a
//! [`super::Snapshot`] holds the set that was current when it was taken, and reads a staged
//! height's rows before the merged table's. A snapshot is checked to cover exactly the heights
//! its redb view has staged ([`StagedHeights::covers`]), so a commit or a merge that lands while
//! it is being taken cannot hide a row from it.

use super::tables::TxLocation;
use ledger_core::tx::TxId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// What one committed height not yet merged wrote to the hash-keyed indexes: the key hashes of
/// its state values (the values themselves are in `staged_values`) and where its transactions
/// are.
#[derive(Debug, Default)]
pub(crate) struct StagedHeight {
    /// Key hashes of the values written at this version (deletions included).
    pub values: HashSet<[u8; 32]>,
    /// The height's transactions and their locations.
    pub txs: HashMap<TxId, TxLocation>,
}

impl StagedHeight {
    /// Rows this height adds to the two merged tables.
    fn rows(&self) -> u64 {
        (self.values.len() + self.txs.len()) as u64
    }
}

/// The staged heights, immutable once shared: a commit or a merge replaces the store's set with
/// a new one, and every snapshot keeps the set it was taken with. Cloning copies only the map of
/// at most [`super::STAGED_HEIGHTS_MAX`] pointers.
#[derive(Clone, Debug, Default)]
pub(crate) struct StagedHeights {
    heights: BTreeMap<u64, Arc<StagedHeight>>,
}

impl StagedHeights {
    /// This set with `height` staged as `staged`, replacing what a commit of that height that
    /// failed may have left, and dropping anything above it for the same reason.
    pub fn with(&self, height: u64, staged: StagedHeight) -> StagedHeights {
        let mut heights = self.heights.clone();
        heights.split_off(&height);
        heights.insert(height, Arc::new(staged));
        StagedHeights { heights }
    }

    /// This set without the heights at or below `merged_through`.
    pub fn merged(&self, merged_through: u64) -> StagedHeights {
        let heights = self
            .heights
            .range(merged_through + 1..)
            .map(|(height, staged)| (*height, Arc::clone(staged)))
            .collect();
        StagedHeights { heights }
    }

    /// How many heights are staged.
    pub fn len(&self) -> u64 {
        self.heights.len() as u64
    }

    /// Whether every height of `merged_through + 1 ..= head` is in the set: what a snapshot
    /// whose redb view has that head and that merge marker needs.
    pub fn covers(&self, merged_through: u64, head: u64) -> bool {
        (merged_through + 1..=head).all(|height| self.heights.contains_key(&height))
    }

    /// The newest staged height in `merged_through + 1 ..= top` that wrote `key_hash`.
    pub fn newest_value_height(
        &self,
        merged_through: u64,
        top: u64,
        key_hash: &[u8; 32],
    ) -> Option<u64> {
        if top <= merged_through {
            return None;
        }
        self.heights
            .range(merged_through + 1..=top)
            .rev()
            .find(|(_, staged)| staged.values.contains(key_hash))
            .map(|(height, _)| *height)
    }

    /// Where `id` is, if a staged height in `merged_through + 1 ..= head` committed it.
    pub fn tx_location(&self, merged_through: u64, head: u64, id: &TxId) -> Option<TxLocation> {
        if head <= merged_through {
            return None;
        }
        self.heights
            .range(merged_through + 1..=head)
            .find_map(|(_, staged)| staged.txs.get(id).copied())
    }

    /// Rows the heights `first ..= last` add to the merged tables.
    pub fn rows(&self, first: u64, last: u64) -> u64 {
        self.heights
            .range(first..=last)
            .map(|(_, staged)| staged.rows())
            .sum()
    }
}

/// The merge of one batch in progress: into how many key ranges it is cut and which is next.
/// Kept in memory only: after a restart the batch is merged again from its first range, which
/// rewrites rows already merged with the same values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MergeProgress {
    /// The batch's first height (0: no batch in progress).
    pub first: u64,
    /// How many key ranges the batch is merged in.
    pub ranges: u64,
    /// The next range to merge.
    pub next: u64,
}

/// The key range `index` of `ranges` equal ranges of the first four bytes of a key hash, as a
/// half-open range of those bytes read big-endian (`None`: to the end).
pub(crate) fn key_range(index: u64, ranges: u64) -> (u64, Option<u64>) {
    assert!(index < ranges, "key range {index} of {ranges}");
    let span = 1u64 << 32;
    let start = index * span / ranges;
    let end = (index + 1 < ranges).then(|| (index + 1) * span / ranges);
    (start, end)
}

/// Whether a key hash's first four bytes fall in the half-open `range`.
pub(crate) fn in_key_range(hash: &[u8; 32], range: (u64, Option<u64>)) -> bool {
    let prefix = u64::from(u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]));
    prefix >= range.0 && range.1.is_none_or(|end| prefix < end)
}

/// How many key ranges a batch of `rows` staged rows is merged in: enough that each step
/// inserts about `rows_max` rows at most (the keys are hashes, so ranges of equal width hold
/// about equal shares).
pub(crate) fn ranges_for(rows: u64, rows_max: u64) -> u64 {
    rows.div_ceil(rows_max).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::crypto::Digest;

    fn height_with(values: &[[u8; 32]], txs: &[(TxId, TxLocation)]) -> StagedHeight {
        StagedHeight {
            values: values.iter().copied().collect(),
            txs: txs.iter().copied().collect(),
        }
    }

    #[test]
    fn key_ranges_partition_the_key_space() {
        for ranges in [1, 2, 3, 7, 64] {
            let mut expected_start = 0;
            for index in 0..ranges {
                let (start, end) = key_range(index, ranges);
                assert_eq!(start, expected_start);
                match end {
                    Some(end) => {
                        assert!(end > start);
                        expected_start = end;
                    }
                    None => assert_eq!(index, ranges - 1),
                }
            }
        }
        let low = [0u8; 32];
        let high = [0xff; 32];
        assert!(in_key_range(&low, key_range(0, 3)));
        assert!(!in_key_range(&low, key_range(1, 3)));
        assert!(in_key_range(&high, key_range(2, 3)));
        assert!(!in_key_range(&high, key_range(1, 3)));
        assert_eq!(ranges_for(0, 100), 1);
        assert_eq!(ranges_for(100, 100), 1);
        assert_eq!(ranges_for(101, 100), 2);
    }

    #[test]
    fn reads_see_the_newest_staged_height_within_the_view() {
        let key = [7u8; 32];
        let id = Digest::sha256(b"tx");
        let at = |height| TxLocation {
            height,
            index_in_block: 0,
            ledger_index: height,
        };
        let set = StagedHeights::default()
            .with(5, height_with(&[key], &[]))
            .with(6, height_with(&[], &[(id, at(6))]))
            .with(7, height_with(&[key], &[]));
        assert!(set.covers(4, 7));
        assert!(!set.covers(3, 7), "height 4 is not staged");
        assert!(!set.covers(4, 8), "height 8 is not staged");
        assert_eq!(set.newest_value_height(4, 7, &key), Some(7));
        assert_eq!(set.newest_value_height(4, 6, &key), Some(5));
        assert_eq!(set.newest_value_height(5, 6, &key), None, "5 is merged");
        assert_eq!(set.tx_location(4, 7, &id), Some(at(6)));
        assert_eq!(set.tx_location(4, 5, &id), None, "beyond the view's head");
        assert_eq!(set.rows(5, 7), 3);
        let merged = set.merged(6);
        assert_eq!(merged.len(), 1);
        assert!(merged.covers(6, 7));
        // A commit of height 6 again (the first failed) replaces it and what was above it.
        let again = set.with(6, height_with(&[], &[]));
        assert_eq!(again.len(), 2);
        assert_eq!(again.tx_location(4, 7, &id), None);
    }
}
