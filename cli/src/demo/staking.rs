//! The staking canister: both ledgers registered, two users stake ckBTC and ckETH (ckETH above
//! `u64::MAX`), a reward pool funded and streamed, rewards claimed, one unstake withdrawn after
//! unbonding; balances and the accounting invariant checked.

use super::ledgers::{Ledger, user};
use super::{Check, Demo};
use crate::emu;
use anyhow::{Context, Result, anyhow};
use candid::{Encode, Nat, Principal};
use ic_emulator::SubnetKind;
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use std::time::Duration;
use stratros_staking_api::{
    AccountingView, Arg, AssetArg, AssetView, ClaimReceipt, FundRewardsArgs, InitArgs,
    PositionView, StakeArgs, StakeError, UnbondingView, UnstakeArgs, WithdrawReceipt,
};

/// Rewards are streamed over this period.
pub const REWARD_PERIOD: Duration = Duration::from_secs(10 * 24 * 3600);
/// Unstaked tokens can be withdrawn after this period.
pub const UNBONDING: Duration = Duration::from_secs(3 * 24 * 3600);

const BTC_STAKE: [u128; 2] = [50_000_000, 30_000_000]; // 0.5 and 0.3 ckBTC
const ETH_STAKE: [u128; 2] = [20_000_000_000_000_000_000, 5_000_000_000_000_000_000]; // 20, 5 ckETH
const BTC_REWARDS: u128 = 1_000_000; // 0.01 ckBTC
const BTC_UNSTAKE: u128 = 10_000_000; // 0.1 ckBTC

fn nat(n: u128) -> Nat {
    Nat::from(n)
}

fn to_u128(n: &Nat) -> Result<u128> {
    u128::try_from(n.0.clone()).map_err(|_| anyhow!("{n} does not fit u128"))
}

pub fn balance(demo: &mut Demo, ledger: Principal, owner: Principal) -> Result<u128> {
    let (b,): (Nat,) = emu::query(
        &mut demo.emu,
        ledger,
        "icrc1_balance_of",
        (Account::from(owner),),
    )?;
    to_u128(&b)
}

fn approve(demo: &mut Demo, ledger: Principal, from: Principal, amount: u128) -> Result<()> {
    let staking = demo.staking.context("no staking")?;
    let arg = ApproveArgs {
        from_subaccount: None,
        spender: staking.into(),
        amount: nat(amount),
        expected_allowance: None,
        expires_at: None,
        fee: None,
        memo: None,
        created_at_time: None,
    };
    let r: Result<Nat, ApproveError> =
        emu::update(&mut demo.emu, ledger, from, "icrc2_approve", (arg,))?;
    r.map(|_| ()).map_err(|e| anyhow!("approve: {e:?}"))
}

/// A staking update call whose `Err` is a `StakeError`.
fn call<T: candid::CandidType + for<'de> serde::Deserialize<'de>>(
    demo: &mut Demo,
    sender: Principal,
    method: &str,
    arg: impl candid::utils::ArgumentEncoder,
) -> Result<T> {
    let staking = demo.staking.context("no staking")?;
    let r: Result<T, StakeError> = emu::update(&mut demo.emu, staking, sender, method, arg)?;
    r.map_err(|e| anyhow!("{method}: {e:?}"))
}

pub fn positions(demo: &mut Demo, owner: Principal) -> Result<Vec<PositionView>> {
    let staking = demo.staking.context("no staking")?;
    let (p,): (Vec<PositionView>,) = emu::query(&mut demo.emu, staking, "get_position", (owner,))?;
    Ok(p)
}

pub fn accounting(demo: &mut Demo) -> Result<Vec<AccountingView>> {
    let staking = demo.staking.context("no staking")?;
    let (a,): (Vec<AccountingView>,) = emu::query(&mut demo.emu, staking, "get_accounting", ())?;
    Ok(a)
}

/// Staking's invariant, per asset: the ledger balance covers staked + unbonding + unpaid
/// rewards + in flight (+ slashed tokens not yet sent).
pub fn invariant_checks(demo: &mut Demo, when: &str) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let staking = demo.staking.context("no staking")?;
    for a in accounting(demo)? {
        // Asked of the ledger directly (staking's own `ledger_balance` comes from a composite
        // query, which works only when the ledger is on staking's subnet).
        let held = nat(balance(demo, a.ledger, staking)?);
        let name = demo
            .ledgers
            .iter()
            .find(|l| l.id == a.ledger)
            .map(|l| l.symbol.clone())
            .unwrap_or_else(|| a.ledger.to_text());
        let covered = a.staked.clone()
            + a.unbonding.clone()
            + a.unpaid_rewards.clone()
            + a.in_flight.clone()
            + a.slashed_unsent.clone();
        let ok = held >= covered && a.ledger_balance.as_ref().is_none_or(|b| *b == held);
        checks.push(Check::new(
            format!("{when}: {name} ledger balance >= staked + unbonding + unpaid + in flight"),
            ok,
            format!(
                "balance {held} >= {} (staked {}, unbonding {}, unpaid {}, in flight {})",
                covered, a.staked, a.unbonding, a.unpaid_rewards, a.in_flight
            ),
        ));
    }
    Ok(checks)
}

fn ledger(demo: &Demo, name: &str) -> Result<Ledger> {
    demo.ledgers
        .iter()
        .find(|l| l.name == name)
        .cloned()
        .with_context(|| format!("no {name}"))
}

fn fee(l: &Ledger) -> Result<u128> {
    to_u128(&l.fee)
}

pub fn run(demo: &mut Demo) -> Result<Vec<Check>> {
    let btc = ledger(demo, "ckbtc_ledger")?;
    let eth = ledger(demo, "cketh_ledger")?;
    let mut checks = Vec::new();

    // Deploy next to the ckBTC and ckETH ledgers (the fiduciary subnet, as on mainnet), then
    // register both assets (their metadata is read from the ledgers).
    let subnet = demo.emu.subnet_of_kind(SubnetKind::Fiduciary);
    let arg = Arg::Init(InitArgs {
        restaking: None,
        unbonding_seconds: Some(UNBONDING.as_secs()),
        reward_period_seconds: Some(REWARD_PERIOD.as_secs()),
        slash_destination: None,
        assets: Vec::new(),
        reconcile_interval_seconds: Some(60),
    });
    let staking = demo.deploy("staking", "staking", subnet, Encode!(&arg)?)?;
    demo.staking = Some(staking);
    for (l, min) in [(&btc, 1_000u128), (&eth, 10_000_000_000_000_000)] {
        let view: AssetView = call(
            demo,
            emu::controller(),
            "add_asset",
            (AssetArg {
                ledger: l.id,
                min_stake: nat(min),
            },),
        )?;
        demo.emu.run_until_idle();
        let (assets,): (Vec<AssetView>,) = emu::query(&mut demo.emu, staking, "get_assets", ())?;
        let read = assets.iter().find(|a| a.ledger == view.ledger).cloned();
        checks.push(Check::eq(
            format!(
                "{} registered: symbol, decimals, fee read from the ledger",
                l.symbol
            ),
            read.map(|a| (a.symbol, a.decimals, a.fee)),
            Some((
                Some(l.symbol.clone()),
                Some(l.decimals),
                Some(l.fee.clone()),
            )),
        ));
    }

    // Two users approve and stake both assets; ckETH amounts above u64::MAX.
    let names = ["alice", "bob"];
    let users = names.map(user);
    for (i, who) in users.into_iter().enumerate() {
        for (l, amount, lockable) in [(&btc, BTC_STAKE[i], false), (&eth, ETH_STAKE[i], true)] {
            let before = balance(demo, l.id, who)?;
            approve(demo, l.id, who, amount + fee(l)?)?;
            // Bob locks his ckETH for a year (1.5x reward weight).
            let lock = (i == 1 && lockable).then_some(365 * 24 * 3600);
            let p: PositionView = call(
                demo,
                who,
                "stake",
                (StakeArgs {
                    ledger: l.id,
                    amount: nat(amount),
                    lock_seconds: lock,
                },),
            )?;
            let after = balance(demo, l.id, who)?;
            checks.push(Check::eq(
                format!(
                    "{} stakes {amount} {} (ledger: amount + approve and transfer fees)",
                    names[i], l.symbol
                ),
                (to_u128(&p.staked)?, before - after),
                (amount, amount + 2 * fee(l)?),
            ));
        }
    }
    checks.push(Check::new(
        "a ckETH stake above u64::MAX",
        ETH_STAKE[0] > u128::from(u64::MAX),
        format!("{} > {}", ETH_STAKE[0], u64::MAX),
    ));
    checks.extend(invariant_checks(demo, "after staking")?);

    // Alice (standing for the treasury) funds a ckBTC reward pool; it streams over the period.
    let funder = user("alice");
    approve(demo, btc.id, funder, BTC_REWARDS + fee(&btc)?)?;
    let _: Nat = call(
        demo,
        funder,
        "fund_rewards",
        (FundRewardsArgs {
            ledger: btc.id,
            amount: nat(BTC_REWARDS),
        },),
    )?;
    for _ in 0..10 {
        demo.emu
            .advance_time(REWARD_PERIOD / 10 + Duration::from_secs(60));
        demo.emu.run_until_idle();
    }
    let mut claimed = 0u128;
    for (name, who) in names.into_iter().zip(users) {
        let pending: u128 = positions(demo, who)?
            .iter()
            .filter(|p| p.ledger == btc.id)
            .map(|p| to_u128(&p.pending_rewards))
            .sum::<Result<u128>>()?;
        let before = balance(demo, btc.id, who)?;
        let receipts: Vec<ClaimReceipt> = call(demo, who, "claim_rewards", ())?;
        demo.emu.run_until_idle();
        let after = balance(demo, btc.id, who)?;
        let got: u128 = receipts
            .iter()
            .filter(|r| r.ledger == btc.id && r.result.is_ok())
            .map(|r| to_u128(&r.amount))
            .sum::<Result<u128>>()?;
        claimed += got;
        checks.push(Check::eq(
            format!("{name} claims its pending ckBTC rewards (received minus the fee)"),
            (got, after - before),
            (pending, pending.saturating_sub(fee(&btc)?)),
        ));
    }
    checks.push(Check::new(
        "the whole pool was paid out (up to rounding dust)",
        claimed <= BTC_REWARDS && claimed + 100 >= BTC_REWARDS,
        format!("{claimed} of {BTC_REWARDS}"),
    ));
    checks.extend(invariant_checks(demo, "after claims")?);

    // Bob unstakes part of his ckBTC and withdraws it after unbonding.
    let bob = user("bob");
    let unbonding: UnbondingView = call(
        demo,
        bob,
        "unstake",
        (UnstakeArgs {
            ledger: btc.id,
            amount: nat(BTC_UNSTAKE),
        },),
    )?;
    let early = {
        let staking = demo.staking.context("no staking")?;
        let r: Result<WithdrawReceipt, StakeError> =
            emu::update(&mut demo.emu, staking, bob, "withdraw", (btc.id,))?;
        r
    };
    checks.push(Check::new(
        "a withdrawal before the unbonding period ends is refused",
        early.is_err(),
        format!("{:?}", early.err()),
    ));
    checks.extend(invariant_checks(demo, "while unbonding")?);
    demo.emu.advance_time(UNBONDING + Duration::from_secs(1));
    demo.emu.run_until_idle();
    let before = balance(demo, btc.id, bob)?;
    let w: WithdrawReceipt = call(demo, bob, "withdraw", (btc.id,))?;
    demo.emu.run_until_idle();
    let after = balance(demo, btc.id, bob)?;
    checks.push(Check::eq(
        "bob unstakes 0.1 ckBTC and withdraws it after unbonding (minus the fee)",
        (
            to_u128(&unbonding.amount)?,
            to_u128(&w.amount)?,
            after - before,
        ),
        (BTC_UNSTAKE, BTC_UNSTAKE, BTC_UNSTAKE - fee(&btc)?),
    ));
    let bob_btc = positions(demo, bob)?
        .into_iter()
        .find(|p| p.ledger == btc.id)
        .map(|p| to_u128(&p.staked))
        .transpose()?;
    checks.push(Check::eq(
        "bob's ckBTC position after the unstake",
        bob_btc,
        Some(BTC_STAKE[1] - BTC_UNSTAKE),
    ));
    checks.extend(invariant_checks(demo, "after withdraw")?);

    // The ledgers' expected state from now on (checked again after their upgrade): every holder.
    for l in [btc, eth] {
        let mut balances = Vec::new();
        for owner in [user("alice"), user("bob"), staking] {
            balances.push((Account::from(owner), nat(balance(demo, l.id, owner)?)));
        }
        if let Some(entry) = demo.ledgers.iter_mut().find(|x| x.id == l.id) {
            entry.balances = balances;
        }
    }
    Ok(checks)
}
