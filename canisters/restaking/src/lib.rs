//! The Stratros restaking canister: operators, AVSs, delegations, allocations, queued
//! withdrawals, O(1) slashing (equivocation proofs verified in the canister, and vetoable
//! requests), on-chain rewards. See the README and [`model`] for the accounting.

mod endpoints;
pub mod events;
pub mod lifecycle;
pub mod math;
pub mod model;
pub mod ops;
pub mod runtime;
pub mod state;
pub mod storage;
pub mod types;
pub mod verify;

pub use types::*;

// `export_candid!` names the endpoint types as the endpoint modules write them.
#[allow(unused_imports)]
use candid::{Nat, Principal};

ic_cdk::export_candid!();

/// k256 and aes-gcm pull getrandom 0.2: restaking never needs randomness, so any request
/// fails (a canister may import nothing outside `ic0`).
#[cfg(target_arch = "wasm32")]
fn no_randomness(_: &mut [u8]) -> Result<(), getrandom::Error> {
    Err(getrandom::Error::UNSUPPORTED)
}
#[cfg(target_arch = "wasm32")]
getrandom::register_custom_getrandom!(no_randomness);

#[cfg(test)]
mod tests;
