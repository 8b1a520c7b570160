//! Thin ic-cdk entry points: decode, call into the logic, map.

use std::time::Duration;

use candid::Principal;
use ic_cdk::api::{data_certificate, trap};
use ic_cdk::{init, post_upgrade, pre_upgrade, query, update};
use stratros_confirmation::{BatchHeader, Blob};

use crate::log::{MAX_PAGE, witness_cbor};
use crate::runtime::{IcRuntime, Runtime};
use crate::state::read_state;
use crate::types::{Arg, GetLogArgs, LogEntry, LogPage, NodeInfo, SignError, SignResponse};
use crate::{lifecycle, signer};

/// Fetches the public key right after install or upgrade, if it is not cached yet (a failure
/// is harmless: `sign_header` fetches it lazily).
fn arm_public_key_fetch() {
    if read_state(|s| s.public_key().is_none()) {
        ic_cdk_timers::set_timer(Duration::ZERO, async {
            let _ = signer::ensure_public_key(&IcRuntime).await;
        });
    }
}

#[init]
fn init(arg: Arg) {
    lifecycle::init(&IcRuntime, arg)
        .unwrap_or_else(|e| trap(format!("invalid init argument: {e}")));
    arm_public_key_fetch();
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
    arm_public_key_fetch();
}

/// Signs a batch header for the hub (only the hub may call). The same header again returns
/// the stored signature; a different header for a signed (hub, height) is refused.
#[update]
async fn sign_header(header: BatchHeader) -> Result<SignResponse, SignError> {
    signer::sign_header(&IcRuntime, header).await
}

/// The node's public key, fetched now if it is not cached yet.
#[update]
async fn fetch_public_key() -> Result<Blob, SignError> {
    signer::ensure_public_key(&IcRuntime).await
}

#[query]
fn node_info() -> NodeInfo {
    let rt = IcRuntime;
    read_state(|s| NodeInfo {
        node: rt.canister_id(),
        scheme: s.scheme(),
        key_name: s.key_name().to_string(),
        hub: s.hub(),
        public_key: s.public_key().cloned(),
        log_length: s.log_len(),
        signature_fee: rt.threshold_fee(s.scheme(), s.key_name()).ok(),
        liquid_cycles: rt.liquid_cycles(),
    })
}

/// The node's derived public key, once fetched.
#[query]
fn public_key() -> Option<Blob> {
    read_state(|s| s.public_key().cloned())
}

/// What the node signed for `(hub, height)`, if anything.
#[query]
fn get_signed(hub: Principal, height: u64) -> Option<LogEntry> {
    read_state(|s| s.signed_at(hub, height))
}

/// A page of the log in signing order, with the certificate and the witness that prove it.
#[query]
fn get_log(args: GetLogArgs) -> LogPage {
    read_state(|s| {
        let total = s.log_len();
        let start = args.start.min(total);
        let end = start.saturating_add(args.limit.min(MAX_PAGE)).min(total);
        LogPage {
            entries: s.entries(start, end),
            total,
            certificate: data_certificate().map(Blob),
            witness: Blob(witness_cbor(&s.certified_log().witness(start, end))),
        }
    })
}
