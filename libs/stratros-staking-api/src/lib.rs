//! Public Candid types of the Stratros staking canister (`candid/staking.did`).
//!
//! Amounts are `Nat` on the wire. Inside the canister they are `u128` (every ICRC ledger the
//! IC runs, ckETH included, keeps balances below 2^128); an amount that does not fit is the
//! typed error `AmountTooLarge`.

use candid::{CandidType, Deserialize, Nat, Principal};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::TransferError;
use icrc_ledger_types::icrc2::transfer_from::TransferFromError;
use serde_bytes::ByteBuf;

/// The longest time lock: 2 years (730 days), as NNS dissolve delays since 2026.
pub const MAX_LOCK_SECONDS: u64 = 730 * 24 * 3600;
/// Reward weight of an unlocked position, in basis points of its staked amount.
pub const BASE_WEIGHT_BPS: u64 = 10_000;
/// Extra weight of a 2-year lock; shorter locks get a linear share of it.
pub const MAX_LOCK_BONUS_BPS: u64 = 10_000;
/// Default unbonding period: 7 days.
pub const DEFAULT_UNBONDING_SECONDS: u64 = 7 * 24 * 3600;
/// Default reward streaming period: 30 days.
pub const DEFAULT_REWARD_PERIOD_SECONDS: u64 = 30 * 24 * 3600;

/// Reward weight, in basis points, of a position locked for `lock_seconds` from now:
/// `10_000 + 10_000 * lock_seconds / MAX_LOCK_SECONDS` (floor), i.e. 1x unlocked, 1.5x for
/// one year, 2x for two years.
pub fn lock_weight_bps(lock_seconds: u64) -> u64 {
    let lock = u128::from(lock_seconds.min(MAX_LOCK_SECONDS));
    let bonus = u128::from(MAX_LOCK_BONUS_BPS) * lock / u128::from(MAX_LOCK_SECONDS);
    BASE_WEIGHT_BPS + bonus as u64
}

/// Install and upgrade argument.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Init(InitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InitArgs {
    /// The restaking canister: the only caller of the lock / unlock / slash hooks.
    pub restaking: Option<Principal>,
    /// Default 7 days.
    pub unbonding_seconds: Option<u64>,
    /// Default 30 days: each funding is streamed (with what is left) over this period.
    pub reward_period_seconds: Option<u64>,
    /// Where slashed tokens go; default burn.
    pub slash_destination: Option<SlashDestination>,
    /// Assets registered at install; fee, decimals and minting account are read from each
    /// ledger by a timer right after install.
    pub assets: Vec<AssetArg>,
    /// How often the reconciliation timer runs; default 60 s.
    pub reconcile_interval_seconds: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UpgradeArgs {
    pub restaking: Option<Principal>,
    pub unbonding_seconds: Option<u64>,
    pub reward_period_seconds: Option<u64>,
    pub slash_destination: Option<SlashDestination>,
    pub reconcile_interval_seconds: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum SlashDestination {
    /// Transfer to the ledger's minting account.
    Burn,
    /// Transfer to this account (minus the ledger fee).
    Account(Account),
}

/// An ICRC-2 ledger to accept, with its minimum stake.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AssetArg {
    pub ledger: Principal,
    pub min_stake: Nat,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StakeArgs {
    pub ledger: Principal,
    pub amount: Nat,
    /// Time lock from now (at most 2 years); extends, never shortens, an existing lock.
    pub lock_seconds: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NotifyDepositArgs {
    pub ledger: Principal,
    pub lock_seconds: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UnstakeArgs {
    pub ledger: Principal,
    pub amount: Nat,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FundRewardsArgs {
    pub ledger: Principal,
    pub amount: Nat,
}

/// A restaking hook call. `op_id` makes it idempotent: the same id with the same arguments
/// returns the first outcome; with other arguments it is `OperationConflict`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookArgs {
    pub op_id: u64,
    pub owner: Principal,
    pub ledger: Principal,
    pub amount: Nat,
}

/// Most slashes in one `restaking_slash_batch` call (keeps the call far below the
/// instruction and message-size limits: each slash is ~0.1 M instructions and ~80 bytes).
pub const MAX_SLASH_BATCH: usize = 500;

/// `restaking_slash_batch`: many owners in one call, each slash idempotent per its own op id.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SlashBatchArgs {
    pub slashes: Vec<HookArgs>,
    /// Where these slashed tokens go; `None`: the destination configured in staking.
    pub destination: Option<SlashDestination>,
}

#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKindView {
    Lock,
    Unlock,
    Slash,
}

/// A hook operation staking applied (`get_hook(op_id)`): lets restaking reconcile an op whose
/// call had an unknown outcome without calling the hook again.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookView {
    pub op_id: u64,
    pub kind: HookKindView,
    pub owner: Principal,
    pub ledger: Principal,
    pub amount: Nat,
    /// Event log index of the operation.
    pub event_index: u64,
    /// Slashes: where the tokens go (resolved when the slash was applied).
    pub destination: Option<SlashDestination>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookReceipt {
    pub op_id: u64,
    /// The owner's stake locked by restaking after the operation.
    pub locked: Nat,
    pub staked: Nat,
    /// Event log index of the operation.
    pub event_index: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UnbondingView {
    pub id: u64,
    pub ledger: Principal,
    pub amount: Nat,
    /// When it can be withdrawn (ns since the epoch).
    pub ready_at: u64,
    pub seconds_left: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PositionView {
    pub owner: Principal,
    pub ledger: Principal,
    pub staked: Nat,
    /// Locked by restaking: cannot be unstaked.
    pub locked: Nat,
    /// End of the time lock (ns), if any.
    pub lock_until: Option<u64>,
    pub weight_bps: u64,
    pub unbonding: Vec<UnbondingView>,
    pub pending_rewards: Nat,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AssetView {
    pub ledger: Principal,
    /// `None` until the metadata has been read from the ledger.
    pub symbol: Option<String>,
    pub decimals: Option<u8>,
    pub fee: Option<Nat>,
    pub min_stake: Nat,
    pub total_staked: Nat,
    pub total_weight: Nat,
    /// Rewards still to be streamed, and until when.
    pub reward_undistributed: Nat,
    pub reward_period_end: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AccountingView {
    pub ledger: Principal,
    /// The canister's main account balance on the ledger (`None` when the ledger did not answer).
    pub ledger_balance: Option<Nat>,
    /// When `ledger_balance` was read (ns): now for the composite `get_accounting`, the last
    /// timer refresh for `get_accounting_cached`.
    pub ledger_balance_at: Option<u64>,
    pub staked: Nat,
    pub unbonding: Nat,
    /// Funded and not yet paid: undistributed + accrued + rounding dust.
    pub unpaid_rewards: Nat,
    /// Outgoing transfers reserved and not yet settled (withdrawals, claims, slashes).
    pub in_flight: Nat,
    /// Slashed tokens waiting to be sent (below the ledger fee).
    pub slashed_unsent: Nat,
    /// staked + unbonding + unpaid_rewards + in_flight + slashed_unsent: what the balance covers.
    pub liabilities: Nat,
    pub pending_incoming: u64,
    pub pending_outgoing: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WithdrawReceipt {
    pub ledger: Principal,
    /// Taken from the unbonded stake.
    pub amount: Nat,
    /// The ledger fee, paid out of `amount`: the owner receives `amount - fee`.
    pub fee: Nat,
    pub block_index: Nat,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClaimReceipt {
    pub ledger: Principal,
    pub amount: Nat,
    pub fee: Nat,
    /// `Err` with the reason when this asset's transfer did not settle yet (it stays
    /// journaled and is retried).
    pub result: Result<Nat, StakeError>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct GetEventsArgs {
    pub start: u64,
    pub length: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventView {
    pub index: u64,
    /// ns since the epoch.
    pub timestamp: u64,
    /// The stored event: CBOR with explicit tags.
    pub cbor: ByteBuf,
    /// Human-readable form of the event.
    pub summary: String,
    /// SHA-256(parent_hash || cbor).
    pub hash: ByteBuf,
    pub parent_hash: ByteBuf,
}

/// A page of the hash-chained event log. `certificate` (in a query) certifies
/// `certified_tree`, whose root is the canister's certified data: the ICRC-3 labels
/// `last_block_index` (LEB128) and `last_block_hash`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventsPage {
    pub events: Vec<EventView>,
    pub total: u64,
    pub certificate: Option<ByteBuf>,
    /// CBOR of the certified hash tree.
    pub certified_tree: ByteBuf,
}

/// Errors of the user endpoints. Ledger errors come back typed.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum StakeError {
    AnonymousCaller,
    NotController,
    UnknownAsset {
        ledger: Principal,
    },
    /// The asset's metadata has not been read from its ledger yet.
    AssetNotReady {
        ledger: Principal,
    },
    AssetAlreadyRegistered {
        ledger: Principal,
    },
    AmountTooSmall {
        min: Nat,
    },
    /// Above 2^128 - 1.
    AmountTooLarge {
        max: Nat,
    },
    LockTooLong {
        max_seconds: u64,
    },
    /// The position is time-locked until `until` (ns).
    TimeLocked {
        until: u64,
    },
    InsufficientStake {
        available: Nat,
    },
    NothingToWithdraw,
    NoSuchUnbonding {
        id: u64,
    },
    /// Another operation of this owner is in flight.
    Busy,
    TransferFrom(TransferFromError),
    Transfer(TransferError),
    /// The ledger call failed with an unknown outcome: it is journaled and retried with the
    /// same `created_at_time` and memo, so it settles exactly once.
    Pending {
        operation: u64,
        message: String,
    },
    LedgerError {
        message: String,
    },
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum HookError {
    Unauthorized {
        caller: Principal,
    },
    UnknownAsset {
        ledger: Principal,
    },
    AmountTooLarge {
        max: Nat,
    },
    ZeroAmount,
    /// Lock: not enough unlocked stake.
    InsufficientStake {
        available: Nat,
    },
    /// Unlock or slash: not that much locked.
    InsufficientLocked {
        locked: Nat,
    },
    /// The op id was used with other arguments.
    OperationConflict {
        op_id: u64,
    },
    /// `restaking_slash_batch` takes at most `max` slashes.
    BatchTooLarge {
        max: u64,
    },
}
