#!/usr/bin/env bash
# The test command: on a fresh machine it installs what the project needs
# (the pinned toolchain with the wasm32 target, clippy and rustfmt: all from
# rustup), builds every canister, checks formatting and lints on the host and
# on wasm32, and runs every test. Integration scenarios run on the embedded
# emulator always, and on PocketIC too when POCKET_IC_BIN is set.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

section() { printf '\n==> %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

section "toolchain"
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
command -v python3 >/dev/null || { apt-get update && apt-get install -y python3; }
rustc --version

section "build canisters"
bash scripts/build.sh

section "reproducible build"
bash scripts/check_reproducible.sh

section "cargo fmt --check"
cargo fmt --all -- --check

section "clippy (wasm32)"
wasm_packages=()
for dir in canisters/*/ tests/fixtures/*/; do
    [ -f "$dir/Cargo.toml" ] && grep -q 'cdylib' "$dir/Cargo.toml" && wasm_packages+=(-p "$(basename "$dir")")
done
cargo clippy --locked --target wasm32-unknown-unknown "${wasm_packages[@]}" -- -D warnings

# Clippy on the host and the test build are one compilation: clippy-driver, as the workspace
# wrapper, lints every workspace target that `cargo test` builds (libraries, binaries, tests
# and examples: what `cargo clippy --all-targets` covers) while compiling it, so the
# dependencies are compiled once instead of once for clippy and again for the tests. Both
# variables stay set for the test run below, or cargo would see another compiler and rebuild.
section "clippy (host) and test build"
RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver)
export RUSTC_WORKSPACE_WRAPPER
# `cargo clippy -- -D warnings` hands its arguments to clippy-driver the same way.
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo test --locked --workspace --no-run

section "tests"
if [ -n "${POCKET_IC_BIN:-}" ]; then
    echo "integration backends: emulator and PocketIC ($POCKET_IC_BIN)"
else
    echo "integration backend: emulator (set POCKET_IC_BIN to also run the scenarios on PocketIC)"
fi
# Keep going when tests fail, so the summary below is always printed. cargo-nextest (on the
# machines' image) runs the tests of all binaries side by side, so the long benchmarks
# overlap with everything else; plain `cargo test` runs one binary after another.
set +e
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
    status=${PIPESTATUS[0]}
    # nextest does not run doctests.
    cargo test --locked --workspace --doc 2>&1 | tee -a target/test-output.txt
    doc_status=${PIPESTATUS[0]}
    [ "$status" -ne 0 ] || status=$doc_status
else
    echo "cargo-nextest not found: running the tests with cargo test"
    cargo test --locked --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
    status=${PIPESTATUS[0]}
fi
set -e

section "done"
passed=$(grep -Eo '[0-9]+ passed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo "integration backend(s): emulator${POCKET_IC_BIN:+ + pocketic}"
echo "$passed passed, $failed failed"
exit "$status"
