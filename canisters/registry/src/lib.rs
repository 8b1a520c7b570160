//! The Stratros registry: service establishment.
//!
//! Controllers upload service Wasm modules in chunks and publish them as versions of a kind
//! (by SHA-256); `create_service` creates a canister on a chosen subnet (management canister
//! or the cycles minting canister), installs the kind's current version, authorizes it at
//! the confirmation hub and records it; `upgrade_services` rolls a version out one instance
//! at a time. See the README.

mod endpoints;
pub mod lifecycle;
pub mod modules;
pub mod rollout;
pub mod runtime;
pub mod service_api;
pub mod services;
pub mod state;
pub mod storage;
pub mod timer;
pub mod types;

pub use types::*;

// `export_candid!` names the endpoint types as the endpoint modules write them.
#[allow(unused_imports)]
use candid::Principal;

ic_cdk::export_candid!();

#[cfg(test)]
mod tests;
