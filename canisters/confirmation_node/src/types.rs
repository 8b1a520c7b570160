//! The Candid types of the confirmation node's interface.
//!
//! Shared types (`BatchHeader`, `Scheme`, `Confirmation`, `SignedHeader`) come from
//! `stratros-confirmation`; these are the node's own arguments, replies and errors.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use stratros_confirmation::{BatchHeader, Blob, Confirmation, Hash32, Scheme, SignedHeader};

/// The argument of `canister_init` (`Init`) and `canister_post_upgrade` (`Upgrade`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum Arg {
    Init(InitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct InitArgs {
    /// The threshold scheme of this node; fixed for its lifetime.
    pub scheme: Scheme,
    /// Threshold key name: `dfx_test_key`, `test_key_1` or `key_1`; fixed for its lifetime.
    pub key_name: String,
    /// The only canister allowed to ask for signatures.
    pub hub: Principal,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeArgs {
    /// A new hub. Slots are per (hub, height), so a new hub starts its own heights.
    pub hub: Option<Principal>,
}

/// What `sign_header` returns.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct SignResponse {
    /// The node's confirmation, ready to go into a receipt.
    pub confirmation: Confirmation,
    pub header_hash: Hash32,
    /// Position of the signature in the node's certified log.
    pub log_index: u64,
    /// `false` when the header had been signed before and the stored signature was returned.
    pub newly_signed: bool,
}

/// Why `sign_header` (or `fetch_public_key`) did not sign.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum SignError {
    /// Only the hub may ask for signatures.
    NotHub { caller: Principal, hub: Principal },
    /// The header names another hub than this node's.
    WrongHub {
        header_hub: Principal,
        hub: Principal,
    },
    /// The node already signed a different header for this (hub, height): it never signs a
    /// second one. `signed` is what it signed (evidence of an equivocation attempt).
    AlreadySignedOtherHeader {
        log_index: u64,
        signed: Box<SignedHeader>,
    },
    /// The header does not chain with a header the node signed at a neighbouring height
    /// (`height - 1` or `height + 1`): signing it would sign a fork.
    ChainMismatch {
        signed_height: u64,
        signed_header_hash: Hash32,
    },
    /// A signature for this (hub, height) is being produced; retry later.
    SigningInProgress { height: u64, header_hash: Hash32 },
    /// The node's liquid cycles do not cover the threshold fee.
    InsufficientCycles { available: u128, required: u128 },
    /// The node's public key is not known yet and could not be fetched.
    PublicKeyUnavailable { message: String },
    /// The threshold call failed; nothing was recorded and a retry is safe.
    ThresholdCallFailed {
        reject_code: Option<u32>,
        message: String,
    },
}

/// One signature in the node's log.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the log, from 0, in signing order.
    pub index: u64,
    pub hub: Principal,
    pub height: u64,
    pub header_hash: Hash32,
    pub header: BatchHeader,
    pub signature: Blob,
    pub signed_at_nanos: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct GetLogArgs {
    pub start: u64,
    /// At most [`crate::log::MAX_PAGE`]; larger values are capped.
    pub limit: u64,
}

/// A page of the log with what proves it: `certificate` (only in a non-replicated query) holds
/// the node's certified data, the root hash of `witness` (a CBOR hash tree revealing
/// `count` and `log/<index u64 BE>` = entry hash for every entry of the page).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// Number of entries in the whole log.
    pub total: u64,
    pub certificate: Option<Blob>,
    pub witness: Blob,
}

/// Configuration and status of the node.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct NodeInfo {
    pub node: Principal,
    pub scheme: Scheme,
    pub key_name: String,
    pub hub: Principal,
    /// The key derived for this canister (absent until fetched).
    pub public_key: Option<Blob>,
    pub log_length: u64,
    /// The threshold fee of one signature (cycles).
    pub signature_fee: Option<u128>,
    pub liquid_cycles: u128,
}
