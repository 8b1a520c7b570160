#!/usr/bin/env bash
# The main job: on a fresh machine, installs what the project needs, builds
# every canister and runs the suite on the embedded IC emulator.
#
# Until the `stratros demo` command exists (see README, "Status"), the main job
# runs the integration scenarios on the emulator with their output visible.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown
bash scripts/build.sh
if [ -f cli/Cargo.toml ]; then
    exec cargo run --locked --release -p stratros -- demo --out out/demo "$@"
fi
echo "==> integration scenarios on the embedded emulator"
cargo test --locked -p stratros-integration -- --nocapture --test-threads 1
