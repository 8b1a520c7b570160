//! The Stratros confirmation hub.
//!
//! Accepts records from authorized submitters, seals them into Merkle-tree batches with
//! hash-chained headers, asks every registered confirmation node to sign each header, records
//! the quorum certificate, certifies the header chain in its certified data and serves
//! receipts that `stratros-verify` checks offline. See the README.

mod admin;
pub mod certified;
pub mod confirm;
mod endpoints;
pub mod fees;
pub mod index;
pub mod lifecycle;
pub mod payments;
pub mod runtime;
pub mod state;
pub mod storage;
mod timer;
pub mod types;

pub use types::*;

// `export_candid!` names the endpoint types as the endpoint modules write them.
#[allow(unused_imports)]
use candid::Principal;
#[allow(unused_imports)]
use stratros_confirmation::{Blob, PolicyNode, QuorumRule, Receipt, RecordId, RecordInput};

ic_cdk::export_candid!();

/// The signature crates (through `stratros-signatures`) pull getrandom 0.2; verifying never
/// needs randomness, so any request fails (a canister may import nothing outside `ic0`).
#[cfg(target_arch = "wasm32")]
fn no_randomness(_: &mut [u8]) -> Result<(), getrandom::Error> {
    Err(getrandom::Error::UNSUPPORTED)
}
#[cfg(target_arch = "wasm32")]
getrandom::register_custom_getrandom!(no_randomness);

#[cfg(test)]
mod tests;
