//! The staking state and the one function that changes it: [`State::apply`], used live and
//! when the event log is replayed after an upgrade.
//!
//! ## Rewards
//!
//! Each asset has one reward pool, in the asset's own token. A funding is added to what is
//! left and the sum is streamed linearly until `now + reward_period`. The stream is split
//! over positions by weight with a cumulative index (`index`, rewards per weight scaled by
//! 10^18, an unbounded integer): a position earns `weight * (index - its index) / 10^18`,
//! rounded down. The index increment is rounded down too and its remainder carried to the
//! next increment, so nothing is created; what the floors leave behind stays in the pool's
//! unpaid rewards (in the protocol's favour). While no weight is staked the stream pauses.
//!
//! The stream is advanced only at event timestamps and at time-lock expiries, which `apply`
//! processes in time order before each event: live and replay take the same steps, so they
//! compute the same floors.

use std::collections::BTreeMap;

use candid::Principal;
use stratros_staking_api::{BASE_WEIGHT_BPS, lock_weight_bps};

use crate::events::{Acct, Event, InKind, OutKind, SlashTo};
use crate::u256::{U256, mul_div};

const NANOS: u64 = 1_000_000_000;

/// The index's fixed-point scale.
const SCALE: u128 = 1_000_000_000_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub restaking: Option<Principal>,
    pub unbonding_seconds: u64,
    pub reward_period_seconds: u64,
    pub slash_to: SlashTo,
    pub reconcile_interval_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub symbol: String,
    pub decimals: u8,
    pub fee: u128,
    pub minting_account: Option<Acct>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asset {
    pub ledger: Principal,
    pub min_stake: u128,
    pub meta: Option<Meta>,
    pub staked: u128,
    pub locked: u128,
    pub unbonding: u128,
    pub weight: u128,
    pub unpaid_rewards: u128,
    pub in_flight: u128,
    pub slashed_unsent: u128,
    /// `slashed_unsent` per destination (the sum equals it).
    pub slash_queue: BTreeMap<SlashTo, u128>,
    pub pool: Pool,
    /// Lock bonus weight that ends at each (hour-aligned) time.
    pub expiring: BTreeMap<u64, u128>,
    /// The index when each expiry bucket ended: positions that expired there settle their
    /// bonus up to it, lazily.
    pub index_at: BTreeMap<u64, U256>,
}

impl Asset {
    /// Streams the pool to `t`, ending every lock bonus that expires on the way at its exact
    /// time.
    fn advance(&mut self, t: u64) {
        while let Some((&at, &bonus)) = self.expiring.first_key_value() {
            if at > t {
                break;
            }
            self.pool.advance(at, self.weight);
            self.index_at.insert(at, self.pool.index);
            self.weight -= bonus;
            self.expiring.remove(&at);
        }
        self.pool.advance(t, self.weight);
    }

    /// The pool and the index at `lock_until` as they would be at `t` (read-only).
    fn project(&self, t: u64, lock_until: u64) -> (U256, Option<U256>) {
        let mut pool = self.pool.clone();
        let mut weight = self.weight;
        let mut at_lock = self.index_at.get(&lock_until).copied();
        for (&at, &bonus) in self.expiring.range(..=t) {
            pool.advance(at, weight);
            if at == lock_until {
                at_lock = Some(pool.index);
            }
            weight -= bonus;
        }
        pool.advance(t, weight);
        (pool.index, at_lock)
    }
}

/// Locks end on the hour (rounded up), so that expiries bunch into few buckets.
pub const LOCK_GRANULARITY: u64 = 3600 * NANOS;

/// The reward stream of one asset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub index: U256,
    /// Remainder of the last index increment, in (reward * 10^18) units, below `weight`.
    pub carry: u128,
    pub undistributed: u128,
    pub last: u64,
    pub end: u64,
}

impl Pool {
    fn new() -> Self {
        Pool {
            index: U256::ZERO,
            carry: 0,
            undistributed: 0,
            last: 0,
            end: 0,
        }
    }

    /// Streams the pool up to `t` over `weight`.
    pub fn advance(&mut self, t: u64, weight: u128) {
        if t <= self.last {
            return;
        }
        if self.undistributed == 0 || self.last >= self.end {
            self.last = t;
            return;
        }
        if weight == 0 {
            // Nobody earns: pause the stream.
            self.end = self.end.saturating_add(t - self.last);
            self.last = t;
            return;
        }
        let upto = t.min(self.end);
        let dist = if upto == self.end {
            self.undistributed
        } else {
            // <= undistributed, since upto - last < end - last.
            mul_div(
                self.undistributed,
                u128::from(upto - self.last),
                u128::from(self.end - self.last),
            )
            .unwrap_or_else(|| panic!("BUG: streamed more than undistributed"))
        };
        let scaled = U256::mul(dist, SCALE)
            .checked_add(U256::from_u128(self.carry))
            .unwrap_or_else(|| panic!("BUG: reward index overflow"));
        let (increment, carry) = scaled.div_rem(weight);
        self.index = self
            .index
            .checked_add(increment)
            .unwrap_or_else(|| panic!("BUG: reward index overflow"));
        self.carry = carry;
        self.undistributed -= dist;
        self.last = t;
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub staked: u128,
    pub locked: u128,
    /// End of the time lock (ns), 0 when unlocked.
    pub lock_until: u64,
    pub weight_bps: u64,
    pub weight: u128,
    pub index: U256,
    pub rewards: u128,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unbonding {
    pub ledger: Principal,
    pub amount: u128,
    pub ready_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingIn {
    pub owner: Principal,
    pub ledger: Principal,
    pub amount: u128,
    pub kind: InKind,
    pub created_at_time: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOut {
    pub kind: OutKind,
    pub owner: Principal,
    pub ledger: Principal,
    pub to: Acct,
    pub amount: u128,
    pub fee: u128,
    pub created_at_time: u64,
    pub unbondings: Vec<(u64, Unbonding)>,
    /// Slash: the destination bucket it was taken from.
    pub slash_to: Option<SlashTo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    Lock,
    Unlock,
    Slash,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookRecord {
    pub kind: HookKind,
    pub owner: Principal,
    pub ledger: Principal,
    pub amount: u128,
    pub event_index: u64,
    /// Slash: the resolved destination.
    pub to: Option<SlashTo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    config: Config,
    assets: BTreeMap<Principal, Asset>,
    positions: BTreeMap<(Principal, Principal), Position>,
    unbondings: BTreeMap<(Principal, u64), Unbonding>,
    pending_in: BTreeMap<u64, PendingIn>,
    pending_out: BTreeMap<u64, PendingOut>,
    hooks: BTreeMap<u64, HookRecord>,
    next_op_id: u64,
    next_unbonding_id: u64,
    /// Number of events applied (the next event's index).
    events: u64,
}

/// The memo of journaled transfer `id`: `"stratros" ‖ id (u64 BE)`.
pub fn memo(id: u64) -> Vec<u8> {
    let mut m = b"stratros".to_vec();
    m.extend_from_slice(&id.to_be_bytes());
    m
}

impl State {
    /// The state before the first event.
    pub fn empty() -> Self {
        State {
            config: Config {
                restaking: None,
                unbonding_seconds: 0,
                reward_period_seconds: 0,
                slash_to: SlashTo::Burn,
                reconcile_interval_seconds: 60,
            },
            assets: BTreeMap::new(),
            positions: BTreeMap::new(),
            unbondings: BTreeMap::new(),
            pending_in: BTreeMap::new(),
            pending_out: BTreeMap::new(),
            hooks: BTreeMap::new(),
            next_op_id: 0,
            next_unbonding_id: 0,
            events: 0,
        }
    }

    // ----- reads ------------------------------------------------------------------------

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn asset(&self, ledger: Principal) -> Option<&Asset> {
        self.assets.get(&ledger)
    }
    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        self.assets.values()
    }
    pub fn position(&self, owner: Principal, ledger: Principal) -> Option<&Position> {
        self.positions.get(&(owner, ledger))
    }
    pub fn positions(&self) -> impl Iterator<Item = (&(Principal, Principal), &Position)> {
        self.positions.iter()
    }
    pub fn positions_of(&self, owner: Principal) -> impl Iterator<Item = (Principal, &Position)> {
        self.positions
            .range((owner, Principal::management_canister())..)
            .take_while(move |((o, _), _)| *o == owner)
            .map(|((_, l), p)| (*l, p))
    }
    pub fn unbondings_of(&self, owner: Principal) -> impl Iterator<Item = (u64, &Unbonding)> {
        self.unbondings
            .range((owner, 0)..=(owner, u64::MAX))
            .map(|((_, id), u)| (*id, u))
    }
    pub fn unbonding(&self, owner: Principal, id: u64) -> Option<&Unbonding> {
        self.unbondings.get(&(owner, id))
    }
    pub fn pending_in(&self) -> &BTreeMap<u64, PendingIn> {
        &self.pending_in
    }
    pub fn pending_out(&self) -> &BTreeMap<u64, PendingOut> {
        &self.pending_out
    }
    pub fn hook(&self, op_id: u64) -> Option<&HookRecord> {
        self.hooks.get(&op_id)
    }
    pub fn next_op_id(&self) -> u64 {
        self.next_op_id
    }
    pub fn next_unbonding_id(&self) -> u64 {
        self.next_unbonding_id
    }
    pub fn event_count(&self) -> u64 {
        self.events
    }

    /// Rewards `owner` would get for `ledger` if the stream were advanced to `now`
    /// (ignoring lock expiries in between; display only).
    pub fn pending_rewards_at(&self, owner: Principal, ledger: Principal, now: u64) -> u128 {
        let (Some(asset), Some(pos)) = (self.assets.get(&ledger), self.position(owner, ledger))
        else {
            return 0;
        };
        let (index, at_lock) = asset.project(now, pos.lock_until);
        match at_lock {
            Some(at) if pos.lock_until != 0 => {
                pos.rewards
                    + owed(pos.weight, &pos.index, &at)
                    + owed(weight_of(pos.staked, BASE_WEIGHT_BPS), &at, &index)
            }
            _ => pos.rewards + owed(pos.weight, &pos.index, &index),
        }
    }

    /// The position's weight now: its base weight once its lock has ended.
    fn effective(a: &Asset, p: &Position) -> u128 {
        if p.lock_until != 0 && p.lock_until <= a.pool.last {
            weight_of(p.staked, BASE_WEIGHT_BPS)
        } else {
            p.weight
        }
    }

    /// Checks the internal invariants: totals equal the sums over positions and journals.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (ledger, a) in &self.assets {
            let mut staked = 0u128;
            let mut locked = 0u128;
            let mut weight = 0u128;
            let mut rewards = 0u128;
            for ((_, l), p) in &self.positions {
                if l == ledger {
                    staked += p.staked;
                    locked += p.locked;
                    weight += Self::effective(a, p);
                    rewards += p.rewards;
                }
            }
            let unbonding: u128 = self
                .unbondings
                .values()
                .filter(|u| u.ledger == *ledger)
                .map(|u| u.amount)
                .sum();
            let in_flight: u128 = self
                .pending_out
                .values()
                .filter(|o| o.ledger == *ledger)
                .map(|o| o.amount)
                .sum();
            let checks = [
                ("staked", staked, a.staked),
                ("locked", locked, a.locked),
                ("weight", weight, a.weight),
                ("unbonding", unbonding, a.unbonding),
                ("in_flight", in_flight, a.in_flight),
            ];
            for (name, sum, total) in checks {
                if sum != total {
                    return Err(format!("{ledger}: sum of {name} {sum} != total {total}"));
                }
            }
            if rewards + a.pool.undistributed > a.unpaid_rewards {
                return Err(format!(
                    "{ledger}: accrued {rewards} + undistributed {} > unpaid {}",
                    a.pool.undistributed, a.unpaid_rewards
                ));
            }
        }
        Ok(())
    }

    // ----- the one way to change the state ------------------------------------------------

    /// Applies one event at `timestamp`. Panics (`BUG:`) on an event that does not fit the
    /// state: callers validate first.
    pub fn apply(&mut self, timestamp: u64, event: &Event) {
        for a in self.assets.values_mut() {
            a.advance(timestamp);
        }
        self.events += 1;
        match event.clone() {
            Event::Init {
                restaking,
                unbonding_seconds,
                reward_period_seconds,
                slash_to,
                reconcile_interval_seconds,
            } => {
                self.config = Config {
                    restaking: restaking.map(|p| p.0),
                    unbonding_seconds,
                    reward_period_seconds,
                    slash_to,
                    reconcile_interval_seconds,
                };
            }
            Event::ConfigUpdated {
                restaking,
                unbonding_seconds,
                reward_period_seconds,
                slash_to,
                reconcile_interval_seconds,
            } => {
                if let Some(r) = restaking {
                    self.config.restaking = Some(r.0);
                }
                if let Some(u) = unbonding_seconds {
                    self.config.unbonding_seconds = u;
                }
                if let Some(r) = reward_period_seconds {
                    self.config.reward_period_seconds = r;
                }
                if let Some(s) = slash_to {
                    self.config.slash_to = s;
                }
                if let Some(r) = reconcile_interval_seconds {
                    self.config.reconcile_interval_seconds = r;
                }
            }
            Event::AssetAdded { ledger, min_stake } => {
                let mut pool = Pool::new();
                pool.last = timestamp;
                self.assets.insert(
                    ledger.0,
                    Asset {
                        ledger: ledger.0,
                        min_stake,
                        meta: None,
                        staked: 0,
                        locked: 0,
                        unbonding: 0,
                        weight: 0,
                        unpaid_rewards: 0,
                        in_flight: 0,
                        slashed_unsent: 0,
                        slash_queue: BTreeMap::new(),
                        pool,
                        expiring: BTreeMap::new(),
                        index_at: BTreeMap::new(),
                    },
                );
            }
            Event::AssetMetadata {
                ledger,
                symbol,
                decimals,
                fee,
                minting_account,
            } => {
                self.asset_mut(ledger.0).meta = Some(Meta {
                    symbol,
                    decimals,
                    fee,
                    minting_account,
                });
            }
            Event::InStarted {
                id,
                owner,
                ledger,
                amount,
                kind,
                created_at_time,
            } => {
                self.take_op_id(id);
                self.pending_in.insert(
                    id,
                    PendingIn {
                        owner: owner.0,
                        ledger: ledger.0,
                        amount,
                        kind,
                        created_at_time,
                    },
                );
            }
            Event::InSettled { id, .. } => {
                let p = self
                    .pending_in
                    .remove(&id)
                    .unwrap_or_else(|| panic!("BUG: settling unknown incoming {id}"));
                match p.kind {
                    InKind::Stake { lock_seconds } | InKind::Deposit { lock_seconds } => {
                        self.credit(timestamp, p.owner, p.ledger, p.amount, lock_seconds);
                    }
                    InKind::Fund => {
                        let period = self.config.reward_period_seconds.saturating_mul(NANOS);
                        let a = self.asset_mut(p.ledger);
                        a.pool.undistributed += p.amount;
                        a.pool.last = timestamp;
                        a.pool.end = timestamp.saturating_add(period.max(1));
                        a.unpaid_rewards += p.amount;
                    }
                }
            }
            Event::InFailed { id } => {
                self.pending_in
                    .remove(&id)
                    .unwrap_or_else(|| panic!("BUG: failing unknown incoming {id}"));
            }
            Event::Unstaked {
                owner,
                ledger,
                amount,
                unbonding_id,
                ready_at,
            } => {
                assert_eq!(
                    unbonding_id, self.next_unbonding_id,
                    "BUG: unbonding ids out of order"
                );
                self.next_unbonding_id += 1;
                self.change_stake(owner.0, ledger.0, |p| {
                    assert!(
                        p.staked - p.locked >= amount,
                        "BUG: unstaking more than the free stake"
                    );
                    p.staked -= amount;
                });
                let a = self.asset_mut(ledger.0);
                a.staked -= amount;
                a.unbonding += amount;
                self.unbondings.insert(
                    (owner.0, unbonding_id),
                    Unbonding {
                        ledger: ledger.0,
                        amount,
                        ready_at,
                    },
                );
            }
            Event::UnstakeCancelled {
                owner,
                unbonding_id,
            } => {
                let u = self
                    .unbondings
                    .remove(&(owner.0, unbonding_id))
                    .unwrap_or_else(|| panic!("BUG: cancelling unknown unbonding"));
                let a = self.asset_mut(u.ledger);
                a.unbonding -= u.amount;
                a.staked += u.amount;
                self.change_stake(owner.0, u.ledger, |p| p.staked += u.amount);
            }
            Event::OutStarted {
                id,
                kind,
                owner,
                ledger,
                to,
                mut amount,
                fee,
                created_at_time,
                unbonding_ids,
                slash_to,
            } => {
                self.take_op_id(id);
                let slash_to = (kind == OutKind::Slash)
                    .then(|| slash_to.unwrap_or_else(|| self.config.slash_to.clone()));
                let mut unbondings = Vec::new();
                match kind {
                    OutKind::Withdraw => {
                        let mut sum = 0u128;
                        for uid in &unbonding_ids {
                            let u = self
                                .unbondings
                                .remove(&(owner.0, *uid))
                                .unwrap_or_else(|| panic!("BUG: withdrawing unknown unbonding"));
                            sum += u.amount;
                            unbondings.push((*uid, u));
                        }
                        assert_eq!(sum, amount, "BUG: withdrawal amount mismatch");
                        self.asset_mut(ledger.0).unbonding -= amount;
                    }
                    OutKind::Claim => {
                        // `amount` is an upper bound: everything accrued up to it is taken.
                        self.settle(owner.0, ledger.0);
                        let pos = self.position_mut(owner.0, ledger.0);
                        amount = amount.min(pos.rewards);
                        pos.rewards -= amount;
                        self.asset_mut(ledger.0).unpaid_rewards -= amount;
                    }
                    OutKind::Slash => {
                        let a = self.asset_mut(ledger.0);
                        a.slashed_unsent -= amount;
                        let key = slash_to.clone().unwrap_or(SlashTo::Burn);
                        let left = a.slash_queue.get(&key).copied().unwrap_or(0);
                        assert!(
                            left >= amount,
                            "BUG: sending more slashed tokens than queued"
                        );
                        if left == amount {
                            a.slash_queue.remove(&key);
                        } else {
                            a.slash_queue.insert(key, left - amount);
                        }
                    }
                }
                self.asset_mut(ledger.0).in_flight += amount;
                self.pending_out.insert(
                    id,
                    PendingOut {
                        kind,
                        owner: owner.0,
                        ledger: ledger.0,
                        to,
                        amount,
                        fee,
                        created_at_time,
                        unbondings,
                        slash_to,
                    },
                );
            }
            Event::OutResent {
                id,
                created_at_time,
            } => {
                let o = self
                    .pending_out
                    .get_mut(&id)
                    .unwrap_or_else(|| panic!("BUG: re-sending unknown outgoing {id}"));
                o.created_at_time = created_at_time;
            }
            Event::OutSettled { id, .. } => {
                let o = self
                    .pending_out
                    .remove(&id)
                    .unwrap_or_else(|| panic!("BUG: settling unknown outgoing {id}"));
                self.asset_mut(o.ledger).in_flight -= o.amount;
            }
            Event::OutFailed { id } => {
                let o = self
                    .pending_out
                    .remove(&id)
                    .unwrap_or_else(|| panic!("BUG: failing unknown outgoing {id}"));
                let a = self.asset_mut(o.ledger);
                a.in_flight -= o.amount;
                match o.kind {
                    OutKind::Withdraw => {
                        a.unbonding += o.amount;
                        for (uid, u) in o.unbondings {
                            self.unbondings.insert((o.owner, uid), u);
                        }
                    }
                    OutKind::Claim => {
                        a.unpaid_rewards += o.amount;
                        self.settle(o.owner, o.ledger);
                        self.position_mut(o.owner, o.ledger).rewards += o.amount;
                    }
                    OutKind::Slash => {
                        a.slashed_unsent += o.amount;
                        *a.slash_queue
                            .entry(o.slash_to.unwrap_or(SlashTo::Burn))
                            .or_default() += o.amount;
                    }
                }
            }
            Event::Locked {
                op_id,
                owner,
                ledger,
                amount,
            } => {
                self.record_hook(op_id, HookKind::Lock, owner.0, ledger.0, amount);
                let pos = self.position_mut(owner.0, ledger.0);
                assert!(pos.staked - pos.locked >= amount, "BUG: locking too much");
                pos.locked += amount;
                self.asset_mut(ledger.0).locked += amount;
            }
            Event::Unlocked {
                op_id,
                owner,
                ledger,
                amount,
            } => {
                self.record_hook(op_id, HookKind::Unlock, owner.0, ledger.0, amount);
                let pos = self.position_mut(owner.0, ledger.0);
                assert!(pos.locked >= amount, "BUG: unlocking too much");
                pos.locked -= amount;
                self.asset_mut(ledger.0).locked -= amount;
            }
            Event::Slashed {
                op_id,
                owner,
                ledger,
                amount,
                to,
            } => {
                let to = to.unwrap_or_else(|| self.config.slash_to.clone());
                self.record_hook(op_id, HookKind::Slash, owner.0, ledger.0, amount);
                if let Some(h) = self.hooks.get_mut(&op_id) {
                    h.to = Some(to.clone());
                }
                self.change_stake(owner.0, ledger.0, |p| {
                    assert!(p.locked >= amount, "BUG: slashing more than locked");
                    p.locked -= amount;
                    p.staked -= amount;
                });
                let a = self.asset_mut(ledger.0);
                a.locked -= amount;
                a.staked -= amount;
                a.slashed_unsent += amount;
                *a.slash_queue.entry(to).or_default() += amount;
            }
        }
    }

    // ----- helpers of apply ---------------------------------------------------------------

    fn take_op_id(&mut self, id: u64) {
        assert_eq!(id, self.next_op_id, "BUG: operation ids out of order");
        self.next_op_id += 1;
    }

    fn record_hook(
        &mut self,
        op_id: u64,
        kind: HookKind,
        owner: Principal,
        ledger: Principal,
        amount: u128,
    ) {
        let event_index = self.events - 1;
        let previous = self.hooks.insert(
            op_id,
            HookRecord {
                kind,
                owner,
                ledger,
                amount,
                event_index,
                to: None,
            },
        );
        assert!(
            previous.is_none(),
            "BUG: hook operation {op_id} applied twice"
        );
    }

    fn asset_mut(&mut self, ledger: Principal) -> &mut Asset {
        self.assets
            .get_mut(&ledger)
            .unwrap_or_else(|| panic!("BUG: unknown asset {ledger}"))
    }

    fn position_mut(&mut self, owner: Principal, ledger: Principal) -> &mut Position {
        self.positions
            .get_mut(&(owner, ledger))
            .unwrap_or_else(|| panic!("BUG: no position of {owner} in {ledger}"))
    }

    /// Moves the position's accrued rewards up to the pool's index; a lock that has ended
    /// earns its bonus up to its end only, then the position falls back to its base weight
    /// (the asset's total already dropped the bonus at that time).
    fn settle(&mut self, owner: Principal, ledger: Principal) {
        let Some(a) = self.assets.get(&ledger) else {
            panic!("BUG: unknown asset {ledger}");
        };
        let Some(p) = self.positions.get_mut(&(owner, ledger)) else {
            return;
        };
        if p.lock_until != 0 && p.lock_until <= a.pool.last {
            // No bucket means the bonus rounded to nothing: the split does not matter.
            let at = a
                .index_at
                .get(&p.lock_until)
                .copied()
                .unwrap_or(a.pool.index);
            p.rewards += owed(p.weight, &p.index, &at);
            p.index = at;
            p.lock_until = 0;
            p.weight_bps = BASE_WEIGHT_BPS;
            p.weight = weight_of(p.staked, BASE_WEIGHT_BPS);
        }
        p.rewards += owed(p.weight, &p.index, &a.pool.index);
        p.index = a.pool.index;
    }

    /// Settles, applies `change` to the position, recomputes its weight, and keeps the
    /// asset's total weight and expiry buckets in step.
    fn change_stake(
        &mut self,
        owner: Principal,
        ledger: Principal,
        change: impl FnOnce(&mut Position),
    ) {
        self.settle(owner, ledger);
        let pos = self.position_mut(owner, ledger);
        let (before, before_lock) = (pos.weight, pos.lock_until);
        let before_bonus = before - weight_of(pos.staked, BASE_WEIGHT_BPS);
        change(pos);
        pos.weight = weight_of(pos.staked, pos.weight_bps);
        let (after, after_lock) = (pos.weight, pos.lock_until);
        let after_bonus = after - weight_of(pos.staked, BASE_WEIGHT_BPS);
        let a = self.asset_mut(ledger);
        a.weight = a.weight - before + after;
        if before_lock != 0 && before_bonus > 0 {
            let bucket = a
                .expiring
                .get_mut(&before_lock)
                .unwrap_or_else(|| panic!("BUG: no expiry bucket for a running lock"));
            *bucket -= before_bonus;
            if *bucket == 0 {
                a.expiring.remove(&before_lock);
            }
        }
        if after_lock != 0 && after_bonus > 0 {
            *a.expiring.entry(after_lock).or_insert(0) += after_bonus;
        }
    }

    fn credit(
        &mut self,
        now: u64,
        owner: Principal,
        ledger: Principal,
        amount: u128,
        lock_seconds: Option<u64>,
    ) {
        let index = self.asset_mut(ledger).pool.index;
        self.positions
            .entry((owner, ledger))
            .or_insert_with(|| Position {
                staked: 0,
                locked: 0,
                lock_until: 0,
                weight_bps: BASE_WEIGHT_BPS,
                weight: 0,
                index,
                rewards: 0,
            });
        // Settle first: an ended lock is cleared before a new one is compared with it.
        self.settle(owner, ledger);
        let old_lock = self.position_mut(owner, ledger).lock_until;
        let mut new_lock = old_lock;
        if let Some(secs) = lock_seconds.filter(|s| *s > 0) {
            let end = now.saturating_add(secs.saturating_mul(NANOS));
            let end = end
                .div_ceil(LOCK_GRANULARITY)
                .saturating_mul(LOCK_GRANULARITY);
            new_lock = old_lock.max(end);
        }
        self.change_stake(owner, ledger, |p| {
            p.staked += amount;
            if new_lock != old_lock {
                p.lock_until = new_lock;
                p.weight_bps = lock_weight_bps((new_lock - now) / NANOS);
            }
        });
        self.asset_mut(ledger).staked += amount;
    }
}

/// `staked * bps / 10_000`, rounded down. Stakes are capped at `MAX_TOTAL` so that it fits.
pub fn weight_of(staked: u128, bps: u64) -> u128 {
    mul_div(staked, u128::from(bps), u128::from(BASE_WEIGHT_BPS))
        .unwrap_or_else(|| panic!("BUG: weight overflow"))
}

/// The largest total stake of one asset: weights (at most 2x) still fit in u128.
pub const MAX_TOTAL: u128 = u128::MAX / 4;

/// What `weight` earned from index `from` to index `to`, rounded down.
fn owed(weight: u128, from: &U256, to: &U256) -> u128 {
    let Some(delta) = to.checked_sub(*from).filter(|d| *d != U256::ZERO) else {
        return 0;
    };
    delta
        .checked_mul_u128(weight)
        .and_then(|x| x.div_rem(SCALE).0.to_u128())
        .unwrap_or_else(|| panic!("BUG: reward share overflow"))
}
