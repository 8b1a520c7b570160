//! The restaking state and the one function that changes it, [`State::apply`], used both live
//! and when the event log is replayed after an upgrade. Pure Rust: no ic-cdk.
//!
//! # Pools, magnitudes and O(1) slashing
//!
//! Every (operator, asset) pair is a *pool* holding positions: delegations
//! (staker → operator → asset) and queued withdrawals (which stay slashable). A pool has a
//! *magnitude* `M` (starts at [`WAD`]) and each AVS allocation holds a magnitude `m_j`,
//! with `Σ max(m_j, pending_j) ≤ M` (unique stake: at most 100 % per asset). The stake
//! allocated to AVS `j` is `value × m_j / M`.
//!
//! Slashing AVS `j` by fraction `f` removes `s = ceil(m_j × f)` from both `m_j` and `M`: every
//! position of the pool loses the fraction `s / M` of its value at once, and the other AVSs'
//! allocations keep their absolute stake (as in EigenLayer's max magnitude). Nothing loops
//! over delegators: a position stores the magnitude it was last *settled* at, and its value is
//! `floor(amount × M / snap)`. Settling (on any touch by its staker, or by a timer walking the
//! slashed pools) writes the new amount and journals the loss as a slash op for staking.
//!
//! Rounding: a position's value rounds down, so its loss `amount - floor(amount × M' / M)`
//! rounds up and is at least 1 token unit whenever `M' < M` and `amount > 0`: no slash rounds
//! to nothing. The pool's nominal slash is `ceil(shares × s / WAD)`; the realized losses
//! (what staking takes) are at least that. Rewards round down and their remainder is kept as
//! dust per token: paid + owed ≤ deposited, always.
//!
//! # Rewards
//!
//! A deposit for an AVS is split over the pools allocated to it in proportion to
//! `weight(asset) × allocated stake in whole tokens` (the stake scaled to 18 decimals by the
//! asset's ledger decimals, see [`normalized_stake`]; a loop over the pools of that AVS, never
//! over delegators). The operator's commission is credited to the operator; the rest raises the
//! pool's cumulative index per token, `index += rest × WAD / shares`. A position is owed
//! `shares × (index - its snapshot) / WAD`. Slashes do not change shares, so rewards after a
//! slash stay pro rata to value.

use std::collections::{BTreeMap, BTreeSet};

use candid::{Nat, Principal};
use stratros_confirmation::{Blob, Scheme};

use crate::events::Event;
use crate::math::{BPS, U256, WAD, mul_div_floor, scale_down, scale_down_ceil};
use crate::types::*;

pub const NANOS: u64 = 1_000_000_000;
pub const DAY_NS: u64 = 24 * 3600 * NANOS;
pub const DEFAULT_WITHDRAWAL_DELAY_NS: u64 = 7 * DAY_NS;
pub const DEFAULT_ALLOCATION_DELAY_NS: u64 = DAY_NS;
pub const DEFAULT_DEALLOCATION_DELAY_NS: u64 = 7 * DAY_NS;
pub const DEFAULT_COMMISSION_DELAY_NS: u64 = 7 * DAY_NS;
pub const MAX_TEXT: usize = 256;
pub const MAX_LIST: usize = 32;
/// Every pool's stake is scaled to this many decimals before its AVS weight applies, so that
/// a weight is per whole token (1 ckBTC = 10^8 units and 1 ckETH = 10^18 units weigh alike).
pub const REWARD_DECIMALS: u8 = 18;
/// A caller's deposit idempotency key (`created_at_time`) is accepted up to this old: the
/// ICRC ledgers deduplicate for 24 h, and the pull and its retries need time inside that
/// window (a retry answered `TooOld` could no longer tell whether the first attempt landed).
pub const DEPOSIT_KEY_MAX_AGE_NS: u64 = 23 * 3600 * NANOS;
/// ... and up to this far in the future (the ledgers allow 2 minutes of drift).
pub const DEPOSIT_KEY_MAX_DRIFT_NS: u64 = 60 * NANOS;
/// ICRC-1 ledgers accept memos of at least 32 bytes.
pub const MAX_MEMO: usize = 32;
/// The memo of a deposit pull without a caller key: this prefix and the op id (big-endian).
pub const DEPOSIT_MEMO_PREFIX: &[u8] = b"restaking-deposit";
const _: () = assert!(DEPOSIT_MEMO_PREFIX.len() + 8 <= MAX_MEMO);

/// A pool's allocated `stake` in units of 10^-18 token, so that an AVS weight means "weight
/// per whole token" whatever the ledger's decimals `d`:
/// - `d ≤ 18`: `stake × 10^(18 − d)`, exact: at most `(2^128 − 1) × 10^18 < 2^188`;
/// - `d > 18`: `floor(stake / 10^(d − 18))` (what lies below 10^-18 token is dropped; 0 when
///   `10^(d − 18)` exceeds `u128`, i.e. `d > 56`);
/// - `None` (a weight logged before decimals were recorded): the raw units, as it was applied
///   when it was logged, so replay stays exact.
///
/// Times a `u32` weight the product stays below `2^220`, and the sum over the pools of one AVS
/// below `2^256` for fewer than `2^36` pools: [`State::weighted_pools`] sums in 256 bits.
pub fn normalized_stake(stake: u128, decimals: Option<u8>) -> U256 {
    let Some(d) = decimals else {
        return U256::mul(stake, 1);
    };
    if d <= REWARD_DECIMALS {
        U256::mul(stake, 10u128.pow(u32::from(REWARD_DECIMALS - d)))
    } else {
        match 10u128.checked_pow(u32::from(d - REWARD_DECIMALS)) {
            Some(div) => U256::mul(stake / div, 1),
            None => U256::ZERO,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub staking: Principal,
    pub withdrawal_delay_ns: u64,
    pub allocation_delay_ns: u64,
    pub deallocation_delay_ns: u64,
    pub commission_delay_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub scheme: Scheme,
    pub key_name: String,
    pub public_key: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    pub metadata: String,
    pub commission_bps: u32,
    pub pending_commission: Option<(u32, u64)>,
    pub nodes: BTreeMap<Principal, Node>,
}

impl Operator {
    fn commission_at(&self, now: u64) -> u32 {
        match self.pending_commission {
            Some((bps, at)) if at <= now => bps,
            _ => self.commission_bps,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Avs {
    pub name: String,
    pub kind: AvsKind,
    pub slashers: Vec<Principal>,
    pub weights: BTreeMap<Principal, u32>,
    /// Per weighted asset, its ledger's decimals (`None`: logged before they were recorded).
    pub decimals: BTreeMap<Principal, Option<u8>>,
    pub max_slash_bps: u32,
    pub veto_window_ns: u64,
    pub resolvers: Vec<Principal>,
    pub reward_tokens: Vec<Principal>,
    pub deposited: BTreeMap<Principal, u128>,
    /// Where its slashed tokens go (`None`: staking's configured destination).
    pub redistribution: Option<Account>,
    /// Per ledger, the settled losses attributed to its slashes (journaled for staking).
    pub slashed: BTreeMap<Principal, u128>,
}

/// One slash of a pool since its positions were last all settled: the pool magnitude before
/// it, the AVS, and the magnitude it removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub before: u128,
    pub avs: String,
    pub cut: u128,
}

/// One AVS's share of a pool, in magnitude units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alloc {
    /// Slashable now.
    pub current: u128,
    /// Target and when it takes effect.
    pub pending: Option<(u128, u64)>,
}

impl Alloc {
    fn encumbered(&self) -> u128 {
        self.current.max(self.pending.map_or(0, |(t, _)| t))
    }

    fn mature(&mut self, now: u64) {
        if let Some((target, at)) = self.pending
            && at <= now
        {
            self.current = target;
            self.pending = None;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub magnitude: u128,
    /// Σ settled amounts of the pool's positions (= what staking holds locked for them).
    pub total_amount: u128,
    /// Σ shares of the pool's positions.
    pub total_shares: u128,
    pub allocs: BTreeMap<String, Alloc>,
    pub reward_index: BTreeMap<Principal, u128>,
    pub positions: u64,
    /// Positions not settled since the last slash (each slash makes all `positions` so; a
    /// settlement of one counts it down). O(1) to keep, and the pool leaves
    /// `State::unsettled_pools` when it reaches 0.
    pub unsettled: u64,
    /// The timer's settlement sweep of the pool goes on after this staker (`None`: from the
    /// first); a new slash restarts it.
    pub sweep_from: Option<Principal>,
    /// The slashes since every position was last settled, oldest first (`before` strictly
    /// decreasing: each cut is at least 1), to split a settled loss per AVS
    /// ([`split_loss`]). Emptied when `unsettled` reaches 0, so it holds only the slashes
    /// some position has not settled yet.
    pub cuts: Vec<Cut>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            magnitude: WAD,
            total_amount: 0,
            total_shares: 0,
            allocs: BTreeMap::new(),
            reward_index: BTreeMap::new(),
            positions: 0,
            unsettled: 0,
            sweep_from: None,
            cuts: Vec::new(),
        }
    }
}

impl Pool {
    fn mature(&mut self, now: u64) {
        for a in self.allocs.values_mut() {
            a.mature(now);
        }
    }

    /// Current value of the pool (rounded down).
    pub fn value(&self) -> u128 {
        scale_down(self.total_shares, self.magnitude, WAD)
    }

    /// Stake allocated with magnitude `m` (rounded down).
    pub fn allocated(&self, m: u128) -> u128 {
        scale_down(self.total_shares, m.min(self.magnitude), WAD)
    }

    fn shares_for(&self, amount: u128) -> u128 {
        if self.magnitude == 0 {
            0
        } else {
            // magnitude <= WAD, so amount * WAD / magnitude >= amount: may exceed u128 only
            // for amounts near 2^128, which no ledger holds.
            mul_div_floor(amount, WAD, self.magnitude).unwrap_or(u128::MAX)
        }
    }
}

/// A delegation or a queued withdrawal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stake {
    /// Settled amount: what staking holds locked for it.
    pub amount: u128,
    /// The pool magnitude at the last settlement.
    pub snap: u128,
    pub shares: u128,
    pub reward_snap: BTreeMap<Principal, u128>,
}

impl Stake {
    /// Value now: slashes since the last settlement applied, rounded down.
    pub fn value(&self, pool: &Pool) -> u128 {
        if self.snap == pool.magnitude {
            self.amount
        } else if self.snap == 0 {
            0
        } else {
            scale_down(self.amount, pool.magnitude, self.snap)
        }
    }

    fn accrued(&self, pool: &Pool, token: &Principal) -> u128 {
        let index = pool.reward_index.get(token).copied().unwrap_or(0);
        let snap = self.reward_snap.get(token).copied().unwrap_or(0);
        mul_div_floor(self.shares, index - snap, WAD).unwrap_or(0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub staker: Principal,
    pub operator: Principal,
    pub ledger: Principal,
    pub complete_at: u64,
    pub stake: Stake,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Lock for a delegation request; on success the delegation takes effect.
    Lock {
        operator: Principal,
    },
    Unlock,
    /// A settled loss, attributed to the slashes of `avs` (sent to its redistribution
    /// account, if it has one); `None`: not attributable (staking's destination).
    Slash {
        avs: Option<String>,
    },
    /// Reward payout of `ledger` tokens to `to`.
    Payout {
        to: Principal,
    },
    /// Incoming reward pull (`icrc2_transfer_from` of `ledger` from `owner`, with
    /// `created_at` and `memo`), credited to `avs` once the ledger confirms it.
    Deposit {
        avs: String,
        period_ns: Option<u64>,
        memo: Vec<u8>,
    },
}

/// (operator, ledger): a pool.
pub type PoolKey = (Principal, Principal);

/// A caller's deposit idempotency key: (created_at_time, caller, token, memo). Time first, so
/// expired keys are pruned from the front.
pub type DepositKey = (u64, Principal, Principal, Vec<u8>);

/// What a keyed deposit request did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepositEntry {
    pub op_id: u64,
    pub avs: String,
    pub amount: u128,
    pub period_ns: Option<u64>,
    /// The ledger confirmed the pull and the tokens were credited.
    pub credited: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub kind: OpKind,
    pub owner: Principal,
    pub ledger: Principal,
    pub amount: u128,
    pub created_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlashRecord {
    pub avs: String,
    pub operator: Principal,
    pub bps: u32,
    pub reason: String,
    pub objective: bool,
    pub status: SlashStatus,
    pub requested_at: u64,
    pub executable_at: u64,
    pub slashed: BTreeMap<Principal, u128>,
}

/// Rewards of one (AVS, token) being streamed: `undistributed` goes out linearly from `last`
/// to `end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    pub undistributed: u128,
    pub last: u64,
    pub end: u64,
}

/// Streams advance at most this often (and before every claim): a position earns each step's
/// share pro rata to its stake at that step.
pub const STREAM_STEP_NS: u64 = 60 * NANOS;

/// What an applied event produced, for the endpoint to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Done,
    Op(u64),
    Withdrawal(u64),
    Slash(u64),
    Claimed(Vec<(Principal, u128, u64)>),
}

#[derive(Clone, Debug, Default)]
pub struct State {
    pub config: Option<Config>,
    pub operators: BTreeMap<Principal, Operator>,
    pub node_owner: BTreeMap<Principal, Principal>,
    pub avss: BTreeMap<String, Avs>,
    pub pools: BTreeMap<(Principal, Principal), Pool>,
    /// (avs, operator, ledger): the pools that ever allocated to an AVS.
    pub avs_pools: BTreeSet<(String, Principal, Principal)>,
    /// (operator, ledger, staker) → delegation.
    pub delegations: BTreeMap<(Principal, Principal, Principal), Stake>,
    pub staker_index: BTreeSet<(Principal, Principal, Principal)>,
    pub withdrawals: BTreeMap<u64, Withdrawal>,
    pub next_withdrawal: u64,
    pub ops: BTreeMap<u64, Op>,
    pub next_op: u64,
    pub slashes: BTreeMap<u64, SlashRecord>,
    pub used_evidence: BTreeSet<(Principal, Principal, u64)>,
    /// (owner, token) → rewards owed.
    pub rewards: BTreeMap<(Principal, Principal), u128>,
    /// Per token: deposited, and what rounding left undistributed.
    pub reward_deposited: BTreeMap<Principal, u128>,
    pub reward_dust: BTreeMap<Principal, u128>,
    /// Per (AVS, reward token): rewards deposited for a period and not yet distributed.
    pub streams: BTreeMap<(String, Principal), Stream>,
    /// Per ledger: Σ losses journaled for staking's slash hook (all owners).
    pub slashed_total: BTreeMap<Principal, u128>,
    /// Pools with positions not settled since their last slash (the timer's work list).
    pub unsettled_pools: BTreeSet<PoolKey>,
    /// (operator, ledger, id) of every queued withdrawal, to find a pool's withdrawals.
    pub pool_withdrawals: BTreeSet<(Principal, Principal, u64)>,
    /// Keyed deposit requests, so a repeated request credits once (pruned once too old to be
    /// accepted again).
    pub deposit_keys: BTreeMap<DepositKey, DepositEntry>,
}

type R<T> = Result<T, RestakingError>;

fn check_text(what: &str, s: &str) -> R<()> {
    if s.len() > MAX_TEXT {
        return Err(RestakingError::InvalidArgument(format!(
            "{what} is longer than {MAX_TEXT} bytes"
        )));
    }
    Ok(())
}

fn check_bps(what: &str, bps: u32) -> R<()> {
    if bps > BPS {
        return Err(RestakingError::InvalidArgument(format!(
            "{what} is {bps} bps, more than 100 %"
        )));
    }
    Ok(())
}

pub fn kind_tag(kind: AvsKind) -> u8 {
    match kind {
        AvsKind::Confirmation => 0,
        AvsKind::DataAvailability => 1,
        AvsKind::Other => 2,
    }
}

pub fn kind_from_tag(tag: u8) -> AvsKind {
    match tag {
        0 => AvsKind::Confirmation,
        1 => AvsKind::DataAvailability,
        _ => AvsKind::Other,
    }
}

pub fn scheme_from_tag(tag: u8) -> Option<Scheme> {
    Scheme::ALL.into_iter().find(|s| s.tag() == tag)
}

/// Splits the loss a position of `amount` settled at magnitude `snap` takes now, `loss =
/// amount − floor(amount × M / snap)`, over the AVSs whose slashes caused it. The sum of the
/// parts is exactly `loss`.
///
/// The pool magnitude only ever falls by the cuts of slashes, so `M = snap − Σ d_j`, where
/// `d_j` is what AVS `j`'s slashes since `snap` cut (the entries of `pool.cuts` whose `before`
/// is at most `snap`). Hence `loss = ceil(amount × Σ d_j / snap)`: linear in the cuts.
/// Each AVS gets `floor(amount × d_j / snap)` (rounded down); the remainder, `loss − Σ parts`,
/// between 0 and the number of AVSs, goes to the AVS with the largest cut `d_j` (the largest
/// part; ties to the smallest AVS id). Slashes by one AVS in several steps thus split like a
/// single slash. A loss no recorded cut explains (none should exist) is `None`.
pub fn split_loss(
    pool: &Pool,
    amount: u128,
    snap: u128,
    loss: u128,
) -> Vec<(Option<String>, u128)> {
    if loss == 0 {
        return Vec::new();
    }
    let start = pool.cuts.partition_point(|c| c.before > snap);
    let mut by_avs: BTreeMap<&str, u128> = BTreeMap::new();
    for c in &pool.cuts[start..] {
        *by_avs.entry(c.avs.as_str()).or_default() += c.cut;
    }
    let Some(largest) = by_avs
        .iter()
        .fold(None::<(&str, u128)>, |best, (a, d)| match best {
            Some((_, b)) if b >= *d => best,
            _ => Some((a, *d)),
        })
        .map(|(a, _)| a)
    else {
        return vec![(None, loss)];
    };
    let mut parts: Vec<(Option<String>, u128)> = by_avs
        .iter()
        .map(|(a, d)| (Some((*a).to_string()), scale_down(amount, *d, snap)))
        .collect();
    // Σ d_j = snap − M, so Σ floor(amount × d_j / snap) ≤ loss: the remainder is ≥ 0.
    let sum: u128 = parts.iter().map(|(_, x)| *x).sum();
    debug_assert!(sum <= loss, "BUG: the parts of a loss exceed it");
    let remainder = loss.saturating_sub(sum);
    if let Some(p) = parts
        .iter_mut()
        .find(|(a, _)| a.as_deref() == Some(largest))
    {
        p.1 += remainder;
    }
    parts.retain(|(_, x)| *x > 0);
    parts
}

/// Settles `stake` against its pool: credits rewards accrued since its snapshot, applies the
/// slashes since its magnitude snapshot, and returns the loss (rounded up) split per AVS
/// ([`split_loss`]).
fn settle_stake(
    pool: &mut Pool,
    stake: &mut Stake,
    owner: Principal,
    rewards: &mut BTreeMap<(Principal, Principal), u128>,
) -> Vec<(Option<String>, u128)> {
    for (token, index) in pool.reward_index.iter() {
        let owed = stake.accrued(pool, token);
        if owed > 0 {
            *rewards.entry((owner, *token)).or_default() += owed;
        }
        stake.reward_snap.insert(*token, *index);
    }
    if stake.snap == pool.magnitude {
        return Vec::new();
    }
    pool.unsettled = pool.unsettled.saturating_sub(1);
    let value = stake.value(pool);
    let loss = stake.amount - value;
    let parts = split_loss(pool, stake.amount, stake.snap, loss);
    debug_assert_eq!(
        parts.iter().map(|(_, x)| *x).sum::<u128>(),
        loss,
        "BUG: a loss split into parts that do not sum to it"
    );
    stake.amount = value;
    stake.snap = pool.magnitude;
    pool.total_amount -= loss;
    let shares = pool.shares_for(value);
    pool.total_shares = pool.total_shares - stake.shares + shares;
    stake.shares = shares;
    parts
}

/// Adds `amount` to a settled stake (or removes it, `add == false`).
fn resize_stake(pool: &mut Pool, stake: &mut Stake, amount: u128, add: bool) {
    debug_assert_eq!(
        stake.snap, pool.magnitude,
        "BUG: resizing an unsettled stake"
    );
    if add {
        stake.amount += amount;
        pool.total_amount += amount;
    } else {
        stake.amount -= amount;
        pool.total_amount -= amount;
    }
    let shares = pool.shares_for(stake.amount);
    pool.total_shares = pool.total_shares - stake.shares + shares;
    stake.shares = shares;
}

fn new_stake(pool: &Pool) -> Stake {
    Stake {
        amount: 0,
        snap: pool.magnitude,
        shares: 0,
        reward_snap: pool.reward_index.clone(),
    }
}

impl State {
    pub fn config(&self) -> &Config {
        self.config
            .as_ref()
            .unwrap_or_else(|| panic!("BUG: restaking is not initialized"))
    }

    fn operator(&self, op: Principal) -> R<&Operator> {
        self.operators
            .get(&op)
            .ok_or(RestakingError::UnknownOperator { operator: op })
    }

    fn avs(&self, id: &str) -> R<&Avs> {
        self.avss
            .get(id)
            .ok_or_else(|| RestakingError::UnknownAvs { id: id.to_string() })
    }

    fn journal(
        &mut self,
        kind: OpKind,
        owner: Principal,
        ledger: Principal,
        amount: u128,
        now: u64,
    ) -> u64 {
        let id = self.next_op;
        self.next_op += 1;
        self.ops.insert(
            id,
            Op {
                kind,
                owner,
                ledger,
                amount,
                created_at: now,
            },
        );
        id
    }

    /// Journals one slash op per AVS part of a settled loss.
    fn journal_loss(
        &mut self,
        owner: Principal,
        ledger: Principal,
        parts: Vec<(Option<String>, u128)>,
        now: u64,
    ) {
        for (avs, loss) in parts {
            if loss == 0 {
                continue;
            }
            *self.slashed_total.entry(ledger).or_default() += loss;
            if let Some(a) = avs.as_ref().and_then(|id| self.avss.get_mut(id)) {
                *a.slashed.entry(ledger).or_default() += loss;
            }
            self.journal(OpKind::Slash { avs }, owner, ledger, loss, now);
        }
    }

    fn pool_mut(&mut self, operator: Principal, ledger: Principal, now: u64) -> &mut Pool {
        let pool = self.pools.entry((operator, ledger)).or_default();
        pool.mature(now);
        pool
    }

    /// Settles the delegation (operator, ledger, staker), if it exists.
    fn settle_delegation(
        &mut self,
        operator: Principal,
        ledger: Principal,
        staker: Principal,
        now: u64,
    ) {
        let key = (operator, ledger, staker);
        let Some(mut stake) = self.delegations.remove(&key) else {
            return;
        };
        let pool = self
            .pools
            .get_mut(&(operator, ledger))
            .unwrap_or_else(|| panic!("BUG: a delegation without a pool"));
        pool.mature(now);
        let loss = settle_stake(pool, &mut stake, staker, &mut self.rewards);
        if pool.unsettled == 0 {
            pool.cuts.clear();
            if self.unsettled_pools.remove(&(operator, ledger)) {
                pool.sweep_from = None;
            }
        }
        self.delegations.insert(key, stake);
        self.journal_loss(staker, ledger, loss, now);
    }

    fn settle_withdrawal(&mut self, id: u64, now: u64) {
        let Some(mut w) = self.withdrawals.remove(&id) else {
            return;
        };
        let pool = self
            .pools
            .get_mut(&(w.operator, w.ledger))
            .unwrap_or_else(|| panic!("BUG: a withdrawal without a pool"));
        pool.mature(now);
        let loss = settle_stake(pool, &mut w.stake, w.staker, &mut self.rewards);
        if pool.unsettled == 0 {
            pool.cuts.clear();
            if self.unsettled_pools.remove(&(w.operator, w.ledger)) {
                pool.sweep_from = None;
            }
        }
        let (staker, ledger) = (w.staker, w.ledger);
        self.withdrawals.insert(id, w);
        self.journal_loss(staker, ledger, loss, now);
    }

    /// Slashes `bps` of `operator`'s allocation to `avs`, in every asset, in O(assets).
    fn slash_operator(
        &mut self,
        operator: Principal,
        avs: &str,
        bps: u32,
        now: u64,
    ) -> BTreeMap<Principal, u128> {
        let mut slashed = BTreeMap::new();
        let keys: Vec<(Principal, Principal)> = self
            .pools
            .range((operator, Principal::management_canister())..)
            .take_while(|((o, _), _)| *o == operator)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(pool) = self.pools.get_mut(&key) else {
                continue;
            };
            pool.mature(now);
            let Some(alloc) = pool.allocs.get_mut(avs) else {
                continue;
            };
            if alloc.current == 0 || bps == 0 {
                continue;
            }
            let cut = scale_down_ceil(alloc.current, u128::from(bps), u128::from(BPS));
            let before = alloc.current;
            alloc.current -= cut;
            if let Some((target, at)) = alloc.pending {
                let target = if target > before {
                    target.saturating_sub(cut)
                } else {
                    scale_down(target, alloc.current, before)
                };
                alloc.pending = Some((target, at));
            }
            // The recorded slash is what the pool's value loses. Summed over slashes it
            // telescopes, so the realized losses (each position rounds its own loss up at
            // settlement) always cover it; rounding each slash up on its own would not.
            let before = pool.value();
            // Every position is now behind the pool: count them, (re)start the sweep, and
            // keep the cut to split their losses per AVS.
            if pool.positions > 0 {
                pool.unsettled = pool.positions;
                pool.sweep_from = None;
                self.unsettled_pools.insert(key);
                pool.cuts.push(Cut {
                    before: pool.magnitude,
                    avs: avs.to_string(),
                    cut,
                });
            }
            pool.magnitude -= cut;
            slashed.insert(key.1, before - pool.value());
        }
        slashed
    }

    /// The pools allocated to `avs` now and their weights `weight(asset) × stake in whole
    /// tokens` ([`normalized_stake`]), and their sum. Computed in 256 bits, then every weight
    /// is shifted right by the same `k` bits so that the sum fits in 127 bits (`k = 0` unless
    /// the sum reaches 2^127, i.e. 1.7e20 weighted whole tokens): a common factor, so the split
    /// is unchanged up to rounding down. Pools whose weight is 0 are left out.
    fn weighted_pools(&self, avs: &str, now: u64) -> R<(Vec<(PoolKey, u128)>, u128)> {
        let a = self.avs(avs)?;
        let mut wide: Vec<(PoolKey, U256)> = Vec::new();
        let mut total = U256::ZERO;
        for (_, o, l) in self
            .avs_pools
            .range(
                (
                    avs.to_string(),
                    Principal::management_canister(),
                    Principal::management_canister(),
                )..,
            )
            .take_while(|(x, _, _)| x == avs)
        {
            let Some(pool) = self.pools.get(&(*o, *l)) else {
                continue;
            };
            let mut alloc = pool.allocs.get(avs).cloned().unwrap_or_default();
            alloc.mature(now);
            let w = u128::from(a.weights.get(l).copied().unwrap_or(0));
            let decimals = a.decimals.get(l).copied().flatten();
            let weighted = normalized_stake(pool.allocated(alloc.current), decimals)
                .checked_mul(w)
                .unwrap_or(U256::MAX);
            if weighted != U256::ZERO {
                total = total.saturating_add(weighted);
                wide.push(((*o, *l), weighted));
            }
        }
        let k = total.bits().saturating_sub(127);
        let mut sum: u128 = 0;
        let mut out = Vec::with_capacity(wide.len());
        for (key, w) in wide {
            // `w >> k <= total >> k < 2^127`, and the shifted parts sum to at most that.
            let w = w.shift_right(k).lo;
            if w > 0 {
                sum += w;
                out.push((key, w));
            }
        }
        Ok((out, sum))
    }

    /// Splits `amount` of `token` over the pools allocated to `avs`, pro rata to
    /// `weight(asset) × allocated stake in whole tokens` (rounded down; the remainder is dust):
    /// the operator's commission first, the rest raises the pool's index.
    /// `Err(NoAllocatedStake)` (and nothing changed) when nothing is allocated.
    fn distribute(&mut self, avs: &str, token: Principal, amount: u128, now: u64) -> R<()> {
        let (shares, total) = self.weighted_pools(avs, now)?;
        if total == 0 {
            return Err(RestakingError::NoAllocatedStake);
        }
        let mut credited: u128 = 0;
        for ((operator, ledger), weighted) in shares {
            let share = scale_down(amount, weighted, total);
            let commission_bps = self
                .operators
                .get(&operator)
                .map_or(0, |o| o.commission_at(now));
            let commission = scale_down(share, u128::from(commission_bps), u128::from(BPS));
            if commission > 0 {
                *self.rewards.entry((operator, token)).or_default() += commission;
            }
            let rest = share - commission;
            let pool = self
                .pools
                .get_mut(&(operator, ledger))
                .unwrap_or_else(|| panic!("BUG: pool vanished"));
            let inc = mul_div_floor(rest, WAD, pool.total_shares).unwrap_or(0);
            let total_shares = pool.total_shares;
            let index = pool.reward_index.entry(token).or_default();
            match index.checked_add(inc) {
                Some(i) => {
                    // Credit what the pool's owed total `floor(shares × index / WAD)`
                    // grows by: summed over deposits it telescopes, so it always covers
                    // what positions accrue over several deposits at once (each rounds
                    // down once), and the dust is exact.
                    let owed = |index| mul_div_floor(total_shares, index, WAD).unwrap_or(0);
                    let grown = owed(i).saturating_sub(owed(*index));
                    *index = i;
                    credited += commission + grown.min(rest);
                }
                None => credited += commission,
            }
        }
        *self.reward_dust.entry(token).or_default() += amount - credited;
        Ok(())
    }

    /// Forgets credited deposit keys too old to be accepted again (a request with such a
    /// `created_at_time` is refused), a bounded number per call. Keys of pending ops stay.
    fn prune_deposit_keys(&mut self, now: u64) {
        let old: Vec<DepositKey> = self
            .deposit_keys
            .iter()
            .take_while(|((t, _, _, _), _)| t.saturating_add(DEPOSIT_KEY_MAX_AGE_NS) < now)
            .filter(|(_, e)| e.credited)
            .take(16)
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            self.deposit_keys.remove(&k);
        }
    }

    /// Credits `amount` of `token` received for `avs`: distributed at once when no period is
    /// asked and stake is allocated; otherwise through the AVS's stream of this token, so that
    /// tokens already received are never refused.
    fn credit_deposit(
        &mut self,
        avs: &str,
        token: Principal,
        amount: u128,
        period_ns: Option<u64>,
        now: u64,
    ) {
        let period = period_ns.unwrap_or(0);
        if period > 0 || self.distribute(avs, token, amount, now).is_err() {
            self.advance_stream(avs, token, now);
            let st = self
                .streams
                .entry((avs.to_string(), token))
                .or_insert(Stream {
                    undistributed: 0,
                    last: now,
                    end: now,
                });
            st.undistributed += amount;
            st.last = now;
            st.end = st.end.max(now.saturating_add(period));
        }
        *self.reward_deposited.entry(token).or_default() += amount;
        if let Some(a) = self.avss.get_mut(avs) {
            *a.deposited.entry(token).or_default() += amount;
        }
    }

    /// Checks a deposit before any token moves: the AVS and token, the amount, and that some
    /// stake can receive it: allocated now for an immediate deposit, or at least allocated
    /// or pending (a stream waits for it) when streamed.
    pub fn check_deposit(
        &self,
        avs: &str,
        token: Principal,
        amount: u128,
        period_ns: Option<u64>,
        now: u64,
    ) -> R<()> {
        let a = self.avs(avs)?;
        if !a.reward_tokens.contains(&token) {
            return Err(RestakingError::InvalidArgument(format!(
                "{token} is not a reward token of {avs}"
            )));
        }
        if amount == 0 {
            return Err(RestakingError::ZeroAmount);
        }
        let (_, total) = self.weighted_pools(avs, now)?;
        if total > 0 {
            return Ok(());
        }
        let streamed = period_ns.unwrap_or(0) > 0;
        let pending = self
            .avs_pools
            .range(
                (
                    avs.to_string(),
                    Principal::management_canister(),
                    Principal::management_canister(),
                )..,
            )
            .take_while(|(x, _, _)| x == avs)
            .any(|(_, o, l)| {
                self.pools
                    .get(&(*o, *l))
                    .and_then(|p| p.allocs.get(avs))
                    .is_some_and(|al| al.encumbered() > 0)
            });
        if streamed && pending {
            Ok(())
        } else {
            Err(RestakingError::NoAllocatedStake)
        }
    }

    /// The op of a keyed deposit request, when the same key was used before: `Ok(None)` for a
    /// new key, `Ok(Some((op_id, credited)))` for a repeat with the same arguments, an error
    /// for a key reused with other arguments.
    pub fn deposit_by_key(
        &self,
        key: &DepositKey,
        avs: &str,
        amount: u128,
        period_ns: Option<u64>,
    ) -> R<Option<(u64, bool)>> {
        match self.deposit_keys.get(key) {
            None => Ok(None),
            Some(e) if e.avs == avs && e.amount == amount && e.period_ns == period_ns => {
                Ok(Some((e.op_id, e.credited)))
            }
            Some(e) => Err(RestakingError::InvalidArgument(format!(
                "this created_at_time and memo were used for deposit op {} with other arguments",
                e.op_id
            ))),
        }
    }

    /// Streams `(avs, token)` up to `now`: the share of what is left proportional to the time
    /// elapsed since the last step, over the time left (rounded down; the remainder stays in
    /// the stream, and all of it is distributed once `now` reaches the end). While nothing is
    /// allocated to the AVS the stream pauses: its end moves by the time elapsed.
    fn advance_stream(&mut self, avs: &str, token: Principal, now: u64) {
        let key = (avs.to_string(), token);
        let Some(st) = self.streams.get(&key).cloned() else {
            return;
        };
        if st.undistributed == 0 || now <= st.last {
            return;
        }
        let portion = if now >= st.end {
            st.undistributed
        } else {
            mul_div_floor(
                st.undistributed,
                u128::from(now - st.last),
                u128::from(st.end - st.last),
            )
            .unwrap_or(0)
        };
        let paused = portion > 0 && self.distribute(avs, token, portion, now).is_err();
        let st = self
            .streams
            .get_mut(&key)
            .unwrap_or_else(|| panic!("BUG: stream vanished"));
        if paused {
            st.end = st.end.saturating_add(now - st.last);
        } else {
            st.undistributed -= portion;
        }
        st.last = now;
        if st.undistributed == 0 {
            self.streams.remove(&key);
        }
    }

    /// Whether a `StreamsAdvanced` event is due at `now`: a stream holds tokens and its last
    /// step is at least `STREAM_STEP_NS` old (any age when `force`, before a claim).
    pub fn streams_due(&self, now: u64, force: bool) -> bool {
        self.streams.values().any(|st| {
            st.undistributed > 0 && now > st.last && (force || now - st.last >= STREAM_STEP_NS)
        })
    }

    /// Validates and applies one event. On `Err` nothing changed.
    pub fn apply(&mut self, now: u64, event: &Event) -> R<Applied> {
        use RestakingError as E;
        match event {
            Event::Init {
                staking,
                withdrawal_delay_ns,
                allocation_delay_ns,
                deallocation_delay_ns,
                commission_delay_ns,
            } => {
                self.config = Some(Config {
                    staking: staking.0,
                    withdrawal_delay_ns: *withdrawal_delay_ns,
                    allocation_delay_ns: *allocation_delay_ns,
                    deallocation_delay_ns: *deallocation_delay_ns,
                    commission_delay_ns: *commission_delay_ns,
                });
                Ok(Applied::Done)
            }
            Event::ConfigUpdated { staking } => {
                let config = self
                    .config
                    .as_mut()
                    .unwrap_or_else(|| panic!("BUG: restaking is not initialized"));
                if let Some(s) = staking {
                    config.staking = s.0;
                }
                Ok(Applied::Done)
            }
            Event::OperatorRegistered {
                operator,
                name,
                metadata,
                commission_bps,
            } => {
                check_text("name", name)?;
                check_text("metadata", metadata)?;
                check_bps("commission", *commission_bps)?;
                if self.operators.contains_key(&operator.0) {
                    return Err(E::OperatorAlreadyRegistered);
                }
                self.operators.insert(
                    operator.0,
                    Operator {
                        name: name.clone(),
                        metadata: metadata.clone(),
                        commission_bps: *commission_bps,
                        pending_commission: None,
                        nodes: BTreeMap::new(),
                    },
                );
                Ok(Applied::Done)
            }
            Event::CommissionChangeRequested {
                operator,
                commission_bps,
            } => {
                check_bps("commission", *commission_bps)?;
                self.operator(operator.0)?;
                let delay = self.config().commission_delay_ns;
                let op = self
                    .operators
                    .get_mut(&operator.0)
                    .unwrap_or_else(|| panic!("BUG: operator vanished"));
                op.commission_bps = op.commission_at(now);
                op.pending_commission = Some((*commission_bps, now.saturating_add(delay)));
                Ok(Applied::Done)
            }
            Event::NodeRegistered {
                operator,
                node,
                scheme,
                key_name,
                public_key,
            } => {
                let scheme = self
                    .check_node_registration(operator.0, node.0, *scheme, key_name, public_key)?;
                self.node_owner.insert(node.0, operator.0);
                self.operators
                    .get_mut(&operator.0)
                    .unwrap_or_else(|| panic!("BUG: operator vanished"))
                    .nodes
                    .insert(
                        node.0,
                        Node {
                            scheme,
                            key_name: key_name.clone(),
                            public_key: public_key.clone(),
                        },
                    );
                Ok(Applied::Done)
            }
            Event::AvsRegistered {
                id,
                name,
                kind,
                slashers,
                weights,
                max_slash_bps,
                veto_window_ns,
                resolvers,
                reward_tokens,
                redistribution,
            } => {
                if id.is_empty() || id.len() > 64 {
                    return Err(E::InvalidArgument("an AVS id has 1 to 64 bytes".into()));
                }
                check_text("name", name)?;
                check_bps("max slash", *max_slash_bps)?;
                if slashers.len() > MAX_LIST
                    || weights.len() > MAX_LIST
                    || resolvers.len() > MAX_LIST
                    || reward_tokens.len() > MAX_LIST
                {
                    return Err(E::InvalidArgument(format!(
                        "lists hold at most {MAX_LIST} entries"
                    )));
                }
                if weights.is_empty() || weights.iter().any(|w| w.weight_bps == 0) {
                    return Err(E::InvalidArgument(
                        "every asset needs a positive weight".into(),
                    ));
                }
                if redistribution
                    .as_ref()
                    .and_then(|a| a.subaccount.as_ref())
                    .is_some_and(|s| s.len() != 32)
                {
                    return Err(E::InvalidArgument(
                        "a redistribution subaccount has 32 bytes".into(),
                    ));
                }
                if self.avss.contains_key(id) {
                    return Err(E::AvsAlreadyRegistered { id: id.clone() });
                }
                self.avss.insert(
                    id.clone(),
                    Avs {
                        name: name.clone(),
                        kind: kind_from_tag(*kind),
                        slashers: slashers.iter().map(|p| p.0).collect(),
                        weights: weights.iter().map(|w| (w.ledger.0, w.weight_bps)).collect(),
                        decimals: weights.iter().map(|w| (w.ledger.0, w.decimals)).collect(),
                        max_slash_bps: *max_slash_bps,
                        veto_window_ns: *veto_window_ns,
                        resolvers: resolvers.iter().map(|p| p.0).collect(),
                        reward_tokens: reward_tokens.iter().map(|p| p.0).collect(),
                        deposited: BTreeMap::new(),
                        redistribution: redistribution.as_ref().map(|a| Account {
                            owner: a.owner.0,
                            subaccount: a.subaccount.clone().map(Blob),
                        }),
                        slashed: BTreeMap::new(),
                    },
                );
                Ok(Applied::Done)
            }
            Event::DelegationRequested {
                staker,
                operator,
                ledger,
                amount,
            } => {
                self.operator(operator.0)?;
                if *amount == 0 {
                    return Err(E::ZeroAmount);
                }
                if self
                    .pools
                    .get(&(operator.0, ledger.0))
                    .is_some_and(|p| p.magnitude == 0)
                {
                    return Err(E::PoolExhausted);
                }
                let id = self.journal(
                    OpKind::Lock {
                        operator: operator.0,
                    },
                    staker.0,
                    ledger.0,
                    *amount,
                    now,
                );
                Ok(Applied::Op(id))
            }
            Event::LockSettled { op_id, accepted } => {
                let op = match self.ops.get(op_id) {
                    Some(
                        op @ Op {
                            kind: OpKind::Lock { .. },
                            ..
                        },
                    ) => op.clone(),
                    _ => return Err(E::UnknownOp { op_id: *op_id }),
                };
                self.ops.remove(op_id);
                let OpKind::Lock { operator } = op.kind else {
                    unreachable!("BUG: matched a lock above")
                };
                if !*accepted {
                    return Ok(Applied::Done);
                }
                let (staker, ledger) = (op.owner, op.ledger);
                self.settle_delegation(operator, ledger, staker, now);
                let pool = self.pool_mut(operator, ledger, now);
                if pool.magnitude == 0 {
                    // Slashed to nothing while the lock was in flight: give the stake back.
                    self.journal(OpKind::Unlock, staker, ledger, op.amount, now);
                    return Ok(Applied::Done);
                }
                let key = (operator, ledger, staker);
                let mut stake = match self.delegations.remove(&key) {
                    Some(s) => s,
                    None => {
                        let pool = self.pool_mut(operator, ledger, now);
                        pool.positions += 1;
                        new_stake(pool)
                    }
                };
                let pool = self.pool_mut(operator, ledger, now);
                resize_stake(pool, &mut stake, op.amount, true);
                self.delegations.insert(key, stake);
                self.staker_index.insert((staker, operator, ledger));
                Ok(Applied::Done)
            }
            Event::UndelegateRequested {
                staker,
                operator,
                ledger,
                amount,
            } => {
                let key = (operator.0, ledger.0, staker.0);
                let (available, exists) = match (
                    self.delegations.get(&key),
                    self.pools.get(&(operator.0, ledger.0)),
                ) {
                    (Some(stake), Some(pool)) => (stake.value(pool), true),
                    _ => (0, false),
                };
                if !exists {
                    return Err(E::NoDelegation);
                }
                if *amount == 0 {
                    return Err(E::ZeroAmount);
                }
                if *amount > available {
                    return Err(E::InsufficientDelegation {
                        available: Nat::from(available),
                    });
                }
                self.settle_delegation(operator.0, ledger.0, staker.0, now);
                let delay = self.config().withdrawal_delay_ns;
                let mut stake = self
                    .delegations
                    .remove(&key)
                    .unwrap_or_else(|| panic!("BUG: delegation vanished"));
                let pool = self.pool_mut(operator.0, ledger.0, now);
                resize_stake(pool, &mut stake, *amount, false);
                let mut w = new_stake(pool);
                resize_stake(pool, &mut w, *amount, true);
                pool.positions += 1;
                if stake.amount == 0 {
                    pool.positions -= 1;
                    // Rewards were credited at settlement: the empty delegation goes.
                    pool.total_shares -= stake.shares;
                    self.staker_index.remove(&(staker.0, operator.0, ledger.0));
                } else {
                    self.delegations.insert(key, stake);
                }
                let id = self.next_withdrawal;
                self.next_withdrawal += 1;
                self.pool_withdrawals.insert((operator.0, ledger.0, id));
                self.withdrawals.insert(
                    id,
                    Withdrawal {
                        staker: staker.0,
                        operator: operator.0,
                        ledger: ledger.0,
                        complete_at: now.saturating_add(delay),
                        stake: w,
                    },
                );
                Ok(Applied::Withdrawal(id))
            }
            Event::WithdrawalCancelled { staker, id } => {
                match self.withdrawals.get(id) {
                    Some(w) if w.staker == staker.0 => {}
                    _ => return Err(E::UnknownWithdrawal { id: *id }),
                }
                self.settle_withdrawal(*id, now);
                let w = self
                    .withdrawals
                    .remove(id)
                    .unwrap_or_else(|| panic!("BUG: withdrawal vanished"));
                self.pool_withdrawals.remove(&(w.operator, w.ledger, *id));
                self.settle_delegation(w.operator, w.ledger, w.staker, now);
                let key = (w.operator, w.ledger, w.staker);
                let pool = self.pool_mut(w.operator, w.ledger, now);
                pool.total_amount -= w.stake.amount;
                pool.total_shares -= w.stake.shares;
                let mut stake = match self.delegations.remove(&key) {
                    Some(s) => {
                        let pool = self.pool_mut(w.operator, w.ledger, now);
                        pool.positions -= 1;
                        s
                    }
                    None => new_stake(self.pool_mut(w.operator, w.ledger, now)),
                };
                let pool = self.pool_mut(w.operator, w.ledger, now);
                resize_stake(pool, &mut stake, w.stake.amount, true);
                self.delegations.insert(key, stake);
                self.staker_index.insert((w.staker, w.operator, w.ledger));
                Ok(Applied::Done)
            }
            Event::WithdrawalCompleted { id } => {
                let complete_at = self
                    .withdrawals
                    .get(id)
                    .ok_or(E::UnknownWithdrawal { id: *id })?
                    .complete_at;
                if now < complete_at {
                    return Err(E::WithdrawalNotReady { complete_at });
                }
                self.settle_withdrawal(*id, now);
                let w = self
                    .withdrawals
                    .remove(id)
                    .unwrap_or_else(|| panic!("BUG: withdrawal vanished"));
                self.pool_withdrawals.remove(&(w.operator, w.ledger, *id));
                let pool = self.pool_mut(w.operator, w.ledger, now);
                pool.total_amount -= w.stake.amount;
                pool.total_shares -= w.stake.shares;
                pool.positions -= 1;
                if w.stake.amount > 0 {
                    self.journal(OpKind::Unlock, w.staker, w.ledger, w.stake.amount, now);
                }
                Ok(Applied::Done)
            }
            Event::Allocated {
                operator,
                avs,
                ledger,
                bps,
            } => {
                self.operator(operator.0)?;
                check_bps("allocation", *bps)?;
                if !self.avs(avs)?.weights.contains_key(&ledger.0) {
                    return Err(E::AssetNotInAvs {
                        avs: avs.clone(),
                        ledger: ledger.0,
                    });
                }
                let (alloc_delay, dealloc_delay) = {
                    let c = self.config();
                    (c.allocation_delay_ns, c.deallocation_delay_ns)
                };
                // Validate on a copy: an error changes nothing.
                let mut pool = self
                    .pools
                    .get(&(operator.0, ledger.0))
                    .cloned()
                    .unwrap_or_default();
                pool.mature(now);
                if pool.magnitude == 0 {
                    return Err(E::PoolExhausted);
                }
                let target = scale_down(pool.magnitude, u128::from(*bps), u128::from(BPS));
                let others: u128 = pool
                    .allocs
                    .iter()
                    .filter(|(k, _)| *k != avs)
                    .map(|(_, a)| a.encumbered())
                    .sum();
                let current = pool.allocs.get(avs).map_or(0, |a| a.current);
                let needed = target.max(current);
                if others + needed > pool.magnitude {
                    let free = pool.magnitude.saturating_sub(others);
                    return Err(E::OverAllocated {
                        available_bps: scale_down(free, u128::from(BPS), pool.magnitude) as u32,
                    });
                }
                let alloc = pool.allocs.entry(avs.clone()).or_default();
                alloc.pending = if target == alloc.current {
                    None
                } else if target > alloc.current {
                    Some((target, now.saturating_add(alloc_delay)))
                } else {
                    Some((target, now.saturating_add(dealloc_delay)))
                };
                self.pools.insert((operator.0, ledger.0), pool);
                self.avs_pools.insert((avs.clone(), operator.0, ledger.0));
                Ok(Applied::Done)
            }
            Event::SlashRequested {
                slasher,
                avs,
                operator,
                bps,
                reason,
            } => {
                let a = self.avs(avs)?;
                if !a.slashers.contains(&slasher.0) {
                    return Err(E::NotSlasher);
                }
                if *bps == 0 || *bps > a.max_slash_bps {
                    return Err(E::SlashTooLarge {
                        max_bps: a.max_slash_bps,
                    });
                }
                let window = a.veto_window_ns;
                check_text("reason", reason)?;
                self.operator(operator.0)?;
                let id = self.slashes.len() as u64;
                self.slashes.insert(
                    id,
                    SlashRecord {
                        avs: avs.clone(),
                        operator: operator.0,
                        bps: *bps,
                        reason: reason.clone(),
                        objective: false,
                        status: SlashStatus::Pending,
                        requested_at: now,
                        executable_at: now.saturating_add(window),
                        slashed: BTreeMap::new(),
                    },
                );
                Ok(Applied::Slash(id))
            }
            Event::SlashVetoed { resolver, id } => {
                let s = self.slashes.get(id).ok_or(E::UnknownSlash { id: *id })?;
                if !self.avs(&s.avs)?.resolvers.contains(&resolver.0) {
                    return Err(E::NotResolver);
                }
                if s.status != SlashStatus::Pending {
                    return Err(E::SlashNotPending { id: *id });
                }
                if now >= s.executable_at {
                    return Err(E::VetoWindowClosed);
                }
                if let Some(s) = self.slashes.get_mut(id) {
                    s.status = SlashStatus::Vetoed;
                }
                Ok(Applied::Done)
            }
            Event::SlashExecuted { id } => {
                let s = self.slashes.get(id).ok_or(E::UnknownSlash { id: *id })?;
                if s.status != SlashStatus::Pending {
                    return Err(E::SlashNotPending { id: *id });
                }
                if now < s.executable_at {
                    return Err(E::VetoWindowOpen {
                        executable_at: s.executable_at,
                    });
                }
                let (operator, avs, bps) = (s.operator, s.avs.clone(), s.bps);
                let slashed = self.slash_operator(operator, &avs, bps, now);
                if let Some(s) = self.slashes.get_mut(id) {
                    s.status = SlashStatus::Executed;
                    s.slashed = slashed;
                }
                Ok(Applied::Slash(*id))
            }
            Event::EquivocationSlashed {
                reporter: _,
                node,
                hub,
                height,
            } => {
                let (operator, targets) = self.check_equivocation(node.0, hub.0, *height)?;
                self.used_evidence.insert((node.0, hub.0, *height));
                // One record per Confirmation AVS the operator is allocated to: the node
                // signs for the confirmation layer, and every confirmation AVS the operator's
                // stake secures relied on it. Ids are consecutive; the first is returned.
                let first = self.slashes.len() as u64;
                for (avs, bps) in targets {
                    let slashed = self.slash_operator(operator, &avs, bps, now);
                    let id = self.slashes.len() as u64;
                    self.slashes.insert(
                        id,
                        SlashRecord {
                            avs,
                            operator,
                            bps,
                            reason: format!(
                                "equivocation of node {} at {}/{height}",
                                node.0, hub.0
                            ),
                            objective: true,
                            status: SlashStatus::Executed,
                            requested_at: now,
                            executable_at: now,
                            slashed,
                        },
                    );
                }
                Ok(Applied::Slash(first))
            }
            Event::DelegationSettled {
                operator,
                ledger,
                staker,
            } => {
                self.settle_delegation(operator.0, ledger.0, staker.0, now);
                // Only the timer logs this event, in key order from the sweep's position:
                // what lies before `staker` in this pool was visited.
                if self.unsettled_pools.contains(&(operator.0, ledger.0))
                    && let Some(pool) = self.pools.get_mut(&(operator.0, ledger.0))
                {
                    pool.sweep_from = Some(staker.0);
                }
                Ok(Applied::Done)
            }
            Event::WithdrawalSettled { id } => {
                self.settle_withdrawal(*id, now);
                Ok(Applied::Done)
            }
            Event::RewardsDeposited {
                from: _,
                avs,
                token,
                amount,
                period_ns,
            } => {
                let a = self.avs(avs)?;
                if !a.reward_tokens.contains(&token.0) {
                    return Err(E::InvalidArgument(format!(
                        "{} is not a reward token of {avs}",
                        token.0
                    )));
                }
                if *amount == 0 {
                    return Err(E::ZeroAmount);
                }
                self.credit_deposit(avs, token.0, *amount, *period_ns, now);
                Ok(Applied::Done)
            }
            Event::StreamsAdvanced => {
                let keys: Vec<(String, Principal)> = self.streams.keys().cloned().collect();
                for (avs, token) in keys {
                    self.advance_stream(&avs, token, now);
                }
                Ok(Applied::Done)
            }
            Event::RewardsClaimed { owner, recipient } => {
                let positions: Vec<_> = self
                    .staker_index
                    .range(
                        (
                            owner.0,
                            Principal::management_canister(),
                            Principal::management_canister(),
                        )..,
                    )
                    .take_while(|(s, _, _)| *s == owner.0)
                    .copied()
                    .collect();
                let withdrawals: Vec<u64> = self
                    .withdrawals
                    .iter()
                    .filter(|(_, w)| w.staker == owner.0)
                    .map(|(id, _)| *id)
                    .collect();
                let owed_before = self
                    .rewards
                    .range((owner.0, Principal::management_canister())..)
                    .take_while(|((o, _), _)| *o == owner.0)
                    .any(|(_, v)| *v > 0);
                let mut accrues = owed_before;
                for (s, o, l) in &positions {
                    let pool = &self.pools[&(*o, *l)];
                    let stake = &self.delegations[&(*o, *l, *s)];
                    accrues |= pool.reward_index.keys().any(|t| stake.accrued(pool, t) > 0);
                }
                for id in &withdrawals {
                    let w = &self.withdrawals[id];
                    let pool = &self.pools[&(w.operator, w.ledger)];
                    accrues |= pool
                        .reward_index
                        .keys()
                        .any(|t| w.stake.accrued(pool, t) > 0);
                }
                if !accrues {
                    return Err(E::NothingToClaim);
                }
                for (s, o, l) in positions {
                    self.settle_delegation(o, l, s, now);
                }
                for id in withdrawals {
                    self.settle_withdrawal(id, now);
                }
                let owed: Vec<(Principal, u128)> = self
                    .rewards
                    .range((owner.0, Principal::management_canister())..)
                    .take_while(|((o, _), _)| *o == owner.0)
                    .filter(|(_, v)| **v > 0)
                    .map(|((_, t), v)| (*t, *v))
                    .collect();
                let mut out = Vec::new();
                for (token, amount) in owed {
                    self.rewards.remove(&(owner.0, token));
                    let op = self.journal(
                        OpKind::Payout { to: recipient.0 },
                        owner.0,
                        token,
                        amount,
                        now,
                    );
                    out.push((token, amount, op));
                }
                Ok(Applied::Claimed(out))
            }
            Event::DepositRequested {
                from,
                avs,
                token,
                amount,
                period_ns,
                created_at_time,
                memo,
            } => {
                self.check_deposit(avs, token.0, *amount, *period_ns, now)?;
                if memo.as_ref().is_some_and(|m| m.len() > MAX_MEMO) {
                    return Err(E::InvalidArgument(format!(
                        "a memo has at most {MAX_MEMO} bytes"
                    )));
                }
                // Restaking's own memos are reserved: a caller key equal to an unkeyed op's
                // (same time, memo and amount) would be the same ledger transaction, and its
                // `Duplicate` would credit tokens received once a second time.
                if memo
                    .as_ref()
                    .is_some_and(|m| m.starts_with(DEPOSIT_MEMO_PREFIX))
                {
                    return Err(E::InvalidArgument(
                        "memos starting with \"restaking-deposit\" are reserved".into(),
                    ));
                }
                let key = match (created_at_time, memo) {
                    (None, Some(_)) => {
                        return Err(E::InvalidArgument(
                            "a memo makes a deposit idempotent only with its created_at_time"
                                .into(),
                        ));
                    }
                    (None, None) => None,
                    (Some(t), memo) => {
                        if t.saturating_add(DEPOSIT_KEY_MAX_AGE_NS) < now {
                            return Err(E::InvalidArgument(format!(
                                "created_at_time {t} is older than {} h",
                                DEPOSIT_KEY_MAX_AGE_NS / 3600 / NANOS
                            )));
                        }
                        if *t > now.saturating_add(DEPOSIT_KEY_MAX_DRIFT_NS) {
                            return Err(E::InvalidArgument(format!(
                                "created_at_time {t} is in the future"
                            )));
                        }
                        let key = (*t, from.0, token.0, memo.clone().unwrap_or_default());
                        if self.deposit_keys.contains_key(&key) {
                            return Err(E::InvalidArgument(
                                "this created_at_time and memo were already used".into(),
                            ));
                        }
                        Some(key)
                    }
                };
                self.prune_deposit_keys(now);
                let op_id = self.next_op;
                let (created_at, memo) = match &key {
                    Some((t, _, _, m)) => (*t, m.clone()),
                    None => {
                        let mut m = DEPOSIT_MEMO_PREFIX.to_vec();
                        m.extend_from_slice(&op_id.to_be_bytes());
                        (now, m)
                    }
                };
                let id = self.journal(
                    OpKind::Deposit {
                        avs: avs.clone(),
                        period_ns: *period_ns,
                        memo,
                    },
                    from.0,
                    token.0,
                    *amount,
                    created_at,
                );
                if let Some(key) = key {
                    self.deposit_keys.insert(
                        key,
                        DepositEntry {
                            op_id: id,
                            avs: avs.clone(),
                            amount: *amount,
                            period_ns: *period_ns,
                            credited: false,
                        },
                    );
                }
                Ok(Applied::Op(id))
            }
            Event::DepositReceived { op_id, block: _ } => {
                let Some(Op {
                    kind:
                        OpKind::Deposit {
                            avs,
                            period_ns,
                            memo,
                        },
                    owner,
                    ledger,
                    amount,
                    created_at,
                }) = self.ops.get(op_id).cloned()
                else {
                    return Err(E::UnknownOp { op_id: *op_id });
                };
                self.ops.remove(op_id);
                if let Some(e) = self
                    .deposit_keys
                    .get_mut(&(created_at, owner, ledger, memo))
                    && e.op_id == *op_id
                {
                    e.credited = true;
                }
                self.credit_deposit(&avs, ledger, amount, period_ns, now);
                Ok(Applied::Done)
            }
            Event::DepositFailed { op_id, reason: _ } => {
                let Some(Op {
                    kind: OpKind::Deposit { memo, .. },
                    owner,
                    ledger,
                    created_at,
                    ..
                }) = self.ops.get(op_id).cloned()
                else {
                    return Err(E::UnknownOp { op_id: *op_id });
                };
                self.ops.remove(op_id);
                // Nothing moved: the key may be used again (e.g. after a new approval).
                let key = (created_at, owner, ledger, memo);
                if self
                    .deposit_keys
                    .get(&key)
                    .is_some_and(|e| e.op_id == *op_id)
                {
                    self.deposit_keys.remove(&key);
                }
                Ok(Applied::Done)
            }
            Event::OpSettled { op_id } => match self.ops.get(op_id) {
                Some(Op {
                    kind: OpKind::Lock { .. } | OpKind::Deposit { .. },
                    ..
                })
                | None => Err(E::UnknownOp { op_id: *op_id }),
                Some(_) => {
                    self.ops.remove(op_id);
                    Ok(Applied::Done)
                }
            },
        }
    }

    /// The operator, and the Confirmation AVSs (with their fractions) an equivocation of
    /// `node` at (`hub`, `height`) slashes: every Confirmation AVS the operator has an
    /// allocation to (current or pending), or the first Confirmation AVS when it has none (the
    /// proof is still used up and recorded). Errors when the proof cannot be used.
    pub fn check_equivocation(
        &self,
        node: Principal,
        hub: Principal,
        height: u64,
    ) -> R<(Principal, Vec<(String, u32)>)> {
        let operator = *self
            .node_owner
            .get(&node)
            .ok_or(RestakingError::UnknownNode { node })?;
        if self.used_evidence.contains(&(node, hub, height)) {
            return Err(RestakingError::EvidenceAlreadyUsed);
        }
        let confirmation: Vec<(&String, &Avs)> = self
            .avss
            .iter()
            .filter(|(_, a)| a.kind == AvsKind::Confirmation)
            .collect();
        let (first, _) = confirmation
            .first()
            .ok_or(RestakingError::NoConfirmationAvs)?;
        let allocated: Vec<(String, u32)> = confirmation
            .iter()
            .filter(|(id, _)| {
                self.pools
                    .range((operator, Principal::management_canister())..)
                    .take_while(|((o, _), _)| *o == operator)
                    .any(|(_, p)| {
                        p.allocs
                            .get(id.as_str())
                            .is_some_and(|a| a.encumbered() > 0)
                    })
            })
            .map(|(id, a)| ((*id).clone(), a.max_slash_bps))
            .collect();
        if allocated.is_empty() {
            let bps = self.avss[first.as_str()].max_slash_bps;
            return Ok((operator, vec![((*first).clone(), bps)]));
        }
        Ok((operator, allocated))
    }

    /// Validates a node registration (the checks of `NodeRegistered`) without applying it.
    pub fn check_node_registration(
        &self,
        operator: Principal,
        node: Principal,
        scheme: u8,
        key_name: &str,
        public_key: &[u8],
    ) -> R<Scheme> {
        use RestakingError as E;
        self.operator(operator)?;
        check_text("key name", key_name)?;
        let scheme = scheme_from_tag(scheme)
            .ok_or_else(|| E::InvalidArgument(format!("unknown scheme tag {scheme}")))?;
        if public_key.len() != scheme.public_key_len() {
            return Err(E::InvalidArgument(format!(
                "a {scheme} public key has {} bytes, got {}",
                scheme.public_key_len(),
                public_key.len()
            )));
        }
        if let Some(owner) = self.node_owner.get(&node) {
            return Err(E::NodeAlreadyRegistered {
                node,
                operator: *owner,
            });
        }
        Ok(scheme)
    }

    /// The registered node, for proof verification.
    pub fn node(&self, node: Principal) -> Option<(Principal, &Node)> {
        let operator = *self.node_owner.get(&node)?;
        Some((operator, self.operators.get(&operator)?.nodes.get(&node)?))
    }

    // ----- queries ---------------------------------------------------------------------

    /// What restaking holds locked in staking for `owner` in `ledger`: the settled amounts of
    /// its positions plus unlocks and slashes not yet executed by staking.
    pub fn locked_in_staking(&self, owner: Principal, ledger: Principal) -> u128 {
        let positions: u128 = self
            .staker_index
            .range(
                (
                    owner,
                    Principal::management_canister(),
                    Principal::management_canister(),
                )..,
            )
            .take_while(|(s, _, _)| *s == owner)
            .filter(|(_, _, l)| *l == ledger)
            .map(|(s, o, l)| self.delegations.get(&(*o, *l, *s)).map_or(0, |d| d.amount))
            .sum();
        let withdrawals: u128 = self
            .withdrawals
            .values()
            .filter(|w| w.staker == owner && w.ledger == ledger)
            .map(|w| w.stake.amount)
            .sum();
        let ops: u128 = self
            .ops
            .values()
            .filter(|op| op.owner == owner && op.ledger == ledger)
            .filter(|op| matches!(op.kind, OpKind::Unlock | OpKind::Slash { .. }))
            .map(|op| op.amount)
            .sum();
        positions + withdrawals + ops
    }

    /// Up to `limit` positions whose pool was slashed since their last settlement, found
    /// through `unsettled_pools` (never a scan of all delegations): per pool, delegations in
    /// key order from its sweep position, then its queued withdrawals. A run examines at most
    /// `4 × limit` delegations; when none of those needed settling (their stakers settled
    /// them), the last examined is returned anyway, so that settling it (a no-op) moves the
    /// sweep on. O(limit + withdrawals of the slashed pools) per run.
    pub fn unsettled(&self, limit: usize) -> (Vec<(Principal, Principal, Principal)>, Vec<u64>) {
        use std::ops::Bound;
        let mut d = Vec::new();
        let mut w = Vec::new();
        let mut examined = 0usize;
        let cap = limit.saturating_mul(4);
        for (o, l) in &self.unsettled_pools {
            if d.len() + w.len() >= limit || examined >= cap {
                break;
            }
            let Some(pool) = self.pools.get(&(*o, *l)) else {
                continue;
            };
            let start = match pool.sweep_from {
                Some(s) => Bound::Excluded((*o, *l, s)),
                None => Bound::Included((*o, *l, Principal::management_canister())),
            };
            let mut last = None;
            let mut found = false;
            for ((o2, l2, s), stake) in self.delegations.range((start, Bound::Unbounded)) {
                if (o2, l2) != (o, l) || d.len() + w.len() >= limit || examined >= cap {
                    break;
                }
                examined += 1;
                last = Some((*o2, *l2, *s));
                if stake.snap != pool.magnitude {
                    d.push((*o2, *l2, *s));
                    found = true;
                }
            }
            if !found && examined >= cap {
                d.extend(last);
            }
            for (_, _, id) in self
                .pool_withdrawals
                .range((*o, *l, 0)..=(*o, *l, u64::MAX))
            {
                if d.len() + w.len() >= limit {
                    break;
                }
                if self
                    .withdrawals
                    .get(id)
                    .is_some_and(|x| x.stake.snap != pool.magnitude)
                {
                    w.push(*id);
                }
            }
        }
        (d, w)
    }

    /// Withdrawals whose delay is over.
    pub fn due_withdrawals(&self, now: u64, limit: usize) -> Vec<u64> {
        self.withdrawals
            .iter()
            .filter(|(_, w)| w.complete_at <= now)
            .map(|(id, _)| *id)
            .take(limit)
            .collect()
    }

    pub fn due_slashes(&self, now: u64) -> Vec<u64> {
        self.slashes
            .iter()
            .filter(|(_, s)| s.status == SlashStatus::Pending && s.executable_at <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn staker_view(&self, staker: Principal, now: u64) -> StakerView {
        let mut delegations = Vec::new();
        let mut exposure = Vec::new();
        let mut owed: BTreeMap<Principal, u128> = self
            .rewards
            .range((staker, Principal::management_canister())..)
            .take_while(|((o, _), _)| *o == staker)
            .map(|((_, t), v)| (*t, *v))
            .collect();
        let expose = |pool: &Pool,
                      operator: Principal,
                      ledger: Principal,
                      value: u128,
                      out: &mut Vec<ExposureView>| {
            for (avs, a) in &pool.allocs {
                let mut a = a.clone();
                a.mature(now);
                if a.current == 0 || pool.magnitude == 0 {
                    continue;
                }
                out.push(ExposureView {
                    operator,
                    ledger,
                    avs: avs.clone(),
                    slashable: Nat::from(scale_down(value, a.current, pool.magnitude)),
                    until: a.pending.filter(|(t, _)| *t < a.current).map(|(_, at)| at),
                });
            }
        };
        for (s, o, l) in self
            .staker_index
            .range(
                (
                    staker,
                    Principal::management_canister(),
                    Principal::management_canister(),
                )..,
            )
            .take_while(|(s, _, _)| *s == staker)
        {
            let (Some(pool), Some(stake)) = (
                self.pools.get(&(*o, *l)),
                self.delegations.get(&(*o, *l, *s)),
            ) else {
                continue;
            };
            let value = stake.value(pool);
            delegations.push(DelegationView {
                operator: *o,
                ledger: *l,
                amount: Nat::from(value),
                locked: Nat::from(stake.amount),
            });
            expose(pool, *o, *l, value, &mut exposure);
            for t in pool.reward_index.keys() {
                *owed.entry(*t).or_default() += stake.accrued(pool, t);
            }
        }
        let mut withdrawals = Vec::new();
        for (id, w) in self.withdrawals.iter().filter(|(_, w)| w.staker == staker) {
            let Some(pool) = self.pools.get(&(w.operator, w.ledger)) else {
                continue;
            };
            let value = w.stake.value(pool);
            withdrawals.push(WithdrawalView {
                id: *id,
                operator: w.operator,
                ledger: w.ledger,
                amount: Nat::from(value),
                complete_at: w.complete_at,
                seconds_left: w.complete_at.saturating_sub(now) / NANOS,
            });
            let mut until = Vec::new();
            expose(pool, w.operator, w.ledger, value, &mut until);
            for mut e in until {
                e.until = Some(e.until.map_or(w.complete_at, |u| u.min(w.complete_at)));
                exposure.push(e);
            }
            for t in pool.reward_index.keys() {
                *owed.entry(*t).or_default() += w.stake.accrued(pool, t);
            }
        }
        let pending_ops = self
            .ops
            .iter()
            .filter(|(_, op)| op.owner == staker)
            .map(|(id, op)| op_view(*id, op))
            .collect();
        StakerView {
            delegations,
            withdrawals,
            exposure,
            pending_rewards: owed
                .into_iter()
                .filter(|(_, v)| *v > 0)
                .map(|(token, amount)| TokenAmount {
                    token,
                    amount: Nat::from(amount),
                })
                .collect(),
            pending_ops,
        }
    }

    fn slash_view(&self, id: u64, s: &SlashRecord) -> SlashView {
        SlashView {
            id,
            avs: s.avs.clone(),
            operator: s.operator,
            bps: s.bps,
            reason: s.reason.clone(),
            objective: s.objective,
            status: s.status.clone(),
            requested_at: s.requested_at,
            executable_at: s.executable_at,
            slashed: token_amounts(&s.slashed),
        }
    }

    pub fn operator_view(&self, operator: Principal, now: u64) -> Option<OperatorView> {
        let op = self.operators.get(&operator)?;
        let pools = self
            .pools
            .range((operator, Principal::management_canister())..)
            .take_while(|((o, _), _)| *o == operator)
            .map(|((_, ledger), pool)| {
                let mut pool = pool.clone();
                pool.mature(now);
                PoolView {
                    ledger: *ledger,
                    settled_total: Nat::from(pool.total_amount),
                    value: Nat::from(pool.value()),
                    delegators: pool.positions,
                    allocations: pool
                        .allocs
                        .iter()
                        .map(|(avs, a)| AllocationView {
                            avs: avs.clone(),
                            current_bps: bps_of(a.current, pool.magnitude),
                            current_amount: Nat::from(pool.allocated(a.current)),
                            pending_bps: a.pending.map(|(t, _)| bps_of(t, pool.magnitude)),
                            pending_effective_at: a.pending.map(|(_, at)| at),
                        })
                        .collect(),
                }
            })
            .collect();
        let (pending_bps, pending_at) = match op.pending_commission {
            Some((bps, at)) if at > now => (Some(bps), Some(at)),
            _ => (None, None),
        };
        Some(OperatorView {
            operator,
            name: op.name.clone(),
            metadata: op.metadata.clone(),
            commission_bps: op.commission_at(now),
            pending_commission_bps: pending_bps,
            pending_commission_effective_at: pending_at,
            nodes: op
                .nodes
                .iter()
                .map(|(node, n)| NodeView {
                    node: *node,
                    scheme: n.scheme,
                    key_name: n.key_name.clone(),
                    public_key: stratros_confirmation::Blob(n.public_key.clone()),
                })
                .collect(),
            pools,
            slashes: self
                .slashes
                .iter()
                .filter(|(_, s)| s.operator == operator)
                .map(|(id, s)| self.slash_view(*id, s))
                .collect(),
        })
    }

    pub fn avs_view(&self, id: &str, now: u64) -> Option<AvsView> {
        let a = self.avss.get(id)?;
        let mut allocated: BTreeMap<Principal, u128> = BTreeMap::new();
        for (_, o, l) in self
            .avs_pools
            .range(
                (
                    id.to_string(),
                    Principal::management_canister(),
                    Principal::management_canister(),
                )..,
            )
            .take_while(|(x, _, _)| x == id)
        {
            if let Some(pool) = self.pools.get(&(*o, *l)) {
                let mut alloc = pool.allocs.get(id).cloned().unwrap_or_default();
                alloc.mature(now);
                *allocated.entry(*l).or_default() += pool.allocated(alloc.current);
            }
        }
        Some(AvsView {
            id: id.to_string(),
            name: a.name.clone(),
            kind: a.kind,
            slashers: a.slashers.clone(),
            asset_weights: a
                .weights
                .iter()
                .map(|(l, w)| AssetWeight {
                    ledger: *l,
                    weight_bps: *w,
                })
                .collect(),
            max_slash_bps: a.max_slash_bps,
            veto_window_seconds: a.veto_window_ns / NANOS,
            resolvers: a.resolvers.clone(),
            reward_tokens: a.reward_tokens.clone(),
            allocated: token_amounts(&allocated),
            rewards_deposited: token_amounts(&a.deposited),
            asset_decimals: a
                .decimals
                .iter()
                .map(|(l, d)| AssetDecimals {
                    ledger: *l,
                    decimals: *d,
                })
                .collect(),
            redistribution_account: a.redistribution.clone(),
            slashed_tokens: token_amounts(&a.slashed),
            slashes: self
                .slashes
                .iter()
                .filter(|(_, s)| s.avs == id)
                .map(|(i, s)| self.slash_view(*i, s))
                .collect(),
        })
    }
}

fn bps_of(m: u128, magnitude: u128) -> u32 {
    if magnitude == 0 {
        0
    } else {
        scale_down(m.min(magnitude), u128::from(BPS), magnitude) as u32
    }
}

fn token_amounts(m: &BTreeMap<Principal, u128>) -> Vec<TokenAmount> {
    m.iter()
        .map(|(t, a)| TokenAmount {
            token: *t,
            amount: Nat::from(*a),
        })
        .collect()
}

pub fn op_view(op_id: u64, op: &Op) -> PendingOpView {
    PendingOpView {
        op_id,
        kind: match op.kind {
            OpKind::Lock { .. } => "lock",
            OpKind::Unlock => "unlock",
            OpKind::Slash { .. } => "slash",
            OpKind::Payout { .. } => "payout",
            OpKind::Deposit { .. } => "deposit",
        }
        .to_string(),
        owner: op.owner,
        ledger: op.ledger,
        amount: Nat::from(op.amount),
    }
}
