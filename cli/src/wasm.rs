//! Where canister Wasm modules are found: `--wasm-dir DIR`, else `out/` of the workspace root
//! (the nearest ancestor of the current directory whose `Cargo.toml` has a `[workspace]`, else
//! the workspace this binary was built from).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct WasmDir {
    dir: PathBuf,
}

impl WasmDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `explicit` if given, else `<workspace root>/out`.
    pub fn locate(explicit: Option<&Path>) -> Self {
        match explicit {
            Some(dir) => Self::new(dir),
            None => Self::new(workspace_root().join("out")),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.wasm"))
    }

    /// The bytes of `<dir>/<name>.wasm`, with a hint to build it when it is missing.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.path(name);
        std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {} (build it from the workspace root: bash scripts/build.sh {name}, \
                 or pass --wasm-dir)",
                path.display()
            )
        })
    }
}

/// The workspace root: the nearest ancestor of the current directory with a `[workspace]`
/// `Cargo.toml`, else the one this crate was built in.
pub fn workspace_root() -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let manifest = dir.join("Cargo.toml");
            if std::fs::read_to_string(&manifest).is_ok_and(|s| s.contains("[workspace]")) {
                return dir.to_path_buf();
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
