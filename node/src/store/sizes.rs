//! What each table holds and how much of the file it takes, for `ipledger-node store-stats`:
//! an operator's answer to "what is the disk used for", and the figures behind the write model
//! in docs/PERFORMANCE.md (a block's inserts with random keys dirty pages in proportion to a
//! table's leaf pages, not its rows).

use super::error::DbContext;
use super::{Store, StoreError};
use redb::{ReadableTableMetadata, TableHandle};

/// One table's size, as redb counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSize {
    /// The table's name (see [`crate::store::table_names`]).
    pub name: String,
    /// Its rows.
    pub rows: u64,
    /// Its B-tree's leaf pages.
    pub leaf_pages: u64,
    /// Its B-tree's branch pages.
    pub branch_pages: u64,
    /// Bytes of keys and values.
    pub stored_bytes: u64,
    /// Bytes of the B-tree's own bookkeeping (offsets, child pointers, checksums).
    pub metadata_bytes: u64,
    /// Bytes of its pages left unused.
    pub fragmented_bytes: u64,
}

impl TableSize {
    /// The bytes of the file the table takes: stored, bookkeeping and unused.
    pub fn total_bytes(&self) -> u64 {
        self.stored_bytes + self.metadata_bytes + self.fragmented_bytes
    }
}

/// The store's tables and what they hold, read in one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSizes {
    /// The committed height the sizes are of.
    pub head: u64,
    /// Transactions committed up to it (the ledger tree's size).
    pub committed: u64,
    /// Every table's size, in name order.
    pub tables: Vec<TableSize>,
}

impl Store {
    /// Every table's size at the head, with the head and the transactions committed, all from
    /// one snapshot.
    pub fn sizes(&self) -> Result<StoreSizes, StoreError> {
        let snapshot = self.snapshot()?;
        let head = snapshot.head_height()?;
        let committed = snapshot.ledger_head(head)?.frontier.size();
        let mut tables = Vec::new();
        for handle in snapshot.txn.list_tables().db("listing the tables")? {
            let name = handle.name().to_owned();
            let table = snapshot
                .txn
                .open_untyped_table(handle)
                .db(&format!("opening table {name}"))?;
            let stats = table
                .stats()
                .db(&format!("reading the size of table {name}"))?;
            tables.push(TableSize {
                rows: table.len().db(&format!("counting table {name}"))?,
                leaf_pages: stats.leaf_pages(),
                branch_pages: stats.branch_pages(),
                stored_bytes: stats.stored_bytes(),
                metadata_bytes: stats.metadata_bytes(),
                fragmented_bytes: stats.fragmented_bytes(),
                name,
            });
        }
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(StoreSizes {
            head,
            committed,
            tables,
        })
    }
}
