//! Paying the hub's per-record fee.
//!
//! The hub charges each new record against the service's prepaid credit at the hub and
//! refuses a submission it cannot cover (`InsufficientCredit`). The service's owner funds
//! the service's own account on the fee ledger; the service keeps its hub credit topped up
//! to `credit_records` records' worth: it approves the hub for the amount plus the ledger fee
//! and calls the hub's `deposit_fees`, which pulls it. A top-up is journaled (stable cell)
//! with its `created_at_time` before any call, so a retry after an unknown outcome is the same
//! ledger transaction and the hub credits its block once. Records the hub refused for lack of
//! credit stay `Pending` with the reason in `last_error` and are resubmitted after the
//! top-up.

use candid::{CandidType, Nat, Principal};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use serde::Deserialize;
use stratros_confirmation::hub::{DepositFeesArgs, FeeError};

use crate::runtime::Runtime;
use crate::state::{mutate_state, read_state};
use crate::types::FeeStatus;

/// The memo of a top-up's approval.
pub const TOP_UP_MEMO: &[u8] = b"stratros-hub-top-up";

/// Default credit target, in records.
pub const DEFAULT_CREDIT_RECORDS: u64 = 1_000;

/// The fee state (one stable cell).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct FeeState {
    /// The credit to keep at the hub, in records (0: never top up).
    pub credit_records: u64,
    /// As the hub last reported them.
    pub ledger: Option<Principal>,
    pub fee_per_record: u128,
    /// The hub credit as last known (lowered locally by each accepted record).
    pub hub_credit: u128,
    /// Credited by the hub so far.
    pub topped_up: u128,
    pub top_up: Option<TopUp>,
    pub last_error: Option<String>,
    /// When the hub's fee account was last read (none: the fee is not known yet, so the
    /// service reads it before its first submission). Added after the first release: a cell
    /// without it decodes as none.
    pub fee_read_at_nanos: Option<u64>,
}

impl Default for FeeState {
    fn default() -> Self {
        FeeState {
            credit_records: DEFAULT_CREDIT_RECORDS,
            ledger: None,
            fee_per_record: 0,
            hub_credit: 0,
            topped_up: 0,
            top_up: None,
            last_error: None,
            fee_read_at_nanos: None,
        }
    }
}

/// A top-up under way: retried with the same `created_at_time` until it settles.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct TopUp {
    pub amount: u128,
    pub created_at_time: u64,
    pub approved: bool,
    pub attempts: u32,
}

impl FeeState {
    pub fn status(&self) -> FeeStatus {
        FeeStatus {
            ledger: self.ledger,
            fee_per_record: self.fee_per_record,
            hub_credit: self.hub_credit,
            credit_records: self.credit_records,
            topped_up: self.topped_up,
            top_up_in_progress: self.top_up.as_ref().map(|t| t.amount),
            last_error: self.last_error.clone(),
        }
    }

    /// Whether the hub's fee is not known yet (it is read before the first submission).
    pub fn fee_unknown(&self) -> bool {
        self.fee_read_at_nanos.is_none()
    }

    /// Whether the local estimate says the credit is below half its target.
    pub fn wants_top_up(&self) -> bool {
        self.top_up.is_some()
            || (self.fee_per_record > 0
                && self.credit_records > 0
                && self.hub_credit
                    < self
                        .fee_per_record
                        .saturating_mul(u128::from(self.credit_records))
                        / 2)
    }

    /// The hub accepted `new` records: their fees left the credit.
    pub fn note_charged(&mut self, new: u64) {
        self.hub_credit = self
            .hub_credit
            .saturating_sub(self.fee_per_record.saturating_mul(u128::from(new)));
    }
}

thread_local! {
    /// One top-up at a time (heap: after an upgrade the journaled top-up resumes).
    static TOPPING_UP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

struct TopUpGuard;

impl Drop for TopUpGuard {
    fn drop(&mut self) {
        TOPPING_UP.set(false);
    }
}

fn set_error(e: String) -> bool {
    mutate_state(|s| s.mutate_fees(|f| f.last_error = Some(e)));
    false
}

/// Makes sure the hub credit covers `needed` (and the configured target). Returns whether
/// the credit now covers `needed`.
pub async fn top_up<R: Runtime>(rt: &R, needed: u128) -> bool {
    if TOPPING_UP.replace(true) {
        return false;
    }
    let _guard = TopUpGuard;
    let hub = read_state(|s| s.meta().hub);
    let account = match rt.hub_fee_account(hub).await {
        Ok(a) => a,
        Err(e) => return set_error(format!("cannot read the fee account at the hub: {e}")),
    };
    let now = rt.time();
    let (target, pending) = mutate_state(|s| {
        s.mutate_fees(|f| {
            f.fee_read_at_nanos = Some(now);
            f.ledger = account.ledger;
            f.fee_per_record = account.fee_per_record;
            f.hub_credit = account.credit;
            let target = account
                .fee_per_record
                .saturating_mul(u128::from(f.credit_records))
                .max(needed);
            (target, f.top_up.clone())
        })
    });
    let Some(ledger) = account.ledger else {
        return true;
    };
    if account.fee_per_record == 0 {
        return true;
    }
    let top_up = match pending {
        Some(t) => t,
        None => {
            if account.credit >= needed && account.credit.saturating_mul(2) >= target {
                mutate_state(|s| s.mutate_fees(|f| f.last_error = None));
                return true;
            }
            let t = TopUp {
                amount: target - account.credit.min(target),
                created_at_time: rt.time(),
                approved: false,
                attempts: 0,
            };
            if t.amount == 0 {
                return true;
            }
            mutate_state(|s| s.mutate_fees(|f| f.top_up = Some(t.clone())));
            t
        }
    };
    let drop_top_up = |e: String| {
        mutate_state(|s| {
            s.mutate_fees(|f| {
                f.top_up = None;
                f.last_error = Some(e);
            })
        });
        false
    };
    let retry_later = |e: String| {
        mutate_state(|s| {
            s.mutate_fees(|f| {
                if let Some(t) = &mut f.top_up {
                    t.attempts = t.attempts.saturating_add(1);
                }
                f.last_error = Some(e);
            })
        });
        false
    };
    if !top_up.approved {
        let fee = match rt.ledger_fee(ledger).await {
            Ok(fee) => fee,
            Err(e) => return retry_later(format!("cannot read the ledger fee: {e}")),
        };
        let args = ApproveArgs {
            from_subaccount: None,
            spender: Account::from(hub),
            amount: Nat::from(top_up.amount.saturating_add(fee)),
            expected_allowance: None,
            expires_at: None,
            fee: None,
            memo: Some(TOP_UP_MEMO.to_vec().into()),
            created_at_time: Some(top_up.created_at_time),
        };
        match rt.ledger_approve(ledger, args).await {
            Ok(Ok(_)) | Ok(Err(ApproveError::Duplicate { .. })) => mutate_state(|s| {
                s.mutate_fees(|f| {
                    if let Some(t) = &mut f.top_up {
                        t.approved = true;
                    }
                })
            }),
            Ok(Err(ApproveError::InsufficientFunds { balance })) => {
                return drop_top_up(format!(
                    "the service's account on ledger {ledger} holds {balance}: the owner must \
                     fund it with at least {} (fee credit for the hub plus ledger fees)",
                    top_up.amount.saturating_add(fee.saturating_mul(2))
                ));
            }
            Ok(Err(
                e @ (ApproveError::TemporarilyUnavailable | ApproveError::GenericError { .. }),
            )) => return retry_later(format!("the ledger refused the approval for now: {e:?}")),
            Ok(Err(e)) => return drop_top_up(format!("the ledger refused the approval: {e:?}")),
            Err(e) => return retry_later(format!("approval outcome unknown, retried: {e}")),
        }
    }
    let args = DepositFeesArgs {
        amount: top_up.amount,
        created_at_time: top_up.created_at_time,
    };
    match rt.hub_deposit_fees(hub, args).await {
        Ok(Ok(deposit)) => {
            mutate_state(|s| {
                s.mutate_fees(|f| {
                    f.top_up = None;
                    f.topped_up = f.topped_up.saturating_add(deposit.credited);
                    f.hub_credit = deposit.credit;
                    f.last_error = None;
                })
            });
            deposit.credit >= needed
        }
        Ok(Err(FeeError::LedgerRefused { message })) => drop_top_up(format!(
            "the hub could not pull {} from the service's ledger account (the owner must fund \
             it): {message}",
            top_up.amount
        )),
        Ok(Err(FeeError::FeesDisabled)) => drop_top_up("the hub charges no fees".into()),
        Ok(Err(e)) => retry_later(format!("the hub did not take the deposit yet: {e:?}")),
        Err(e) => retry_later(format!("deposit outcome unknown, retried: {e}")),
    }
}
