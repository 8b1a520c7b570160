//! The flows behind the endpoints: caller checks, events, and the journaled calls to staking
//! and to reward ledgers (each op is retried from a timer until it settles).

use std::cell::RefCell;
use std::collections::BTreeSet;

use candid::{Nat, Principal};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use stratros_staking_api::{
    HookArgs, HookError, HookKindView, HookView, MAX_SLASH_BATCH, SlashBatchArgs, SlashDestination,
};

use crate::events::{AccountEv, AssetWeightEv, Event, P};
use crate::model::{Applied, NANOS, OpKind, kind_tag};
use crate::runtime::{Hook, Runtime};
use crate::state::{read_state, record};
use crate::types::*;

type R<T> = Result<T, RestakingError>;

/// Per timer run: settlements, and journaled ops retried.
pub const SETTLE_BATCH: usize = 200;
pub const OPS_BATCH: usize = 50;

thread_local! {
    /// Ops whose call is in flight (heap only: an upgrade cannot leave a call in flight
    /// that could still record anything, and every op is idempotent at its callee).
    static IN_FLIGHT: RefCell<BTreeSet<u64>> = const { RefCell::new(BTreeSet::new()) };
    /// Hook ops whose last call to staking had no answer (it may have been applied): the next
    /// attempt first reads `get_hook(op_id)` and settles from it without calling the hook.
    /// Heap only: after an upgrade the hook is simply called again (idempotent per op id).
    static UNKNOWN: RefCell<BTreeSet<u64>> = const { RefCell::new(BTreeSet::new()) };
}

fn mark_unknown(op_id: u64) {
    UNKNOWN.with_borrow_mut(|u| u.insert(op_id));
}

fn clear_unknown(op_id: u64) {
    UNKNOWN.with_borrow_mut(|u| u.remove(&op_id));
}

fn is_unknown(op_id: u64) -> bool {
    UNKNOWN.with_borrow(|u| u.contains(&op_id))
}

/// Whether staking's record of `op_id` is exactly journaled op `op`.
fn hook_matches(h: &HookView, op: &crate::model::Op) -> bool {
    let kind = match op.kind {
        OpKind::Lock { .. } => HookKindView::Lock,
        OpKind::Unlock => HookKindView::Unlock,
        OpKind::Slash { .. } => HookKindView::Slash,
        OpKind::Payout { .. } | OpKind::Deposit { .. } => return false,
    };
    h.kind == kind && h.owner == op.owner && h.ledger == op.ledger && h.amount == op.amount
}

/// Where staking sends the tokens of slash op `op`: its AVS's redistribution account, or
/// `None` (staking's configured destination) when the AVS has none or the loss has no AVS.
pub(crate) fn slash_destination(
    s: &crate::model::State,
    op: &crate::model::Op,
) -> Option<SlashDestination> {
    let OpKind::Slash { avs: Some(avs) } = &op.kind else {
        return None;
    };
    let a = s.avss.get(avs)?.redistribution.as_ref()?;
    Some(SlashDestination::Account(Account {
        owner: a.owner,
        subaccount: a
            .subaccount
            .as_ref()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()),
    }))
}

/// Settles hook op `op_id` from staking's record when staking applied it. `true` if settled.
async fn settle_from_record<Rt: Runtime>(
    rt: &Rt,
    staking: Principal,
    op_id: u64,
    op: &crate::model::Op,
) -> bool {
    let Ok(Some(h)) = rt.staking_get_hook(staking, op_id).await else {
        return false;
    };
    if !hook_matches(&h, op) {
        return false;
    }
    clear_unknown(op_id);
    let event = match op.kind {
        OpKind::Lock { .. } => Event::LockSettled {
            op_id,
            accepted: true,
        },
        _ => Event::OpSettled { op_id },
    };
    log(rt, event).is_ok()
}

pub(crate) struct OpGuard(u64);

impl OpGuard {
    /// `None` when the op is already in flight. The guard is built only when taken: an
    /// eagerly built one (`then_some`) was dropped inside the borrow when the op was in
    /// flight, and its `Drop` borrowed `IN_FLIGHT` again ("RefCell already borrowed": a
    /// `process` run while the timer retried the same op trapped).
    pub(crate) fn take(op_id: u64) -> Option<OpGuard> {
        IN_FLIGHT
            .with_borrow_mut(|s| s.insert(op_id))
            .then(|| OpGuard(op_id))
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        IN_FLIGHT.with_borrow_mut(|s| s.remove(&self.0));
    }
}

pub fn log<Rt: Runtime>(rt: &Rt, event: Event) -> R<Applied> {
    let now = rt.time();
    // Reward streams advance in their own event (which never fails), before the event that
    // may depend on them: at most once a minute, and always before a claim.
    if !matches!(event, Event::StreamsAdvanced) {
        let force = matches!(event, Event::RewardsClaimed { .. });
        if read_state(|s| s.streams_due(now, force)) {
            let (_, root) = record(now, Event::StreamsAdvanced)?;
            rt.set_certified_data(&root);
        }
    }
    let (applied, root) = record(now, event)?;
    rt.set_certified_data(&root);
    Ok(applied)
}

fn caller<Rt: Runtime>(rt: &Rt) -> R<Principal> {
    let c = rt.caller();
    if c == Principal::anonymous() {
        return Err(RestakingError::AnonymousCaller);
    }
    Ok(c)
}

pub fn amount(n: &Nat) -> R<u128> {
    u128::try_from(&n.0).map_err(|_| RestakingError::AmountTooLarge)
}

pub fn register_operator<Rt: Runtime>(rt: &Rt, args: RegisterOperatorArgs) -> R<()> {
    let operator = P(caller(rt)?);
    log(
        rt,
        Event::OperatorRegistered {
            operator,
            name: args.name,
            metadata: args.metadata,
            commission_bps: args.commission_bps,
        },
    )
    .map(|_| ())
}

pub fn set_commission<Rt: Runtime>(rt: &Rt, commission_bps: u32) -> R<()> {
    let operator = P(caller(rt)?);
    log(
        rt,
        Event::CommissionChangeRequested {
            operator,
            commission_bps,
        },
    )
    .map(|_| ())
}

/// Registers a confirmation node of the caller. The node canister is asked for its scheme,
/// key name and derived public key (`node_info`), and they must equal the arguments: the key
/// that equivocation proofs are checked against is the one the node itself signs with, never
/// one the operator merely claims.
pub async fn register_node<Rt: Runtime>(rt: &Rt, args: RegisterNodeArgs) -> R<()> {
    let operator = P(caller(rt)?);
    // Validate everything local first (unknown operator, taken node, bad key length).
    read_state(|s| {
        s.check_node_registration(
            operator.0,
            args.node,
            args.scheme.tag(),
            &args.key_name,
            &args.public_key.0,
        )
    })?;
    let info = rt.node_info(args.node).await.map_err(|e| {
        RestakingError::InvalidArgument(format!("cannot read the node: {}", e.message))
    })?;
    if info.scheme != args.scheme || info.key_name != args.key_name {
        return Err(RestakingError::InvalidArgument(format!(
            "the node canister signs with {} / {:?}, not {} / {:?}",
            info.scheme, info.key_name, args.scheme, args.key_name
        )));
    }
    match info.public_key {
        Some(k) if k.as_slice() == args.public_key.0.as_slice() => {}
        Some(_) => {
            return Err(RestakingError::InvalidArgument(
                "the public key differs from the node canister's own".into(),
            ));
        }
        None => {
            return Err(RestakingError::InvalidArgument(
                "the node canister has not fetched its public key yet (call its fetch_public_key)"
                    .into(),
            ));
        }
    }
    log(rt, node_event(operator, &args)).map(|_| ())
}

fn node_event(operator: P, args: &RegisterNodeArgs) -> Event {
    Event::NodeRegistered {
        operator,
        node: P(args.node),
        scheme: args.scheme.tag(),
        key_name: args.key_name.clone(),
        public_key: args.public_key.0.clone(),
    }
}

/// Registers an AVS (controllers only). Each weighted asset's decimals are read from its
/// ledger and logged with the weight, so that the weight is per whole token
/// ([`crate::model::normalized_stake`]) and replay needs no call.
pub async fn register_avs<Rt: Runtime>(rt: &Rt, args: RegisterAvsArgs) -> R<()> {
    if !rt.is_controller(&rt.caller()) {
        return Err(RestakingError::NotController);
    }
    // Cheap checks before calling ledgers (the event's own validation repeats them).
    read_state(|s| {
        if s.avss.contains_key(&args.id) {
            return Err(RestakingError::AvsAlreadyRegistered {
                id: args.id.clone(),
            });
        }
        if args.asset_weights.is_empty() || args.asset_weights.len() > crate::model::MAX_LIST {
            return Err(RestakingError::InvalidArgument(format!(
                "an AVS weighs 1 to {} assets",
                crate::model::MAX_LIST
            )));
        }
        Ok(())
    })?;
    let mut weights = Vec::with_capacity(args.asset_weights.len());
    for w in args.asset_weights {
        let decimals = rt.decimals(w.ledger).await.map_err(|e| {
            RestakingError::LedgerError(format!(
                "cannot read the decimals of {}: {}",
                w.ledger, e.message
            ))
        })?;
        weights.push(AssetWeightEv {
            ledger: P(w.ledger),
            weight_bps: w.weight_bps,
            decimals: Some(decimals),
        });
    }
    log(
        rt,
        Event::AvsRegistered {
            id: args.id,
            name: args.name,
            kind: kind_tag(args.kind),
            slashers: args.slashers.into_iter().map(P).collect(),
            weights,
            max_slash_bps: args.max_slash_bps,
            veto_window_ns: args.veto_window_seconds.saturating_mul(NANOS),
            resolvers: args.resolvers.into_iter().map(P).collect(),
            reward_tokens: args.reward_tokens.into_iter().map(P).collect(),
            redistribution: args.redistribution_account.map(|a| AccountEv {
                owner: P(a.owner),
                subaccount: a.subaccount.map(|b| b.0),
            }),
        },
    )
    .map(|_| ())
}

pub fn allocate<Rt: Runtime>(rt: &Rt, args: AllocateArgs) -> R<()> {
    let operator = P(caller(rt)?);
    log(
        rt,
        Event::Allocated {
            operator,
            avs: args.avs,
            ledger: P(args.ledger),
            bps: args.bps,
        },
    )
    .map(|_| ())
}

/// Requests a lock from staking and, once it is granted, records the delegation. Returns the
/// op id; `Pending` when staking did not answer (the timer retries the same op id).
pub async fn delegate<Rt: Runtime>(rt: &Rt, args: DelegateArgs) -> R<u64> {
    let staker = P(caller(rt)?);
    let amount = amount(&args.amount)?;
    let Applied::Op(op_id) = log(
        rt,
        Event::DelegationRequested {
            staker,
            operator: P(args.operator),
            ledger: P(args.ledger),
            amount,
        },
    )?
    else {
        panic!("BUG: a delegation request returns its op")
    };
    run_op(rt, op_id).await.map(|_| op_id)
}

pub fn undelegate<Rt: Runtime>(rt: &Rt, args: DelegateArgs) -> R<u64> {
    let staker = P(caller(rt)?);
    let amount = amount(&args.amount)?;
    match log(
        rt,
        Event::UndelegateRequested {
            staker,
            operator: P(args.operator),
            ledger: P(args.ledger),
            amount,
        },
    )? {
        Applied::Withdrawal(id) => Ok(id),
        other => panic!("BUG: undelegate applied as {other:?}"),
    }
}

pub fn cancel_withdrawal<Rt: Runtime>(rt: &Rt, id: u64) -> R<()> {
    let staker = P(caller(rt)?);
    log(rt, Event::WithdrawalCancelled { staker, id }).map(|_| ())
}

/// Completes a withdrawal whose delay is over (anyone may) and unlocks it in staking.
pub async fn complete_withdrawal<Rt: Runtime>(rt: &Rt, id: u64) -> R<()> {
    log(rt, Event::WithdrawalCompleted { id })?;
    process_ops(rt).await;
    Ok(())
}

pub fn request_slash<Rt: Runtime>(rt: &Rt, args: RequestSlashArgs) -> R<u64> {
    let slasher = P(caller(rt)?);
    match log(
        rt,
        Event::SlashRequested {
            slasher,
            avs: args.avs,
            operator: P(args.operator),
            bps: args.bps,
            reason: args.reason,
        },
    )? {
        Applied::Slash(id) => Ok(id),
        other => panic!("BUG: a slash request applied as {other:?}"),
    }
}

pub fn veto_slash<Rt: Runtime>(rt: &Rt, id: u64) -> R<()> {
    let resolver = P(caller(rt)?);
    log(rt, Event::SlashVetoed { resolver, id }).map(|_| ())
}

pub fn execute_slash<Rt: Runtime>(rt: &Rt, id: u64) -> R<()> {
    log(rt, Event::SlashExecuted { id }).map(|_| ())
}

/// Verifies an equivocation proof in the canister (both signatures, any of the four schemes,
/// against the node's registered key) and slashes the node's operator at once.
pub fn slash_equivocation<Rt: Runtime>(rt: &Rt, args: EquivocationArgs) -> R<u64> {
    let reporter = P(caller(rt)?);
    let ev = &args.evidence;
    let (operator, node) = read_state(|s| {
        s.node(ev.node)
            .map(|(o, n)| (o, n.clone()))
            .ok_or(RestakingError::UnknownNode { node: ev.node })
    })?;
    if operator != args.operator {
        return Err(RestakingError::NodeOfOtherOperator {
            node: ev.node,
            operator,
        });
    }
    if ev.key_name != node.key_name {
        return Err(RestakingError::InvalidEvidence(format!(
            "the node signs with key {:?}, the evidence names {:?}",
            node.key_name, ev.key_name
        )));
    }
    let (hub, height) = (ev.first.header.hub, ev.first.header.height);
    read_state(|s| s.check_equivocation(ev.node, hub, height))?;
    crate::verify::verify_equivocation(ev, &node.public_key, node.scheme)
        .map_err(RestakingError::InvalidEvidence)?;
    match log(
        rt,
        Event::EquivocationSlashed {
            reporter,
            node: P(ev.node),
            hub: P(hub),
            height,
        },
    )? {
        Applied::Slash(id) => Ok(id),
        other => panic!("BUG: an equivocation applied as {other:?}"),
    }
}

/// Pulls `amount` reward tokens from the caller (ICRC-2: approve `amount + fee` first) and
/// distributes them to the AVS's operators and delegators.
///
/// Everything is checked before any token moves (unknown AVS or token, zero amount, no stake
/// that could receive it: typed errors, nothing pulled). The pull is journaled (op) before the
/// `icrc2_transfer_from`, which carries `created_at_time` and a memo: the caller's key when it
/// gave one, else the request time and a memo derived from the op id. An unknown outcome
/// leaves the op journaled (`Pending`); the timer, or a repeat of the same keyed request,
/// retries the very same transaction, which the ledger answers `Duplicate { duplicate_of }`
/// when the first attempt landed: the tokens are credited exactly once. A repeat of a keyed
/// request already credited returns `Ok` without pulling.
pub async fn deposit_rewards<Rt: Runtime>(rt: &Rt, args: DepositRewardsArgs) -> R<()> {
    let from = caller(rt)?;
    let amount = amount(&args.amount)?;
    let period_ns = args
        .period_seconds
        .filter(|p| *p > 0)
        .map(|p| p.saturating_mul(NANOS));
    let memo = args.memo.map(|m| m.0);
    let repeat = match args.created_at_time {
        Some(t) => {
            let key = (t, from, args.token, memo.clone().unwrap_or_default());
            read_state(|s| s.deposit_by_key(&key, &args.avs, amount, period_ns))?
        }
        None => None,
    };
    let op_id = match repeat {
        Some((_, true)) => return Ok(()),
        Some((op_id, false)) => op_id,
        None => match log(
            rt,
            Event::DepositRequested {
                from: P(from),
                avs: args.avs,
                token: P(args.token),
                amount,
                period_ns,
                created_at_time: args.created_at_time,
                memo,
            },
        )? {
            Applied::Op(op_id) => op_id,
            other => panic!("BUG: a deposit request applied as {other:?}"),
        },
    };
    run_op(rt, op_id).await
}

/// Claims every reward token owed to the caller, from all its positions and commissions, to
/// itself or to `recipient`.
pub async fn claim_rewards<Rt: Runtime>(
    rt: &Rt,
    recipient: Option<Principal>,
) -> R<Vec<TokenAmount>> {
    let owner = caller(rt)?;
    let recipient = recipient.unwrap_or(owner);
    let Applied::Claimed(paid) = log(
        rt,
        Event::RewardsClaimed {
            owner: P(owner),
            recipient: P(recipient),
        },
    )?
    else {
        panic!("BUG: a claim returns its payouts")
    };
    for (_, _, op_id) in &paid {
        // A payout that does not settle now stays journaled and is retried by the timer.
        let _ = run_op(rt, *op_id).await;
    }
    Ok(paid
        .into_iter()
        .map(|(token, amount, _)| TokenAmount {
            token,
            amount: Nat::from(amount),
        })
        .collect())
}

fn hook_args(op_id: u64, owner: Principal, ledger: Principal, amount: u128) -> HookArgs {
    HookArgs {
        op_id,
        owner,
        ledger,
        amount: Nat::from(amount),
    }
}

/// Executes one journaled op. `Ok` when it settled; `Pending` when it must be retried.
pub async fn run_op<Rt: Runtime>(rt: &Rt, op_id: u64) -> R<()> {
    let Some(op) = read_state(|s| s.ops.get(&op_id).cloned()) else {
        return Ok(());
    };
    let Some(_guard) = OpGuard::take(op_id) else {
        return Err(RestakingError::Pending {
            op_id,
            message: "in flight".into(),
        });
    };
    let staking = read_state(|s| s.config().staking);
    let pending = |message: String| RestakingError::Pending { op_id, message };
    match op.kind {
        OpKind::Lock { .. } | OpKind::Unlock | OpKind::Slash { .. }
            if is_unknown(op_id) && settle_from_record(rt, staking, op_id, &op).await =>
        {
            Ok(())
        }
        OpKind::Lock { .. } => {
            let args = hook_args(op_id, op.owner, op.ledger, op.amount);
            match rt.staking_hook(staking, Hook::Lock, args).await {
                Ok(Ok(_)) => {
                    clear_unknown(op_id);
                    log(
                        rt,
                        Event::LockSettled {
                            op_id,
                            accepted: true,
                        },
                    )?;
                    Ok(())
                }
                Ok(Err(
                    e @ (HookError::Unauthorized { .. } | HookError::OperationConflict { .. }),
                )) => Err(pending(format!("{e:?}"))),
                Ok(Err(e)) => {
                    log(
                        rt,
                        Event::LockSettled {
                            op_id,
                            accepted: false,
                        },
                    )?;
                    Err(RestakingError::StakingRejected(format!("{e:?}")))
                }
                Err(e) => {
                    mark_unknown(op_id);
                    Err(pending(e.message))
                }
            }
        }
        OpKind::Slash { .. } => {
            // A batch of one: the single-owner hook has no destination.
            let args = SlashBatchArgs {
                slashes: vec![hook_args(op_id, op.owner, op.ledger, op.amount)],
                destination: read_state(|s| slash_destination(s, &op)),
            };
            match rt.staking_slash_batch(staking, args).await {
                Ok(Ok(results)) => match results.into_iter().next() {
                    Some(Ok(_)) => {
                        clear_unknown(op_id);
                        log(rt, Event::OpSettled { op_id })?;
                        Ok(())
                    }
                    Some(Err(e)) => Err(pending(format!("{e:?}"))),
                    None => Err(pending("staking answered no result".into())),
                },
                Ok(Err(e)) => Err(pending(format!("{e:?}"))),
                Err(e) => {
                    mark_unknown(op_id);
                    Err(pending(e.message))
                }
            }
        }
        OpKind::Unlock => {
            let args = hook_args(op_id, op.owner, op.ledger, op.amount);
            match rt.staking_hook(staking, Hook::Unlock, args).await {
                Ok(Ok(_)) => {
                    clear_unknown(op_id);
                    log(rt, Event::OpSettled { op_id })?;
                    Ok(())
                }
                Ok(Err(e)) => Err(pending(format!("{e:?}"))),
                Err(e) => {
                    mark_unknown(op_id);
                    Err(pending(e.message))
                }
            }
        }
        OpKind::Deposit { memo, .. } => {
            let arg = TransferFromArgs {
                spender_subaccount: None,
                from: Account::from(op.owner),
                to: Account::from(rt.canister_id()),
                amount: Nat::from(op.amount),
                fee: None,
                memo: Some(Memo::from(memo)),
                created_at_time: Some(op.created_at),
            };
            match rt.transfer_from(op.ledger, arg).await {
                Ok(Ok(block))
                | Ok(Err(TransferFromError::Duplicate {
                    duplicate_of: block,
                })) => {
                    let block = u128::try_from(&block.0).unwrap_or(u128::MAX);
                    log(rt, Event::DepositReceived { op_id, block })?;
                    Ok(())
                }
                // Past the ledger's deduplication window: a retry can no longer tell whether
                // an earlier attempt landed, so the op stays journaled (visible in
                // `pending_ops`) rather than being guessed either way.
                Ok(Err(TransferFromError::TooOld)) => Err(pending(
                    "the ledger no longer deduplicates this pull (TooOld)".into(),
                )),
                Ok(Err(e)) => {
                    // The ledger answered and took nothing (it checks duplicates first).
                    let reason = format!("{e:?}");
                    log(
                        rt,
                        Event::DepositFailed {
                            op_id,
                            reason: reason.clone(),
                        },
                    )?;
                    Err(RestakingError::LedgerError(reason))
                }
                Err(e) => Err(pending(e.message)),
            }
        }
        OpKind::Payout { to } => {
            let fee = rt
                .fee(op.ledger)
                .await
                .map_err(|e| pending(e.message))
                .and_then(|f| amount(&f))?;
            if op.amount <= fee {
                // Not worth a transfer: it would pay nothing. Rounding dust.
                log(rt, Event::OpSettled { op_id })?;
                return Ok(());
            }
            let arg = TransferArg {
                from_subaccount: None,
                to: Account::from(to),
                fee: Some(Nat::from(fee)),
                created_at_time: Some(op.created_at),
                memo: Some(Memo::from(op_id.to_be_bytes().to_vec())),
                amount: Nat::from(op.amount - fee),
            };
            match rt.transfer(op.ledger, arg).await {
                Ok(Ok(_)) | Ok(Err(TransferError::Duplicate { .. })) => {
                    log(rt, Event::OpSettled { op_id })?;
                    Ok(())
                }
                Ok(Err(e)) => Err(pending(format!("{e:?}"))),
                Err(e) => Err(pending(e.message)),
            }
        }
    }
}

/// The timer task: executes due slashes, completes due withdrawals, settles slashed
/// positions (a batch per run), and retries journaled ops.
pub async fn process_ops<Rt: Runtime>(rt: &Rt) {
    let now = rt.time();
    if read_state(|s| s.streams_due(now, false)) {
        let _ = log(rt, Event::StreamsAdvanced);
    }
    for id in read_state(|s| s.due_slashes(now)) {
        let _ = log(rt, Event::SlashExecuted { id });
    }
    for id in read_state(|s| s.due_withdrawals(now, SETTLE_BATCH)) {
        let _ = log(rt, Event::WithdrawalCompleted { id });
    }
    let (delegations, withdrawals) = read_state(|s| s.unsettled(SETTLE_BATCH));
    for (operator, ledger, staker) in delegations {
        let _ = log(
            rt,
            Event::DelegationSettled {
                operator: P(operator),
                ledger: P(ledger),
                staker: P(staker),
            },
        );
    }
    for id in withdrawals {
        let _ = log(rt, Event::WithdrawalSettled { id });
    }
    run_slash_batches(rt).await;
    let ops: Vec<u64> = read_state(|s| {
        s.ops
            .iter()
            .filter(|(_, op)| !matches!(op.kind, OpKind::Slash { .. }))
            .take(OPS_BATCH)
            .map(|(id, _)| *id)
            .collect()
    });
    for op_id in ops {
        let _ = run_op(rt, op_id).await;
    }
}

/// Sends journaled slash ops to staking in batches (one `restaking_slash_batch` call per
/// asset and destination, at most `MAX_SLASH_BATCH` ops each), so that settling N slashed
/// positions costs N / 500 calls, not N. The destination is the redistribution account of
/// the op's AVS, or `None` (staking's configured one). Each op keeps its own id: staking
/// applies each once, and an op the batch did not settle stays journaled for the next run.
pub async fn run_slash_batches<Rt: Runtime>(rt: &Rt) {
    let staking = read_state(|s| s.config().staking);
    type Batches = std::collections::BTreeMap<
        (Principal, Option<crate::types::Account>),
        (Option<SlashDestination>, Vec<(u64, crate::model::Op)>),
    >;
    let mut batches: Batches = std::collections::BTreeMap::new();
    read_state(|s| {
        for (id, op) in s
            .ops
            .iter()
            .filter(|(_, op)| matches!(op.kind, OpKind::Slash { .. }))
        {
            let account = match &op.kind {
                OpKind::Slash { avs: Some(avs) } => {
                    s.avss.get(avs).and_then(|a| a.redistribution.clone())
                }
                _ => None,
            };
            let (_, batch) = batches
                .entry((op.ledger, account))
                .or_insert_with(|| (slash_destination(s, op), Vec::new()));
            if batch.len() < MAX_SLASH_BATCH {
                batch.push((*id, op.clone()));
            }
        }
    });
    for (destination, batch) in batches.into_values() {
        // Guards before the first await: an op already in flight elsewhere is left out.
        let mut guards = Vec::new();
        let mut ops = Vec::new();
        for (id, op) in batch {
            if let Some(g) = OpGuard::take(id) {
                guards.push(g);
                ops.push((id, op));
            }
        }
        // Ops whose last call had no answer: staking may have applied them already.
        let mut to_send = Vec::new();
        for (id, op) in ops {
            if is_unknown(id) && settle_from_record(rt, staking, id, &op).await {
                continue;
            }
            to_send.push((id, op));
        }
        if to_send.is_empty() {
            continue;
        }
        let args = SlashBatchArgs {
            slashes: to_send
                .iter()
                .map(|(id, op)| hook_args(*id, op.owner, op.ledger, op.amount))
                .collect(),
            destination,
        };
        match rt.staking_slash_batch(staking, args).await {
            Ok(Ok(results)) => {
                for ((id, _), r) in to_send.iter().zip(results) {
                    if r.is_ok() {
                        clear_unknown(*id);
                        let _ = log(rt, Event::OpSettled { op_id: *id });
                    }
                }
            }
            // Refused as a whole (e.g. restaking not configured in staking): retried later.
            Ok(Err(_)) => {}
            Err(_) => {
                for (id, _) in &to_send {
                    mark_unknown(*id);
                }
            }
        }
        drop(guards);
    }
}
