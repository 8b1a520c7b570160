//! Candid and serde types of the confirmation layer.

use crate::bytes::{Blob, Hash32};
use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

/// Ids are assigned by the hub, in submission order, starting at 0.
pub type RecordId = u64;

/// What a submitter sends: a content hash plus bounded metadata.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct RecordInput {
    /// SHA-256 (or any 32-byte digest) of the content being recorded.
    pub content_hash: Hash32,
    /// Application-defined kind, e.g. `"inference"`, `"dataset"`.
    pub kind: String,
    /// The submitter's own reference (idempotency key, external id).
    pub reference: String,
    /// Optional small payload; only its SHA-256 enters the leaf.
    pub payload: Option<Blob>,
}

/// A record as sealed into a batch: the input plus the id and submitter the hub assigned.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Record {
    pub id: RecordId,
    pub submitter: Principal,
    pub content_hash: Hash32,
    pub kind: String,
    pub reference: String,
    pub payload: Option<Blob>,
}

/// The threshold schemes a confirmation node can use.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, CandidType, Serialize, Deserialize,
)]
pub enum Scheme {
    /// `sign_with_ecdsa`, secp256k1, over the 32-byte digest as `message_hash`.
    #[serde(rename = "ecdsa_secp256k1")]
    EcdsaSecp256k1,
    /// `sign_with_schnorr` bip340secp256k1, the 32-byte digest as `message`.
    #[serde(rename = "schnorr_bip340")]
    SchnorrBip340,
    /// `sign_with_schnorr` ed25519, the 32-byte digest as `message`.
    #[serde(rename = "schnorr_ed25519")]
    SchnorrEd25519,
    /// vetKD (`vetkd_derive_key`) used as threshold BLS12-381: G1 signature, G2 key.
    #[serde(rename = "vetkd_bls12_381")]
    Bls12_381,
}

impl Scheme {
    pub const ALL: [Scheme; 4] = [
        Scheme::EcdsaSecp256k1,
        Scheme::SchnorrBip340,
        Scheme::SchnorrEd25519,
        Scheme::Bls12_381,
    ];

    /// The one-byte tag used in every canonical encoding.
    pub fn tag(self) -> u8 {
        match self {
            Scheme::EcdsaSecp256k1 => 1,
            Scheme::SchnorrBip340 => 2,
            Scheme::SchnorrEd25519 => 3,
            Scheme::Bls12_381 => 4,
        }
    }

    /// The name used in JSON and in trust files.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::EcdsaSecp256k1 => "ecdsa_secp256k1",
            Scheme::SchnorrBip340 => "schnorr_bip340",
            Scheme::SchnorrEd25519 => "schnorr_ed25519",
            Scheme::Bls12_381 => "vetkd_bls12_381",
        }
    }

    /// Length of the public key a node of this scheme publishes.
    pub fn public_key_len(self) -> usize {
        match self {
            // SEC1 compressed, as `ecdsa_public_key` / `schnorr_public_key` return it.
            Scheme::EcdsaSecp256k1 | Scheme::SchnorrBip340 => 33,
            Scheme::SchnorrEd25519 => 32,
            // Compressed G2.
            Scheme::Bls12_381 => 96,
        }
    }

    /// Length of a signature of this scheme.
    pub fn signature_len(self) -> usize {
        match self {
            Scheme::Bls12_381 => 48,
            _ => 64,
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The header of a sealed batch. Headers are hash-chained through `prev_header_hash`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct BatchHeader {
    /// The hub canister that sealed the batch.
    pub hub: Principal,
    /// 0 for the first batch.
    pub height: u64,
    /// Header hash of batch `height - 1`; [`Hash32::ZERO`] for height 0.
    pub prev_header_hash: Hash32,
    /// Root of the batch's Merkle tree (see [`crate::merkle`]).
    pub merkle_root: Hash32,
    /// Number of leaves, at least 1.
    pub leaf_count: u64,
    pub first_record_id: RecordId,
    pub last_record_id: RecordId,
    /// Submission time (IC nanoseconds) of the oldest record in the batch.
    pub start_time_nanos: u64,
    /// Time the batch was sealed (IC nanoseconds).
    pub end_time_nanos: u64,
    /// [`crate::encoding::quorum_policy_hash`] of the policy that confirms this batch.
    pub quorum_policy_hash: Hash32,
}

/// One node's signature over a header's signing digest.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Confirmation {
    /// The node canister; its key is derived for this id.
    pub node: Principal,
    pub scheme: Scheme,
    /// Threshold key name (`key_1`, `test_key_1`, `dfx_test_key`, ...).
    pub key_name: String,
    /// The node's derived public key (33-byte SEC1, 32-byte Ed25519 or 96-byte G2).
    pub public_key: Blob,
    /// The signature over [`crate::encoding::signing_digest`].
    pub signature: Blob,
}

/// A node that the quorum policy counts.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct PolicyNode {
    pub node: Principal,
    pub scheme: Scheme,
    pub key_name: String,
}

/// How many of the policy's nodes must confirm.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum QuorumRule {
    /// At least `k` distinct nodes of the policy.
    #[serde(rename = "k_of_n")]
    KOfN { k: u32 },
    /// For every scheme that appears among the policy's nodes, at least one of its nodes.
    #[serde(rename = "one_of_each_scheme")]
    OneOfEachScheme,
}

/// The quorum policy of a hub. Its hash is part of every header, so a receipt cannot swap it.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct QuorumPolicy {
    pub nodes: Vec<PolicyNode>,
    pub rule: QuorumRule,
}

/// Everything an offline verifier needs to check one record.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Receipt {
    pub record: Record,
    /// Position of the record's leaf in the batch, `0..header.leaf_count`.
    pub leaf_index: u64,
    /// [`crate::encoding::leaf_hash`] of `record`.
    pub leaf_hash: Hash32,
    /// Sibling hashes from the leaf up, as [`crate::merkle::proof_from_levels`] yields them.
    pub proof: Vec<Hash32>,
    pub header: BatchHeader,
    pub confirmations: Vec<Confirmation>,
    pub quorum_policy: QuorumPolicy,
    /// The IC certificate (CBOR) returned by `data_certificate()` in the hub's query.
    pub certificate: Blob,
    /// The CBOR hash-tree witness of the hub's certified tree, revealing
    /// `headers/<height as u64 big-endian>` = header hash.
    pub witness: Blob,
}

/// A header together with one node's signature over its signing digest.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct SignedHeader {
    pub header: BatchHeader,
    pub signature: Blob,
}

/// Proof that a node signed two different headers for one (hub, height).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct EquivocationEvidence {
    pub node: Principal,
    pub scheme: Scheme,
    pub key_name: String,
    pub first: SignedHeader,
    pub second: SignedHeader,
}
