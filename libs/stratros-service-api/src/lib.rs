//! The Candid types of the `service` canister (candid/service.did): its lifecycle arguments,
//! records, views and errors. Shared by the service, the registry (which installs services) and
//! every client (the CLI, other canisters, tests), so none keeps a hand-written mirror.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use stratros_confirmation::{Blob, Hash32};

/// The argument of `canister_init` (`Init`) and `canister_post_upgrade` (`Upgrade`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum Arg {
    Init(InitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct InitArgs {
    /// The service's owner: manages writers and configuration.
    pub owner: Principal,
    /// The confirmation hub every record is forwarded to.
    pub hub: Principal,
    /// Principals allowed to write records besides the owner.
    pub writers: Vec<Principal>,
    /// The service kind (as the registry names it), e.g. `"ai-module"`.
    pub kind: String,
    /// A human-readable instance name, e.g. `"Service 1"`.
    pub name: String,
    /// Defaults and bounds: see [`Config`].
    pub config: Option<ConfigUpdate>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeArgs {
    /// A new hub for records not yet submitted.
    pub hub: Option<Principal>,
    pub config: Option<ConfigUpdate>,
}

/// The service's tunables.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Config {
    /// Records per `add_records` call and per `submit` call to the hub (1..=100).
    pub max_records_per_call: u32,
    /// Largest text or blob field of a record, in bytes (1..=65536).
    pub max_field_bytes: u32,
    /// Delay before a failed submission or an unconfirmed record is looked at again (1..=3600).
    pub retry_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_records_per_call: 50,
            max_field_bytes: 4096,
            retry_seconds: 5,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct ConfigUpdate {
    pub max_records_per_call: Option<u32>,
    pub max_field_bytes: Option<u32>,
    pub retry_seconds: Option<u64>,
    /// The hub fee credit to keep, in records (default 1,000; 0 tops up only what a refused
    /// submission needs).
    pub credit_records: Option<u64>,
}

/// The service's side of the hub's per-record fee.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct FeeStatus {
    /// The fee ledger and the fee per record, as the hub last reported them (none: no fees).
    pub ledger: Option<Principal>,
    pub fee_per_record: u128,
    /// The credit at the hub as last known.
    pub hub_credit: u128,
    /// The credit target, in records.
    pub credit_records: u64,
    /// Credited by the hub so far.
    pub topped_up: u128,
    /// The amount of a top-up under way.
    pub top_up_in_progress: Option<u128>,
    /// Why the last top-up failed (for example: the service's ledger account is empty).
    pub last_error: Option<String>,
}

/// Why `get_receipt` relays no proof.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum ReceiptRelayError {
    UnknownRecord {
        id: u64,
    },
    NotConfirmed {
        status: RecordStatus,
    },
    /// The hub has no proof (its error).
    Hub {
        message: String,
    },
    CallFailed {
        reject_code: Option<u32>,
        message: String,
    },
}

/// What an AI application records.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum RecordBody {
    /// A model: id, version, hash of its weights and free-form metadata (JSON, say).
    ModelAttestation {
        model_id: String,
        version: String,
        weights_hash: Hash32,
        metadata: String,
    },
    /// A dataset: content hash, licence and where it comes from.
    Dataset {
        hash: Hash32,
        licence: String,
        source: String,
    },
    /// One inference: the model, the input's hash, the output (small) or its hash, and who
    /// ran it.
    Inference {
        model: String,
        input_hash: Hash32,
        output: Option<Blob>,
        output_hash: Hash32,
        executor: String,
    },
    /// Anything else, as an application-defined kind and an opaque payload.
    Transaction { kind: String, payload: Blob },
}

impl RecordBody {
    /// The `kind` the record has at the hub.
    pub fn hub_kind(&self) -> &'static str {
        match self {
            RecordBody::ModelAttestation { .. } => "model_attestation",
            RecordBody::Dataset { .. } => "dataset",
            RecordBody::Inference { .. } => "inference",
            RecordBody::Transaction { .. } => "transaction",
        }
    }
}

/// Where a record is on its way to confirmation.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub enum RecordStatus {
    /// Stored here, not yet accepted by the hub (retried from a timer).
    Pending {
        attempts: u32,
        last_error: Option<String>,
    },
    /// Accepted by the hub, waiting for its batch.
    Submitted,
    /// In a sealed batch whose quorum is not reached yet.
    Sealed { height: u64 },
    /// In a confirmed batch: its receipt is available from the hub's `get_receipt`.
    Confirmed {
        height: u64,
        header_hash: Hash32,
        confirmed_at_nanos: u64,
    },
    /// The hub refused the record for good (e.g. a field above the hub's limits).
    Refused { reason: String },
}

/// A record as the service serves it.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct RecordView {
    /// The service's own id, from 0.
    pub id: u64,
    pub author: Principal,
    pub created_at_nanos: u64,
    pub body: RecordBody,
    /// [`crate::records::content_hash`] of `body`: the hash the hub confirms.
    pub content_hash: Hash32,
    /// The idempotency key under which the record is submitted to the hub.
    pub reference: String,
    pub hub: Principal,
    /// The hub's record id, once the hub accepted the record.
    pub hub_record_id: Option<u64>,
    pub status: RecordStatus,
}

/// Why `add_records` stored nothing (a call is all or nothing).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum AddError {
    /// Only the owner and the writers may add records.
    NotWriter {
        caller: Principal,
    },
    EmptyBatch,
    TooManyRecords {
        max: u32,
        got: u64,
    },
    /// Record `index` has a field larger than `max_field_bytes`.
    FieldTooLarge {
        index: u64,
        field: String,
        max: u32,
        got: u64,
    },
}

/// Why an owner operation failed.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum AdminError {
    NotOwner { caller: Principal },
    InvalidConfig(String),
}

/// Why `read_confirmed` could not hand out a record of another service.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum ReadError {
    /// The call to the other service or to the hub failed.
    CallFailed {
        canister: Principal,
        reject_code: Option<u32>,
        message: String,
    },
    UnknownRecord {
        service: Principal,
        id: u64,
    },
    /// The record is not confirmed (yet): its status at the other service.
    NotConfirmed {
        status: RecordStatus,
    },
    /// The other service uses another hub than this one.
    OtherHub {
        hub: Principal,
    },
    /// The hub does not back the other service's claim.
    HubMismatch {
        message: String,
    },
    /// The record's content hash does not match its body.
    ContentHashMismatch,
}

/// A record of another service, checked against the hub.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ConfirmedRecord {
    pub service: Principal,
    pub record: RecordView,
    /// The hub's header hash of the record's batch, as the hub reported it.
    pub header_hash: Hash32,
    pub confirmed_at_nanos: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ListRecordsArgs {
    pub start: u64,
    /// At most 100.
    pub limit: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct RecordPage {
    pub records: Vec<RecordView>,
    pub total: u64,
}

/// What `get_status` reports.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub kind: String,
    pub name: String,
    pub owner: Principal,
    pub hub: Principal,
    pub writers: Vec<Principal>,
    pub config: Config,
    pub records: u64,
    pub pending: u64,
    pub submitted: u64,
    pub sealed: u64,
    pub confirmed: u64,
    pub refused: u64,
    /// Lowest hub batch height not known to be confirmed (where the next scan starts).
    pub scan_height: u64,
    pub fees: FeeStatus,
    /// The subnet the service runs on (`ic0.subnet_self`), which the registry records for a
    /// service whose subnet the cycles minting canister chose. Optional so that clients still
    /// decode the status of services built before it was reported.
    pub subnet: Option<Principal>,
}

/// What `tick` did (also run from the timer).
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct TickReport {
    pub submitted: u64,
    pub still_pending: u64,
    pub newly_confirmed: u64,
    pub errors: Vec<String>,
}
