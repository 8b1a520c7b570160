//! The certified log of signatures.
//!
//! The node's certified data is the root hash of
//!
//! ```text
//! fork( label "count" -> leaf(total entries as u64 BE),
//!       label "log"   -> RbTree{ <index u64 BE> -> entry_hash } )
//! ```
//!
//! with
//!
//! ```text
//! entry_hash = SHA-256( 0x14 "stratros-node-log-v1" || index u64 BE || hub u8 len || principal
//!                     || height u64 BE || header_hash 32 || signed_at_nanos u64 BE
//!                     || signature u16 BE len || signature )
//! ```
//!
//! A page's witness reveals `count` and the entry hashes of the page's indexes, so a client
//! checks each entry it got and that the page ends where the log ends.

use ic_certification::{AsHashTree, Hash, HashTree, RbTree, fork, label, leaf, pruned};
use sha2::{Digest, Sha256};

use crate::types::LogEntry;

/// Domain separator of log entry hashes.
pub const LOG_ENTRY_DOMAIN: &str = "stratros-node-log-v1";
/// Label of the entry count in the certified tree.
pub const COUNT_LABEL: &[u8] = b"count";
/// Label of the entry subtree in the certified tree.
pub const LOG_LABEL: &[u8] = b"log";
/// The largest page `get_log` returns.
pub const MAX_PAGE: u64 = 100;

/// The hash a log entry has in the certified tree.
pub fn entry_hash(entry: &LogEntry) -> Hash {
    let mut h = Sha256::new();
    h.update([LOG_ENTRY_DOMAIN.len() as u8]);
    h.update(LOG_ENTRY_DOMAIN.as_bytes());
    h.update(entry.index.to_be_bytes());
    let hub = entry.hub.as_slice();
    h.update([hub.len() as u8]);
    h.update(hub);
    h.update(entry.height.to_be_bytes());
    h.update(entry.header_hash.0);
    h.update(entry.signed_at_nanos.to_be_bytes());
    let sig = entry.signature.as_slice();
    let len = u16::try_from(sig.len()).unwrap_or_else(|_| panic!("BUG: signature too long"));
    h.update(len.to_be_bytes());
    h.update(sig);
    h.finalize().into()
}

/// The heap-side certified tree over the log (rebuilt from stable memory after an upgrade).
#[derive(Default)]
pub struct CertifiedLog {
    entries: RbTree<[u8; 8], Hash>,
    count: u64,
}

impl CertifiedLog {
    /// Adds the next entry. Entries must come in index order.
    pub fn push(&mut self, entry: &LogEntry) {
        assert_eq!(
            entry.index, self.count,
            "BUG: log entries must be certified in order"
        );
        self.entries
            .insert(entry.index.to_be_bytes(), entry_hash(entry));
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    fn tree_with(&self, log: HashTree) -> HashTree {
        fork(
            label(
                COUNT_LABEL.to_vec(),
                leaf(self.count.to_be_bytes().to_vec()),
            ),
            label(LOG_LABEL.to_vec(), log),
        )
    }

    /// The node's certified data.
    pub fn root_hash(&self) -> Hash {
        self.tree_with(pruned(self.entries.root_hash())).digest()
    }

    /// The witness of entries `start..end` (end exclusive), with the count. An empty range
    /// reveals the count only.
    pub fn witness(&self, start: u64, end: u64) -> HashTree {
        let log = if start < end {
            self.entries
                .value_range(&start.to_be_bytes(), &(end - 1).to_be_bytes())
        } else {
            pruned(self.entries.root_hash())
        };
        self.tree_with(log)
    }
}

/// CBOR of a hash tree, as the IC encodes witnesses.
pub fn witness_cbor(tree: &HashTree) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(tree, &mut out)
        .unwrap_or_else(|e| panic!("BUG: a hash tree always encodes: {e}"));
    out
}
