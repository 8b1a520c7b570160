//! Loading the canister modules built by `scripts/build.sh` into `out/`.

use std::path::{Path, PathBuf};

/// The Cargo workspace root: the nearest ancestor of the running crate's
/// `CARGO_MANIFEST_DIR` (or of this crate's, when not run by cargo) whose `Cargo.toml` has a
/// `[workspace]` table.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| is_workspace_root(dir))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("no Cargo workspace root above {}", start.display()))
}

fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|manifest| manifest.lines().any(|line| line.trim() == "[workspace]"))
        .unwrap_or(false)
}

/// `$STRATROS_WASM_DIR/<name>.wasm` when that variable is set (to run the scenarios on another
/// build of the modules), else `<workspace root>/out/<name>.wasm`.
pub fn wasm_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("STRATROS_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("out"));
    dir.join(format!("{name}.wasm"))
}

/// The bytes of [`wasm_path`]; panics with what to run when the module is missing.
pub fn wasm(name: &str) -> Vec<u8> {
    let path = wasm_path(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the canister module {} ({e}); build the canisters first with \
             `scripts/build.sh` (from the workspace root)",
            path.display()
        )
    })
}
