//! The fee flows that call other canisters: submitters' deposits (`deposit_fees`) and the
//! forwarding of collected fees to restaking. Every step is journaled in the fee event log
//! before or after its call, never derived from a call's absence of answer.
//!
//! **Deposits.** The hub pulls with `icrc2_transfer_from` carrying the submitter's
//! `created_at_time` and a fixed memo, so a retry after an unknown outcome is the same
//! transaction to the ledger, which answers `Duplicate { duplicate_of }`; credits are keyed by
//! ledger block, so a block is credited once however often it is reported.
//!
//! **Forwarding** (one forward at a time): `ForwardStarted` takes `amount + 2 × fee` out of
//! what is collected; the hub approves restaking for exactly `amount + fee` (deduplicated by
//! `created_at_time` and memo = forward id) and calls `deposit_rewards`, which pulls the
//! tokens. An ICRC-2 approval is a level, not an increment, and is spent by one pull of
//! `amount`: however often `deposit_rewards` is retried, at most one pull succeeds. When its
//! answer is an error or unknown, the hub reads the allowance: spent means delivered
//! (`ForwardDone`), intact means not delivered (retried later). The deposit also carries the
//! forward's `created_at_time` and memo: restaking journals it under that key and its own
//! `icrc2_transfer_from` carries them too, so a deposit restaking left pending (its ledger
//! call's outcome unknown) and the hub's retry of it are one deposit, credited once.

use candid::{Nat, Principal};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::allowance::AllowanceArgs;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use stratros_confirmation::Blob;
use stratros_ledger_history::{Search, Wanted};

use crate::fees::FeeEvent;
use crate::runtime::{DepositRewardsArgs, LedgerHistory, Runtime};
use crate::state::{mutate_state, read_state};
use crate::types::{
    CreditWithdrawal, DepositFeesArgs, FeeDeposit, FeeError, WithdrawCreditArgs, WithdrawalState,
};

/// The memo of every fee deposit (the ledger deduplicates on the whole transaction).
pub const DEPOSIT_MEMO: &[u8] = b"stratros-fee-deposit";

/// The memo of forward `id`'s approval.
pub fn forward_memo(id: u64) -> Vec<u8> {
    let mut m = b"stratros-fee-forward".to_vec();
    m.extend_from_slice(&id.to_be_bytes());
    m
}

fn nat_u128(n: &Nat) -> u128 {
    u128::try_from(&n.0).unwrap_or(u128::MAX)
}

/// Releases the caller's deposit slot on every path, traps included.
struct DepositGuard(Principal);

impl Drop for DepositGuard {
    fn drop(&mut self) {
        mutate_state(|s| s.end_deposit(&self.0));
    }
}

/// Pulls `args.amount` from the caller (a submitter) and credits it.
pub async fn deposit_fees<R: Runtime>(
    rt: &R,
    args: DepositFeesArgs,
) -> Result<FeeDeposit, FeeError> {
    let caller = rt.caller();
    let ledger = read_state(|s| s.fee_config().map(|c| c.ledger)).ok_or(FeeError::FeesDisabled)?;
    if !read_state(|s| s.is_submitter(&caller)) {
        return Err(FeeError::Unauthorized { caller });
    }
    if args.amount == 0 {
        return Err(FeeError::ZeroAmount);
    }
    if !mutate_state(|s| s.start_deposit(caller)) {
        return Err(FeeError::Busy);
    }
    let _guard = DepositGuard(caller);
    let transfer = TransferFromArgs {
        spender_subaccount: None,
        from: Account::from(caller),
        to: Account::from(rt.canister_id()),
        amount: Nat::from(args.amount),
        fee: None,
        memo: Some(DEPOSIT_MEMO.to_vec().into()),
        created_at_time: Some(args.created_at_time),
    };
    let (from, to) = (transfer.from, transfer.to);
    let mut reply = rt.transfer_from(ledger, transfer).await;
    if matches!(reply, Ok(Err(TransferFromError::TooOld))) {
        // A retry past the ledger's deduplication window: its history tells whether an
        // earlier attempt pulled the tokens (credited now, once per block as always).
        let wanted = Wanted {
            key: ("deposit", deposit_key(caller, args.created_at_time)),
            from,
            to: Some(to),
            amount: args.amount,
            memo: DEPOSIT_MEMO.to_vec(),
            created_at_time: args.created_at_time,
        };
        reply = match stratros_ledger_history::search(&LedgerHistory(rt), ledger, &wanted).await {
            Search::Found(block) => Ok(Err(TransferFromError::Duplicate {
                duplicate_of: Nat::from(block),
            })),
            // Never executed, and never can: the ledger's `TooOld` stands.
            Search::NotFound => reply,
            Search::Continue { next } => Err(format!(
                "TooOld: searching the ledger's history, blocks below {next} to go; retry"
            )),
            Search::Undecided(message) => Err(message),
        };
    }
    let block = match reply {
        Ok(Ok(block)) => nat_u128(&block),
        Ok(Err(TransferFromError::Duplicate { duplicate_of })) => nat_u128(&duplicate_of),
        Ok(Err(e)) => {
            return Err(FeeError::LedgerRefused {
                message: format!("{e:?}"),
            });
        }
        Err(message) => return Err(FeeError::LedgerUnreachable { message }),
    };
    mutate_state(|s| {
        let credited = match s.record_fee_event(FeeEvent::Credited {
            submitter: caller,
            amount: args.amount,
            block,
        }) {
            Ok(()) => args.amount,
            // Credited before: this was a retry.
            Err(_) => 0,
        };
        Ok(FeeDeposit {
            block_index: block,
            credited,
            credit: s.fees().credit(&caller),
        })
    })
}

/// The history-scan key of a deposit: a submitter's deposit is identified by its
/// `created_at_time` (the same one is the same ledger transaction).
fn deposit_key(submitter: Principal, created_at_time: u64) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(submitter.as_slice())
        .chain_update(created_at_time.to_be_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The memo of withdrawal `id`'s transfer.
pub fn withdrawal_memo(id: u64) -> Vec<u8> {
    let mut m = b"stratros-fee-withdraw".to_vec();
    m.extend_from_slice(&id.to_be_bytes());
    m
}

/// Withdrawal `id` as the caller sees it.
pub fn withdrawal(id: u64) -> Option<CreditWithdrawal> {
    read_state(|s| {
        let w = s.fees().withdrawal(id)?;
        Some(CreditWithdrawal {
            id,
            submitter: w.submitter,
            amount: w.amount,
            ledger_fee: w.ledger_fee,
            to: w.to,
            to_subaccount: w.to_subaccount.clone().map(Blob),
            state: match &w.outcome {
                None => WithdrawalState::Pending {
                    last_error: w.last_error.clone(),
                },
                Some(Ok(block)) => WithdrawalState::Done {
                    block_index: *block,
                },
                Some(Err(reason)) => WithdrawalState::Refused {
                    reason: reason.clone(),
                },
            },
            credit: s.fees().credit(&w.submitter),
        })
    })
}

fn unknown_withdrawal(id: u64) -> FeeError {
    FeeError::LedgerUnreachable {
        message: format!("BUG: withdrawal {id} is not in the books"),
    }
}

/// Takes `args.amount` out of the caller's credit and sends it, less the ledger fee, to
/// `args.to`. The debit is journaled before the transfer; a request repeated with the same
/// `created_at_time` is the same withdrawal (retried if still pending, never debited twice).
pub async fn withdraw_credit<R: Runtime>(
    rt: &R,
    args: WithdrawCreditArgs,
) -> Result<CreditWithdrawal, FeeError> {
    let caller = rt.caller();
    let ledger = read_state(|s| s.fee_config().map(|c| c.ledger)).ok_or(FeeError::FeesDisabled)?;
    if let Some(id) = read_state(|s| s.fees().withdrawal_of_request(caller, args.created_at_time)) {
        return complete_withdrawal(rt, ledger, id).await;
    }
    if args.amount == 0 {
        return Err(FeeError::ZeroAmount);
    }
    if args
        .to_subaccount
        .as_ref()
        .is_some_and(|sub| sub.0.len() != 32)
    {
        return Err(FeeError::InvalidSubaccount);
    }
    let available = read_state(|s| s.fees().credit(&caller));
    if available < args.amount {
        return Err(FeeError::InsufficientCredit {
            needed: args.amount,
            available,
        });
    }
    if !mutate_state(|s| s.start_deposit(caller)) {
        return Err(FeeError::Busy);
    }
    let _guard = DepositGuard(caller);
    let ledger_fee = rt
        .ledger_fee(ledger)
        .await
        .map_err(|message| FeeError::LedgerUnreachable { message })?;
    if args.amount <= ledger_fee {
        return Err(FeeError::AmountTooSmall { ledger_fee });
    }
    let id = mutate_state(|s| {
        let available = s.fees().credit(&caller);
        if available < args.amount {
            return Err(FeeError::InsufficientCredit {
                needed: args.amount,
                available,
            });
        }
        let id = s.fees().next_withdrawal_id();
        s.record_fee_event(FeeEvent::WithdrawalStarted {
            id,
            submitter: caller,
            request_time: args.created_at_time,
            amount: args.amount,
            ledger_fee,
            to: args.to.unwrap_or(caller),
            to_subaccount: args.to_subaccount.map(|b| b.0),
            created_at_time: rt.time(),
        })
        .map_err(|message| FeeError::LedgerRefused { message })?;
        Ok(id)
    })?;
    complete_withdrawal(rt, ledger, id).await
}

/// Releases a withdrawal's attempt slot on every path.
struct WithdrawalAttempt(u64);

impl Drop for WithdrawalAttempt {
    fn drop(&mut self) {
        mutate_state(|s| s.end_withdrawal_attempt(self.0));
    }
}

/// Sends withdrawal `id`'s transfer if it is still pending, and records the ledger's answer.
async fn complete_withdrawal<R: Runtime>(
    rt: &R,
    ledger: Principal,
    id: u64,
) -> Result<CreditWithdrawal, FeeError> {
    let w =
        read_state(|s| s.fees().withdrawal(id).cloned()).ok_or_else(|| unknown_withdrawal(id))?;
    if w.outcome.is_some() || !mutate_state(|s| s.start_withdrawal_attempt(id)) {
        return withdrawal(id).ok_or_else(|| unknown_withdrawal(id));
    }
    let _attempt = WithdrawalAttempt(id);
    let transfer = TransferArg {
        from_subaccount: None,
        to: Account {
            owner: w.to,
            subaccount: w.to_subaccount.as_deref().and_then(|s| s.try_into().ok()),
        },
        fee: Some(Nat::from(w.ledger_fee)),
        created_at_time: Some(w.created_at_time),
        memo: Some(withdrawal_memo(id).into()),
        amount: Nat::from(w.amount - w.ledger_fee),
    };
    let to = transfer.to;
    let mut reply = rt.transfer(ledger, transfer).await;
    if matches!(reply, Ok(Err(TransferError::TooOld))) {
        // Past the ledger's deduplication window: its history decides.
        let wanted = Wanted {
            key: ("withdrawal", id),
            from: Account::from(rt.canister_id()),
            to: Some(to),
            amount: w.amount - w.ledger_fee,
            memo: withdrawal_memo(id),
            created_at_time: w.created_at_time,
        };
        match stratros_ledger_history::search(&LedgerHistory(rt), ledger, &wanted).await {
            Search::Found(block) => {
                reply = Ok(Err(TransferError::Duplicate {
                    duplicate_of: Nat::from(block),
                }))
            }
            Search::NotFound => {
                mutate_state(|s| s.record_fee_event(FeeEvent::WithdrawalNeverExecuted { id }))
                    .unwrap_or_else(|e| panic!("BUG: {e}"));
                return withdrawal(id).ok_or_else(|| unknown_withdrawal(id));
            }
            Search::Continue { next } => {
                mutate_state(|s| {
                    s.note_withdrawal_error(
                        id,
                        format!(
                            "TooOld: searching the ledger's history, blocks below {next} to go"
                        ),
                    )
                });
                return withdrawal(id).ok_or_else(|| unknown_withdrawal(id));
            }
            Search::Undecided(message) => {
                mutate_state(|s| s.note_withdrawal_error(id, message));
                return withdrawal(id).ok_or_else(|| unknown_withdrawal(id));
            }
        }
    }
    let event = match reply {
        Ok(Ok(block)) => Some(FeeEvent::WithdrawalDone {
            id,
            block: nat_u128(&block),
        }),
        Ok(Err(TransferError::Duplicate { duplicate_of })) => Some(FeeEvent::WithdrawalDone {
            id,
            block: nat_u128(&duplicate_of),
        }),
        // Not executed now; an earlier attempt may have been. Retried, never refunded. (A
        // `TooOld` got here only if the history search above found the block.)
        Ok(Err(
            e @ (TransferError::TemporarilyUnavailable
            | TransferError::GenericError { .. }
            | TransferError::TooOld
            | TransferError::CreatedInFuture { .. }),
        )) => {
            mutate_state(|s| s.note_withdrawal_error(id, format!("{e:?}")));
            None
        }
        Ok(Err(e)) if !w.uncertain => Some(FeeEvent::WithdrawalRefused {
            id,
            reason: format!("{e:?}"),
        }),
        Ok(Err(e)) => {
            mutate_state(|s| {
                s.note_withdrawal_error(
                    id,
                    format!("{e:?} after an attempt whose outcome is unknown"),
                )
            });
            None
        }
        Err(message) => {
            mutate_state(|s| {
                s.note_withdrawal_error(id, format!("outcome unknown: {message}"));
                if !w.uncertain {
                    s.record_fee_event(FeeEvent::WithdrawalUncertain { id })
                        .unwrap_or_else(|e| panic!("BUG: {e}"));
                }
            });
            None
        }
    };
    if let Some(event) = event {
        mutate_state(|s| s.record_fee_event(event)).unwrap_or_else(|e| panic!("BUG: {e}"));
    }
    withdrawal(id).ok_or_else(|| unknown_withdrawal(id))
}

/// Retries every pending withdrawal (from the fee timer).
pub async fn retry_withdrawals<R: Runtime>(rt: &R) {
    let Some(ledger) = read_state(|s| s.fee_config().map(|c| c.ledger)) else {
        return;
    };
    for id in read_state(|s| s.fees().pending_withdrawals()) {
        let _ = complete_withdrawal(rt, ledger, id).await;
    }
}

/// Releases the forwarding flag on every path.
struct ForwardGuard;

impl Drop for ForwardGuard {
    fn drop(&mut self) {
        mutate_state(|s| s.end_forwarding());
    }
}

/// One forwarding step (from the timer, or anyone through `forward_fees`): starts a forward
/// when enough is collected, then approves and deposits it. Returns what happened, for logs
/// and tests.
pub async fn forward_fees<R: Runtime>(rt: &R) -> String {
    let Some(config) = read_state(|s| s.fee_config().cloned()) else {
        return "fees are not configured".into();
    };
    let Some(restaking) = config.restaking else {
        return "no restaking canister is configured: fees stay at the hub".into();
    };
    if !mutate_state(|s| s.start_forwarding()) {
        return "a forward is already running".into();
    }
    let _guard = ForwardGuard;
    let ledger = config.ledger;

    if read_state(|s| s.fees().forward().is_none()) {
        let collected = read_state(|s| s.fees().collected());
        if collected == 0 || collected < config.min_forward {
            return format!("collected {collected} is below the forwarding minimum");
        }
        let fee = match rt.ledger_fee(ledger).await {
            Ok(fee) => fee,
            Err(e) => return format!("cannot read the ledger fee: {e}"),
        };
        let started = mutate_state(|s| {
            let collected = s.fees().collected();
            let cost = fee.saturating_mul(2);
            if collected <= cost {
                return Err(format!(
                    "collected {collected} does not cover the fees {cost}"
                ));
            }
            s.record_fee_event(FeeEvent::ForwardStarted {
                id: s.fees().next_forward_id(),
                amount: collected - cost,
                ledger_fee: fee,
                created_at_time: rt.time(),
            })
        });
        if let Err(e) = started {
            return e;
        }
    }
    let Some(forward) = read_state(|s| s.fees().forward().cloned()) else {
        return "BUG: no forward after starting one".into();
    };
    let id = forward.id;
    let fail = |e: String| {
        mutate_state(|s| s.note_forward_error(id, e.clone()));
        e
    };

    if !forward.approved {
        let approve = ApproveArgs {
            from_subaccount: None,
            spender: Account::from(restaking),
            amount: Nat::from(forward.allowance()),
            expected_allowance: None,
            expires_at: None,
            fee: Some(Nat::from(forward.ledger_fee)),
            memo: Some(forward_memo(id).into()),
            created_at_time: Some(forward.created_at_time),
        };
        match rt.approve(ledger, approve).await {
            Ok(Ok(_)) | Ok(Err(ApproveError::Duplicate { .. })) => {
                mutate_state(|s| s.record_fee_event(FeeEvent::ForwardApproved { id }))
                    .unwrap_or_else(|e| panic!("BUG: {e}"));
            }
            Ok(Err(
                e @ (ApproveError::TemporarilyUnavailable | ApproveError::GenericError { .. }),
            )) => return fail(format!("the ledger refused the approval for now: {e:?}")),
            Ok(Err(e)) => {
                // Refused for good (fee changed, too old, ...): nothing moved.
                let reason = format!("the ledger refused the approval: {e:?}");
                mutate_state(|s| {
                    s.record_fee_event(FeeEvent::ForwardAbandoned {
                        id,
                        reason: reason.clone(),
                    })
                })
                .unwrap_or_else(|e| panic!("BUG: {e}"));
                return reason;
            }
            Err(e) => return fail(format!("approval outcome unknown, retried: {e}")),
        }
    }

    // Restaking refuses a deposit into an AVS without stake (before pulling anything); asking
    // first saves the approval's fee when there is none.
    match rt.avs_allocated(restaking, &config.avs).await {
        Ok(Some(allocated)) if allocated > 0 => {}
        Ok(Some(_)) => return fail(format!("AVS {} has no allocated stake yet", config.avs)),
        Ok(None) => return fail(format!("restaking has no AVS {}", config.avs)),
        Err(e) => return fail(format!("cannot read the AVS: {e}")),
    }
    let deposit = DepositRewardsArgs {
        avs: config.avs.clone(),
        token: ledger,
        amount: Nat::from(forward.amount),
        period_seconds: None,
        created_at_time: Some(forward.created_at_time),
        memo: Some(forward_memo(id).into()),
    };
    let answer = match rt.deposit_rewards(restaking, deposit).await {
        Ok(Ok(())) => {
            mutate_state(|s| {
                s.record_fee_event(FeeEvent::ForwardDone {
                    id,
                    note: "deposited".into(),
                })
            })
            .unwrap_or_else(|e| panic!("BUG: {e}"));
            return format!("forwarded {}", forward.amount);
        }
        Ok(Err(e)) => format!("restaking refused: {e}"),
        Err(e) => format!("deposit outcome unknown: {e}"),
    };
    // Reconcile: did restaking pull the tokens?
    let allowance = rt
        .allowance(
            ledger,
            AllowanceArgs {
                account: Account::from(rt.canister_id()),
                spender: Account::from(restaking),
            },
        )
        .await;
    match allowance {
        Ok(left) if left < forward.allowance() => {
            mutate_state(|s| {
                s.record_fee_event(FeeEvent::ForwardDone {
                    id,
                    note: format!("allowance spent ({left} left) after: {answer}"),
                })
            })
            .unwrap_or_else(|e| panic!("BUG: {e}"));
            format!("forwarded {} (reconciled)", forward.amount)
        }
        Ok(_) => fail(format!("{answer}; not delivered, retried")),
        Err(e) => fail(format!(
            "{answer}; cannot read the allowance ({e}), retried"
        )),
    }
}
