#!/usr/bin/env bash
# The main job: on a fresh machine, installs what the project needs (the pinned
# toolchain with the wasm32 target, from rustup), builds every canister and
# runs `stratros demo`: the whole suite deployed on the embedded IC emulator
# and the mission run end to end on the real canister Wasm. It writes
# out/demo/{receipts/*.json,trust.json,summary.json} and exits 0 only if every
# check held.
#
# The CLI runs in the dev profile: its dependencies (the emulator, wasmi, the
# cryptography) are optimised there too (see Cargo.toml), and the release
# profile's LTO is meant for canister Wasm, not for a host binary.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown
command -v python3 >/dev/null || { apt-get update && apt-get install -y python3; }
bash scripts/build.sh
exec cargo run --locked -p stratros -- demo --out out/demo "$@"
