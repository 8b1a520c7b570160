//! The confirmation round: seal what is due, ask every node whose signature is missing (in
//! parallel, bounded wait), record each answer, retry failures with backoff.

use futures::future::join_all;

use crate::runtime::Runtime;
use crate::state::{SignOutcome, SignRequest, mutate_state, read_state};

/// Seals the next batch if one is due at `now`, certifies its header and returns its height.
pub fn seal_if_due<R: Runtime>(rt: &R, now: u64) -> Option<u64> {
    if read_state(|s| s.seal_deadline()).is_none_or(|d| d > now) {
        return None;
    }
    seal_now(rt, now)
}

/// Seals the pending records (up to one batch) whatever their age or number.
pub fn seal_now<R: Runtime>(rt: &R, now: u64) -> Option<u64> {
    let hub = rt.canister_id();
    let height = mutate_state(|s| s.seal(hub, now, &|| rt.instruction_counter()))?;
    rt.set_certified_data(&read_state(|s| s.certified_root()));
    Some(height)
}

/// One timer tick: seal one batch if due, then ask every node that is due, and wait for all
/// the answers. Re-arms the timer before the calls (for what is not in flight) and after each
/// answer.
pub async fn run_tick<R: Runtime>(rt: &R) {
    let now = rt.time();
    seal_if_due(rt, now);
    let requests = mutate_state(|s| s.due_requests(now));
    rt.schedule();
    join_all(requests.into_iter().map(|r| ask(rt, r))).await;
}

/// Asks one node to sign one header and records the outcome. The node's public key is
/// fetched from the management canister first, once: its signatures count only if they
/// verify under that key.
pub async fn ask<R: Runtime>(rt: &R, request: SignRequest) {
    let known = read_state(|s| s.node_key(&request.node, request.scheme, &request.key_name));
    if known.is_none() {
        let fetched = rt
            .node_public_key(request.node, request.scheme, &request.key_name)
            .await;
        match fetched {
            Ok(key) => mutate_state(|s| {
                s.set_node_key(request.node, request.scheme, &request.key_name, key)
            }),
            Err(message) => {
                let outcome = SignOutcome::CallFailed {
                    reject_code: None,
                    message: format!("fetching the node's public key: {message}"),
                };
                let now = rt.time();
                mutate_state(|s| s.apply_sign_outcome(request.height, request.node, outcome, now));
                rt.schedule();
                return;
            }
        }
    }
    let timeout = read_state(|s| s.config().call_timeout_seconds);
    let outcome = rt.sign_header(request.node, &request.header, timeout).await;
    let now = rt.time();
    mutate_state(|s| s.apply_sign_outcome(request.height, request.node, outcome, now));
    rt.schedule();
}
