//! The ICRC ledger fixtures for ckBTC, ckETH and ICP.

use super::{Check, Demo};
use crate::types::{LedgerArg, LedgerInitArgs as InitArgs};
use anyhow::Result;
use candid::{Encode, Nat, Principal};
use ic_emulator::SubnetKind;
use icrc_ledger_types::icrc1::account::Account;

/// A deployed ledger and what it was initialised with.
#[derive(Clone, Debug)]
pub struct Ledger {
    pub name: String,
    pub id: Principal,
    pub symbol: String,
    pub decimals: u8,
    pub fee: Nat,
    pub balances: Vec<(Account, Nat)>,
}

/// The demo's users.
pub fn user(name: &str) -> Principal {
    Principal::self_authenticating(format!("stratros demo user {name}"))
}

/// The names of the demo's users.
pub fn user_names() -> [&'static str; 2] {
    ["alice", "bob"]
}

/// The minting account of every fixture ledger.
pub fn minter() -> Principal {
    Principal::self_authenticating(b"stratros demo minter")
}

fn units(whole: u64, decimals: u8) -> Nat {
    Nat::from(u128::from(whole) * 10u128.pow(u32::from(decimals)))
}

pub fn run(demo: &mut Demo) -> Result<Vec<Check>> {
    // (canister, name, symbol, decimals, fee, whole tokens per user, subnet)
    let specs = [
        (
            "ckbtc_ledger",
            "ckBTC",
            "ckBTC",
            8u8,
            10u128,
            2u64,
            SubnetKind::Fiduciary,
        ),
        (
            "cketh_ledger",
            "ckETH",
            "ckETH",
            18,
            2_000_000_000_000,
            50,
            SubnetKind::Fiduciary,
        ),
        (
            "icp_ledger",
            "Internet Computer",
            "ICP",
            8,
            10_000,
            1_000,
            SubnetKind::Nns,
        ),
    ];
    let mut checks = Vec::new();
    for (canister, token_name, symbol, decimals, fee, whole, kind) in specs {
        let balances: Vec<(Account, Nat)> = ["alice", "bob"]
            .iter()
            .map(|u| (Account::from(user(u)), units(whole, decimals)))
            .collect();
        let init = LedgerArg::Init(InitArgs {
            token_name: token_name.into(),
            token_symbol: symbol.into(),
            decimals,
            transfer_fee: Nat::from(fee),
            minting_account: Account::from(minter()),
            initial_balances: balances.clone(),
            max_memo_length: None,
        });
        let subnet = demo.emu.subnet_of_kind(kind);
        let id = demo.deploy(canister, "icrc_ledger", subnet, Encode!(&init)?)?;
        let ledger = Ledger {
            name: canister.into(),
            id,
            symbol: symbol.into(),
            decimals,
            fee: Nat::from(fee),
            balances,
        };
        checks.extend(check_ledger(demo, &ledger)?);
        demo.ledgers.push(ledger);
    }
    Ok(checks)
}

/// Metadata, fee and every initial balance, as the ledger reports them.
pub fn check_ledger(demo: &mut Demo, l: &Ledger) -> Result<Vec<Check>> {
    let emu = &mut demo.emu;
    let (symbol,): (String,) = crate::emu::query(emu, l.id, "icrc1_symbol", ())?;
    let (decimals,): (u8,) = crate::emu::query(emu, l.id, "icrc1_decimals", ())?;
    let (fee,): (Nat,) = crate::emu::query(emu, l.id, "icrc1_fee", ())?;
    let (supply,): (Nat,) = crate::emu::query(emu, l.id, "icrc1_total_supply", ())?;
    let mut checks = vec![
        Check::eq(
            format!("{} symbol and decimals", l.name),
            (symbol, decimals),
            (l.symbol.clone(), l.decimals),
        ),
        Check::eq(format!("{} fee", l.name), fee, l.fee.clone()),
    ];
    let mut expected_supply = Nat::from(0u8);
    for (account, amount) in &l.balances {
        let (balance,): (Nat,) = crate::emu::query(emu, l.id, "icrc1_balance_of", (account,))?;
        checks.push(Check::eq(
            format!("{} balance of {}", l.name, short(&account.owner)),
            balance,
            amount.clone(),
        ));
        expected_supply += amount.clone();
    }
    checks.push(Check::eq(
        format!("{} total supply", l.name),
        supply,
        expected_supply,
    ));
    Ok(checks)
}

/// The first group of a principal's text, for progress lines.
pub fn short(p: &Principal) -> String {
    let text = p.to_text();
    text.split('-').next().unwrap_or(&text).to_string()
}
