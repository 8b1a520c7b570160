//! Stratros staking: multi-asset ICRC-2 staking (ckBTC, ckETH, ICP, ckUSDC, any ICRC-2
//! ledger) with time locks, cancellable unbonding, streamed rewards, restaking hooks and a
//! certified hash-chained event log from which the state is rebuilt on upgrade. See README.md.

pub mod codec;
mod endpoints;
pub mod events;
pub mod history;
pub mod lifecycle;
pub mod log;
pub mod ops;
pub mod runtime;
pub mod state;
pub mod storage;
pub mod u256;

pub use stratros_staking_api as api;

// `export_candid!` names the endpoint types as the endpoint modules write them.
#[allow(unused_imports)]
use candid::{Nat, Principal};
#[allow(unused_imports)]
use icrc_ledger_types::icrc1::account::Account;
#[allow(unused_imports)]
use stratros_staking_api::*;

ic_cdk::export_candid!();

#[cfg(test)]
mod tests;
