//! Thin ic-cdk entry points: decode, call into the logic, map.

use candid::Principal;
use ic_cdk::api::{data_certificate, trap};
use ic_cdk::{init, post_upgrade, pre_upgrade, query, update};
use ic_http_certification::{HttpRequest, HttpResponse};

use crate::runtime::IcRuntime;
use crate::state::read_state;
use stratros_confirmation::hub::RecordProof;

use crate::types::{
    AddError, AdminError, Arg, ConfigUpdate, ConfirmedRecord, ListRecordsArgs, ReadError,
    ReceiptRelayError, RecordBody, RecordPage, RecordView, ServiceStatus, TickReport,
};
use crate::{lifecycle, records};

/// The most records `list_records` returns.
const MAX_PAGE: u64 = 100;

#[init]
fn init(arg: Arg) {
    lifecycle::init(&IcRuntime, arg)
        .unwrap_or_else(|e| trap(format!("invalid init argument: {e}")));
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
    // Pending submissions and unconfirmed records are picked up again.
    records::reschedule(&IcRuntime);
}

/// Owner and writers: stores records and forwards them to the hub in one call. Records the
/// hub could not take stay `Pending` and are retried from a timer.
#[update]
async fn add_records(records: Vec<RecordBody>) -> Result<Vec<RecordView>, AddError> {
    records::add_records(&IcRuntime, records).await
}

/// Anyone: submits pending records and scans the hub for confirmations now (the timer does
/// the same).
#[update]
async fn tick() -> TickReport {
    records::tick(&IcRuntime).await
}

/// Reads a record of another service and checks with the hub that it is confirmed.
#[update]
async fn read_confirmed(service: Principal, id: u64) -> Result<ConfirmedRecord, ReadError> {
    records::read_confirmed(&IcRuntime, service, id).await
}

/// The hub's proof of a confirmed record (leaf, Merkle path, header, node confirmations),
/// relayed from the hub. With the hub's `get_header_certificate(height)` query (the IC
/// certificate and the header's witness) it is a full receipt for `stratros verify`.
#[update]
async fn get_receipt(id: u64) -> Result<RecordProof, ReceiptRelayError> {
    records::get_receipt(&IcRuntime, id).await
}

#[update]
fn add_writer(writer: Principal) -> Result<(), AdminError> {
    lifecycle::add_writer(&IcRuntime, writer)
}

#[update]
fn remove_writer(writer: Principal) -> Result<(), AdminError> {
    lifecycle::remove_writer(&IcRuntime, writer)
}

#[update]
fn set_config(update: ConfigUpdate) -> Result<(), AdminError> {
    lifecycle::set_config(&IcRuntime, update)
}

/// A record with its confirmation status and the hub record id its receipt is under.
#[query]
fn get_record(id: u64) -> Option<RecordView> {
    read_state(|s| s.view(id))
}

/// Records from `start`, at most 100.
#[query]
fn list_records(args: ListRecordsArgs) -> RecordPage {
    read_state(|s| {
        let total = s.record_count();
        let start = args.start.min(total);
        let end = start.saturating_add(args.limit.min(MAX_PAGE)).min(total);
        RecordPage {
            records: s.views(start, end),
            total,
        }
    })
}

#[query]
fn get_status() -> ServiceStatus {
    ServiceStatus {
        subnet: Some(ic_cdk::api::subnet_self()),
        ..read_state(|s| s.status())
    }
}

/// Certified HTTP: `/` (HTML status), `/status` (JSON), `/records/<id>` (JSON).
#[query]
fn http_request(request: HttpRequest) -> HttpResponse<'static> {
    let certificate = data_certificate();
    read_state(|s| s.pages().serve(request.url(), certificate.as_deref()))
}
