//! The consensus engine's write-ahead log, checked before the engine opens it.
//!
//! Malachite keeps what the node signed and received at the height in progress (votes,
//! proposals, timeouts, proposed values, polka certificates) in `<data dir>/wal/consensus.wal`,
//! so that after a restart it replays them and signs nothing that conflicts with what it already
//! sent. The format (arc-malachitebft-wal 0.8.2, `log.rs`; pinned with the engine):
//!
//! ```text
//! header: version u32 BE (1) | height ("sequence") u64 BE
//! entry:  compressed u8 (0: the feature is off) | length u64 BE | CRC-32 u32 BE | data
//! ```
//!
//! Left to itself, the engine (0.8.2, `wal/thread.rs`, `consensus.rs`) handles damage this way:
//! a header shorter than 12 bytes or of another version stops it with an I/O error naming neither
//! the file nor the problem; an entry whose length runs past the end of the file is cut off at
//! open without a word, with everything after it, so a damaged length field loses every later
//! entry; an entry whose checksum fails is cut off at replay, with everything after it, *before*
//! the engine stops ("safety hang"), so the next start replays the shortened log without
//! complaint; and a damaged height in the header makes it reset the log, replaying nothing. All
//! but the first silently forget votes the node may have sent, and a validator that forgets its
//! vote can sign a conflicting one.
//!
//! So the node reads the whole file first, [`check_wal`], and starts only on a log in which every
//! entry is whole, checksummed, decodes, and belongs to the log's height, and whose height is at
//! most one past the store's head. The one damage it accepts is a *torn tail*: bytes after the last
//! whole entry that are shorter than the entry they begin. That is what an append interrupted by a
//! crash leaves, and discarding it is safe: the engine flushes the log before any message it signs
//! leaves the node (and before it decides), so an entry that never became whole was never sent.
//! A damaged length field can look like a torn tail; the check tells them apart when the bytes
//! present are a whole entry whose checksum matches a length that differs from the stored one in a
//! single byte.
//!
//! Architecture invariant: the engine never opens a write-ahead log that would make it forget
//! an entry other than an unsent, torn last one.

use super::error::StoreError;
use std::path::Path;

/// The write-ahead log format version the engine writes.
pub const WAL_VERSION: u32 = 1;
/// Bytes of the header: version and height.
pub const WAL_HEADER_BYTES: u64 = 12;
/// Bytes before an entry's data: compression flag, length, checksum.
pub const WAL_ENTRY_HEADER_BYTES: u64 = 13;
/// The largest entry the check accepts. This node's entries are a few hundred bytes (a block is
/// named by its hash; a polka certificate holds one signature per validator), so a longer one is a
/// damaged length field.
pub const WAL_ENTRY_BYTES_MAX: u64 = 1024 * 1024;

/// What [`check_wal`] found in a log the engine may open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalReport {
    /// The height the log is at; `None` when there is no log yet, or an empty file left by a crash
    /// while the engine created it at the first start.
    pub height: Option<u64>,
    /// Whole entries, each checksummed, decoded and of the log's height.
    pub entries: usize,
    /// Bytes after the last whole entry: an append cut short by a crash, which the engine
    /// discards when it opens the log.
    pub torn_tail_bytes: u64,
}

/// Decodes one entry's data as the engine will replay it and returns its height (`None` for an
/// entry without one, such as an elapsed timeout), or why it does not decode.
pub type WalEntryHeight<'a> = &'a dyn Fn(&[u8]) -> Result<Option<u64>, String>;

/// Reads the whole write-ahead log at `path` and checks it against the store's `head`; see the
/// module documentation. A missing file is fine (the engine creates one). An error names the file,
/// the entry and byte offset, and what is wrong.
pub fn check_wal(
    path: &Path,
    head: u64,
    entry_height: WalEntryHeight<'_>,
) -> Result<WalReport, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(WalReport::default())
        }
        Err(source) => {
            return Err(StoreError::Io {
                context: format!("reading the consensus write-ahead log {}", path.display()),
                source,
            })
        }
    };
    // The log's own height may be what is damaged; the node would start at the head's successor,
    // and votes it may forget are at most that high.
    let next = head + 1;
    let damaged = |problem: String| StoreError::Wal {
        path: path.to_owned(),
        height: next,
        problem,
    };
    if bytes.is_empty() {
        if head == 0 {
            return Ok(WalReport::default());
        }
        return Err(damaged(format!(
            "the file is empty, but the store holds blocks up to height {head} and the \
                 engine writes a {WAL_HEADER_BYTES}-byte header when it creates the file: it \
                 was truncated"
        )));
    }
    let Some((version, height)) = read_header(&bytes) else {
        return Err(damaged(format!(
            "truncated to {} bytes, shorter than the {WAL_HEADER_BYTES}-byte header",
            bytes.len()
        )));
    };
    if version != WAL_VERSION {
        return Err(damaged(format!(
            "format version {version}; the engine writes version {WAL_VERSION}"
        )));
    }
    if height > next {
        return Err(damaged(format!(
            "the log is at height {height}, past the store's head {head} + 1: the log's \
                 header is damaged or the store lost committed blocks"
        )));
    }
    let mut report = WalReport {
        height: Some(height),
        ..WalReport::default()
    };
    let mut at = WAL_HEADER_BYTES as usize;
    while at < bytes.len() {
        let entry = report.entries;
        match read_entry(&bytes[at..]) {
            Entry::Whole(data) => {
                match entry_height(data) {
                    Ok(Some(found)) if found != height => {
                        return Err(damaged(format!(
                            "entry {entry} at byte {at} is for height {found}, but the log \
                                 is at height {height}"
                        )))
                    }
                    Ok(_) => {}
                    Err(problem) => {
                        return Err(damaged(format!(
                            "entry {entry} at byte {at} does not decode: {problem}"
                        )))
                    }
                }
                at += WAL_ENTRY_HEADER_BYTES as usize + data.len();
                report.entries += 1;
            }
            Entry::TornTail => {
                report.torn_tail_bytes = (bytes.len() - at) as u64;
                break;
            }
            Entry::Damaged(problem) => {
                return Err(damaged(format!("entry {entry} at byte {at}: {problem}")))
            }
        }
    }
    Ok(report)
}

fn read_header(bytes: &[u8]) -> Option<(u32, u64)> {
    let version = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?);
    let height = u64::from_be_bytes(bytes.get(4..12)?.try_into().ok()?);
    Some((version, height))
}

/// One entry read from the start of `rest`.
enum Entry<'a> {
    /// A whole entry whose checksum matches; its data.
    Whole(&'a [u8]),
    /// Fewer bytes than the entry they begin: an interrupted append.
    TornTail,
    /// Anything else.
    Damaged(String),
}

fn read_entry(rest: &[u8]) -> Entry<'_> {
    let flag = rest[0];
    if flag != 0 {
        return Entry::Damaged(format!(
            "compression flag {flag}; the engine is built without compression and writes 0"
        ));
    }
    // The engine needs the flag and the length to frame an entry; fewer bytes are a torn tail.
    let Some(length_bytes) = rest.get(1..9) else {
        return Entry::TornTail;
    };
    let length = u64::from_be_bytes(length_bytes.try_into().expect("eight bytes"));
    if length > WAL_ENTRY_BYTES_MAX {
        return Entry::Damaged(format!(
            "length {length} is over the {WAL_ENTRY_BYTES_MAX} bytes any entry of this node \
             takes: a damaged length field"
        ));
    }
    let header = WAL_ENTRY_HEADER_BYTES as usize;
    let Some(crc_bytes) = rest.get(9..header) else {
        return Entry::TornTail;
    };
    let stored = u32::from_be_bytes(crc_bytes.try_into().expect("four bytes"));
    let data = &rest[header..];
    let Some(whole) = data.get(..length as usize) else {
        return match damaged_length(data, length, stored) {
            Some(fits) => Entry::Damaged(format!(
                "its length field says {length} bytes, more than the {} that follow, but the \
                 first {fits} of them match its checksum: a damaged length field, not an \
                 interrupted append",
                data.len()
            )),
            None => Entry::TornTail,
        };
    };
    let computed = crc32(whole);
    if computed != stored {
        return Entry::Damaged(format!(
            "checksum {computed:#010x} of its {length} bytes differs from the stored {stored:#010x}"
        ));
    }
    Entry::Whole(whole)
}

/// Whether a prefix of `data` whose length differs from `length` in a single byte matches the
/// checksum: then `length` was damaged, and the entry is whole. (An interrupted append matching by
/// chance has odds of about 2⁻³² per candidate.)
fn damaged_length(data: &[u8], length: u64, stored: u32) -> Option<usize> {
    let one_byte_apart = |candidate: u64| {
        let diff = candidate ^ length;
        diff != 0 && (0..8).any(|byte| diff & !(0xFFu64 << (8 * byte)) == 0)
    };
    let mut crc = Crc32::new();
    for (fits, byte) in data.iter().enumerate() {
        if one_byte_apart(fits as u64) && crc.value() == stored {
            return Some(fits);
        }
        crc.update(&[*byte]);
    }
    (one_byte_apart(data.len() as u64) && crc.value() == stored).then_some(data.len())
}

/// CRC-32 (ISO-HDLC, as `crc32fast`, which the engine uses).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(data);
    crc.value()
}

/// A running CRC-32 (reflected polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF).
struct Crc32(u32);

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut value = n as u32;
        let mut bit = 0;
        while bit < 8 {
            value = if value & 1 == 1 {
                0xEDB8_8320 ^ (value >> 1)
            } else {
                value >> 1
            };
            bit += 1;
        }
        table[n] = value;
        n += 1;
    }
    table
};

impl Crc32 {
    fn new() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }

    fn update(&mut self, data: &[u8]) {
        for byte in data {
            self.0 = CRC32_TABLE[((self.0 ^ u32::from(*byte)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
    }

    fn value(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The catalogue's check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }
}
