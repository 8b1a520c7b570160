//! The `stratros` command as a library: the binary (`main.rs`) only parses arguments and calls
//! in here, so tests and other tools can use the same code.
//!
//! - [`verify`]: offline receipt verification (`stratros verify`).
//! - [`trust`]: where trust anchors come from (`--trust`, `--network ic|pocketic`).
//! - [`bench`]: registered measurements and their targets (`stratros bench`).
//! - [`demo`]: the end-to-end demo on the embedded emulator, as a list of steps (`stratros demo`).
//! - [`emu`]: helpers shared by the demo, the benches and the tests: installing the real Wasm on
//!   the emulator, the emulator's trust anchors, and confirmed receipts from real nodes.
//! - [`wasm`]: where canister Wasm modules are found.
//! - [`types`]: Candid types of the canisters, mirrored from their `.did` files.

pub mod bench;
pub mod demo;
pub mod emu;
pub mod trust;
pub mod types;
pub mod verify;
pub mod wasm;
