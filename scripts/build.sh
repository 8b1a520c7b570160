#!/usr/bin/env bash
# Builds canister Wasm modules into out/<name>.wasm and out/<name>.wasm.gz.
#
#   scripts/build.sh            every canister (canisters/*) and fixture (tests/fixtures/*)
#   scripts/build.sh NAME...    only those
#
# CARGO_TARGET_DIR and STRATROS_OUT_DIR (default: out) move the build and its
# outputs; scripts/check_reproducible.sh uses them to build a second time.
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
target_dir=${CARGO_TARGET_DIR:-$root/target}
out_dir=${STRATROS_OUT_DIR:-$root/out}
# One cargo invocation per canister, as dfx builds them: built together, cargo would unify
# the dependencies' features across canisters, and a canister's Wasm would depend on which
# others were built with it.
for name in "${names[@]}"; do
    cargo build --locked --release --target wasm32-unknown-unknown -p "$name"
done

mkdir -p "$out_dir"
for name in "${names[@]}"; do
    wasm="$target_dir/wasm32-unknown-unknown/release/$name.wasm"
    out="$out_dir/$name.wasm"
    [ -f "$wasm" ] || { echo "build.sh: $wasm was not produced (is $name a cdylib?)" >&2; exit 1; }
    cp "$wasm" "$out"
    if command -v ic-wasm >/dev/null 2>&1; then
        ic-wasm "$out" -o "$out" shrink
    fi
    if [ -f "candid/$name.did" ]; then
        python3 scripts/wasm_metadata.py "$out" "candid:service" "candid/$name.did"
    fi
    gzip --no-name -9 -c "$out" > "$out.gz"
    printf '%-24s %9d bytes  %9d gzipped  sha256 %s\n' "$name" \
        "$(stat -c %s "$out")" "$(stat -c %s "$out.gz")" "$(sha256sum "$out" | cut -c1-16)"
done
