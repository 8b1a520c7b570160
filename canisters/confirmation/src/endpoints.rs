//! Thin ic-cdk entry points: decode, call into the logic, map.

use candid::Principal;
use ic_cdk::api::{data_certificate, trap};
use ic_cdk::{init, post_upgrade, query, update};
use stratros_confirmation::{Blob, PolicyNode, QuorumRule, Receipt, RecordId, RecordInput};

use crate::runtime::{IcRuntime, Runtime};
use crate::state::{mutate_state, read_state};
use crate::types::{
    AdminError, Arg, Batch, BatchError, BatchPage, ListBatchesArgs, ReceiptError, Status,
    SubmitError, Submitted,
};
use crate::{admin, lifecycle, timer};

#[init]
fn init(arg: Arg) {
    lifecycle::init(&IcRuntime, arg)
        .unwrap_or_else(|e| trap(format!("invalid init argument: {e}")));
    timer::arm();
}

#[post_upgrade]
fn post_upgrade(arg: Option<Arg>) {
    lifecycle::post_upgrade(&IcRuntime, arg)
        .unwrap_or_else(|e| trap(format!("invalid upgrade argument: {e}")));
    // Calls in flight before the upgrade are forgotten: their nodes are due again now.
    timer::arm();
}

/// Submits records (authorized submitters only). Each gets an id at once; a `reference` seen
/// before from the same submitter returns the earlier id (`duplicate = true`).
#[update]
fn submit(records: Vec<RecordInput>) -> Result<Vec<Submitted>, SubmitError> {
    let rt = IcRuntime;
    let out = mutate_state(|s| s.submit(rt.caller(), records, rt.time()))?;
    if let Some(deadline) = read_state(|s| s.seal_deadline()) {
        timer::arm_at(deadline);
    }
    Ok(out)
}

/// `submit` with the records in the packed binary form (`stratros_confirmation::packed`):
/// the same checks and result, a fraction of the decoding cost per record.
#[update]
fn submit_packed(records: Blob) -> Result<Vec<Submitted>, SubmitError> {
    let rt = IcRuntime;
    let out = mutate_state(|s| s.submit_packed(rt.caller(), records.as_slice(), rt.time()))?;
    if let Some(deadline) = read_state(|s| s.seal_deadline()) {
        timer::arm_at(deadline);
    }
    Ok(out)
}

/// The receipt of a record of a confirmed batch, with the IC certificate and the witness of its
/// header. Only as a (non-replicated) query: the certificate exists only there.
#[query]
fn get_receipt(id: RecordId) -> Result<Receipt, ReceiptError> {
    let mut receipt = read_state(|s| s.receipt(id))?;
    receipt.certificate = Blob(data_certificate().ok_or(ReceiptError::CertificateUnavailable)?);
    Ok(receipt)
}

#[query]
fn get_batch(height: u64) -> Result<Batch, BatchError> {
    read_state(|s| s.batch(height))
}

/// Batches from `start`, at most 100.
#[query]
fn list_batches(args: ListBatchesArgs) -> BatchPage {
    read_state(|s| s.list_batches(args.start, args.limit))
}

#[query]
fn get_status() -> Status {
    let rt = IcRuntime;
    read_state(|s| s.status(rt.canister_id(), rt.cycle_balance()))
}

/// Controller: authorizes a submitter.
#[update]
fn add_submitter(submitter: Principal) -> Result<(), AdminError> {
    admin::add_submitter(&IcRuntime, submitter)
}

/// Controller: revokes a submitter (its records stay).
#[update]
fn remove_submitter(submitter: Principal) -> Result<(), AdminError> {
    admin::remove_submitter(&IcRuntime, submitter)
}

/// Controller: registers a confirmation node (or changes its scheme or key name). Batches
/// sealed from now on commit to the new policy.
#[update]
fn register_node(node: PolicyNode) -> Result<(), AdminError> {
    admin::register_node(&IcRuntime, node)
}

/// Controller: removes a node from the policy of future batches.
#[update]
fn remove_node(node: Principal) -> Result<(), AdminError> {
    admin::remove_node(&IcRuntime, node)
}

/// Controller: sets the quorum rule of future batches.
#[update]
fn set_quorum_rule(rule: QuorumRule) -> Result<(), AdminError> {
    admin::set_quorum_rule(&IcRuntime, rule)
}

/// Controller: seals the pending records now; returns the new height.
#[update]
fn seal_now() -> Result<u64, AdminError> {
    admin::seal_now(&IcRuntime)
}
