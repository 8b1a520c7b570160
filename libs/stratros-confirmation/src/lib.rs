//! Stratros confirmation layer: the types, canonical encodings, Merkle tree and signing digests
//! that the hub, the confirmation nodes, the CLI and restaking share.
//!
//! Pure logic, no ic-cdk: it compiles natively and for `wasm32-unknown-unknown`.
//! See the README for byte layouts and domain separators.

pub mod bytes;
pub mod encoding;
pub mod equivocation;
pub mod hub;
pub mod merkle;
pub mod packed;
pub mod quorum;
pub mod receipt;
pub mod submit_candid;
pub mod types;

pub use bytes::{Blob, Hash32};
pub use encoding::{
    CERTIFIED_HEADERS_LABEL, VETKD_CONTEXT, certified_header_path, header_hash,
    header_signing_digest, leaf_hash, quorum_policy_hash, signing_digest,
};
pub use equivocation::{EvidenceError, check_equivocation_structure};
pub use merkle::StratrosHasher;
pub use packed::{decode_packed, encode_packed};
pub use quorum::PolicyError;
pub use submit_candid::decode_submit_arg;
pub use types::*;

#[cfg(test)]
mod tests;
