//! The Stratros service: the AI module template (one Wasm, many instances).
//!
//! It holds an AI application's records (model attestations, datasets, inferences,
//! transactions), forwards each to the confirmation hub under an idempotency key, follows
//! its confirmation, reads other services' confirmed records and serves everything through
//! certified HTTP. See the README.

pub mod encoding;
mod endpoints;
pub mod fees;
pub mod http;
pub mod lifecycle;
pub mod records;
pub mod runtime;
pub mod state;
pub mod storage;
pub mod types;

pub use types::*;

// `export_candid!` names the endpoint types as the endpoint modules write them.
#[allow(unused_imports)]
use candid::Principal;
#[allow(unused_imports)]
use ic_http_certification::{HttpRequest, HttpResponse};
#[allow(unused_imports)]
use stratros_confirmation::hub::RecordProof;

ic_cdk::export_candid!();

#[cfg(test)]
mod tests;
