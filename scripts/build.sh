#!/usr/bin/env bash
# Builds canister Wasm modules into out/<name>.wasm and out/<name>.wasm.gz.
#
#   scripts/build.sh            every canister (canisters/*) and fixture (tests/fixtures/*)
#   scripts/build.sh NAME...    only those
#
# The same sources give byte-identical output: paths are remapped, gzip stores
# no name or time, and the Candid interface is embedded as the public
# `candid:service` metadata section (so Candid UI and dfx see it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

all_canisters() {
    for dir in canisters/*/ tests/fixtures/*/; do
        [ -f "$dir/Cargo.toml" ] && grep -q 'cdylib' "$dir/Cargo.toml" && basename "$dir"
    done
}

if [ $# -gt 0 ]; then names=("$@"); else mapfile -t names < <(all_canisters); fi
[ ${#names[@]} -gt 0 ] || { echo "build.sh: no canisters found" >&2; exit 1; }

rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$' \
    || rustup target add wasm32-unknown-unknown

cargo_home=${CARGO_HOME:-$HOME/.cargo}
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--remap-path-prefix=$root=/stratros --remap-path-prefix=$cargo_home=/cargo"
packages=()
for name in "${names[@]}"; do packages+=(-p "$name"); done
cargo build --locked --release --target wasm32-unknown-unknown "${packages[@]}"

mkdir -p out
for name in "${names[@]}"; do
    wasm="target/wasm32-unknown-unknown/release/$name.wasm"
    [ -f "$wasm" ] || { echo "build.sh: $wasm was not produced (is $name a cdylib?)" >&2; exit 1; }
    cp "$wasm" "out/$name.wasm"
    if command -v ic-wasm >/dev/null 2>&1; then
        ic-wasm "out/$name.wasm" -o "out/$name.wasm" shrink
    fi
    if [ -f "candid/$name.did" ]; then
        python3 scripts/wasm_metadata.py "out/$name.wasm" "candid:service" "candid/$name.did"
    fi
    gzip --no-name -9 -c "out/$name.wasm" > "out/$name.wasm.gz"
    printf '%-24s %9d bytes  %9d gzipped  sha256 %s\n' "$name" \
        "$(stat -c %s "out/$name.wasm")" "$(stat -c %s "out/$name.wasm.gz")" \
        "$(sha256sum "out/$name.wasm" | cut -c1-16)"
done
