//! Thin ic-cdk entry points: decode, call into the logic, map.

use candid::Principal;
use ic_cdk::api::trap;
use ic_cdk::{init, post_upgrade, pre_upgrade, query, update};

use crate::runtime::{IcRuntime, Runtime};
use crate::state::read_state;
use crate::types::{
    AdminError, Arg, ConfigUpdate, CreateError, Event, Incomplete, KindInfo, ModuleError,
    Placement, RegistryStatus, Rollout, RolloutError, ServiceFilter, ServiceInfo, ServicePage,
    StartUploadArgs, UploadChunkArgs, UploadProgress, VersionInfo,
};
use crate::{lifecycle, modules, rollout, services};

/// The most events `get_events` returns.
const MAX_EVENTS: u64 = 100;

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
}

/// Controllers: adds a service kind.
#[update]
fn add_kind(kind: String) -> Result<(), AdminError> {
    lifecycle::add_kind(&IcRuntime, kind)
}

#[update]
fn set_config(update: ConfigUpdate) -> Result<(), AdminError> {
    lifecycle::set_config(&IcRuntime, update)
}

/// Controllers: announces a module (kind, SHA-256, size); returns the upload id.
#[update]
fn start_upload(args: StartUploadArgs) -> Result<u64, ModuleError> {
    modules::start_upload(&IcRuntime, args)
}

/// Controllers: appends a chunk of an upload, in order.
#[update]
fn upload_chunk(args: UploadChunkArgs) -> Result<UploadProgress, ModuleError> {
    modules::upload_chunk(&IcRuntime, args)
}

/// Controllers: checks a complete upload and publishes it as the kind's next version.
#[update]
fn publish_module(upload: u64) -> Result<VersionInfo, ModuleError> {
    modules::publish_module(&IcRuntime, upload)
}

/// Controllers: creates, installs, authorizes and records a service of `kind`.
#[update]
async fn create_service(
    kind: String,
    name: String,
    placement: Placement,
) -> Result<ServiceInfo, CreateError> {
    services::create_service(&IcRuntime, kind, name, placement).await
}

/// Owner or controllers: finishes a service that stopped halfway.
#[update]
async fn retry_service(canister: Principal) -> Result<ServiceInfo, CreateError> {
    services::retry_service(&IcRuntime, canister).await
}

/// Owner or controllers: stops and deletes a service canister.
#[update]
async fn delete_service(canister: Principal) -> Result<(), AdminError> {
    services::delete_service(&IcRuntime, canister).await
}

/// Controllers: reads cycle balances now (one service, or the ten oldest readings).
#[update]
async fn refresh_cycles(canister: Option<Principal>) -> Result<u32, AdminError> {
    services::refresh_cycles(&IcRuntime, canister).await
}

/// Controllers: rolling upgrade of every instance of `kind` to `version`.
#[update]
fn upgrade_services(kind: String, version: u32) -> Result<Rollout, RolloutError> {
    rollout::upgrade_services(&IcRuntime, kind, version)
}

/// Controllers: continues a failed or interrupted rollout.
#[update]
fn resume_rollout() -> Result<Rollout, RolloutError> {
    rollout::resume_rollout(&IcRuntime)
}

/// The current (or last) rollout with per-instance status.
#[query]
fn get_rollout() -> Option<Rollout> {
    read_state(|s| s.rollout())
}

#[query]
fn get_service(canister: Principal) -> Option<ServiceInfo> {
    read_state(|s| s.service(&canister))
}

/// The directory, filtered by kind, owner and subnet, in pages of at most 100.
#[query]
fn list_services(filter: ServiceFilter) -> ServicePage {
    read_state(|s| s.page(&filter))
}

/// Services not `Active` and creations without a known canister: what needs a retry or a
/// cleanup.
#[query]
fn list_incomplete() -> Incomplete {
    read_state(|s| Incomplete {
        services: s.services_where(|x| {
            !matches!(
                x.state,
                crate::types::ServiceState::Active | crate::types::ServiceState::Deleted
            )
        }),
        creations: s.creations(),
    })
}

#[query]
fn list_kinds() -> Vec<KindInfo> {
    read_state(|s| s.kinds())
}

/// The event log from `start`, at most 100.
#[query]
fn get_events(start: u64, limit: u64) -> Vec<Event> {
    read_state(|s| s.events(start, limit.min(MAX_EVENTS)))
}

#[query]
fn get_status() -> RegistryStatus {
    let cycles = IcRuntime.cycle_balance();
    read_state(|s| RegistryStatus {
        hub: s.meta().hub,
        cmc: s.meta().cmc,
        config: s.config().clone(),
        kinds: s.kind_count(),
        services: s.service_count(),
        cycles,
        events: s.event_count(),
    })
}
