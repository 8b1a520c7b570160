//! The flows: validate, take the owner's guard, journal, await the ledger, settle.
//!
//! Every ledger call is preceded by an event that journals it (`InStarted` / `OutStarted`)
//! with its `created_at_time` and memo (`"stratros" ‖ op id`), so an answer that never comes
//! (reject, trap, timeout) leaves the operation pending; the reconciliation timer asks the
//! ledger again with the very same arguments, and the ledger's deduplication settles it:
//! `Duplicate` means it happened. Past the 24 h window the ledger answers `TooOld` instead,
//! and an outgoing transfer is settled from the ledger's ICRC-3 history (`history`).

use std::cell::RefCell;
use std::collections::BTreeSet;

use candid::{Nat, Principal};
use icrc_ledger_types::icrc1::account::{Account, Subaccount};
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use sha2::{Digest, Sha256};
use stratros_staking_api::{
    AssetArg, AssetView, ClaimReceipt, FundRewardsArgs, HookArgs, HookError, HookKindView,
    HookReceipt, HookView, MAX_LOCK_SECONDS, MAX_SLASH_BATCH, NotifyDepositArgs, PositionView,
    SlashBatchArgs, SlashDestination, StakeArgs, StakeError, UnbondingView, UnstakeArgs,
    WithdrawReceipt,
};

use crate::events::{Acct, Event, InKind, OutKind, P, SlashTo};
use crate::history;
use crate::log::{read_state, record};
use crate::runtime::{CallError, Runtime};
use crate::state::{HookKind, MAX_TOTAL, State, memo};

const NANOS: u64 = 1_000_000_000;

thread_local! {
    static BUSY_OWNERS: RefCell<BTreeSet<Principal>> = const { RefCell::new(BTreeSet::new()) };
    static BUSY_OPS: RefCell<BTreeSet<u64>> = const { RefCell::new(BTreeSet::new()) };
    static RECONCILING: RefCell<bool> = const { RefCell::new(false) };
    /// Per ledger: the canister's balance and when the timer read it (heap only: an
    /// observation, not state; refreshed right after install and upgrade).
    static BALANCES: RefCell<std::collections::BTreeMap<Principal, (Nat, u64)>> =
        const { RefCell::new(std::collections::BTreeMap::new()) };
}

/// The cached balance of `ledger` and when it was read.
pub fn cached_balance(ledger: Principal) -> Option<(Nat, u64)> {
    BALANCES.with_borrow(|b| b.get(&ledger).cloned())
}

/// Reads every asset's balance with a replicated (bounded-wait) call, which works across
/// subnets, unlike a composite query: the ck ledgers and ICP are on other subnets.
pub async fn refresh_balances<R: Runtime>(rt: &R) {
    let ledgers: Vec<Principal> = read_state(|s| s.assets().map(|a| a.ledger).collect());
    for ledger in ledgers {
        if let Ok(balance) = rt.balance_of(ledger, Account::from(rt.canister_id())).await {
            let at = rt.time();
            BALANCES.with_borrow_mut(|b| b.insert(ledger, (balance, at)));
        }
    }
}

/// One operation in flight per owner; released on drop (also when a callback traps, since
/// ic-cdk drops the future's locals on cleanup).
pub struct OwnerGuard(Principal);

impl OwnerGuard {
    pub fn new(owner: Principal) -> Result<Self, StakeError> {
        BUSY_OWNERS.with_borrow_mut(|b| {
            if b.insert(owner) {
                Ok(OwnerGuard(owner))
            } else {
                Err(StakeError::Busy)
            }
        })
    }
}

impl Drop for OwnerGuard {
    fn drop(&mut self) {
        BUSY_OWNERS.with_borrow_mut(|b| b.remove(&self.0));
    }
}

/// A journaled transfer being asked of the ledger right now (the timer skips it).
struct OpGuard(u64);

impl OpGuard {
    /// `None` when the op is already in flight. The guard is built only when taken: one built
    /// eagerly (`then_some`) and refused would be dropped inside the borrow, and its `Drop`
    /// would borrow again (a trap), or else clear the holder's mark.
    fn new(id: u64) -> Option<Self> {
        BUSY_OPS
            .with_borrow_mut(|b| b.insert(id))
            .then(|| OpGuard(id))
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        BUSY_OPS.with_borrow_mut(|b| b.remove(&self.0));
    }
}

struct ReconcileGuard;

impl ReconcileGuard {
    /// `None` while a reconciliation runs (built only when taken, as [`OpGuard::new`]).
    fn new() -> Option<Self> {
        let was_running = RECONCILING.with_borrow_mut(|r| std::mem::replace(r, true));
        (!was_running).then(|| ReconcileGuard)
    }
}

impl Drop for ReconcileGuard {
    fn drop(&mut self) {
        RECONCILING.with_borrow_mut(|r| *r = false);
    }
}

/// Appends and applies an event, and certifies the new tip.
pub fn log_event<R: Runtime>(rt: &R, event: Event) -> u64 {
    let (index, root) = record(rt.time(), event);
    rt.set_certified_data(&root);
    index
}

pub fn to_u128(n: &Nat) -> Result<u128, StakeError> {
    u128::try_from(&n.0).map_err(|_| StakeError::AmountTooLarge {
        max: Nat::from(u128::MAX),
    })
}

fn not_anonymous<R: Runtime>(rt: &R) -> Result<Principal, StakeError> {
    let caller = rt.caller();
    if caller == Principal::anonymous() {
        return Err(StakeError::AnonymousCaller);
    }
    Ok(caller)
}

/// The asset's fee, once its metadata is known.
fn ready_fee(s: &State, ledger: Principal) -> Result<u128, StakeError> {
    let asset = s.asset(ledger).ok_or(StakeError::UnknownAsset { ledger })?;
    asset
        .meta
        .as_ref()
        .map(|m| m.fee)
        .ok_or(StakeError::AssetNotReady { ledger })
}

/// Keeps every total (and its weight, at most 2x) within u128.
fn check_total(total: u128, amount: u128) -> Result<(), StakeError> {
    if total.saturating_add(amount) > MAX_TOTAL {
        return Err(StakeError::AmountTooLarge {
            max: Nat::from(MAX_TOTAL - total.min(MAX_TOTAL)),
        });
    }
    Ok(())
}

fn check_lock(lock_seconds: Option<u64>) -> Result<(), StakeError> {
    match lock_seconds {
        Some(l) if l > MAX_LOCK_SECONDS => Err(StakeError::LockTooLong {
            max_seconds: MAX_LOCK_SECONDS,
        }),
        _ => Ok(()),
    }
}

/// The deposit subaccount of `owner`: `SHA-256("stratros-staking-deposit" ‖ principal)`.
pub fn deposit_subaccount(owner: Principal) -> Subaccount {
    let mut h = Sha256::new();
    h.update(b"stratros-staking-deposit");
    h.update(owner.as_slice());
    h.finalize().into()
}

// ----- incoming -------------------------------------------------------------------------------

pub async fn stake<R: Runtime>(rt: &R, args: StakeArgs) -> Result<PositionView, StakeError> {
    let owner = not_anonymous(rt)?;
    let amount = to_u128(&args.amount)?;
    check_lock(args.lock_seconds)?;
    read_state(|s| {
        ready_fee(s, args.ledger)?;
        let min = s.asset(args.ledger).map_or(0, |a| a.min_stake).max(1);
        if amount < min {
            return Err(StakeError::AmountTooSmall {
                min: Nat::from(min),
            });
        }
        check_total(s.asset(args.ledger).map_or(0, |a| a.staked), amount)
    })?;
    let _guard = OwnerGuard::new(owner)?;
    let id = start_incoming(
        rt,
        owner,
        args.ledger,
        amount,
        InKind::Stake {
            lock_seconds: args.lock_seconds,
        },
    );
    run_incoming(rt, id).await?;
    Ok(read_state(|s| {
        position_view(s, owner, args.ledger, rt.time())
    }))
}

pub async fn notify_deposit<R: Runtime>(
    rt: &R,
    args: NotifyDepositArgs,
) -> Result<PositionView, StakeError> {
    let owner = not_anonymous(rt)?;
    check_lock(args.lock_seconds)?;
    let (fee, min, total) = read_state(|s| {
        let fee = ready_fee(s, args.ledger)?;
        let a = s.asset(args.ledger);
        Ok::<_, StakeError>((fee, a.map_or(0, |a| a.min_stake), a.map_or(0, |a| a.staked)))
    })?;
    let _guard = OwnerGuard::new(owner)?;
    let account = Account {
        owner: rt.canister_id(),
        subaccount: Some(deposit_subaccount(owner)),
    };
    let balance = rt
        .balance_of(args.ledger, account)
        .await
        .map_err(|e| StakeError::LedgerError { message: e.message })?;
    let balance = to_u128(&balance)?;
    let amount = balance.saturating_sub(fee);
    if amount == 0 || amount < min {
        return Err(StakeError::AmountTooSmall {
            min: Nat::from(min.max(1) + fee),
        });
    }
    check_total(total, amount)?;
    let id = start_incoming(
        rt,
        owner,
        args.ledger,
        amount,
        InKind::Deposit {
            lock_seconds: args.lock_seconds,
        },
    );
    run_incoming(rt, id).await?;
    Ok(read_state(|s| {
        position_view(s, owner, args.ledger, rt.time())
    }))
}

pub async fn fund_rewards<R: Runtime>(rt: &R, args: FundRewardsArgs) -> Result<Nat, StakeError> {
    let funder = not_anonymous(rt)?;
    let amount = to_u128(&args.amount)?;
    read_state(|s| {
        ready_fee(s, args.ledger)?;
        check_total(s.asset(args.ledger).map_or(0, |a| a.unpaid_rewards), amount)
    })?;
    if amount == 0 {
        return Err(StakeError::AmountTooSmall {
            min: Nat::from(1u8),
        });
    }
    let _guard = OwnerGuard::new(funder)?;
    let id = start_incoming(rt, funder, args.ledger, amount, InKind::Fund);
    run_incoming(rt, id).await
}

fn start_incoming<R: Runtime>(
    rt: &R,
    owner: Principal,
    ledger: Principal,
    amount: u128,
    kind: InKind,
) -> u64 {
    let id = read_state(|s| s.next_op_id());
    log_event(
        rt,
        Event::InStarted {
            id,
            owner: P(owner),
            ledger: P(ledger),
            amount,
            kind,
            created_at_time: rt.time(),
        },
    );
    id
}

enum Outcome<E> {
    Done(Nat),
    Refused(E),
    Unknown(String),
}

fn classify_transfer(r: Result<Result<Nat, TransferError>, CallError>) -> Outcome<TransferError> {
    match r {
        Ok(Ok(block)) => Outcome::Done(block),
        Ok(Err(TransferError::Duplicate { duplicate_of })) => Outcome::Done(duplicate_of),
        // Not executed now, but an earlier attempt may have been: keep it pending.
        Ok(Err(
            e @ (TransferError::TemporarilyUnavailable
            | TransferError::TooOld
            | TransferError::CreatedInFuture { .. }),
        )) => Outcome::Unknown(format!("{e:?}")),
        Ok(Err(e)) => Outcome::Refused(e),
        Err(e) => Outcome::Unknown(e.message),
    }
}

fn classify_transfer_from(
    r: Result<Result<Nat, TransferFromError>, CallError>,
) -> Outcome<TransferFromError> {
    match r {
        Ok(Ok(block)) => Outcome::Done(block),
        Ok(Err(TransferFromError::Duplicate { duplicate_of })) => Outcome::Done(duplicate_of),
        Ok(Err(
            e @ (TransferFromError::TemporarilyUnavailable
            | TransferFromError::TooOld
            | TransferFromError::CreatedInFuture { .. }),
        )) => Outcome::Unknown(format!("{e:?}")),
        Ok(Err(e)) => Outcome::Refused(e),
        Err(e) => Outcome::Unknown(e.message),
    }
}

fn block_u128(n: &Nat) -> Option<u128> {
    u128::try_from(&n.0).ok()
}

/// Asks the ledger for journaled incoming transfer `id` and settles it. Returns the block.
pub async fn run_incoming<R: Runtime>(rt: &R, id: u64) -> Result<Nat, StakeError> {
    let Some(_op) = OpGuard::new(id) else {
        return Err(StakeError::Pending {
            operation: id,
            message: "being processed".into(),
        });
    };
    let Some(p) = read_state(|s| s.pending_in().get(&id).cloned()) else {
        return Err(StakeError::Pending {
            operation: id,
            message: "already settled".into(),
        });
    };
    let me = rt.canister_id();
    let main = Account {
        owner: me,
        subaccount: None,
    };
    let from = match p.kind {
        InKind::Stake { .. } | InKind::Fund => Account {
            owner: p.owner,
            subaccount: None,
        },
        InKind::Deposit { .. } => Account {
            owner: me,
            subaccount: Some(deposit_subaccount(p.owner)),
        },
    };
    let (outcome, too_old) = match p.kind {
        InKind::Stake { .. } | InKind::Fund => {
            let arg = TransferFromArgs {
                spender_subaccount: None,
                from,
                to: main,
                amount: Nat::from(p.amount),
                fee: None,
                memo: Some(Memo::from(memo(id))),
                created_at_time: Some(p.created_at_time),
            };
            let reply = rt.transfer_from(p.ledger, arg).await;
            let too_old = matches!(reply, Ok(Err(TransferFromError::TooOld)));
            let outcome = match classify_transfer_from(reply) {
                Outcome::Done(b) => Outcome::Done(b),
                Outcome::Refused(e) => Outcome::Refused(StakeError::TransferFrom(e)),
                Outcome::Unknown(m) => Outcome::Unknown(m),
            };
            (outcome, too_old)
        }
        InKind::Deposit { .. } => {
            let arg = TransferArg {
                from_subaccount: from.subaccount,
                to: main,
                fee: None,
                created_at_time: Some(p.created_at_time),
                memo: Some(Memo::from(memo(id))),
                amount: Nat::from(p.amount),
            };
            let reply = rt.transfer(p.ledger, arg).await;
            let too_old = matches!(reply, Ok(Err(TransferError::TooOld)));
            let outcome = match classify_transfer(reply) {
                Outcome::Done(b) => Outcome::Done(b),
                Outcome::Refused(e) => Outcome::Refused(StakeError::Transfer(e)),
                Outcome::Unknown(m) => Outcome::Unknown(m),
            };
            (outcome, too_old)
        }
    };
    // Past the ledger's deduplication window the history decides: the pull is there (credit
    // it), or it never executed and never will (fail it: nothing was taken; a deposit's
    // tokens are still in its subaccount for the next `notify_deposit`).
    let outcome = if too_old {
        let wanted = history::Wanted {
            key: (history::OP, id),
            from,
            to: Some(main),
            amount: p.amount,
            memo: memo(id),
            created_at_time: p.created_at_time,
        };
        match history::search(&history::Ledger(rt), p.ledger, &wanted).await {
            history::Search::Found(block) => Outcome::Done(Nat::from(block)),
            history::Search::NotFound => Outcome::Refused(match p.kind {
                InKind::Deposit { .. } => StakeError::Transfer(TransferError::TooOld),
                _ => StakeError::TransferFrom(TransferFromError::TooOld),
            }),
            history::Search::Continue { next } => Outcome::Unknown(format!(
                "TooOld: searching the ledger's history, blocks below {next} to go"
            )),
            history::Search::Undecided(message) => Outcome::Unknown(message),
        }
    } else {
        outcome
    };
    match outcome {
        Outcome::Done(block) => {
            history::forget((history::OP, id));
            log_event(
                rt,
                Event::InSettled {
                    id,
                    block: block_u128(&block),
                },
            );
            Ok(block)
        }
        Outcome::Refused(e) => {
            history::forget((history::OP, id));
            log_event(rt, Event::InFailed { id });
            Err(e)
        }
        Outcome::Unknown(message) => Err(StakeError::Pending {
            operation: id,
            message,
        }),
    }
}

// ----- positions --------------------------------------------------------------------------

pub fn unstake<R: Runtime>(rt: &R, args: UnstakeArgs) -> Result<UnbondingView, StakeError> {
    let owner = not_anonymous(rt)?;
    let amount = to_u128(&args.amount)?;
    let now = rt.time();
    let (unbonding_id, ready_at) = read_state(|s| {
        let fee = ready_fee(s, args.ledger)?;
        if amount <= fee {
            return Err(StakeError::AmountTooSmall {
                min: Nat::from(fee + 1),
            });
        }
        let pos = s
            .position(owner, args.ledger)
            .ok_or(StakeError::InsufficientStake {
                available: Nat::from(0u8),
            })?;
        if pos.lock_until > now {
            return Err(StakeError::TimeLocked {
                until: pos.lock_until,
            });
        }
        let free = pos.staked - pos.locked;
        if amount > free {
            return Err(StakeError::InsufficientStake {
                available: Nat::from(free),
            });
        }
        let period = s.config().unbonding_seconds.saturating_mul(NANOS);
        Ok((s.next_unbonding_id(), now.saturating_add(period)))
    })?;
    let _guard = OwnerGuard::new(owner)?;
    log_event(
        rt,
        Event::Unstaked {
            owner: P(owner),
            ledger: P(args.ledger),
            amount,
            unbonding_id,
            ready_at,
        },
    );
    Ok(UnbondingView {
        id: unbonding_id,
        ledger: args.ledger,
        amount: Nat::from(amount),
        ready_at,
        seconds_left: ready_at.saturating_sub(now) / NANOS,
    })
}

pub fn cancel_unstake<R: Runtime>(rt: &R, id: u64) -> Result<PositionView, StakeError> {
    let owner = not_anonymous(rt)?;
    let ledger = read_state(|s| s.unbonding(owner, id).map(|u| u.ledger))
        .ok_or(StakeError::NoSuchUnbonding { id })?;
    let _guard = OwnerGuard::new(owner)?;
    log_event(
        rt,
        Event::UnstakeCancelled {
            owner: P(owner),
            unbonding_id: id,
        },
    );
    Ok(read_state(|s| position_view(s, owner, ledger, rt.time())))
}

pub async fn withdraw<R: Runtime>(
    rt: &R,
    ledger: Principal,
) -> Result<WithdrawReceipt, StakeError> {
    let owner = not_anonymous(rt)?;
    let now = rt.time();
    let (fee, ids, amount) = read_state(|s| {
        let fee = ready_fee(s, ledger)?;
        let (ids, amounts): (Vec<u64>, Vec<u128>) = s
            .unbondings_of(owner)
            .filter(|(_, u)| u.ledger == ledger && u.ready_at <= now)
            .map(|(id, u)| (id, u.amount))
            .unzip();
        Ok::<_, StakeError>((fee, ids, amounts.iter().sum::<u128>()))
    })?;
    if ids.is_empty() {
        return Err(StakeError::NothingToWithdraw);
    }
    if amount <= fee {
        return Err(StakeError::AmountTooSmall {
            min: Nat::from(fee + 1),
        });
    }
    let _guard = OwnerGuard::new(owner)?;
    let id = start_outgoing(
        rt,
        OutKind::Withdraw,
        owner,
        ledger,
        Account::from(owner),
        amount,
        fee,
        ids,
        None,
    );
    let block = run_outgoing(rt, id).await?;
    Ok(WithdrawReceipt {
        ledger,
        amount: Nat::from(amount),
        fee: Nat::from(fee),
        block_index: block,
    })
}

/// Pays every pending reward of the caller, one transfer per asset.
pub async fn claim_rewards<R: Runtime>(rt: &R) -> Result<Vec<ClaimReceipt>, StakeError> {
    let owner = not_anonymous(rt)?;
    let _guard = OwnerGuard::new(owner)?;
    let now = rt.time();
    let claimable: Vec<(Principal, u128, u128)> = read_state(|s| {
        s.positions_of(owner)
            .filter_map(|(ledger, _)| {
                let fee = s.asset(ledger)?.meta.as_ref()?.fee;
                let pending = s.pending_rewards_at(owner, ledger, now);
                (pending > fee).then_some((ledger, fee, pending))
            })
            .collect()
    });
    let mut receipts = Vec::new();
    for (ledger, fee, pending) in claimable {
        // `apply` takes at most what is accrued at this timestamp (the same number: the
        // projection takes the same steps).
        let id = start_outgoing(
            rt,
            OutKind::Claim,
            owner,
            ledger,
            Account::from(owner),
            pending,
            fee,
            vec![],
            None,
        );
        let amount = read_state(|s| s.pending_out().get(&id).map_or(0, |o| o.amount));
        if amount <= fee {
            // Rounding at the exact step left too little: give it back.
            log_event(rt, Event::OutFailed { id });
            continue;
        }
        let result = run_outgoing(rt, id).await;
        receipts.push(ClaimReceipt {
            ledger,
            amount: Nat::from(amount),
            fee: Nat::from(fee),
            result,
        });
    }
    Ok(receipts)
}

#[allow(clippy::too_many_arguments)]
fn start_outgoing<R: Runtime>(
    rt: &R,
    kind: OutKind,
    owner: Principal,
    ledger: Principal,
    to: Account,
    amount: u128,
    fee: u128,
    unbonding_ids: Vec<u64>,
    slash_to: Option<SlashTo>,
) -> u64 {
    let id = read_state(|s| s.next_op_id());
    log_event(
        rt,
        Event::OutStarted {
            id,
            kind,
            owner: P(owner),
            ledger: P(ledger),
            to: Acct::from(&to),
            amount,
            fee,
            created_at_time: rt.time(),
            unbonding_ids,
            slash_to,
        },
    );
    id
}

/// Asks the ledger for journaled outgoing transfer `id` (always with the same arguments) and
/// settles it. Returns the block.
pub async fn run_outgoing<R: Runtime>(rt: &R, id: u64) -> Result<Nat, StakeError> {
    let Some(_op) = OpGuard::new(id) else {
        return Err(StakeError::Pending {
            operation: id,
            message: "being processed".into(),
        });
    };
    let Some(o) = read_state(|s| s.pending_out().get(&id).cloned()) else {
        return Err(StakeError::Pending {
            operation: id,
            message: "already settled".into(),
        });
    };
    // A burn (fee 0 recorded) moves `amount` with no fee; anything else sends
    // `amount - fee` and names the fee, so the canister's balance falls by exactly `amount`.
    let arg = |created_at_time: u64| TransferArg {
        from_subaccount: None,
        to: Account::from(&o.to),
        fee: (o.fee > 0).then(|| Nat::from(o.fee)),
        created_at_time: Some(created_at_time),
        memo: Some(Memo::from(memo(id))),
        amount: Nat::from(o.amount - o.fee),
    };
    let mut reply = rt.transfer(o.ledger, arg(o.created_at_time)).await;
    if matches!(reply, Ok(Err(TransferError::TooOld))) {
        let wanted = history::Wanted {
            key: (history::OP, id),
            from: Account::from(rt.canister_id()),
            to: (o.slash_to != Some(SlashTo::Burn)).then(|| Account::from(&o.to)),
            amount: o.amount - o.fee,
            memo: memo(id),
            created_at_time: o.created_at_time,
        };
        match history::search(&history::Ledger(rt), o.ledger, &wanted).await {
            history::Search::Found(block) => {
                reply = Ok(Err(TransferError::Duplicate {
                    duplicate_of: Nat::from(block),
                }))
            }
            history::Search::NotFound => {
                // Never executed, and `created_at_time` is past the window: a new
                // transaction, deduplicated by its own new `created_at_time`.
                let created_at_time = rt.time();
                log_event(
                    rt,
                    Event::OutResent {
                        id,
                        created_at_time,
                    },
                );
                reply = rt.transfer(o.ledger, arg(created_at_time)).await;
            }
            history::Search::Continue { next } => {
                return Err(StakeError::Pending {
                    operation: id,
                    message: format!(
                        "TooOld: searching the ledger's history, blocks below {next} to go"
                    ),
                });
            }
            history::Search::Undecided(message) => {
                return Err(StakeError::Pending {
                    operation: id,
                    message,
                });
            }
        }
    }
    match classify_transfer(reply) {
        Outcome::Done(block) => {
            history::forget((history::OP, id));
            log_event(
                rt,
                Event::OutSettled {
                    id,
                    block: block_u128(&block),
                },
            );
            Ok(block)
        }
        Outcome::Refused(e) => {
            history::forget((history::OP, id));
            log_event(rt, Event::OutFailed { id });
            Err(StakeError::Transfer(e))
        }
        Outcome::Unknown(message) => Err(StakeError::Pending {
            operation: id,
            message,
        }),
    }
}

// ----- restaking hooks --------------------------------------------------------------------

pub fn hook<R: Runtime>(rt: &R, kind: HookKind, args: HookArgs) -> Result<HookReceipt, HookError> {
    check_restaking(rt)?;
    apply_hook(rt, kind, args, None)
}

fn check_restaking<R: Runtime>(rt: &R) -> Result<(), HookError> {
    let caller = rt.caller();
    let restaking = read_state(|s| s.config().restaking);
    if restaking != Some(caller) {
        return Err(HookError::Unauthorized { caller });
    }
    Ok(())
}

pub fn slash_to(d: &SlashDestination) -> SlashTo {
    match d {
        SlashDestination::Burn => SlashTo::Burn,
        SlashDestination::Account(a) => SlashTo::Account(Acct::from(a)),
    }
}

fn destination(t: &SlashTo) -> SlashDestination {
    match t {
        SlashTo::Burn => SlashDestination::Burn,
        SlashTo::Account(a) => SlashDestination::Account(Account::from(a)),
    }
}

/// Restaking only: many slashes in one call, each idempotent per its own op id and applied
/// (or refused, typed) on its own; one refused slash does not stop the others.
pub fn slash_batch<R: Runtime>(
    rt: &R,
    args: SlashBatchArgs,
) -> Result<Vec<Result<HookReceipt, HookError>>, HookError> {
    check_restaking(rt)?;
    if args.slashes.len() > MAX_SLASH_BATCH {
        return Err(HookError::BatchTooLarge {
            max: MAX_SLASH_BATCH as u64,
        });
    }
    let to = args.destination.as_ref().map(slash_to);
    Ok(args
        .slashes
        .into_iter()
        .map(|a| apply_hook(rt, HookKind::Slash, a, to.clone()))
        .collect())
}

/// What staking applied for hook op `op_id`, if anything.
pub fn hook_view(s: &State, op_id: u64) -> Option<HookView> {
    s.hook(op_id).map(|h| HookView {
        op_id,
        kind: match h.kind {
            HookKind::Lock => HookKindView::Lock,
            HookKind::Unlock => HookKindView::Unlock,
            HookKind::Slash => HookKindView::Slash,
        },
        owner: h.owner,
        ledger: h.ledger,
        amount: Nat::from(h.amount),
        event_index: h.event_index,
        destination: h.to.as_ref().map(destination),
    })
}

fn apply_hook<R: Runtime>(
    rt: &R,
    kind: HookKind,
    args: HookArgs,
    to: Option<SlashTo>,
) -> Result<HookReceipt, HookError> {
    let amount = u128::try_from(&args.amount.0).map_err(|_| HookError::AmountTooLarge {
        max: Nat::from(u128::MAX),
    })?;
    let receipt = |event_index: u64| {
        read_state(|s| {
            let pos = s.position(args.owner, args.ledger);
            HookReceipt {
                op_id: args.op_id,
                locked: Nat::from(pos.map_or(0, |p| p.locked)),
                staked: Nat::from(pos.map_or(0, |p| p.staked)),
                event_index,
            }
        })
    };
    if let Some(h) = read_state(|s| s.hook(args.op_id).cloned()) {
        // A retry without a destination matches whatever destination the first call had.
        let same_to = to.is_none() || h.to == to;
        if h.kind == kind
            && h.owner == args.owner
            && h.ledger == args.ledger
            && h.amount == amount
            && same_to
        {
            return Ok(receipt(h.event_index));
        }
        return Err(HookError::OperationConflict { op_id: args.op_id });
    }
    if amount == 0 {
        return Err(HookError::ZeroAmount);
    }
    read_state(|s| {
        if s.asset(args.ledger).is_none() {
            return Err(HookError::UnknownAsset {
                ledger: args.ledger,
            });
        }
        let (staked, locked) = s
            .position(args.owner, args.ledger)
            .map_or((0, 0), |p| (p.staked, p.locked));
        match kind {
            HookKind::Lock if staked - locked < amount => Err(HookError::InsufficientStake {
                available: Nat::from(staked - locked),
            }),
            HookKind::Unlock | HookKind::Slash if locked < amount => {
                Err(HookError::InsufficientLocked {
                    locked: Nat::from(locked),
                })
            }
            _ => Ok(()),
        }
    })?;
    let (op_id, owner, ledger) = (args.op_id, P(args.owner), P(args.ledger));
    let event = match kind {
        HookKind::Lock => Event::Locked {
            op_id,
            owner,
            ledger,
            amount,
        },
        HookKind::Unlock => Event::Unlocked {
            op_id,
            owner,
            ledger,
            amount,
        },
        HookKind::Slash => Event::Slashed {
            op_id,
            owner,
            ledger,
            amount,
            to,
        },
    };
    let index = log_event(rt, event);
    Ok(receipt(index))
}

// ----- assets and reconciliation ---------------------------------------------------------------

pub fn add_asset_event<R: Runtime>(rt: &R, arg: &AssetArg) -> Result<(), StakeError> {
    let min_stake = to_u128(&arg.min_stake)?;
    if read_state(|s| s.asset(arg.ledger).is_some()) {
        return Err(StakeError::AssetAlreadyRegistered { ledger: arg.ledger });
    }
    log_event(
        rt,
        Event::AssetAdded {
            ledger: P(arg.ledger),
            min_stake,
        },
    );
    Ok(())
}

pub async fn add_asset<R: Runtime>(rt: &R, arg: AssetArg) -> Result<AssetView, StakeError> {
    if !rt.is_controller(&rt.caller()) {
        return Err(StakeError::NotController);
    }
    add_asset_event(rt, &arg)?;
    fetch_metadata(rt, arg.ledger).await?;
    Ok(read_state(|s| asset_view(s, arg.ledger)))
}

async fn fetch_metadata<R: Runtime>(rt: &R, ledger: Principal) -> Result<(), StakeError> {
    let meta = rt
        .metadata(ledger)
        .await
        .map_err(|e| StakeError::LedgerError { message: e.message })?;
    let fee = to_u128(&meta.fee)?;
    if read_state(|s| s.asset(ledger).is_some_and(|a| a.meta.is_none())) {
        log_event(
            rt,
            Event::AssetMetadata {
                ledger: P(ledger),
                symbol: meta.symbol,
                decimals: meta.decimals,
                fee,
                minting_account: meta.minting_account.as_ref().map(Acct::from),
            },
        );
    }
    Ok(())
}

/// The timer task: reads missing metadata, retries every pending transfer with its journaled
/// arguments, and sends slashed tokens.
pub async fn reconcile<R: Runtime>(rt: &R) {
    let Some(_guard) = ReconcileGuard::new() else {
        return;
    };
    let missing: Vec<Principal> = read_state(|s| {
        s.assets()
            .filter(|a| a.meta.is_none())
            .map(|a| a.ledger)
            .collect()
    });
    for ledger in missing {
        let _ = fetch_metadata(rt, ledger).await;
    }
    let incoming: Vec<u64> = read_state(|s| s.pending_in().keys().copied().collect());
    for id in incoming {
        let _ = run_incoming(rt, id).await;
    }
    let outgoing: Vec<u64> = read_state(|s| s.pending_out().keys().copied().collect());
    for id in outgoing {
        let _ = run_outgoing(rt, id).await;
    }
    // One transfer per (asset, destination) bucket; a burn must be at least the fee, a
    // transfer must exceed it (the recipient gets amount - fee).
    let slashes: Vec<(Principal, SlashTo, Account, u128, u128)> = read_state(|s| {
        let mut out = Vec::new();
        for a in s.assets() {
            let Some(meta) = a.meta.as_ref() else {
                continue;
            };
            for (to, amount) in &a.slash_queue {
                match to {
                    SlashTo::Burn => {
                        if let Some(minting) = meta.minting_account.as_ref()
                            && *amount >= meta.fee.max(1)
                        {
                            out.push((a.ledger, to.clone(), Account::from(minting), *amount, 0));
                        }
                    }
                    SlashTo::Account(acct) => {
                        if *amount > meta.fee {
                            out.push((
                                a.ledger,
                                to.clone(),
                                Account::from(acct),
                                *amount,
                                meta.fee,
                            ));
                        }
                    }
                }
            }
        }
        out
    });
    for (ledger, slash_to, to, amount, fee) in slashes {
        let id = start_outgoing(
            rt,
            OutKind::Slash,
            rt.canister_id(),
            ledger,
            to,
            amount,
            fee,
            vec![],
            Some(slash_to),
        );
        let _ = run_outgoing(rt, id).await;
    }
    refresh_balances(rt).await;
}

// ----- views ------------------------------------------------------------------------------

pub fn position_view(s: &State, owner: Principal, ledger: Principal, now: u64) -> PositionView {
    let pos = s.position(owner, ledger);
    PositionView {
        owner,
        ledger,
        staked: Nat::from(pos.map_or(0, |p| p.staked)),
        locked: Nat::from(pos.map_or(0, |p| p.locked)),
        lock_until: pos.map(|p| p.lock_until).filter(|t| *t > now),
        weight_bps: pos
            .filter(|p| p.lock_until > now)
            .map_or(stratros_staking_api::BASE_WEIGHT_BPS, |p| p.weight_bps),
        unbonding: s
            .unbondings_of(owner)
            .filter(|(_, u)| u.ledger == ledger)
            .map(|(id, u)| UnbondingView {
                id,
                ledger,
                amount: Nat::from(u.amount),
                ready_at: u.ready_at,
                seconds_left: u.ready_at.saturating_sub(now) / NANOS,
            })
            .collect(),
        pending_rewards: Nat::from(s.pending_rewards_at(owner, ledger, now)),
    }
}

pub fn asset_view(s: &State, ledger: Principal) -> AssetView {
    let a = s.asset(ledger);
    let meta = a.and_then(|a| a.meta.as_ref());
    AssetView {
        ledger,
        symbol: meta.map(|m| m.symbol.clone()),
        decimals: meta.map(|m| m.decimals),
        fee: meta.map(|m| Nat::from(m.fee)),
        min_stake: Nat::from(a.map_or(0, |a| a.min_stake)),
        total_staked: Nat::from(a.map_or(0, |a| a.staked)),
        total_weight: Nat::from(a.map_or(0, |a| a.weight)),
        reward_undistributed: Nat::from(a.map_or(0, |a| a.pool.undistributed)),
        reward_period_end: a.map_or(0, |a| a.pool.end),
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn should_refuse_a_second_guard_and_keep_the_first_holders_mark() {
        let first = OpGuard::new(7).expect("free");
        assert!(OpGuard::new(7).is_none(), "in flight");
        assert!(BUSY_OPS.with_borrow(|b| b.contains(&7)), "still marked");
        drop(first);
        assert!(OpGuard::new(7).is_some(), "free again");

        let running = ReconcileGuard::new().expect("free");
        assert!(ReconcileGuard::new().is_none(), "running");
        assert!(RECONCILING.with_borrow(|r| *r), "still marked");
        drop(running);
        assert!(ReconcileGuard::new().is_some(), "free again");
    }
}
