//! Thin ic-cdk entry points: decode, call into the flows, map.

use std::time::Duration;

use candid::{Nat, Principal};
use ic_cdk::api::{data_certificate, trap};
use ic_cdk::{init, post_upgrade, pre_upgrade, query, update};
use stratros_confirmation::Blob;

use crate::runtime::{IcRuntime, Runtime};
use crate::state::{certified_tree, entries, len, read_state};
use crate::types::*;
use crate::{lifecycle, ops};

/// How often the timer settles slashed positions and retries journaled ops.
const PROCESS_INTERVAL: Duration = Duration::from_secs(60);
const MAX_PAGE: u64 = 100;

fn arm_timers() {
    ic_cdk_timers::set_timer_interval(PROCESS_INTERVAL, || async {
        ops::process_ops(&IcRuntime).await
    });
}

#[init]
fn init(arg: Arg) {
    lifecycle::init(&IcRuntime, arg)
        .unwrap_or_else(|e| trap(format!("invalid init argument: {e}")));
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
    arm_timers();
}

#[update]
fn register_operator(args: RegisterOperatorArgs) -> Result<(), RestakingError> {
    ops::register_operator(&IcRuntime, args)
}

/// Takes effect after the commission delay.
#[update]
fn set_commission(commission_bps: u32) -> Result<(), RestakingError> {
    ops::set_commission(&IcRuntime, commission_bps)
}

/// Registers a node of the caller; the node canister must confirm scheme, key name and key.
#[update]
async fn register_node(args: RegisterNodeArgs) -> Result<(), RestakingError> {
    ops::register_node(&IcRuntime, args).await
}

/// Controllers only. Reads each weighted asset's decimals from its ledger.
#[update]
async fn register_avs(args: RegisterAvsArgs) -> Result<(), RestakingError> {
    ops::register_avs(&IcRuntime, args).await
}

/// Locks `amount` of the caller's stake in staking and delegates it; returns the op id.
#[update]
async fn delegate(args: DelegateArgs) -> Result<u64, RestakingError> {
    ops::delegate(&IcRuntime, args).await
}

/// Queues a withdrawal (slashable until it completes); returns its id.
#[update]
fn undelegate(args: DelegateArgs) -> Result<u64, RestakingError> {
    ops::undelegate(&IcRuntime, args)
}

#[update]
fn cancel_withdrawal(id: u64) -> Result<(), RestakingError> {
    ops::cancel_withdrawal(&IcRuntime, id)
}

#[update]
async fn complete_withdrawal(id: u64) -> Result<(), RestakingError> {
    ops::complete_withdrawal(&IcRuntime, id).await
}

/// The caller (an operator) sets its allocation of `ledger` to an AVS.
#[update]
fn allocate(args: AllocateArgs) -> Result<(), RestakingError> {
    ops::allocate(&IcRuntime, args)
}

#[update]
fn request_slash(args: RequestSlashArgs) -> Result<u64, RestakingError> {
    ops::request_slash(&IcRuntime, args)
}

#[update]
fn veto_slash(id: u64) -> Result<(), RestakingError> {
    ops::veto_slash(&IcRuntime, id)
}

#[update]
fn execute_slash(id: u64) -> Result<(), RestakingError> {
    ops::execute_slash(&IcRuntime, id)
}

#[update]
fn slash_equivocation(args: EquivocationArgs) -> Result<u64, RestakingError> {
    ops::slash_equivocation(&IcRuntime, args)
}

#[update]
async fn deposit_rewards(args: DepositRewardsArgs) -> Result<(), RestakingError> {
    ops::deposit_rewards(&IcRuntime, args).await
}

#[update]
async fn claim_rewards(recipient: Option<Principal>) -> Result<Vec<TokenAmount>, RestakingError> {
    ops::claim_rewards(&IcRuntime, recipient).await
}

/// Settles slashed positions and retries journaled ops now (anyone).
#[update]
async fn process() {
    ops::process_ops(&IcRuntime).await
}

#[query]
fn get_staker(staker: Principal) -> StakerView {
    read_state(|s| s.staker_view(staker, IcRuntime.time()))
}

#[query]
fn get_operator(operator: Principal) -> Option<OperatorView> {
    read_state(|s| s.operator_view(operator, IcRuntime.time()))
}

#[query]
fn get_avs(id: String) -> Option<AvsView> {
    read_state(|s| s.avs_view(&id, IcRuntime.time()))
}

/// What restaking holds locked in staking for `owner` in `ledger` (settled positions plus
/// unlocks and slashes not yet executed): equals staking's `locked` when no op is pending.
#[query]
fn locked_in_staking(owner: Principal, ledger: Principal) -> Nat {
    Nat::from(read_state(|s| s.locked_in_staking(owner, ledger)))
}

#[query]
fn pending_ops() -> Vec<PendingOpView> {
    read_state(|s| {
        s.ops
            .iter()
            .map(|(id, op)| crate::model::op_view(*id, op))
            .collect()
    })
}

/// A page of the hash-chained event log, with the certificate of its tip.
#[query]
fn get_events(start: u64, length: u64) -> EventsPage {
    let total = len();
    let start = start.min(total);
    let end = start.saturating_add(length.min(MAX_PAGE)).min(total);
    let mut tree = Vec::new();
    ciborium::into_writer(&certified_tree(), &mut tree)
        .unwrap_or_else(|e| panic!("BUG: a hash tree always encodes: {e}"));
    EventsPage {
        total,
        events: entries(start, end)
            .into_iter()
            .map(|(index, timestamp, cbor, hash, summary)| EventView {
                index,
                timestamp,
                cbor: Blob(cbor),
                hash: Blob(hash.to_vec()),
                summary,
            })
            .collect(),
        certificate: data_certificate().map(Blob),
        certified_tree: Blob(tree),
    }
}
