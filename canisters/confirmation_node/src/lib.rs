//! The Stratros confirmation node: one Wasm, one instance per threshold scheme.
//!
//! It signs the batch headers of its hub with the IC's threshold keys (ECDSA secp256k1,
//! BIP340, Ed25519 or vetKD BLS12-381), never two different headers for one (hub, height),
//! and keeps a certified log of what it signed in stable memory. See the README.

mod endpoints;
pub mod lifecycle;
pub mod log;
pub mod runtime;
pub mod signer;
pub mod state;
pub mod storage;
pub mod types;

pub use types::*;

// `export_candid!` names the endpoint types as the endpoint modules write them.
#[allow(unused_imports)]
use candid::Principal;
#[allow(unused_imports)]
use stratros_confirmation::{BatchHeader, Blob};

ic_cdk::export_candid!();

#[cfg(test)]
mod tests;
