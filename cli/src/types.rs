//! Candid types of the canisters the CLI talks to, mirrored from their checked-in `.did` files
//! (`candid/confirmation.did`, `candid/confirmation_node.did`, `candid/icrc_ledger.did`).
//!
//! The canister crates cannot be linked into one native binary together (each exports
//! `canister_init` and friends), so the CLI keeps its own copies; `tests/candid_types.rs` checks
//! them against the `.did` files.

use candid::{CandidType, Nat, Principal};
use icrc_ledger_types::icrc1::account::Account;
use serde::Deserialize;
use stratros_confirmation::{
    BatchHeader, Blob, Confirmation, Hash32, PolicyError, PolicyNode, QuorumPolicy, QuorumRule,
    RecordId, Scheme, SignedHeader,
};

/// `confirmation_node`: install and upgrade argument.
#[derive(Clone, Debug, CandidType, Deserialize)]
pub enum NodeArg {
    Init(NodeInitArgs),
    Upgrade(Option<NodeUpgradeArgs>),
}

#[derive(Clone, Debug, CandidType, Deserialize)]
pub struct NodeInitArgs {
    pub scheme: Scheme,
    pub key_name: String,
    pub hub: Principal,
}

#[derive(Clone, Debug, Default, CandidType, Deserialize)]
pub struct NodeUpgradeArgs {
    pub hub: Option<Principal>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct NodeInfo {
    pub node: Principal,
    pub scheme: Scheme,
    pub key_name: String,
    pub hub: Principal,
    pub public_key: Option<Blob>,
    pub log_length: u64,
    pub signature_fee: Option<Nat>,
    pub liquid_cycles: Nat,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct SignResponse {
    pub log_index: u64,
    pub header_hash: Hash32,
    pub newly_signed: bool,
    pub confirmation: Confirmation,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum SignError {
    AlreadySignedOtherHeader {
        log_index: u64,
        signed: SignedHeader,
    },
    SigningInProgress {
        height: u64,
        header_hash: Hash32,
    },
    NotHub {
        hub: Principal,
        caller: Principal,
    },
    ThresholdCallFailed {
        reject_code: Option<u32>,
        message: String,
    },
    PublicKeyUnavailable {
        message: String,
    },
    InsufficientCycles {
        available: Nat,
        required: Nat,
    },
    ChainMismatch {
        signed_header_hash: Hash32,
        signed_height: u64,
    },
    WrongHub {
        hub: Principal,
        header_hub: Principal,
    },
}

/// `icrc_ledger` (the test fixture): install and upgrade argument.
#[derive(Clone, Debug, CandidType, Deserialize)]
pub enum LedgerArg {
    Init(LedgerInitArgs),
    Upgrade(Option<LedgerUpgradeArgs>),
}

#[derive(Clone, Debug, CandidType, Deserialize)]
pub struct LedgerInitArgs {
    pub token_name: String,
    pub token_symbol: String,
    pub decimals: u8,
    pub transfer_fee: Nat,
    pub minting_account: Account,
    pub initial_balances: Vec<(Account, Nat)>,
    pub max_memo_length: Option<u16>,
}

#[derive(Clone, Debug, Default, CandidType, Deserialize)]
pub struct LedgerUpgradeArgs {
    pub transfer_fee: Option<Nat>,
    pub max_memo_length: Option<u16>,
}

// ---------------------------------------------------------------------------------------------
// `confirmation` (the hub): mirrored from `candid/confirmation.did` (the hub's own arguments,
// replies and errors; the shared types come from `stratros-confirmation`).

/// `confirmation`: install (`Init`) and upgrade (`Upgrade`) argument.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum Arg {
    Init(InitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct InitArgs {
    /// Principals allowed to submit records (more with `add_submitter`).
    pub submitters: Vec<Principal>,
    /// Confirmation nodes (more with `register_node`). Sealing waits until the policy is valid.
    pub nodes: Vec<PolicyNode>,
    /// Default `OneOfEachScheme`.
    pub quorum_rule: Option<QuorumRule>,
    /// Default and limits: see `Config`.
    pub config: Option<ConfigUpdate>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeArgs {
    pub config: Option<ConfigUpdate>,
}

/// The hub's tunables. Every field has a default and bounds (the hub validates them).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Config {
    /// A batch is sealed as soon as this many records are pending (1..=MAX_BATCH_RECORDS).
    pub max_batch_records: u64,
    /// ... or when the oldest pending record is this old.
    pub max_batch_age_seconds: u64,
    /// At most this many records per `submit` call.
    pub max_records_per_call: u32,
    /// Largest optional payload of a record, in bytes.
    pub max_payload_bytes: u32,
    /// Largest `kind`, in bytes.
    pub max_kind_bytes: u32,
    /// Largest `reference`, in bytes.
    pub max_reference_bytes: u32,
    /// Timeout of the bounded-wait `sign_header` calls.
    pub call_timeout_seconds: u32,
    /// First retry delay after a failed `sign_header`; doubles with each failure.
    pub retry_base_seconds: u64,
    /// The longest retry delay.
    pub retry_max_seconds: u64,
}

/// Optional changes to [`Config`].
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct ConfigUpdate {
    pub max_batch_records: Option<u64>,
    pub max_batch_age_seconds: Option<u64>,
    pub max_records_per_call: Option<u32>,
    pub max_payload_bytes: Option<u32>,
    pub max_kind_bytes: Option<u32>,
    pub max_reference_bytes: Option<u32>,
    pub call_timeout_seconds: Option<u32>,
    pub retry_base_seconds: Option<u64>,
    pub retry_max_seconds: Option<u64>,
}

/// One accepted record.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Submitted {
    pub id: RecordId,
    /// `true` when the submitter's `reference` (its idempotency key) was already known: `id` is
    /// the earlier record's, and nothing new was stored.
    pub duplicate: bool,
}

/// Why `submit` accepted nothing (a call is all or nothing).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum SubmitError {
    /// The caller is not an authorized submitter.
    Unauthorized { caller: Principal },
    /// The call carried no record.
    EmptySubmission,
    /// More records than `max_records_per_call`.
    TooManyRecords { max: u32, got: u64 },
    /// `submit_packed`: the blob is not a valid packed submission.
    Malformed { message: String },
    /// Record `index` of the call has a field larger than allowed.
    RecordTooLarge {
        index: u64,
        field: String,
        max: u32,
        got: u64,
    },
}

/// Why `get_receipt` has no receipt.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum ReceiptError {
    /// No record has this id (yet): ids below `next_id` exist.
    UnknownRecord { id: RecordId, next_id: RecordId },
    /// The record waits for its batch to be sealed.
    NotSealed { id: RecordId },
    /// The batch is sealed but its quorum is not reached yet.
    NotConfirmed {
        height: u64,
        confirmations: u32,
        nodes: u32,
    },
    /// `data_certificate()` is only available in a non-replicated query: call it as a query.
    CertificateUnavailable,
}

/// Why `get_batch` failed.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum BatchError {
    /// Heights below `next_height` exist.
    UnknownHeight { height: u64, next_height: u64 },
}

/// Why a controller operation failed.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum AdminError {
    NotController {
        caller: Principal,
    },
    /// The resulting quorum policy would be invalid.
    InvalidPolicy(PolicyError),
    UnknownNode(Principal),
    /// `seal_now` with no pending record.
    NothingPending,
    /// `seal_now` while no valid quorum policy is configured.
    NoValidPolicy,
}

/// How far one node got with one batch.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct NodeProgress {
    pub node: Principal,
    pub scheme: Scheme,
    pub key_name: String,
    /// The node's signature, once received.
    pub confirmation: Option<Confirmation>,
    /// Failed `sign_header` attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (IC nanoseconds).
    pub next_attempt_nanos: u64,
    pub last_error: Option<String>,
    /// The node refused for good (it signed another header at this height): never retried.
    pub refused: bool,
}

/// A sealed batch and its confirmation progress.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Batch {
    pub header: BatchHeader,
    pub header_hash: Hash32,
    /// Where the batch's inner tree levels start in the hub's node store.
    pub tree_offset: u64,
    pub sealed_at_nanos: u64,
    /// Instructions the seal took (tree, header, storage), as the counter saw them.
    pub seal_instructions: u64,
    /// Of which the SHA-256 of the inner tree nodes.
    pub seal_hash_instructions: u64,
    /// Set when the quorum policy first held.
    pub confirmed_at_nanos: Option<u64>,
    pub nodes: Vec<NodeProgress>,
}

impl Batch {
    pub fn confirmations(&self) -> Vec<Confirmation> {
        self.nodes
            .iter()
            .filter_map(|n| n.confirmation.clone())
            .collect()
    }

    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at_nanos.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ListBatchesArgs {
    /// First height of the page.
    pub start: u64,
    /// At most the hub's page limit (100); larger values are capped.
    pub limit: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct BatchPage {
    pub batches: Vec<Batch>,
    /// Number of batches sealed so far (heights `0..total`).
    pub total: u64,
}

/// What `get_status` reports.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Status {
    pub hub: Principal,
    /// Records accepted but not sealed yet.
    pub pending_records: u64,
    pub next_record_id: RecordId,
    /// Batches sealed (heights `0..batches`).
    pub batches: u64,
    /// Sealed batches with nodes still to sign (quorum reached or not).
    pub open_batches: u64,
    pub last_header_hash: Hash32,
    /// The policy that new batches get.
    pub quorum: QuorumPolicy,
    pub quorum_valid: bool,
    pub submitters: u64,
    pub config: Config,
    pub cycles: u128,
}
