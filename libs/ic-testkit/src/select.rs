//! Choosing the backend from the environment.

use crate::backend::IcBackend;
use crate::pocketic::PocketIcBackend;

/// When set (to the path of a PocketIC server binary), scenarios run on PocketIC.
pub const POCKET_IC_BIN_ENV: &str = "POCKET_IC_BIN";

/// The backends a scenario can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Emulator,
    PocketIc,
}

impl BackendKind {
    /// PocketIC when `POCKET_IC_BIN` is set (and not empty), the emulator otherwise.
    pub fn from_env() -> Self {
        match std::env::var_os(POCKET_IC_BIN_ENV) {
            Some(path) if !path.is_empty() => Self::PocketIc,
            _ => Self::Emulator,
        }
    }
}

/// A fresh backend: the emulator by default, PocketIC when `POCKET_IC_BIN` is set.
pub fn backend_from_env() -> Box<dyn IcBackend> {
    match BackendKind::from_env() {
        BackendKind::PocketIc => Box::new(PocketIcBackend::new()),
        BackendKind::Emulator => emulator_backend(),
    }
}

/// [`backend_from_env`], printing which backend runs `test_name` (shown by `cargo test` for
/// failing tests, and always with `--nocapture`).
pub fn backend_for_test(test_name: &str) -> Box<dyn IcBackend> {
    let backend = backend_from_env();
    println!(
        "[ic-testkit] {test_name}: running on the {} backend",
        backend.name()
    );
    backend
}

fn emulator_backend() -> Box<dyn IcBackend> {
    Box::new(crate::emulator::EmulatorBackend::new())
}

/// Every backend a scenario must pass on: the emulator always, and PocketIC too
/// when `POCKET_IC_BIN` is set. Prints which backends run `test_name`.
pub fn backends_for_test(test_name: &str) -> Vec<Box<dyn IcBackend>> {
    let mut backends = vec![emulator_backend()];
    if BackendKind::from_env() == BackendKind::PocketIc {
        backends.push(Box::new(PocketIcBackend::new()));
    }
    let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
    println!(
        "[ic-testkit] {test_name}: running on {}",
        names.join(" and ")
    );
    backends
}
