//! Staking's costs (issue 4): the real `staking` Wasm against the ICRC ledger fixture on the
//! emulator, at 10 stakers. Each figure is staking's own instructions (update plus the
//! callbacks of its ledger calls), the worst of the 10 stakers.

use super::confirmation_node::instructions_since;
use super::{Context, Measurement};
use crate::emu;
use crate::types::{LedgerArg, LedgerInitArgs};
use anyhow::{Result, anyhow};
use candid::{Encode, Nat, Principal};
use ic_emulator::{Emulator, SubnetKind};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use std::time::Duration;
use stratros_staking_api::{
    Arg, AssetArg, ClaimReceipt, FundRewardsArgs, InitArgs, PositionView, StakeArgs, StakeError,
    UnbondingView, UnstakeArgs,
};

/// Issue 4: stake, unstake and claim each ≤ 2,000,000 instructions at 10 stakers.
pub const TARGET: u64 = 2_000_000;
const STAKERS: u64 = 10;

fn staker(i: u64) -> Principal {
    Principal::self_authenticating(format!("stratros bench staker {i}"))
}

fn call<T: candid::CandidType + for<'de> serde::Deserialize<'de>>(
    emu: &mut Emulator,
    staking: Principal,
    sender: Principal,
    method: &str,
    arg: impl candid::utils::ArgumentEncoder,
) -> Result<T> {
    let r: Result<T, StakeError> = emu::update(emu, staking, sender, method, arg)?;
    r.map_err(|e| anyhow!("{method}: {e:?}"))
}

fn approve(
    emu: &mut Emulator,
    ledger: Principal,
    from: Principal,
    spender: Principal,
) -> Result<()> {
    let arg = ApproveArgs {
        from_subaccount: None,
        spender: spender.into(),
        amount: Nat::from(u64::MAX),
        expected_allowance: None,
        expires_at: None,
        fee: None,
        memo: None,
        created_at_time: None,
    };
    let r: Result<Nat, ApproveError> = emu::update(emu, ledger, from, "icrc2_approve", (arg,))?;
    r.map(|_| ()).map_err(|e| anyhow!("approve: {e:?}"))
}

pub fn staking(ctx: &Context) -> Result<Vec<Measurement>> {
    let ledger_wasm = ctx.wasm.read("icrc_ledger")?;
    let staking_wasm = ctx.wasm.read("staking")?;
    let mut emu = Emulator::new();
    let subnet = emu.subnet_of_kind(SubnetKind::Fiduciary);
    let funder = Principal::self_authenticating(b"stratros bench treasury");
    let ledger_arg = LedgerArg::Init(LedgerInitArgs {
        token_name: "ckBTC".into(),
        token_symbol: "ckBTC".into(),
        decimals: 8,
        transfer_fee: Nat::from(10u8),
        minting_account: Account::from(Principal::self_authenticating(b"stratros bench minter")),
        initial_balances: (0..STAKERS)
            .map(staker)
            .chain([funder])
            .map(|p| (Account::from(p), Nat::from(100_000_000u64)))
            .collect(),
        max_memo_length: None,
    });
    let ledger = emu::install(&mut emu, subnet, &ledger_wasm, Encode!(&ledger_arg)?)?;
    let arg = Arg::Init(InitArgs {
        restaking: None,
        unbonding_seconds: None,
        reward_period_seconds: Some(24 * 3600),
        slash_destination: None,
        assets: vec![AssetArg {
            ledger,
            min_stake: Nat::from(1_000u32),
        }],
        reconcile_interval_seconds: None,
    });
    let staking = emu::install(&mut emu, subnet, &staking_wasm, Encode!(&arg)?)?;

    let mut stake = 0;
    for i in 0..STAKERS {
        let who = staker(i);
        approve(&mut emu, ledger, who, staking)?;
        let mark = emu.executions().len();
        let _: PositionView = call(
            &mut emu,
            staking,
            who,
            "stake",
            (StakeArgs {
                ledger,
                amount: Nat::from(10_000_000u64),
                lock_seconds: None,
            },),
        )?;
        emu.run_until_idle();
        stake = stake.max(instructions_since(&emu, staking, mark));
    }
    approve(&mut emu, ledger, funder, staking)?;
    let _: Nat = call(
        &mut emu,
        staking,
        funder,
        "fund_rewards",
        (FundRewardsArgs {
            ledger,
            amount: Nat::from(1_000_000u64),
        },),
    )?;
    emu.advance_time(Duration::from_secs(12 * 3600));
    emu.run_until_idle();
    let (mut claim, mut unstake) = (0, 0);
    for i in 0..STAKERS {
        let who = staker(i);
        let mark = emu.executions().len();
        let _: Vec<ClaimReceipt> = call(&mut emu, staking, who, "claim_rewards", ())?;
        emu.run_until_idle();
        claim = claim.max(instructions_since(&emu, staking, mark));
        let mark = emu.executions().len();
        let _: UnbondingView = call(
            &mut emu,
            staking,
            who,
            "unstake",
            (UnstakeArgs {
                ledger,
                amount: Nat::from(1_000_000u64),
            },),
        )?;
        emu.run_until_idle();
        unstake = unstake.max(instructions_since(&emu, staking, mark));
    }
    let row = |op: &str, value: u64| Measurement {
        name: format!("staking/{op}"),
        issue: 4,
        value,
        target: TARGET,
        unit: "instructions",
        note: String::new(),
    };
    let mut rows = vec![
        row("stake", stake),
        row("unstake", unstake),
        row("claim_rewards", claim),
    ];
    if let Some(last) = rows.last_mut() {
        last.note = format!(
            "staking's instructions (update + ledger callbacks), worst of {STAKERS} stakers; \
             one ckBTC fixture ledger; claim after half a reward period"
        );
    }
    Ok(rows)
}
