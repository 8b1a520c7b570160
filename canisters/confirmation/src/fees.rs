//! The fee books: every submitter's prepaid credit, what the hub charged and what it forwarded
//! to restaking.
//!
//! The books are a heap structure rebuilt on upgrade by replaying the fee event log (stable
//! memory, see `storage.rs`) through [`FeeBook::apply`], the same function that applies each
//! event live: an event is appended only once `apply` accepted it, so the two never drift.
//! Events are CBOR with serde field names (renaming a field would need an alias).

use std::collections::{BTreeMap, BTreeSet};

use candid::Principal;
use serde::{Deserialize, Serialize};

use crate::types::{FeeAccount, FeeConfig, FeeStatus, ForwardView};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeeEvent {
    /// The hub pulled `amount` from `submitter` in ledger block `block`.
    Credited {
        submitter: Principal,
        amount: u128,
        block: u128,
    },
    /// `records` new records of `submitter` were charged `amount`.
    Charged {
        submitter: Principal,
        records: u64,
        amount: u128,
    },
    /// A forward of `amount` to restaking starts; `ledger_fee` is paid twice (approval and
    /// transfer). `created_at_time` deduplicates the approval's retries.
    ForwardStarted {
        id: u64,
        amount: u128,
        ledger_fee: u128,
        created_at_time: u64,
    },
    /// The ledger holds the approval for restaking (amount + fee).
    ForwardApproved { id: u64 },
    /// Restaking pulled the tokens (it said so, or the allowance is spent).
    ForwardDone { id: u64, note: String },
    /// The ledger refused the approval for good: nothing moved, the amount is collected again.
    ForwardAbandoned { id: u64, reason: String },
    /// `submitter` withdraws `amount` of its credit (debited now) to `to`; the transfer of
    /// `amount - ledger_fee` carries `created_at_time` and the withdrawal's memo, so its
    /// retries are one transaction to the ledger. `request_time` is the caller's key.
    WithdrawalStarted {
        id: u64,
        submitter: Principal,
        request_time: u64,
        amount: u128,
        ledger_fee: u128,
        to: Principal,
        to_subaccount: Option<Vec<u8>>,
        created_at_time: u64,
    },
    /// An attempt's outcome is unknown: from now on a refusal proves nothing.
    WithdrawalUncertain { id: u64 },
    /// The ledger executed the transfer in `block`.
    WithdrawalDone { id: u64, block: u128 },
    /// The ledger refused the transfer for good, and no earlier attempt may have executed:
    /// the amount goes back to the credit.
    WithdrawalRefused { id: u64, reason: String },
    /// The ledger answered `TooOld` and its ICRC-3 history holds no block of the transfer: it
    /// never executed and, its `created_at_time` being refused, never can. The amount goes
    /// back to the credit, also after an attempt whose outcome was unknown.
    WithdrawalNeverExecuted { id: u64 },
}

/// A credit withdrawal as the books keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub id: u64,
    pub submitter: Principal,
    pub request_time: u64,
    pub amount: u128,
    pub ledger_fee: u128,
    pub to: Principal,
    pub to_subaccount: Option<Vec<u8>>,
    pub created_at_time: u64,
    pub uncertain: bool,
    pub outcome: Option<Result<u128, String>>,
    /// Heap only: the last failed attempt since the last upgrade.
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub credit: u128,
    pub deposited: u128,
    pub charged: u128,
    pub records: u64,
    pub withdrawn: u128,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    pub id: u64,
    pub amount: u128,
    pub ledger_fee: u128,
    pub created_at_time: u64,
    pub approved: bool,
    /// Heap only: failed attempts and the last error since the last upgrade.
    pub attempts: u32,
    pub last_error: Option<String>,
}

impl Forward {
    /// What the approval allows restaking to pull: the amount plus the transfer's fee.
    pub fn allowance(&self) -> u128 {
        self.amount.saturating_add(self.ledger_fee)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeeBook {
    accounts: BTreeMap<Principal, Account>,
    credited_blocks: BTreeSet<u128>,
    credits: u128,
    collected: u128,
    forwarded: u128,
    forward_ledger_fees: u128,
    forward: Option<Forward>,
    next_forward_id: u64,
    withdrawals: BTreeMap<u64, Withdrawal>,
    /// (submitter, request time) -> withdrawal id: a repeated request is the same withdrawal.
    withdrawal_keys: BTreeMap<(Principal, u64), u64>,
    pending_withdrawals: BTreeSet<u64>,
    withdrawn: u128,
    events: u64,
}

fn add(a: u128, b: u128) -> Result<u128, String> {
    a.checked_add(b)
        .ok_or_else(|| "BUG: fee amount overflow".to_string())
}

impl FeeBook {
    /// Applies one event, live or on replay. Returns an error (and changes nothing) when the
    /// event does not fit the books.
    pub fn apply(&mut self, event: &FeeEvent) -> Result<(), String> {
        match event {
            FeeEvent::Credited {
                submitter,
                amount,
                block,
            } => {
                if self.credited_blocks.contains(block) {
                    return Err(format!("block {block} is already credited"));
                }
                let a = self.accounts.entry(*submitter).or_default();
                let credit = add(a.credit, *amount)?;
                let deposited = add(a.deposited, *amount)?;
                let credits = add(self.credits, *amount)?;
                a.credit = credit;
                a.deposited = deposited;
                self.credits = credits;
                self.credited_blocks.insert(*block);
            }
            FeeEvent::Charged {
                submitter,
                records,
                amount,
            } => {
                let a = self.accounts.entry(*submitter).or_default();
                if a.credit < *amount {
                    return Err(format!(
                        "charge {amount} exceeds the credit {} of {submitter}",
                        a.credit
                    ));
                }
                a.credit -= amount;
                a.charged = add(a.charged, *amount)?;
                a.records = a.records.saturating_add(*records);
                self.credits -= amount;
                self.collected = add(self.collected, *amount)?;
            }
            FeeEvent::ForwardStarted {
                id,
                amount,
                ledger_fee,
                created_at_time,
            } => {
                if self.forward.is_some() || *id != self.next_forward_id {
                    return Err(format!("forward {id} cannot start now"));
                }
                let cost = add(*amount, ledger_fee.saturating_mul(2))?;
                if cost > self.collected || *amount == 0 {
                    return Err(format!(
                        "forward of {cost} exceeds collected {}",
                        self.collected
                    ));
                }
                self.collected -= cost;
                self.next_forward_id += 1;
                self.forward = Some(Forward {
                    id: *id,
                    amount: *amount,
                    ledger_fee: *ledger_fee,
                    created_at_time: *created_at_time,
                    approved: false,
                    attempts: 0,
                    last_error: None,
                });
            }
            FeeEvent::ForwardApproved { id } => {
                let f = self.forward_mut(*id)?;
                f.approved = true;
            }
            FeeEvent::ForwardDone { id, .. } => {
                let f = self.forward_mut(*id)?.clone();
                self.forwarded = add(self.forwarded, f.amount)?;
                self.forward_ledger_fees =
                    add(self.forward_ledger_fees, f.ledger_fee.saturating_mul(2))?;
                self.forward = None;
            }
            FeeEvent::ForwardAbandoned { id, .. } => {
                let f = self.forward_mut(*id)?.clone();
                if f.approved {
                    return Err(format!("forward {id} is approved: it cannot be abandoned"));
                }
                self.collected = add(
                    self.collected,
                    add(f.amount, f.ledger_fee.saturating_mul(2))?,
                )?;
                self.forward = None;
            }
            FeeEvent::WithdrawalStarted {
                id,
                submitter,
                request_time,
                amount,
                ledger_fee,
                to,
                to_subaccount,
                created_at_time,
            } => {
                if *id != self.withdrawals.len() as u64 {
                    return Err(format!("withdrawal {id} is out of order"));
                }
                if self
                    .withdrawal_keys
                    .contains_key(&(*submitter, *request_time))
                {
                    return Err(format!("withdrawal request {request_time} is known"));
                }
                if *amount <= *ledger_fee {
                    return Err(format!("withdrawal {amount} does not cover the fee"));
                }
                let a = self.accounts.entry(*submitter).or_default();
                if a.credit < *amount {
                    return Err(format!(
                        "withdrawal {amount} exceeds the credit {} of {submitter}",
                        a.credit
                    ));
                }
                let withdrawn = add(self.withdrawn, *amount)?;
                a.credit -= amount;
                a.withdrawn = add(a.withdrawn, *amount)?;
                self.credits -= amount;
                self.withdrawn = withdrawn;
                self.withdrawal_keys
                    .insert((*submitter, *request_time), *id);
                self.pending_withdrawals.insert(*id);
                self.withdrawals.insert(
                    *id,
                    Withdrawal {
                        id: *id,
                        submitter: *submitter,
                        request_time: *request_time,
                        amount: *amount,
                        ledger_fee: *ledger_fee,
                        to: *to,
                        to_subaccount: to_subaccount.clone(),
                        created_at_time: *created_at_time,
                        uncertain: false,
                        outcome: None,
                        last_error: None,
                    },
                );
            }
            FeeEvent::WithdrawalUncertain { id } => {
                self.pending_withdrawal_mut(*id)?.uncertain = true;
            }
            FeeEvent::WithdrawalDone { id, block } => {
                self.pending_withdrawal_mut(*id)?.outcome = Some(Ok(*block));
                self.pending_withdrawals.remove(id);
            }
            FeeEvent::WithdrawalRefused { id, reason } => {
                if self.pending_withdrawal_mut(*id)?.uncertain {
                    return Err(format!(
                        "withdrawal {id} may have executed: a refusal proves nothing"
                    ));
                }
                self.refund_withdrawal(*id, reason.clone())?;
            }
            FeeEvent::WithdrawalNeverExecuted { id } => {
                self.refund_withdrawal(
                    *id,
                    "TooOld, and not in the ledger's history: never executed".into(),
                )?;
            }
        }
        self.events += 1;
        Ok(())
    }

    /// Gives a pending withdrawal's amount back to the credit (it did not, and will not, move).
    fn refund_withdrawal(&mut self, id: u64, reason: String) -> Result<(), String> {
        let w = self.pending_withdrawal_mut(id)?;
        let (submitter, amount) = (w.submitter, w.amount);
        // Checked before anything changes, so a refusal leaves the books as they were.
        let account_credit = add(
            self.accounts.get(&submitter).map_or(0, |a| a.credit),
            amount,
        )?;
        let credits = add(self.credits, amount)?;
        if let Some(w) = self.withdrawals.get_mut(&id) {
            w.outcome = Some(Err(reason));
        }
        let a = self.accounts.entry(submitter).or_default();
        a.credit = account_credit;
        a.withdrawn = a.withdrawn.saturating_sub(amount);
        self.credits = credits;
        self.withdrawn = self.withdrawn.saturating_sub(amount);
        self.pending_withdrawals.remove(&id);
        Ok(())
    }

    fn pending_withdrawal_mut(&mut self, id: u64) -> Result<&mut Withdrawal, String> {
        match self.withdrawals.get_mut(&id) {
            Some(w) if w.outcome.is_none() => Ok(w),
            _ => Err(format!("withdrawal {id} is not pending")),
        }
    }

    pub fn withdrawal(&self, id: u64) -> Option<&Withdrawal> {
        self.withdrawals.get(&id)
    }

    /// The withdrawal a request `(submitter, request_time)` started, if any.
    pub fn withdrawal_of_request(&self, submitter: Principal, request_time: u64) -> Option<u64> {
        self.withdrawal_keys
            .get(&(submitter, request_time))
            .copied()
    }

    pub fn next_withdrawal_id(&self) -> u64 {
        self.withdrawals.len() as u64
    }

    pub fn pending_withdrawals(&self) -> Vec<u64> {
        self.pending_withdrawals.iter().copied().collect()
    }

    /// Notes a failed withdrawal attempt (heap only).
    pub fn note_withdrawal_error(&mut self, id: u64, error: String) {
        if let Some(w) = self.withdrawals.get_mut(&id) {
            w.last_error = Some(error);
        }
    }

    fn forward_mut(&mut self, id: u64) -> Result<&mut Forward, String> {
        match &mut self.forward {
            Some(f) if f.id == id => Ok(f),
            _ => Err(format!("forward {id} is not in progress")),
        }
    }

    pub fn credit(&self, submitter: &Principal) -> u128 {
        self.accounts.get(submitter).map_or(0, |a| a.credit)
    }

    pub fn credits(&self) -> u128 {
        self.credits
    }

    pub fn collected(&self) -> u128 {
        self.collected
    }

    pub fn next_forward_id(&self) -> u64 {
        self.next_forward_id
    }

    pub fn forward(&self) -> Option<&Forward> {
        self.forward.as_ref()
    }

    /// Notes a failed forward attempt (heap only).
    pub fn note_forward_error(&mut self, id: u64, error: String) {
        if let Ok(f) = self.forward_mut(id) {
            f.attempts = f.attempts.saturating_add(1);
            f.last_error = Some(error);
        }
    }

    pub fn account(&self, submitter: Principal, config: Option<&FeeConfig>) -> FeeAccount {
        let a = self.accounts.get(&submitter).cloned().unwrap_or_default();
        FeeAccount {
            submitter,
            ledger: config.map(|c| c.ledger),
            fee_per_record: config.map_or(0, |c| c.fee_per_record),
            credit: a.credit,
            deposited: a.deposited,
            charged: a.charged,
            records_charged: a.records,
            withdrawn: a.withdrawn,
        }
    }

    pub fn status(&self, config: Option<&FeeConfig>) -> FeeStatus {
        FeeStatus {
            config: config.cloned(),
            credits: self.credits,
            collected: self.collected,
            forwarded: self.forwarded,
            forward_ledger_fees: self.forward_ledger_fees,
            forward: self.forward.as_ref().map(|f| ForwardView {
                id: f.id,
                amount: f.amount,
                approved: f.approved,
                attempts: f.attempts,
                last_error: f.last_error.clone(),
            }),
            withdrawn: self.withdrawn,
            withdrawals_pending: self.pending_withdrawals.len() as u64,
            events: self.events,
        }
    }
}

pub fn encode_event(event: &FeeEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    ciborium::into_writer(event, &mut out)
        .unwrap_or_else(|e| panic!("BUG: cannot encode a fee event: {e}"));
    out
}

pub fn decode_event(bytes: &[u8]) -> FeeEvent {
    ciborium::from_reader(bytes).unwrap_or_else(|e| panic!("BUG: cannot decode a fee event: {e}"))
}
