//! The Candid types of the confirmation hub's interface (`candid/confirmation.did`): its own
//! arguments, replies and errors. They live here, not in the canister crate, so the hub, the
//! services, the CLI and the tests share one definition (a canister crate cannot be linked
//! into another binary: its entry points would clash).

use crate::{
    BatchHeader, Confirmation, Hash32, PolicyError, PolicyNode, QuorumPolicy, QuorumRule, RecordId,
};
use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

/// The argument of `canister_init` (`Init`) and `canister_post_upgrade` (`Upgrade`).
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
    /// Default and limits: see [`Config`].
    pub config: Option<ConfigUpdate>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeArgs {
    pub config: Option<ConfigUpdate>,
}

/// The hub's tunables. Every field has a default and bounds (the hub validates them).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
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

/// The defaults a hub starts with (each within the bounds the hub validates).
impl Default for Config {
    fn default() -> Self {
        Config {
            max_batch_records: 10_000,
            max_batch_age_seconds: 30,
            max_records_per_call: 1_000,
            max_payload_bytes: 1_024,
            max_kind_bytes: 64,
            max_reference_bytes: 128,
            call_timeout_seconds: 60,
            retry_base_seconds: 5,
            retry_max_seconds: 600,
        }
    }
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
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct NodeProgress {
    pub node: Principal,
    pub scheme: crate::Scheme,
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
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
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
