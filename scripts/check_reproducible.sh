#!/usr/bin/env bash
# Checks that the same sources give byte-identical canister modules: copies the
# sources to another directory (so every absolute path differs), builds every
# canister there with its own target directory, and compares each module and
# its gzip with out/, which scripts/build.sh must have produced first.
#
# The copy and its target directory live under target/repro, so a warm run
# only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
repro=$root/target/repro
rm -rf "$repro/src"
mkdir -p "$repro/src"
# Copy the sources (not the build outputs or git metadata); tar keeps mtimes,
# so cargo's fingerprints stay valid between runs.
tar --exclude=./target --exclude=./out --exclude=./.git -cf - . | tar -C "$repro/src" -xpf -

CARGO_TARGET_DIR=$repro/target STRATROS_OUT_DIR=$repro/out bash "$repro/src/scripts/build.sh" >/dev/null

status=0
count=0
for second in "$repro"/out/*.wasm "$repro"/out/*.wasm.gz; do
    name=$(basename "$second")
    first=$root/out/$name
    count=$((count + 1))
    if [ ! -f "$first" ]; then
        echo "reproducible build: out/$name is missing (run scripts/build.sh first)"
        status=1
    elif ! cmp -s "$first" "$second"; then
        echo "reproducible build: out/$name differs when built from $repro/src"
        status=1
    fi
done
[ "$count" -gt 0 ] || { echo "reproducible build: nothing was built"; exit 1; }
[ "$status" -eq 0 ] && echo "reproducible build: $count artefacts byte-identical from two source paths"
exit "$status"
