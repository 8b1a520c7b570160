#!/usr/bin/env bash
# Deploys the Stratros suite with dfx, in dependency order, with the init arguments in
# deploy/args/<canister>.<network>.did, then prints the canister ids and Candid UI links.
#
#   scripts/deploy.sh local     a local replica (`dfx start --clean --background` first)
#   scripts/deploy.sh ic        mainnet (needs a funded identity: cycles for every canister)
#
# Environment:
#   STRATROS_KEY_NAME   threshold key on mainnet: key_1 (default) or test_key_1
#   STRATROS_CYCLES     cycles to create each canister with on mainnet (default 2T; the
#                       confirmation nodes pay 26.15 B cycles per signature with key_1)
#   STRATROS_LEDGERS    local only: `fixture` (default: tests/fixtures/icrc_ledger, built here)
#                       or `dfinity`: DFINITY's ICRC ledger Wasm, downloaded from the release
#                       STRATROS_LEDGER_RELEASE (default ledger-suite-icrc-2025-04-14) into
#                       out/dfinity/ (the u256 build for ckETH), installed with
#                       deploy/dfinity/<ledger>.local.did
#
# Canister ids. Locally every canister is created with --specified-id: the ledger fixtures get
# the mainnet ledger ids (so staking's arguments are the same on both networks) and the Stratros
# canisters the ids below, which the argument files name. On mainnet the ids are whatever
# `dfx canister create` gives (kept in canister_ids.json); the script replaces the local ids in
# the argument files with them before installing. A canister that already has code is upgraded
# with `(variant { Upgrade = null })`, never reinstalled.
#
# Not run in CI: dfx cannot be installed on the build machines. cli/tests/dfx_config.rs checks
# dfx.json and every argument file against the canisters' Candid instead.
set -euo pipefail
cd "$(dirname "$0")/.."

network=${1:-}
case "$network" in
    local | ic) ;;
    *)
        echo "usage: scripts/deploy.sh local|ic" >&2
        exit 2
        ;;
esac
command -v dfx >/dev/null 2>&1 || {
    echo "deploy.sh: dfx is not installed; see https://internetcomputer.org/docs/building-apps/getting-started/install" >&2
    exit 1
}

# Deployment order: ledgers (local fixtures), staking, restaking (they name each other, and
# are created before either is installed), then the hub and its nodes (created
# together before any install: the hub names its nodes and each node names its hub).
LEDGERS=(ckbtc_ledger cketh_ledger icp_ledger)
STRATROS=(staking restaking confirmation confirmation_node_ecdsa confirmation_node_bip340 confirmation_node_ed25519 confirmation_node_vetkd registry)

declare -A LOCAL_ID=(
    [ckbtc_ledger]=mxzaz-hqaaa-aaaar-qaada-cai
    [cketh_ledger]=ss2fx-dyaaa-aaaar-qacoq-cai
    [icp_ledger]=ryjl3-tyaaa-aaaaa-aaaba-cai
    [confirmation]=ybpmr-kqaaa-aaaaq-aaaaa-cai
    [confirmation_node_ecdsa]=ygokf-hiaaa-aaaaq-aaaaq-cai
    [confirmation_node_bip340]=ypnbz-raaaa-aaaaq-aaaba-cai
    [confirmation_node_ed25519]=yimhn-4yaaa-aaaaq-aaabq-cai
    [confirmation_node_vetkd]=y5lwa-5qaaa-aaaaq-aaaca-cai
    [staking]=y2kqu-qiaaa-aaaaq-aaacq-cai
    [restaking]=ytj3i-gaaaa-aaaaq-aaada-cai
    [registry]=yui54-lyaaa-aaaaq-aaadq-cai
)
# The Wasm each canister runs (out/<crate>.wasm.gz, built by scripts/build.sh <crate>).
declare -A CRATE=(
    [ckbtc_ledger]=icrc_ledger
    [cketh_ledger]=icrc_ledger
    [icp_ledger]=icrc_ledger
    [confirmation]=confirmation
    [confirmation_node_ecdsa]=confirmation_node
    [confirmation_node_bip340]=confirmation_node
    [confirmation_node_ed25519]=confirmation_node
    [confirmation_node_vetkd]=confirmation_node
    [staking]=staking
    [restaking]=restaking
    [registry]=registry
)
# In the local ledger arguments: replaced by the current dfx identity.
DEV_PLACEHOLDER=2he67-yb4iw-msssd-ef24v-7wogx-ueioz-nbxmu-jz7f3-3kvz4-ojru3-eqe

ledgers=${STRATROS_LEDGERS:-fixture}
case "$ledgers" in
    fixture | dfinity) ;;
    *)
        echo "deploy.sh: STRATROS_LEDGERS is fixture or dfinity, not $ledgers" >&2
        exit 2
        ;;
esac
LEDGER_RELEASE=${STRATROS_LEDGER_RELEASE:-ledger-suite-icrc-2025-04-14}
# DFINITY's ledger Wasm per ledger: ckETH amounts exceed u64, so its ledger is the u256 build.
declare -A DFINITY_WASM=(
    [ckbtc_ledger]=ic-icrc1-ledger.wasm.gz
    [cketh_ledger]=ic-icrc1-ledger-u256.wasm.gz
    [icp_ledger]=ic-icrc1-ledger.wasm.gz
)
# A ledger that runs DFINITY's Wasm (not built here).
is_dfinity_ledger() { [ "$network" = local ] && [ "$ledgers" = dfinity ] && [ -n "${DFINITY_WASM[$1]:-}" ]; }

if [ "$network" = local ]; then
    canisters=("${LEDGERS[@]}" "${STRATROS[@]}")
    dfx ping local >/dev/null 2>&1 || {
        echo "deploy.sh: no local replica; start one with: dfx start --clean --background" >&2
        exit 1
    }
else
    canisters=("${STRATROS[@]}")
fi

# Only canisters whose crate exists are deployed (the others are still being built).
present=()
for c in "${canisters[@]}"; do
    crate=${CRATE[$c]}
    if [ -f "canisters/$crate/Cargo.toml" ] || [ -f "tests/fixtures/$crate/Cargo.toml" ]; then
        present+=("$c")
    else
        echo "deploy.sh: skipping $c (no crate $crate yet)" >&2
    fi
done
canisters=("${present[@]}")

crates=()
for c in "${canisters[@]}"; do is_dfinity_ledger "$c" || crates+=("${CRATE[$c]}"); done
mapfile -t crates < <(printf '%s\n' "${crates[@]}" | sort -u)
echo "== build: ${crates[*]}"
bash scripts/build.sh "${crates[@]}"

echo "== create canisters ($network)"
for c in "${canisters[@]}"; do
    if dfx canister id "$c" --network "$network" >/dev/null 2>&1; then
        continue
    fi
    if [ "$network" = local ]; then
        dfx canister create "$c" --network local --specified-id "${LOCAL_ID[$c]}"
    else
        dfx canister create "$c" --network ic --with-cycles "${STRATROS_CYCLES:-2000000000000}"
    fi
done

declare -A ID
for c in "${canisters[@]}"; do
    ID[$c]=$(dfx canister id "$c" --network "$network")
    if [ "$network" = local ] && [ "${ID[$c]}" != "${LOCAL_ID[$c]}" ]; then
        echo "deploy.sh: $c has id ${ID[$c]}, the argument files expect ${LOCAL_ID[$c]}" >&2
        echo "           (an older local state? restart with: dfx start --clean --background)" >&2
        exit 1
    fi
done

# The argument file of a canister for this network, with the ids and names substituted.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
render_args() {
    local c=$1 src="deploy/args/$1.$network.did" out="$tmp/$1.did"
    if is_dfinity_ledger "$c"; then src="deploy/dfinity/$c.local.did"; fi
    [ -f "$src" ] || {
        echo "deploy.sh: missing $src" >&2
        exit 1
    }
    cp "$src" "$out"
    if [ "$network" = local ]; then
        sed -i "s/$DEV_PLACEHOLDER/$(dfx identity get-principal)/g" "$out"
    else
        for other in "${!ID[@]}"; do
            sed -i "s/${LOCAL_ID[$other]}/${ID[$other]}/g" "$out"
        done
        if [ -n "${STRATROS_KEY_NAME:-}" ]; then
            sed -i "s/\"key_1\"/\"$STRATROS_KEY_NAME\"/g" "$out"
        fi
    fi
    echo "$out"
}

echo "== install ($network)"
for c in "${canisters[@]}"; do
    wasm="out/${CRATE[$c]}.wasm.gz"
    if is_dfinity_ledger "$c"; then
        wasm="out/dfinity/$LEDGER_RELEASE/${DFINITY_WASM[$c]}"
        if [ ! -f "$wasm" ]; then
            mkdir -p "$(dirname "$wasm")"
            curl -fsSL -o "$wasm" \
                "https://github.com/dfinity/ic/releases/download/$LEDGER_RELEASE/${DFINITY_WASM[$c]}"
        fi
    fi
    if dfx canister status "$c" --network "$network" 2>/dev/null | grep -q 'Module hash: None'; then
        args=$(render_args "$c")
        echo "-- install $c with $(basename "$args")"
        dfx canister install "$c" --network "$network" --mode install --wasm "$wasm" \
            --argument-file "$args" --yes
    else
        # Stopped first (every Stratros canister refuses an upgrade while running: a
        # response to a call of the old module must not reach the new one), then started
        # again, also when the upgrade failed and the old module kept running.
        echo "-- upgrade $c (stop, upgrade, start)"
        dfx canister stop "$c" --network "$network"
        status=0
        dfx canister install "$c" --network "$network" --mode upgrade --wasm "$wasm" \
            --argument '(variant { Upgrade = null })' --yes || status=$?
        dfx canister start "$c" --network "$network"
        [ "$status" -eq 0 ] || { echo "deploy.sh: upgrading $c failed" >&2; exit "$status"; }
    fi
done

echo
echo "== canisters ($network)"
if [ "$network" = local ]; then
    port=$(dfx info webserver-port 2>/dev/null || echo 4943)
    ui=$(dfx canister id __Candid_UI --network local 2>/dev/null || true)
fi
for c in "${canisters[@]}"; do
    if [ "$network" = ic ]; then
        link="https://a4gq6-oaaaa-aaaab-qaa4q-cai.raw.icp0.io/?id=${ID[$c]}"
    elif [ -n "${ui:-}" ]; then
        link="http://127.0.0.1:$port/?canisterId=$ui&id=${ID[$c]}"
    else
        link="(Candid UI is installed by the first 'dfx deploy'; then http://127.0.0.1:$port/?canisterId=<__Candid_UI id>&id=${ID[$c]})"
    fi
    printf '%-28s %-30s %s\n' "$c" "${ID[$c]}" "$link"
done
if [ "$network" = ic ]; then
    echo
    echo "Ledgers on mainnet: ckBTC mxzaz-hqaaa-aaaar-qaada-cai, ckETH ss2fx-dyaaa-aaaar-qacoq-cai, ICP ryjl3-tyaaa-aaaaa-aaaba-cai"
fi
