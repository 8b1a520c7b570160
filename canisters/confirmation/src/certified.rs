//! The certified header chain.
//!
//! The hub's certified data is the root hash of
//!
//! ```text
//! label "headers" -> RbTree{ <height u64 BE> -> header hash (32 bytes) }
//! ```
//!
//! (`stratros_confirmation::certified_header_path`), so a receipt's witness reveals exactly its
//! header's hash and `stratros-verify` checks it against the subnet-signed certificate. Every
//! sealed header is certified at sealing time; the tree lives on the heap and is rebuilt from
//! the batches after an upgrade.

use ic_certification::{AsHashTree, Hash, HashTree, RbTree, label, labeled_hash};
use stratros_confirmation::{CERTIFIED_HEADERS_LABEL, Hash32};

#[derive(Default)]
pub struct CertifiedHeaders {
    headers: RbTree<[u8; 8], Hash>,
}

impl CertifiedHeaders {
    pub fn insert(&mut self, height: u64, header_hash: &Hash32) {
        self.headers.insert(height.to_be_bytes(), header_hash.0);
    }

    /// The hub's certified data.
    pub fn root_hash(&self) -> Hash {
        labeled_hash(CERTIFIED_HEADERS_LABEL, &self.headers.root_hash())
    }

    /// The witness revealing `headers/<height>`.
    pub fn witness(&self, height: u64) -> HashTree {
        label(
            CERTIFIED_HEADERS_LABEL.to_vec(),
            self.headers.witness(&height.to_be_bytes()),
        )
    }
}

/// CBOR of a hash tree, as the IC encodes witnesses.
pub fn witness_cbor(tree: &HashTree) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(tree, &mut out)
        .unwrap_or_else(|e| panic!("BUG: a hash tree always encodes: {e}"));
    out
}
