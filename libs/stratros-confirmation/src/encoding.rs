//! Canonical byte layouts, domain separators and the hashes built on them.
//!
//! Every layout is either fixed-width or length-prefixed, so two different values never encode to
//! the same bytes. Integers are big-endian. A principal is `u8 length || bytes` (at most 29 bytes).
//! Strings are `u32 length || UTF-8`. Domain separators are `u8 length || ASCII`, as the IC does.

use crate::bytes::Hash32;
use crate::types::{BatchHeader, QuorumPolicy, QuorumRule, Record, Scheme};
use candid::Principal;
use sha2::{Digest, Sha256};

/// Prefix of a leaf hash input (RFC 6962).
pub const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an inner node hash input (RFC 6962).
pub const NODE_PREFIX: u8 = 0x01;
/// Version byte that starts every leaf encoding.
pub const LEAF_VERSION: u8 = 0x01;
/// Domain separator of header hashes.
pub const HEADER_DOMAIN: &str = "stratros-header-v1";
/// Domain separator of the digest a node signs.
pub const SIGNING_DOMAIN: &str = "stratros-confirmation-v1";
/// Domain separator of quorum policy hashes.
pub const POLICY_DOMAIN: &str = "stratros-quorum-v1";
/// The vetKD `context` of every BLS confirmation node (its `input` is the signing digest).
pub const VETKD_CONTEXT: &[u8] = b"stratros-confirmation-v1";
/// Label of the subtree of the hub's certified hash tree that holds header hashes:
/// `headers / <height: u64 big-endian, 8 bytes>` -> 32-byte header hash.
pub const CERTIFIED_HEADERS_LABEL: &[u8] = b"headers";

/// The path at which the hub's certified tree holds the header hash of `height`.
pub fn certified_header_path(height: u64) -> [Vec<u8>; 2] {
    [
        CERTIFIED_HEADERS_LABEL.to_vec(),
        height.to_be_bytes().to_vec(),
    ]
}

fn put_domain(buf: &mut Vec<u8>, domain: &str) {
    buf.push(u8::try_from(domain.len()).expect("BUG: domain separator longer than 255"));
    buf.extend_from_slice(domain.as_bytes());
}

fn put_principal(buf: &mut Vec<u8>, p: &Principal) {
    let bytes = p.as_slice();
    // A principal is at most 29 bytes, so the length always fits a byte.
    buf.push(bytes.len() as u8);
    buf.extend_from_slice(bytes);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).expect("BUG: string longer than 4 GiB");
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash32 {
    Hash32(Sha256::digest(data).into())
}

/// The canonical leaf encoding of a record:
///
/// ```text
/// 0x01 (LEAF_VERSION)
/// id            u64 BE
/// submitter     u8 len || principal bytes
/// content_hash  32 bytes
/// kind          u32 BE len || UTF-8
/// reference     u32 BE len || UTF-8
/// payload       0x00                         (absent)
///             | 0x01 || SHA-256(payload)     (present, 33 bytes)
/// ```
pub fn encode_leaf(record: &Record) -> Vec<u8> {
    let mut buf =
        Vec::with_capacity(1 + 8 + 30 + 32 + 8 + record.kind.len() + record.reference.len() + 33);
    buf.push(LEAF_VERSION);
    buf.extend_from_slice(&record.id.to_be_bytes());
    put_principal(&mut buf, &record.submitter);
    buf.extend_from_slice(&record.content_hash.0);
    put_str(&mut buf, &record.kind);
    put_str(&mut buf, &record.reference);
    match &record.payload {
        None => buf.push(0x00),
        Some(p) => {
            buf.push(0x01);
            buf.extend_from_slice(&sha256(p.as_slice()).0);
        }
    }
    buf
}

/// `SHA-256(0x00 || leaf_bytes)`.
pub fn hash_leaf_bytes(leaf_bytes: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(leaf_bytes);
    Hash32(h.finalize().into())
}

/// The Merkle leaf hash of a record: `SHA-256(0x00 || encode_leaf(record))`.
pub fn leaf_hash(record: &Record) -> Hash32 {
    hash_leaf_bytes(&encode_leaf(record))
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left.0);
    h.update(right.0);
    Hash32(h.finalize().into())
}

/// The canonical header encoding (fixed layout after the hub principal):
///
/// ```text
/// hub                 u8 len || principal bytes
/// height              u64 BE
/// prev_header_hash    32
/// merkle_root         32
/// leaf_count          u64 BE
/// first_record_id     u64 BE
/// last_record_id      u64 BE
/// start_time_nanos    u64 BE
/// end_time_nanos      u64 BE
/// quorum_policy_hash  32
/// ```
pub fn encode_header(header: &BatchHeader) -> Vec<u8> {
    let mut buf = Vec::with_capacity(30 + 8 * 6 + 32 * 3);
    put_principal(&mut buf, &header.hub);
    buf.extend_from_slice(&header.height.to_be_bytes());
    buf.extend_from_slice(&header.prev_header_hash.0);
    buf.extend_from_slice(&header.merkle_root.0);
    buf.extend_from_slice(&header.leaf_count.to_be_bytes());
    buf.extend_from_slice(&header.first_record_id.to_be_bytes());
    buf.extend_from_slice(&header.last_record_id.to_be_bytes());
    buf.extend_from_slice(&header.start_time_nanos.to_be_bytes());
    buf.extend_from_slice(&header.end_time_nanos.to_be_bytes());
    buf.extend_from_slice(&header.quorum_policy_hash.0);
    buf
}

/// `SHA-256(0x12 "stratros-header-v1" || encode_header(header))`.
pub fn header_hash(header: &BatchHeader) -> Hash32 {
    let mut buf = Vec::new();
    put_domain(&mut buf, HEADER_DOMAIN);
    buf.extend_from_slice(&encode_header(header));
    sha256(&buf)
}

/// The previous-header hash the next batch must carry: [`Hash32::ZERO`] before genesis.
pub fn chain_next(prev: Option<&BatchHeader>) -> Hash32 {
    prev.map(header_hash).unwrap_or(Hash32::ZERO)
}

/// Whether `next` extends `prev`: same hub, next height, links `prev`'s header hash.
pub fn extends(prev: &BatchHeader, next: &BatchHeader) -> bool {
    next.hub == prev.hub
        && prev.height.checked_add(1) == Some(next.height)
        && next.prev_header_hash == header_hash(prev)
}

/// The 32-byte digest a node signs:
///
/// ```text
/// SHA-256( 0x18 "stratros-confirmation-v1"
///        || scheme tag u8 (1 ECDSA, 2 BIP340, 3 Ed25519, 4 BLS)
///        || node  u8 len || principal bytes
///        || hub   u8 len || principal bytes
///        || height u64 BE
///        || header_hash 32 )
/// ```
///
/// ECDSA signs it as the prehashed `message_hash`; BIP340 and Ed25519 sign it as the message;
/// vetKD signs it as `input` with `context` = [`VETKD_CONTEXT`].
pub fn signing_digest(
    scheme: Scheme,
    node: &Principal,
    hub: &Principal,
    height: u64,
    header_hash: &Hash32,
) -> Hash32 {
    let mut buf = Vec::with_capacity(25 + 1 + 60 + 8 + 32);
    put_domain(&mut buf, SIGNING_DOMAIN);
    buf.push(scheme.tag());
    put_principal(&mut buf, node);
    put_principal(&mut buf, hub);
    buf.extend_from_slice(&height.to_be_bytes());
    buf.extend_from_slice(&header_hash.0);
    sha256(&buf)
}

/// The signing digest of `header` for `node` under `scheme`.
pub fn header_signing_digest(scheme: Scheme, node: &Principal, header: &BatchHeader) -> Hash32 {
    signing_digest(
        scheme,
        node,
        &header.hub,
        header.height,
        &header_hash(header),
    )
}

/// The canonical policy encoding and its hash:
///
/// ```text
/// SHA-256( 0x12 "stratros-quorum-v1"
///        || rule: 0x01 || k u32 BE   (KOfN)
///               | 0x02              (OneOfEachScheme)
///        || node count u32 BE
///        || per node, in order: principal (u8 len || bytes) || scheme tag u8 || key_name (u32 len || UTF-8) )
/// ```
pub fn quorum_policy_hash(policy: &QuorumPolicy) -> Hash32 {
    let mut buf = Vec::new();
    put_domain(&mut buf, POLICY_DOMAIN);
    match policy.rule {
        QuorumRule::KOfN { k } => {
            buf.push(0x01);
            buf.extend_from_slice(&k.to_be_bytes());
        }
        QuorumRule::OneOfEachScheme => buf.push(0x02),
    }
    let n = u32::try_from(policy.nodes.len()).expect("BUG: more than 4 billion nodes");
    buf.extend_from_slice(&n.to_be_bytes());
    for node in &policy.nodes {
        put_principal(&mut buf, &node.node);
        buf.push(node.scheme.tag());
        put_str(&mut buf, &node.key_name);
    }
    sha256(&buf)
}
