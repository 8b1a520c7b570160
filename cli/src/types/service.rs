//! `service`: the types the CLI uses, mirrored from `candid/service.did` (the service is a
//! canister crate, which the CLI cannot link). `tests/candid_types.rs` checks them against the
//! `.did`.

use candid::{CandidType, Principal};
use serde::Deserialize;
use stratros_confirmation::{Blob, Hash32};

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum Arg {
    Init(InitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct InitArgs {
    pub owner: Principal,
    pub hub: Principal,
    pub writers: Vec<Principal>,
    pub kind: String,
    pub name: String,
    pub config: Option<ConfigUpdate>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeArgs {
    pub hub: Option<Principal>,
    pub config: Option<ConfigUpdate>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Config {
    pub max_records_per_call: u32,
    pub max_field_bytes: u32,
    pub retry_seconds: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct ConfigUpdate {
    pub max_records_per_call: Option<u32>,
    pub max_field_bytes: Option<u32>,
    pub retry_seconds: Option<u64>,
    pub credit_records: Option<u64>,
}

/// The service's side of the hub's per-record fee.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct FeeStatus {
    pub ledger: Option<Principal>,
    pub fee_per_record: u128,
    pub hub_credit: u128,
    pub credit_records: u64,
    pub topped_up: u128,
    pub top_up_in_progress: Option<u128>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum RecordBody {
    ModelAttestation {
        model_id: String,
        version: String,
        weights_hash: Hash32,
        metadata: String,
    },
    Dataset {
        hash: Hash32,
        licence: String,
        source: String,
    },
    Inference {
        model: String,
        input_hash: Hash32,
        output: Option<Blob>,
        output_hash: Hash32,
        executor: String,
    },
    Transaction {
        kind: String,
        payload: Blob,
    },
}

impl RecordBody {
    /// The `kind` the service gives the record at the hub.
    pub fn hub_kind(&self) -> &'static str {
        match self {
            RecordBody::ModelAttestation { .. } => "model_attestation",
            RecordBody::Dataset { .. } => "dataset",
            RecordBody::Inference { .. } => "inference",
            RecordBody::Transaction { .. } => "transaction",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum RecordStatus {
    Pending {
        attempts: u32,
        last_error: Option<String>,
    },
    Submitted,
    Sealed {
        height: u64,
    },
    Confirmed {
        height: u64,
        header_hash: Hash32,
        confirmed_at_nanos: u64,
    },
    Refused {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct RecordView {
    pub id: u64,
    pub author: Principal,
    pub created_at_nanos: u64,
    pub body: RecordBody,
    pub content_hash: Hash32,
    pub reference: String,
    pub hub: Principal,
    pub hub_record_id: Option<u64>,
    pub status: RecordStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum AddError {
    NotWriter {
        caller: Principal,
    },
    EmptyBatch,
    TooManyRecords {
        max: u32,
        got: u64,
    },
    FieldTooLarge {
        index: u64,
        field: String,
        max: u32,
        got: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum ReceiptRelayError {
    UnknownRecord {
        id: u64,
    },
    NotConfirmed {
        status: RecordStatus,
    },
    Hub {
        message: String,
    },
    CallFailed {
        reject_code: Option<u32>,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
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
    pub scan_height: u64,
    pub fees: FeeStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct TickReport {
    pub submitted: u64,
    pub still_pending: u64,
    pub newly_confirmed: u64,
    pub errors: Vec<String>,
}
