//! The batch Merkle tree: RFC 6962 domain separation over SHA-256, rs_merkle's shape.
//!
//! - leaf hash  = `SHA-256(0x00 || leaf bytes)` ([`crate::encoding::leaf_hash`]);
//! - inner node = `SHA-256(0x01 || left || right)`;
//! - a level with an odd number of nodes promotes its last node unchanged to the next level
//!   (rs_merkle's rule; RFC 6962 splits differently, but promotion gives the same proof length
//!   bound and keeps rs_merkle's proofs valid).
//!
//! Level 0 holds the leaf hashes; level `l` has `ceil(n / 2^l)` nodes; the last level holds the
//! root. A canister stores every level (e.g. a `StableBTreeMap<(level, index), [u8; 32]>`), and
//! [`proof_from_levels`] then reads exactly one node per level that has a sibling: O(log n).

use crate::bytes::Hash32;
use crate::encoding::{NODE_PREFIX, hash_leaf_bytes, node_hash};
use sha2::{Digest, Sha256};

/// rs_merkle hasher with leaf/node domain separation. `hash(data)` is the *leaf* hash of `data`;
/// `concat_and_hash` is the inner node hash, and promotes a lone node.
#[derive(Clone, Copy, Debug, Default)]
pub struct StratrosHasher;

impl rs_merkle::Hasher for StratrosHasher {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        hash_leaf_bytes(data).0
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => {
                let mut h = Sha256::new();
                h.update([NODE_PREFIX]);
                h.update(left);
                h.update(right);
                h.finalize().into()
            }
            None => *left,
        }
    }
}

/// Number of nodes at `level` of a tree with `leaf_count` leaves.
pub fn level_len(leaf_count: u64, level: u32) -> u64 {
    if level >= 64 {
        return u64::from(leaf_count > 0);
    }
    leaf_count.div_ceil(1u64 << level)
}

/// Number of levels, leaves and root included: 0 for an empty tree, 1 for a single leaf.
pub fn level_count(leaf_count: u64) -> u32 {
    if leaf_count == 0 {
        0
    } else {
        // ceil(log2(n)) + 1
        (64 - (leaf_count - 1).leading_zeros()) + 1
    }
}

/// Every level of the tree, from the leaves (index 0) to the root (last, one node).
/// Empty input gives no levels.
pub fn levels_from_leaves(leaves: &[Hash32]) -> Vec<Vec<Hash32>> {
    let mut levels = Vec::new();
    if leaves.is_empty() {
        return levels;
    }
    levels.push(leaves.to_vec());
    while levels.last().is_some_and(|l| l.len() > 1) {
        let below = levels.last().expect("BUG: no level");
        let next: Vec<Hash32> = below
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node_hash(l, r),
                [lone] => *lone,
                _ => unreachable!("BUG: chunk of 2"),
            })
            .collect();
        levels.push(next);
    }
    levels
}

/// The root of a tree over `leaves`, `None` when empty.
pub fn merkle_root(leaves: &[Hash32]) -> Option<Hash32> {
    levels_from_leaves(leaves)
        .last()
        .and_then(|top| top.first().copied())
}

/// The proof for leaf `index`: the sibling of the running node at each level that has one, from
/// the leaves up. `get_node(level, index)` reads a stored node; it is called once per entry.
///
/// Panics (`BUG:`) when `index >= leaf_count`.
pub fn proof_from_levels(
    get_node: impl Fn(u32, u64) -> Hash32,
    leaf_count: u64,
    index: u64,
) -> Vec<Hash32> {
    assert!(
        index < leaf_count,
        "BUG: leaf index {index} out of range for {leaf_count} leaves"
    );
    let mut proof = Vec::new();
    let mut idx = index;
    let mut len = leaf_count;
    let mut level = 0u32;
    while len > 1 {
        let sibling = idx ^ 1;
        if sibling < len {
            proof.push(get_node(level, sibling));
        }
        idx /= 2;
        len = len.div_ceil(2);
        level += 1;
    }
    proof
}

/// The root that `proof` yields for `leaf` at `index` of a `leaf_count`-leaf tree, or `None`
/// when the index is out of range or the proof has the wrong number of hashes.
pub fn root_from_proof(
    leaf: &Hash32,
    index: u64,
    leaf_count: u64,
    proof: &[Hash32],
) -> Option<Hash32> {
    if index >= leaf_count {
        return None;
    }
    let mut hash = *leaf;
    let mut idx = index;
    let mut len = leaf_count;
    let mut used = 0usize;
    while len > 1 {
        let sibling = idx ^ 1;
        if sibling < len {
            let sib = proof.get(used)?;
            used += 1;
            hash = if idx.is_multiple_of(2) {
                node_hash(&hash, sib)
            } else {
                node_hash(sib, &hash)
            };
        }
        idx /= 2;
        len = len.div_ceil(2);
    }
    (used == proof.len()).then_some(hash)
}

/// Whether `proof` proves `leaf` at `index` under `root`.
pub fn verify_proof(
    root: &Hash32,
    leaf: &Hash32,
    index: u64,
    leaf_count: u64,
    proof: &[Hash32],
) -> bool {
    root_from_proof(leaf, index, leaf_count, proof).as_ref() == Some(root)
}

/// The same proof as an rs_merkle proof (for callers that use rs_merkle's verifier).
pub fn to_rs_merkle_proof(proof: &[Hash32]) -> rs_merkle::MerkleProof<StratrosHasher> {
    rs_merkle::MerkleProof::new(proof.iter().map(|h| h.0).collect())
}
