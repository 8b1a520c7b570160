//! The part of the confirmation hub's interface (candid/confirmation.did) the service uses.
//!
//! Mirrored rather than imported: linking the hub crate would link its endpoints. Candid
//! subtyping lets `Batch` leave out fields the service does not read.

use candid::{CandidType, Principal};
use serde::Deserialize;
pub use stratros_confirmation::RecordInput;
use stratros_confirmation::{BatchHeader, Hash32};

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Submitted {
    pub id: u64,
    pub duplicate: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum SubmitError {
    Unauthorized {
        caller: Principal,
    },
    EmptySubmission,
    TooManyRecords {
        max: u32,
        got: u64,
    },
    Malformed {
        message: String,
    },
    RecordTooLarge {
        index: u64,
        field: String,
        max: u32,
        got: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ListBatchesArgs {
    pub start: u64,
    pub limit: u64,
}

/// The fields of the hub's `Batch` the service reads.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Batch {
    pub header: BatchHeader,
    pub header_hash: Hash32,
    pub confirmed_at_nanos: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct BatchPage {
    pub total: u64,
    pub batches: Vec<Batch>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum BatchError {
    UnknownHeight { height: u64, next_height: u64 },
}

/// The most batches the hub returns per `list_batches`.
pub const MAX_BATCH_PAGE: u64 = 100;
