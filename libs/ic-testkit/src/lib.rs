//! A small backend-neutral API for integration scenarios.
//!
//! Scenarios are written once against [`IcBackend`] (plus the typed helpers of
//! [`IcBackendExt`]) and run on the project's IC emulator always, and on PocketIC when
//! `POCKET_IC_BIN` is set (see [`backends_for_test`]).

mod backend;
mod certificate;
mod emulator;
pub mod ledger_fixture;
mod pocketic;
mod select;
mod wasm;

pub use backend::{
    CallError, CallId, CanisterRunStatus, CanisterSpec, CanisterStatus, DEFAULT_CANISTER_CYCLES,
    IDLE_ROUNDS, IcBackend, IcBackendExt, InstallMode, RejectCode, SubnetKind,
};
pub use certificate::certified_data;
pub use emulator::EmulatorBackend;
pub use pocketic::PocketIcBackend;
pub use select::{
    BackendKind, POCKET_IC_BIN_ENV, backend_for_test, backend_from_env, backends_for_test,
};
pub use wasm::{wasm, wasm_path, workspace_root};

pub use candid::Principal;

#[cfg(test)]
mod tests;
