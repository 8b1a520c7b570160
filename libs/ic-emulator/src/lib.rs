//! An emulator of the Internet Computer's execution environment that runs real
//! canister Wasm with the semantics of the IC Interface Specification: message
//! atomicity, call contexts and callbacks, reject codes, bounded-wait calls,
//! stable memory, upgrades, timers, cycles, instruction metering, certified
//! data with BLS certificates, and the threshold-signature APIs.
//!
//! It is the project's CI and demo runtime, never a replacement for the IC:
//! see the crate README for what it does not model.

mod canister;
pub mod cmc;
mod emulator;
pub mod fees;
mod heap;
mod management;
mod stack;
pub mod system_api;
mod types;
pub mod wasm;

pub use emulator::{
    DEFAULT_CANISTER_CYCLES, DEFAULT_START_TIME_NANOS, Emulator, EmulatorConfig,
    INSPECT_INSTRUCTION_LIMIT, INSTALL_INSTRUCTION_LIMIT, QUERY_INSTRUCTION_LIMIT,
    UPDATE_INSTRUCTION_LIMIT, canister_id_from_index,
};
pub use heap::HeapSnapshots;
pub use ic_emulator_crypto as crypto;
pub use types::*;
