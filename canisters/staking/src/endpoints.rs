//! Thin ic-cdk entry points: decode, call into the logic, map.

use std::time::Duration;

use candid::{Nat, Principal};
use ic_cdk::api::{data_certificate, trap};
use ic_cdk::{init, post_upgrade, pre_upgrade, query, update};
use icrc_ledger_types::icrc1::account::Account;
use serde_bytes::ByteBuf;
use stratros_staking_api::{
    AccountingView, Arg, AssetArg, AssetView, ClaimReceipt, EventView, EventsPage, FundRewardsArgs,
    GetEventsArgs, HookArgs, HookError, HookReceipt, HookView, NotifyDepositArgs, PositionView,
    SlashBatchArgs, StakeArgs, StakeError, UnbondingView, UnstakeArgs, WithdrawReceipt,
};

use crate::runtime::{IcRuntime, Runtime};
use crate::state::HookKind;
use crate::{lifecycle, log, ops};

/// Events per page at most.
pub const MAX_PAGE: u64 = 1_000;

fn arm_timers() {
    let interval = log::read_state(|s| s.config().reconcile_interval_seconds);
    // Right away (asset metadata after install, pending transfers after upgrade), then
    // periodically.
    ic_cdk_timers::set_timer(Duration::ZERO, async { ops::reconcile(&IcRuntime).await });
    ic_cdk_timers::set_timer_interval(Duration::from_secs(interval), || async {
        ops::reconcile(&IcRuntime).await
    });
}

/// Computes the cached Candid type tables of every reply and ledger argument once, in the
/// install / upgrade message, so that no user call pays for them.
fn warm_codec() {
    use crate::codec::encode;
    use icrc_ledger_types::icrc1::transfer::TransferArg;
    use icrc_ledger_types::icrc2::transfer_from::TransferFromArgs;
    encode(Err::<PositionView, StakeError>(StakeError::Busy));
    encode(Err::<UnbondingView, StakeError>(StakeError::Busy));
    encode(Err::<WithdrawReceipt, StakeError>(StakeError::Busy));
    encode(Err::<Nat, StakeError>(StakeError::Busy));
    encode(Err::<Vec<ClaimReceipt>, StakeError>(StakeError::Busy));
    encode(Err::<HookReceipt, HookError>(HookError::ZeroAmount));
    encode(Err::<AssetView, StakeError>(StakeError::Busy));
    let me = Account::from(Principal::anonymous());
    encode(TransferArg {
        from_subaccount: None,
        to: me,
        fee: None,
        created_at_time: None,
        memo: None,
        amount: Nat::from(0u8),
    });
    encode(TransferFromArgs {
        spender_subaccount: None,
        from: me,
        to: me,
        amount: Nat::from(0u8),
        fee: None,
        memo: None,
        created_at_time: None,
    });
}

#[init]
fn init(arg: Arg) {
    lifecycle::init(&IcRuntime, arg)
        .unwrap_or_else(|e| trap(format!("invalid init argument: {e}")));
    warm_codec();
    arm_timers();
}

/// Refuses the upgrade unless the canister is stopped (see `stratros-upgrade-guard`).
#[pre_upgrade]
fn pre_upgrade() {
    stratros_upgrade_guard::require_stopped();
}

#[post_upgrade]
fn post_upgrade(arg: Option<Arg>) {
    lifecycle::post_upgrade(&IcRuntime, arg)
        .unwrap_or_else(|e| trap(format!("invalid upgrade argument: {e}")));
    warm_codec();
    arm_timers();
}

/// Pulls `amount` with `icrc2_transfer_from` (approve `amount + fee` first) into a position,
/// optionally time-locked.
#[update(encode_with = "crate::codec::encode", hidden = true)]
async fn stake(args: StakeArgs) -> Result<PositionView, StakeError> {
    ops::stake(&IcRuntime, args).await
}

/// Stakes what the caller sent to its deposit subaccount (minus the ledger fee of the sweep).
#[update(encode_with = "crate::codec::encode", hidden = true)]
async fn notify_deposit(args: NotifyDepositArgs) -> Result<PositionView, StakeError> {
    ops::notify_deposit(&IcRuntime, args).await
}

/// Where to send tokens for `notify_deposit`.
#[query]
fn deposit_account(owner: Principal) -> Account {
    Account {
        owner: IcRuntime.canister_id(),
        subaccount: Some(ops::deposit_subaccount(owner)),
    }
}

/// Starts unbonding `amount` of free (not restaked, not time-locked) stake.
#[update(encode_with = "crate::codec::encode", hidden = true)]
fn unstake(args: UnstakeArgs) -> Result<UnbondingView, StakeError> {
    ops::unstake(&IcRuntime, args)
}

/// Puts an unbonding entry back into the position.
#[update(encode_with = "crate::codec::encode", hidden = true)]
fn cancel_unstake(id: u64) -> Result<PositionView, StakeError> {
    ops::cancel_unstake(&IcRuntime, id)
}

/// Sends every finished unbonding of `ledger` to the caller, minus the ledger fee.
#[update(encode_with = "crate::codec::encode", hidden = true)]
async fn withdraw(ledger: Principal) -> Result<WithdrawReceipt, StakeError> {
    ops::withdraw(&IcRuntime, ledger).await
}

/// Adds reward tokens (pulled with `icrc2_transfer_from`) to the asset's pool.
#[update(encode_with = "crate::codec::encode", hidden = true)]
async fn fund_rewards(args: FundRewardsArgs) -> Result<Nat, StakeError> {
    ops::fund_rewards(&IcRuntime, args).await
}

/// Pays every pending reward of the caller.
#[update(encode_with = "crate::codec::encode", hidden = true)]
async fn claim_rewards() -> Result<Vec<ClaimReceipt>, StakeError> {
    ops::claim_rewards(&IcRuntime).await
}

/// Restaking only: locks part of an owner's free stake.
#[update(encode_with = "crate::codec::encode", hidden = true)]
fn restaking_lock(args: HookArgs) -> Result<HookReceipt, HookError> {
    ops::hook(&IcRuntime, HookKind::Lock, args)
}

/// Restaking only: unlocks part of an owner's locked stake.
#[update(encode_with = "crate::codec::encode", hidden = true)]
fn restaking_unlock(args: HookArgs) -> Result<HookReceipt, HookError> {
    ops::hook(&IcRuntime, HookKind::Unlock, args)
}

/// Restaking only: slashes part of an owner's locked stake (burned or sent to the configured
/// account by the reconciliation timer).
#[update(encode_with = "crate::codec::encode", hidden = true)]
fn restaking_slash(args: HookArgs) -> Result<HookReceipt, HookError> {
    let r = ops::hook(&IcRuntime, HookKind::Slash, args);
    if r.is_ok() {
        ic_cdk_timers::set_timer(Duration::ZERO, async { ops::reconcile(&IcRuntime).await });
    }
    r
}

/// Restaking only: many slashes in one call (at most `MAX_SLASH_BATCH`), each idempotent per
/// its op id, to the given destination (burn or an account) or the configured one.
#[update]
fn restaking_slash_batch(
    args: SlashBatchArgs,
) -> Result<Vec<Result<HookReceipt, HookError>>, HookError> {
    let r = ops::slash_batch(&IcRuntime, args);
    if r.as_ref().is_ok_and(|v| v.iter().any(|x| x.is_ok())) {
        ic_cdk_timers::set_timer(Duration::ZERO, async { ops::reconcile(&IcRuntime).await });
    }
    r
}

/// What staking applied for restaking hook op `op_id` (`None`: nothing): restaking reads it to
/// settle an op whose call had an unknown outcome.
#[query]
fn get_hook(op_id: u64) -> Option<HookView> {
    log::read_state(|s| ops::hook_view(s, op_id))
}

/// Controllers only: registers an ICRC-2 ledger (fee and decimals are read from it).
#[update(encode_with = "crate::codec::encode", hidden = true)]
async fn add_asset(arg: AssetArg) -> Result<AssetView, StakeError> {
    ops::add_asset(&IcRuntime, arg).await
}

/// Runs the reconciliation now (anyone; it only retries journaled operations).
#[update]
async fn reconcile() {
    ops::reconcile(&IcRuntime).await
}

#[query]
fn get_position(owner: Principal) -> Vec<PositionView> {
    let now = IcRuntime.time();
    log::read_state(|s| {
        let mut ledgers: Vec<Principal> = s.positions_of(owner).map(|(l, _)| l).collect();
        for (_, u) in s.unbondings_of(owner) {
            if !ledgers.contains(&u.ledger) {
                ledgers.push(u.ledger);
            }
        }
        ledgers
            .into_iter()
            .map(|l| ops::position_view(s, owner, l, now))
            .collect()
    })
}

#[query]
fn get_assets() -> Vec<AssetView> {
    log::read_state(|s| s.assets().map(|a| ops::asset_view(s, a.ledger)).collect())
}

fn accounting_views() -> Vec<AccountingView> {
    log::read_state(|s| {
        s.assets()
            .map(|a| {
                let liabilities =
                    a.staked + a.unbonding + a.unpaid_rewards + a.in_flight + a.slashed_unsent;
                AccountingView {
                    ledger: a.ledger,
                    ledger_balance: None,
                    ledger_balance_at: None,
                    staked: Nat::from(a.staked),
                    unbonding: Nat::from(a.unbonding),
                    unpaid_rewards: Nat::from(a.unpaid_rewards),
                    in_flight: Nat::from(a.in_flight),
                    slashed_unsent: Nat::from(a.slashed_unsent),
                    liabilities: Nat::from(liabilities),
                    pending_incoming: s
                        .pending_in()
                        .values()
                        .filter(|p| p.ledger == a.ledger)
                        .count() as u64,
                    pending_outgoing: s
                        .pending_out()
                        .values()
                        .filter(|p| p.ledger == a.ledger)
                        .count() as u64,
                }
            })
            .collect()
    })
}

/// Per asset: the ledger balance, asked of the ledger now, against what it must cover. A
/// composite query reaches only canisters on staking's own subnet: on mainnet (the ck ledgers
/// and ICP live elsewhere) `ledger_balance` is `None`; use `get_accounting_cached`.
#[query(composite = true)]
async fn get_accounting() -> Vec<AccountingView> {
    let rt = IcRuntime;
    let mut views = accounting_views();
    for v in views.iter_mut() {
        v.ledger_balance = rt
            .balance_of(v.ledger, Account::from(rt.canister_id()))
            .await
            .ok();
        v.ledger_balance_at = v.ledger_balance.as_ref().map(|_| rt.time());
    }
    views
}

/// Per asset: the ledger balance as the reconciliation timer last read it (a replicated call,
/// which works across subnets), with the time of that reading, against what it must cover.
#[query]
fn get_accounting_cached() -> Vec<AccountingView> {
    let mut views = accounting_views();
    for v in views.iter_mut() {
        if let Some((balance, at)) = ops::cached_balance(v.ledger) {
            v.ledger_balance = Some(balance);
            v.ledger_balance_at = Some(at);
        }
    }
    views
}

/// A page of the hash-chained event log, with the certificate of its tip.
#[query]
fn get_events(args: GetEventsArgs) -> EventsPage {
    let total = log::len();
    let start = args.start.min(total);
    let end = start.saturating_add(args.length.min(MAX_PAGE)).min(total);
    let events = log::entries(start, end)
        .into_iter()
        .map(|(index, bytes, hash, parent)| {
            let entry = log::decode(&bytes);
            EventView {
                index,
                timestamp: entry.timestamp,
                summary: format!("{:?}", entry.event),
                cbor: ByteBuf::from(bytes),
                hash: ByteBuf::from(hash.to_vec()),
                parent_hash: ByteBuf::from(parent.to_vec()),
            }
        })
        .collect();
    let mut tree = Vec::new();
    ciborium::into_writer(&log::certified_tree(), &mut tree)
        .unwrap_or_else(|e| trap(format!("BUG: cannot encode the tree: {e}")));
    EventsPage {
        events,
        total,
        certificate: data_certificate().map(ByteBuf::from),
        certified_tree: ByteBuf::from(tree),
    }
}

/// The Candid interface of the endpoints above whose replies go through the cached encoder
/// (`encode_with` would otherwise export them as returning `blob`).
#[allow(dead_code, unused_variables)]
mod interface {
    use super::*;

    #[candid::candid_method(update, rename = "stake")]
    fn stake(args: StakeArgs) -> Result<PositionView, StakeError> {
        unreachable!()
    }
    #[candid::candid_method(update, rename = "notify_deposit")]
    fn notify_deposit(args: NotifyDepositArgs) -> Result<PositionView, StakeError> {
        unreachable!()
    }
    #[candid::candid_method(update, rename = "unstake")]
    fn unstake(args: UnstakeArgs) -> Result<UnbondingView, StakeError> {
        unreachable!()
    }
    #[candid::candid_method(update, rename = "cancel_unstake")]
    fn cancel_unstake(id: u64) -> Result<PositionView, StakeError> {
        unreachable!()
    }
    #[candid::candid_method(update, rename = "withdraw")]
    fn withdraw(ledger: Principal) -> Result<WithdrawReceipt, StakeError> {
        unreachable!()
    }
    #[candid::candid_method(update, rename = "fund_rewards")]
    fn fund_rewards(args: FundRewardsArgs) -> Result<Nat, StakeError> {
        unreachable!()
    }
    #[candid::candid_method(update, rename = "claim_rewards")]
    fn claim_rewards() -> Result<Vec<ClaimReceipt>, StakeError> {
        unreachable!()
    }
    #[candid::candid_method(update, rename = "restaking_lock")]
    fn restaking_lock(args: HookArgs) -> Result<HookReceipt, HookError> {
        unreachable!()
    }
    #[candid::candid_method(update, rename = "restaking_unlock")]
    fn restaking_unlock(args: HookArgs) -> Result<HookReceipt, HookError> {
        unreachable!()
    }
    #[candid::candid_method(update, rename = "restaking_slash")]
    fn restaking_slash(args: HookArgs) -> Result<HookReceipt, HookError> {
        unreachable!()
    }
    #[candid::candid_method(update, rename = "add_asset")]
    fn add_asset(arg: AssetArg) -> Result<AssetView, StakeError> {
        unreachable!()
    }
}
