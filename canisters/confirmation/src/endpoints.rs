//! Thin ic-cdk entry points: decode, call into the logic, map.

use candid::Principal;
use ic_cdk::api::{data_certificate, trap};
use ic_cdk::{init, post_upgrade, pre_upgrade, query, update};
use stratros_confirmation::{Blob, PolicyNode, QuorumRule, Receipt, RecordId, RecordInput};

use crate::runtime::{IcRuntime, Runtime};
use crate::state::{mutate_state, read_state};
use crate::types::{
    AdminError, Arg, Batch, BatchError, BatchPage, CreditWithdrawal, DepositFeesArgs, FeeAccount,
    FeeDeposit, FeeError, HeaderCertificate, ListBatchesArgs, ReceiptError, RecordProof, Status,
    SubmitError, Submitted, WithdrawCreditArgs,
};
use crate::{admin, lifecycle, payments, timer};

#[init]
fn init(arg: Arg) {
    lifecycle::init(&IcRuntime, arg)
        .unwrap_or_else(|e| trap(format!("invalid init argument: {e}")));
    timer::arm();
    timer::arm_fees();
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
    // The hub was stopped (pre_upgrade refuses otherwise), so no call is in flight: the
    // timers pick up whatever is due.
    timer::arm();
    timer::arm_fees();
}

/// Submits records (authorized submitters only). Each gets an id at once; a `reference` seen
/// before from the same submitter returns the earlier id (`duplicate = true`).
///
/// `hidden`: with `decode_with`, ic-cdk would export the argument as `blob`; the Candid
/// signature comes from `candid_submit` below instead.
#[update(decode_with = "decode_submit", hidden)]
fn submit(records: Vec<RecordInput>) -> Result<Vec<Submitted>, SubmitError> {
    let rt = IcRuntime;
    let out = mutate_state(|s| s.submit(rt.caller(), records, rt.time()))?;
    if let Some(deadline) = read_state(|s| s.seal_deadline()) {
        timer::arm_at(deadline);
    }
    Ok(out)
}

/// `submit` as `export_candid!` lists it: the signature users see, `(vec RecordInput)`.
#[candid::candid_method(update, rename = "submit")]
#[allow(dead_code, unused_variables)]
fn candid_submit(records: Vec<RecordInput>) -> Result<Vec<Submitted>, SubmitError> {
    unreachable!("only its signature is used")
}

/// `submit`'s argument: the standard encoding of `vec RecordInput` is parsed directly, any other
/// goes through the generic decoder as ic-cdk would run it
/// (`stratros_confirmation::submit_candid`); an undecodable argument traps, as before.
fn decode_submit(bytes: Vec<u8>) -> Vec<RecordInput> {
    stratros_confirmation::decode_submit_arg(&bytes)
        .unwrap_or_else(|e| trap(format!("failed to decode the argument of submit: {e}")))
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

/// A confirmed record's leaf, Merkle path, header and confirmations: its receipt without the
/// certificate, callable by canisters (replicated) so they can relay it. The certificate and
/// witness come from the query `get_header_certificate`.
#[query]
fn get_record_proof(id: RecordId) -> Result<RecordProof, ReceiptError> {
    read_state(|s| s.record_proof(id))
}

/// The IC certificate and the witness of `headers/<height>` (query only: in a replicated call
/// the certificate is empty).
#[query]
fn get_header_certificate(height: u64) -> Result<HeaderCertificate, BatchError> {
    read_state(|s| s.header_certificate(height, data_certificate().unwrap_or_default()))
}

/// Submitters: pulls `amount` (approve `amount` + the ledger fee to the hub first) and adds it
/// to the caller's fee credit. Retry with the same `created_at_time` after an unknown outcome.
#[update]
async fn deposit_fees(args: DepositFeesArgs) -> Result<FeeDeposit, FeeError> {
    payments::deposit_fees(&IcRuntime, args).await
}

/// Takes `amount` out of the caller's fee credit and sends it, less the ledger fee, to `to`
/// (default: the caller). Repeating a request with the same `created_at_time` is the same
/// withdrawal: it is debited once, and retried while its ledger outcome is unknown (the fee
/// timer retries it too).
#[update]
async fn withdraw_credit(args: WithdrawCreditArgs) -> Result<CreditWithdrawal, FeeError> {
    payments::withdraw_credit(&IcRuntime, args).await
}

/// A credit withdrawal by id.
#[query]
fn get_withdrawal(id: u64) -> Option<CreditWithdrawal> {
    payments::withdrawal(id)
}

/// A submitter's fee account (the caller's by default).
#[query]
fn get_fee_account(submitter: Option<Principal>) -> FeeAccount {
    let who = submitter.unwrap_or_else(|| IcRuntime.caller());
    read_state(|s| s.fee_account(who))
}

/// Anyone: runs one fee forwarding step now (the timer does it every
/// `forward_interval_seconds`). Returns what happened.
#[update]
async fn forward_fees() -> String {
    payments::forward_fees(&IcRuntime).await
}

/// Controllers: the principals that may add and remove submitters besides the controllers.
#[update]
fn set_registrars(registrars: Vec<Principal>) -> Result<(), AdminError> {
    admin::set_registrars(&IcRuntime, registrars)
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

/// Controllers and registrars: authorizes a submitter.
#[update]
fn add_submitter(submitter: Principal) -> Result<(), AdminError> {
    admin::add_submitter(&IcRuntime, submitter)
}

/// Controllers and registrars: revokes a submitter (its records stay).
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
