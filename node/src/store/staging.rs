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

use super::key_filter::KeyFilter;
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

    /// The key hashes of its values, as [`StagedHeights`]' values filter holds them.
    fn value_keys(&self) -> impl ExactSizeIterator<Item = &[u8; 32]> {
        self.values.iter()
    }

    /// Its transaction ids, as [`StagedHeights`]' transactions filter holds them.
    fn tx_keys(&self) -> impl ExactSizeIterator<Item = &[u8; 32]> {
        self.txs.keys().map(TxId::as_bytes)
    }
}

/// The staged heights, immutable once shared: a commit or a merge replaces the store's set with
/// a new one, and every snapshot keeps the set it was taken with. Cloning copies only the map of
/// at most [`super::STAGED_HEIGHTS_MAX`] pointers.
#[derive(Clone, Debug, Default)]
pub(crate) struct StagedHeights {
    heights: BTreeMap<u64, Arc<StagedHeight>>,
    /// Holds every staged height's value keys, so a read of a key none wrote skips the scan.
    values_filter: Arc<KeyFilter>,
    /// Holds every staged height's transaction ids, likewise for replay checks.
    txs_filter: Arc<KeyFilter>,
}

impl StagedHeights {
    /// This set with `height` staged as `staged`, replacing what a commit of that height that
    /// failed may have left, and dropping anything above it for the same reason.
    pub fn with(&self, height: u64, staged: StagedHeight) -> StagedHeights {
        let mut heights = self.heights.clone();
        let replaced = heights.split_off(&height);
        let staged = Arc::new(staged);
        heights.insert(height, Arc::clone(&staged));
        if !replaced.is_empty() {
            return StagedHeights::from_heights(heights);
        }
        StagedHeights {
            values_filter: with_keys(
                &self.values_filter,
                &heights,
                &staged,
                StagedHeight::value_keys,
            ),
            txs_filter: with_keys(&self.txs_filter, &heights, &staged, StagedHeight::tx_keys),
            heights,
        }
    }

    /// This set without the heights at or below `merged_through`.
    pub fn merged(&self, merged_through: u64) -> StagedHeights {
        let heights = self
            .heights
            .range(merged_through + 1..)
            .map(|(height, staged)| (*height, Arc::clone(staged)))
            .collect();
        StagedHeights::from_heights(heights)
    }

    /// The set of `heights`, its filters built anew.
    fn from_heights(heights: BTreeMap<u64, Arc<StagedHeight>>) -> StagedHeights {
        StagedHeights {
            values_filter: Arc::new(filter_of(&heights, StagedHeight::value_keys)),
            txs_filter: Arc::new(filter_of(&heights, StagedHeight::tx_keys)),
            heights,
        }
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
        if top <= merged_through || !self.values_filter.may_contain(key_hash) {
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
        if head <= merged_through || !self.txs_filter.may_contain(id.as_bytes()) {
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

/// A filter of the keys `keys_of` gives for every height of `heights`.
fn filter_of<'a, K>(
    heights: &'a BTreeMap<u64, Arc<StagedHeight>>,
    keys_of: impl Fn(&'a StagedHeight) -> K,
) -> KeyFilter
where
    K: ExactSizeIterator<Item = &'a [u8; 32]>,
{
    let count = heights.values().map(|h| keys_of(h).len()).sum();
    let mut filter = KeyFilter::with_capacity(count);
    for key in heights.values().flat_map(|h| keys_of(h)) {
        filter.insert(key);
    }
    filter
}

/// `filter` with the keys of `added`, the height just staged (already in `heights`), or a
/// filter built anew from `heights` if it has no room for them.
fn with_keys<'a, K>(
    filter: &KeyFilter,
    heights: &'a BTreeMap<u64, Arc<StagedHeight>>,
    added: &'a StagedHeight,
    keys_of: impl Fn(&'a StagedHeight) -> K,
) -> Arc<KeyFilter>
where
    K: ExactSizeIterator<Item = &'a [u8; 32]>,
{
    if !filter.has_room_for(keys_of(added).len()) {
        return Arc::new(filter_of(heights, keys_of));
    }
    let mut filter = filter.clone();
    for key in keys_of(added) {
        filter.insert(key);
    }
    Arc::new(filter)
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

    proptest::proptest! {
        /// The filters never hide a staged key: through any sequence of commits, commits
        /// again of a height (after a failed one) and merges, every read answers what a scan of
        /// the heights answers.
        #[test]
        fn reads_with_the_filters_answer_what_a_scan_answers(
            steps in proptest::collection::vec(
                (0u8..4, proptest::collection::vec(0u8..40, 0..30)), 1..40)
        ) {
            let key = |n: u8| *Digest::sha256(&[n]).as_bytes();
            let id = |n: u8| Digest::sha256(&[n, 1]);
            let mut set = StagedHeights::default();
            let (mut merged_through, mut head) = (0u64, 0u64);
            for (kind, keys) in steps {
                match kind {
                    // A merge of the oldest half.
                    0 if head > merged_through => {
                        merged_through += (head - merged_through).div_ceil(2);
                        set = set.merged(merged_through);
                    }
                    // A commit again of the head height, replacing what a failed one left.
                    1 if head > merged_through => head -= 1,
                    _ => {}
                }
                head += 1;
                let values: Vec<[u8; 32]> = keys.iter().map(|n| key(*n)).collect();
                let txs: Vec<(TxId, TxLocation)> = keys
                    .iter()
                    .map(|n| (id(*n), TxLocation { height: head, index_in_block: 0, ledger_index: 0 }))
                    .collect();
                set = set.with(head, height_with(&values, &txs));
                proptest::prop_assert!(set.covers(merged_through, head));
                for n in 0..40 {
                    for top in merged_through..=head {
                        let scanned = set
                            .heights
                            .range(merged_through + 1..top + 1)
                            .rev()
                            .find(|(_, h)| h.values.contains(&key(n)))
                            .map(|(height, _)| *height);
                        proptest::prop_assert_eq!(
                            set.newest_value_height(merged_through, top, &key(n)),
                            scanned
                        );
                        let scanned = set
                            .heights
                            .range(merged_through + 1..top + 1)
                            .find_map(|(_, h)| h.txs.get(&id(n)).copied());
                        proptest::prop_assert_eq!(
                            set.tx_location(merged_through, top, &id(n)),
                            scanned
                        );
                    }
                }
            }
        }
    }

    /// Heights with more keys than the filters were built for: each commit past the capacity
    /// builds them anew, and every key stays found.
    #[test]
    fn filters_grow_with_the_staged_keys() {
        let key = |n: u32| *Digest::sha256(&n.to_le_bytes()).as_bytes();
        let per_height = 20_000;
        let mut set = StagedHeights::default();
        for height in 1..=3 {
            let keys: Vec<[u8; 32]> = (0..per_height)
                .map(|n| key(height * per_height + n))
                .collect();
            set = set.with(u64::from(height), height_with(&keys, &[]));
        }
        for height in 1..=3 {
            for n in 0..per_height {
                assert_eq!(
                    set.newest_value_height(0, 3, &key(height * per_height + n)),
                    Some(u64::from(height))
                );
            }
        }
        assert_eq!(set.newest_value_height(0, 3, &key(0)), None);
        assert!(
            set.values_filter.has_room_for(0),
            "the filter grew to hold every staged key"
        );
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
