//! A blocked Bloom filter over the staged heights' keys, so that a read of a key no staged height
//! wrote (most reads: every replay check of a new transaction, every first write of a key) costs
//! one cache line instead of one hash-table probe per staged height.
//!
//! Profiled on one validator (docs/PERFORMANCE.md), the staged-set lookups were 6.6 % of the
//! node's CPU, nearly all of it waiting on the first memory access of each height's table: a
//! read that misses visits all 16 to 64 of them. The filter answers "no staged height wrote this
//! key" with one 64-byte block, and "maybe" otherwise, when the reader scans the heights as
//! before. It never changes an answer: a false positive costs the scan, and there are no false
//! negatives.
//!
//! The keys are SHA-256 outputs (a state key's hash, a transaction id), so the filter takes its
//! bits from the key itself rather than hashing it again. Someone who grinds transaction ids to
//! fill one block only brings back the scan for those ids.

/// Bits per 64-byte block.
const BLOCK_BITS: usize = 512;
/// Bits set per key, all in the key's block.
const BITS_PER_KEY_SET: usize = 6;
/// Filter bits per key of capacity: about 1 % false positives at capacity, fewer below it.
const BITS_PER_KEY: usize = 12;
/// The smallest capacity built, so that small sets do not rebuild at every commit.
const CAPACITY_MIN: usize = 1 << 14;

/// An immutable-once-shared filter: a new set of staged heights copies it and adds its height's
/// keys, or builds a new one.
#[derive(Clone, Debug)]
pub(crate) struct KeyFilter {
    blocks: Vec<[u64; BLOCK_BITS / 64]>,
    /// Keys inserted (counting repeats), which the capacity bounds.
    keys: usize,
    /// Keys it can hold at its designed false-positive rate.
    capacity: usize,
}

impl Default for KeyFilter {
    fn default() -> Self {
        KeyFilter::with_capacity(0)
    }
}

impl KeyFilter {
    /// An empty filter for at least `keys` keys (twice that, so the commits that follow a
    /// build add to it rather than rebuild it).
    pub fn with_capacity(keys: usize) -> KeyFilter {
        let capacity = keys.saturating_mul(2).max(CAPACITY_MIN);
        let blocks = (capacity * BITS_PER_KEY)
            .div_ceil(BLOCK_BITS)
            .next_power_of_two();
        // `position` masks a key's first word into a block index.
        assert!(blocks.is_power_of_two());
        KeyFilter {
            blocks: vec![[0; BLOCK_BITS / 64]; blocks],
            keys: 0,
            capacity,
        }
    }

    /// Whether `more` keys can be added without passing the capacity.
    pub fn has_room_for(&self, more: usize) -> bool {
        self.keys.saturating_add(more) <= self.capacity
    }

    /// Sets the key's bits; `may_contain` answers true for it from then on.
    pub fn insert(&mut self, key: &[u8; 32]) {
        let (block, bits) = self.position(key);
        let block = &mut self.blocks[block];
        for bit in bits {
            block[bit / 64] |= 1 << (bit % 64);
        }
        self.keys += 1;
    }

    /// False only if `key` was never inserted.
    pub fn may_contain(&self, key: &[u8; 32]) -> bool {
        let (block, bits) = self.position(key);
        let block = &self.blocks[block];
        bits.into_iter()
            .all(|bit| block[bit / 64] & (1 << (bit % 64)) != 0)
    }

    /// The key's block (from its first 8 bytes) and its bits in it (9 bits each from the next
    /// 8 bytes).
    fn position(&self, key: &[u8; 32]) -> (usize, [usize; BITS_PER_KEY_SET]) {
        let word = |at: usize| u64::from_le_bytes(key[at..at + 8].try_into().expect("8 bytes"));
        let block = (word(0) & (self.blocks.len() as u64 - 1)) as usize;
        let mut bits_word = word(8);
        let bits = std::array::from_fn(|_| {
            let bit = (bits_word % BLOCK_BITS as u64) as usize;
            bits_word /= BLOCK_BITS as u64;
            bit
        });
        (block, bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::crypto::Digest;

    fn key(n: u64) -> [u8; 32] {
        *Digest::sha256(&n.to_le_bytes()).as_bytes()
    }

    #[test]
    fn every_inserted_key_is_found_and_few_others_are() {
        let mut filter = KeyFilter::with_capacity(50_000);
        for n in 0..50_000 {
            filter.insert(&key(n));
        }
        assert!((0..50_000).all(|n| filter.may_contain(&key(n))));
        assert!(!filter.has_room_for(50_001));
        let false_positives = (1_000_000..1_100_000)
            .filter(|n| filter.may_contain(&key(*n)))
            .count();
        // Half full: the designed rate at capacity is about 1 %.
        assert!(
            false_positives < 1_000,
            "{false_positives} of 100,000 keys never inserted were reported"
        );
        let empty = KeyFilter::default();
        assert!((0..1_000).all(|n| !empty.may_contain(&key(n))));
    }
}
