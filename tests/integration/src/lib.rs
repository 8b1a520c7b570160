//! Shared helpers of the integration scenarios.

use std::path::PathBuf;

/// The workspace root (where `out/` and `candid/` live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|e| panic!("cannot resolve the workspace root: {e}"))
}

/// The canister module `out/<name>.wasm`, built by `scripts/build.sh`.
pub fn wasm(name: &str) -> Vec<u8> {
    let path = workspace_root().join("out").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): build the canisters first with `bash scripts/build.sh`",
            path.display()
        )
    })
}
