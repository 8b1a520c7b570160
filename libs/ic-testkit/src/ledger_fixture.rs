//! The ICRC ledger fixture (`tests/fixtures/icrc_ledger`) seen from a scenario: its install
//! argument and fault-injection types, mirrored in Candid once here (a test binary cannot link
//! the fixture's crate next to a canister crate: their entry points would clash), and helpers
//! to deploy it, read balances and inject faults.

use candid::{CandidType, Nat, Principal};
use serde::Deserialize;

use crate::backend::{CallError, CanisterSpec, IcBackend, IcBackendExt};
use crate::wasm::wasm;

pub use icrc_ledger_types::icrc1::account::Account;

#[derive(CandidType)]
enum LedgerArg {
    Init(LedgerInit),
}

#[derive(CandidType)]
struct LedgerInit {
    token_name: String,
    token_symbol: String,
    decimals: u8,
    transfer_fee: Nat,
    minting_account: Account,
    initial_balances: Vec<(Account, Nat)>,
    max_memo_length: Option<u16>,
}

/// What the fixture does to the next `count` calls of `method`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum FaultMode {
    /// Rejects the call without touching the ledger.
    Reject { message: String },
    /// Traps before touching the ledger.
    Trap { message: String },
    /// Awaits `self_calls` round trips, then executes.
    Delay { self_calls: u32 },
    /// Executes and commits, then traps: the caller sees an error although the transfer
    /// happened (an unknown outcome).
    ApplyThenTrap { message: String },
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct FaultRule {
    /// `icrc1_transfer`, `icrc2_approve` or `icrc2_transfer_from`; `None`: any of them.
    pub method: Option<String>,
    pub mode: FaultMode,
    pub count: u32,
}

/// The account that mints (and receives burns) on fixtures deployed here.
pub fn minting_account() -> Principal {
    Principal::from_slice(&[0x6d, 0x69, 0x6e, 0x74])
}

/// Deploys the fixture (from `out/icrc_ledger.wasm`) with a 32-byte memo limit.
pub fn deploy_ledger(
    ic: &dyn IcBackend,
    spec: &CanisterSpec,
    symbol: &str,
    decimals: u8,
    transfer_fee: u128,
    initial_balances: &[(Principal, u128)],
) -> Result<Principal, CallError> {
    ic.deploy(
        spec,
        wasm("icrc_ledger"),
        LedgerArg::Init(LedgerInit {
            token_name: format!("Test {symbol}"),
            token_symbol: symbol.to_string(),
            decimals,
            transfer_fee: Nat::from(transfer_fee),
            minting_account: minting_account().into(),
            initial_balances: initial_balances
                .iter()
                .map(|(p, amount)| (Account::from(*p), Nat::from(*amount)))
                .collect(),
            max_memo_length: Some(32),
        }),
    )
}

/// `icrc1_balance_of(account)`.
pub fn balance_of(ic: &dyn IcBackend, ledger: Principal, account: Account) -> u128 {
    let n: Nat = ic
        .query(ledger, "icrc1_balance_of", account)
        .unwrap_or_else(|e| panic!("icrc1_balance_of on {}: {e}", ic.name()));
    u128::try_from(&n.0).unwrap_or_else(|_| panic!("balance {n} above u128"))
}

/// Queues `mode` for the next `count` calls of `method` (the fixture's controller calls).
pub fn inject_fault(
    ic: &dyn IcBackend,
    ledger: Principal,
    controller: Option<Principal>,
    method: &str,
    mode: FaultMode,
    count: u32,
) {
    let r: Result<(), String> = ic
        .update_as(
            ledger,
            controller,
            "fixture_inject_fault",
            FaultRule {
                method: Some(method.to_string()),
                mode,
                count,
            },
        )
        .unwrap_or_else(|e| panic!("fixture_inject_fault on {}: {e}", ic.name()));
    r.unwrap_or_else(|e| panic!("fixture_inject_fault refused: {e}"));
}
