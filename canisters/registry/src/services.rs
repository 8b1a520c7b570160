//! Creating service canisters, driving them to `Active`, retrying, deleting, and reading
//! their cycle balances.

use candid::Principal;

use crate::lifecycle::check_name;
use crate::runtime::{
    CANISTER_ERROR, CallError, CmcCanisterSettings, CmcCreateCanisterArg, CmcCreateCanisterError,
    InstallMode, Runtime, SYS_UNKNOWN, SubnetFilter, SubnetSelection,
};
use crate::service_api;
use crate::state::{mutate_state, read_state};
use crate::types::{
    AdminError, CreateError, EventKind, PendingCreation, Placement, ServiceInfo, ServiceState, Step,
};

/// Largest module plus argument installed with one `install_code` message: the IC's message
/// limit is 2 MiB; 64 KiB stay for the Candid envelope. Larger modules go in chunks.
pub const DIRECT_INSTALL_MAX: usize = 2 * 1024 * 1024 - 64 * 1024;
/// The chunk size of the management canister's chunk store.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Cycle balances read per timer tick.
const CYCLE_CHECKS_PER_TICK: usize = 10;
/// Hub registrations retried per timer tick.
const REGISTRATIONS_PER_TICK: usize = 5;

/// Holds a service for one operation; released on drop (also when the future is dropped).
pub struct ServiceLock(Principal);

impl ServiceLock {
    /// `None` when the service is held. The lock is built only when taken: one built eagerly
    /// (`then_some`) and refused would be dropped at once, releasing the holder's lock.
    pub fn take(canister: Principal) -> Option<ServiceLock> {
        mutate_state(|s| s.try_lock_service(canister)).then(|| ServiceLock(canister))
    }
}

impl Drop for ServiceLock {
    fn drop(&mut self) {
        mutate_state(|s| s.unlock_service(&self.0));
    }
}

struct CreatorLock(Principal);

impl Drop for CreatorLock {
    fn drop(&mut self) {
        mutate_state(|s| s.unlock_creator(&self.0));
    }
}

/// Installs `module` with one `install_code` when it fits in a message, else through the
/// target's chunk store (`upload_chunk` per MiB, `install_chunked_code`, then the store is
/// cleared so the service does not pay for it). Both are atomic on the IC: a failed install
/// leaves the canister as it was.
pub async fn install<R: Runtime>(
    rt: &R,
    canister: Principal,
    mode: InstallMode,
    module: Vec<u8>,
    module_hash: Vec<u8>,
    arg: Vec<u8>,
) -> Result<(), CallError> {
    if module.len() + arg.len() <= DIRECT_INSTALL_MAX {
        return rt.install_code(canister, mode, module, arg).await;
    }
    let mut hashes = Vec::new();
    for chunk in module.chunks(CHUNK_BYTES) {
        hashes.push(rt.upload_chunk(canister, chunk.to_vec()).await?);
    }
    let result = rt
        .install_chunked_code(canister, mode, hashes, module_hash, arg)
        .await;
    // Best effort: a chunk left behind only costs the service storage, and the next chunked
    // install uploads (and deduplicates) again.
    let _ = rt.clear_chunk_store(canister).await;
    result
}

fn set_state(canister: Principal, state: ServiceState, now: u64) -> Option<ServiceInfo> {
    mutate_state(|s| {
        let mut info = s.service(&canister)?;
        info.state = state;
        info.updated_at_nanos = now;
        s.put_service(info.clone());
        Some(info)
    })
}

fn fail(canister: Principal, step: Step, error: String, now: u64) -> CreateError {
    let attempts = read_state(|s| s.service(&canister)).map_or(1, |s| match s.state {
        ServiceState::Failed {
            step: old,
            attempts,
            ..
        } if old == step => attempts + 1,
        _ => 1,
    });
    set_state(
        canister,
        ServiceState::Failed {
            step,
            error: error.clone(),
            attempts,
        },
        now,
    );
    mutate_state(|s| {
        s.log(
            now,
            EventKind::StepFailed {
                canister,
                step,
                message: error.clone(),
            },
        )
    });
    CreateError::StepFailed {
        canister,
        step,
        message: error,
    }
}

/// Whether a rejected creation call certainly did nothing. The management canister
/// executes `create_canister` atomically, so any reject means no canister. A CMC call that
/// trapped (`CANISTER_ERROR`) or whose answer was lost (`SYS_UNKNOWN`, or no reject code)
/// may have created one.
fn certainly_nothing_created(via_cmc: bool, e: &CallError) -> bool {
    if !via_cmc {
        return true;
    }
    !matches!(
        e.reject_code,
        Some(CANISTER_ERROR) | Some(SYS_UNKNOWN) | None
    )
}

/// Controllers: creates a service canister of `kind` (its current version) on the chosen
/// placement, installs it, authorizes it at the hub and records it. The caller becomes its
/// owner; the registry and the owner are its controllers.
pub async fn create_service<R: Runtime>(
    rt: &R,
    kind: String,
    name: String,
    placement: Placement,
) -> Result<ServiceInfo, CreateError> {
    let caller = rt.caller();
    if !rt.is_controller(&caller) {
        return Err(CreateError::NotAuthorized { caller });
    }
    check_name("name", &name).map_err(|reason| CreateError::InvalidName { reason })?;
    let info = read_state(|s| s.kind(&kind))
        .ok_or_else(|| CreateError::UnknownKind { kind: kind.clone() })?;
    let version = info
        .current_version
        .and_then(|v| info.versions.iter().find(|i| i.version == v).cloned())
        .ok_or_else(|| CreateError::NoVersion { kind: kind.clone() })?;
    let meta = read_state(|s| s.meta().clone());
    let selection = match &placement {
        Placement::OwnSubnet => None,
        Placement::Subnet(subnet) => Some(SubnetSelection::Subnet { subnet: *subnet }),
        Placement::SubnetType(t) => {
            check_name("subnet type", t)
                .map_err(|reason| CreateError::PlacementUnavailable { reason })?;
            Some(SubnetSelection::Filter(SubnetFilter {
                subnet_type: Some(t.clone()),
            }))
        }
    };
    let cmc = match (&selection, meta.cmc) {
        (Some(_), None) => {
            return Err(CreateError::PlacementUnavailable {
                reason: "no cycles minting canister is configured: only OwnSubnet placement"
                    .to_string(),
            });
        }
        (_, cmc) => cmc,
    };
    // The creation fee of the registry's subnet is attached on top of `service_cycles`; on
    // a larger subnet the fee is higher and the service gets a little less.
    let attached = meta
        .config
        .service_cycles
        .saturating_add(rt.create_canister_fee());
    let required = attached.saturating_add(meta.config.reserve_cycles);
    let balance = rt.cycle_balance();
    if balance < required {
        return Err(CreateError::InsufficientCycles { balance, required });
    }
    if !mutate_state(|s| s.try_lock_creator(caller)) {
        return Err(CreateError::Busy);
    }
    let _creator = CreatorLock(caller);

    // The intent is recorded before the call: if the answer never comes (an upgrade of the
    // registry), the creation is listed with an unknown outcome instead of being forgotten.
    let now = rt.time();
    let op = mutate_state(|s| {
        let op = s.new_creation(PendingCreation {
            op: 0,
            kind: kind.clone(),
            name: name.clone(),
            owner: caller,
            placement: placement.clone(),
            cycles: attached,
            started_at_nanos: now,
            outcome_unknown: None,
        });
        s.log(
            now,
            EventKind::CreationStarted {
                op,
                kind: kind.clone(),
                cycles: attached,
            },
        );
        op
    });
    let controllers = vec![rt.canister_self(), caller];
    let created: Result<Principal, (bool, String, Option<u32>)> = match (selection, cmc) {
        (Some(selection), Some(cmc)) => {
            let arg = CmcCreateCanisterArg {
                settings: Some(CmcCanisterSettings {
                    controllers: Some(controllers),
                    ..Default::default()
                }),
                subnet_type: None,
                subnet_selection: Some(selection),
            };
            match rt.cmc_create_canister(cmc, arg, attached).await {
                Ok(Ok(id)) => Ok(id),
                Ok(Err(CmcCreateCanisterError::Refunded {
                    refund_amount,
                    create_error,
                })) => Err((
                    true,
                    format!("the CMC refunded {refund_amount} cycles: {create_error}"),
                    None,
                )),
                Ok(Err(CmcCreateCanisterError::RefundFailed {
                    create_error,
                    refund_error,
                })) => Err((
                    true,
                    format!("the CMC could not refund: {create_error}; {refund_error}"),
                    None,
                )),
                Err(e) => Err((
                    certainly_nothing_created(true, &e),
                    e.message.clone(),
                    e.reject_code,
                )),
            }
        }
        _ => rt
            .create_canister(controllers, attached)
            .await
            .map_err(|e| {
                (
                    certainly_nothing_created(false, &e),
                    e.message,
                    e.reject_code,
                )
            }),
    };
    let now = rt.time();
    let canister = match created {
        Ok(canister) => canister,
        Err((true, message, reject_code)) => {
            mutate_state(|s| {
                s.remove_creation(op);
                s.log(
                    now,
                    EventKind::CreationFailed {
                        op,
                        message: message.clone(),
                    },
                );
            });
            return Err(CreateError::CreateFailed {
                reject_code,
                message,
            });
        }
        Err((false, message, _)) => {
            mutate_state(|s| {
                if let Some(mut c) = s.creation(op) {
                    c.outcome_unknown = Some(message.clone());
                    s.put_creation(c);
                }
                s.log(now, EventKind::CreationOutcomeUnknown { op });
            });
            return Err(CreateError::OutcomeUnknown { op, message });
        }
    };
    let subnet = match &placement {
        Placement::OwnSubnet => Some(rt.subnet_self()),
        Placement::Subnet(subnet) => Some(*subnet),
        Placement::SubnetType(_) => None,
    };
    let service = ServiceInfo {
        canister,
        kind,
        name,
        owner: caller,
        version: version.version,
        module_hash: version.hash.clone(),
        placement,
        subnet,
        state: ServiceState::Installing,
        initial_cycles: attached,
        cycles: None,
        cycles_checked_at_nanos: None,
        created_at_nanos: now,
        updated_at_nanos: now,
    };
    mutate_state(|s| {
        s.remove_creation(op);
        s.put_service(service);
        s.log(
            now,
            EventKind::ServiceCreated {
                op,
                canister,
                cycles: attached,
            },
        );
    });
    let Some(_lock) = ServiceLock::take(canister) else {
        // Only when too many operations are in flight: the service is recorded as
        // `Installing` and `retry_service` finishes it.
        return Err(CreateError::Busy);
    };
    drive(rt, canister, false).await
}

/// Drives a service from where it stands to `Active`. With `reconcile`, an install whose
/// outcome may be unknown is first checked with `canister_status` (module hash).
async fn drive<R: Runtime>(
    rt: &R,
    canister: Principal,
    reconcile: bool,
) -> Result<ServiceInfo, CreateError> {
    loop {
        let service =
            read_state(|s| s.service(&canister)).ok_or(CreateError::UnknownService { canister })?;
        let hub = read_state(|s| s.meta().hub);
        match &service.state {
            ServiceState::Installing
            | ServiceState::Failed {
                step: Step::Install,
                ..
            } => {
                if reconcile
                    && let Ok(status) = rt.canister_status(canister).await
                    && status.module_hash.as_deref() == Some(service.module_hash.as_slice())
                {
                    set_state(canister, ServiceState::Registering, rt.time());
                    continue;
                }
                let module = read_state(|s| {
                    s.upload_of(&service.kind, service.version)
                        .map(|u| s.module_bytes(u))
                })
                .ok_or_else(|| CreateError::NoVersion {
                    kind: service.kind.clone(),
                })?;
                let arg = service_api::init_arg(hub, service.owner, &service.kind, &service.name);
                set_state(canister, ServiceState::Installing, rt.time());
                match install(
                    rt,
                    canister,
                    InstallMode::Install,
                    module,
                    service.module_hash.to_vec(),
                    arg,
                )
                .await
                {
                    Ok(()) => {
                        set_state(canister, ServiceState::Registering, rt.time());
                    }
                    Err(e) => return Err(fail(canister, Step::Install, e.to_string(), rt.time())),
                }
            }
            ServiceState::Registering
            | ServiceState::Failed {
                step: Step::Register,
                ..
            } => {
                if service.subnet.is_none() {
                    learn_subnet(rt, canister).await;
                }
                // add_submitter is idempotent: a retry after an unknown outcome is safe.
                let result = rt.hub_add_submitter(hub, canister).await;
                let now = rt.time();
                match result {
                    Ok(Ok(())) => {
                        let info = set_state(canister, ServiceState::Active, now)
                            .ok_or(CreateError::UnknownService { canister })?;
                        mutate_state(|s| {
                            s.log(
                                now,
                                EventKind::ServiceActive {
                                    canister,
                                    version: info.version,
                                },
                            )
                        });
                        return Ok(info);
                    }
                    Ok(Err(_refusal)) => {
                        let e = fail(canister, Step::Register, "the hub refused add_submitter (is the registry a controller or registrar of the hub?)".to_string(), now);
                        crate::timer::reschedule(rt);
                        return Err(e);
                    }
                    Err(e) => {
                        let e = fail(
                            canister,
                            Step::Register,
                            format!("hub call failed: {e}"),
                            now,
                        );
                        crate::timer::reschedule(rt);
                        return Err(e);
                    }
                }
            }
            ServiceState::Active => return Ok(service),
            other => {
                return Err(CreateError::NothingToRetry {
                    state: other.clone(),
                });
            }
        }
    }
}

fn may_manage<R: Runtime>(rt: &R, service: &ServiceInfo) -> bool {
    let caller = rt.caller();
    caller == service.owner || rt.is_controller(&caller)
}

/// Owner or controllers: finishes a service that stopped halfway (install or hub
/// registration), checking first whether an earlier install did happen.
pub async fn retry_service<R: Runtime>(
    rt: &R,
    canister: Principal,
) -> Result<ServiceInfo, CreateError> {
    let service =
        read_state(|s| s.service(&canister)).ok_or(CreateError::UnknownService { canister })?;
    if !may_manage(rt, &service) {
        return Err(CreateError::NotAuthorized {
            caller: rt.caller(),
        });
    }
    match service.state {
        ServiceState::Installing
        | ServiceState::Registering
        | ServiceState::Failed {
            step: Step::Install | Step::Register,
            ..
        } => {}
        state => return Err(CreateError::NothingToRetry { state }),
    }
    let _lock = ServiceLock::take(canister).ok_or(CreateError::Busy)?;
    drive(rt, canister, true).await
}

/// Owner or controllers: stops and deletes a service canister (the cleanup of a service
/// that could not be finished, or the end of one). Its remaining cycles are burned, as on
/// the IC; the directory keeps the entry as `Deleted`.
pub async fn delete_service<R: Runtime>(rt: &R, canister: Principal) -> Result<(), AdminError> {
    let service =
        read_state(|s| s.service(&canister)).ok_or(AdminError::UnknownService { canister })?;
    if !may_manage(rt, &service) {
        return Err(AdminError::NotController {
            caller: rt.caller(),
        });
    }
    if service.state == ServiceState::Deleted {
        return Ok(());
    }
    let _lock = ServiceLock::take(canister).ok_or(AdminError::Busy)?;
    let result = match rt.stop_canister(canister).await {
        Ok(()) => rt.delete_canister(canister).await,
        Err(e) => Err(e),
    };
    let now = rt.time();
    match result {
        Ok(()) => {
            set_state(canister, ServiceState::Deleted, now);
            mutate_state(|s| s.log(now, EventKind::ServiceDeleted { canister }));
            Ok(())
        }
        Err(e) => {
            fail(canister, Step::Delete, e.to_string(), now);
            Err(AdminError::CallFailed {
                message: e.to_string(),
            })
        }
    }
}

/// Reads one service's cycle balance with `canister_status` (the registry is a controller).
/// Asks a service placed by subnet type (the cycles minting canister chose the subnet and
/// does not say which) where it runs, and records it. Best effort, as the directory only
/// reads it: a service that cannot answer now is asked again at its next cycle reading.
async fn learn_subnet<R: Runtime>(rt: &R, canister: Principal) {
    let Ok(Some(subnet)) = rt.service_subnet(canister).await else {
        return;
    };
    let now = rt.time();
    mutate_state(|s| {
        if let Some(mut info) = s.service(&canister)
            && info.subnet.is_none()
        {
            info.subnet = Some(subnet);
            s.put_service(info);
            s.log(now, EventKind::SubnetLearned { canister, subnet });
        }
    });
}

pub async fn refresh_one<R: Runtime>(rt: &R, canister: Principal) -> Result<u128, CallError> {
    let status = rt.canister_status(canister).await?;
    let now = rt.time();
    mutate_state(|s| {
        if let Some(mut info) = s.service(&canister) {
            info.cycles = Some(status.cycles);
            info.cycles_checked_at_nanos = Some(now);
            s.put_service(info);
        }
    });
    Ok(status.cycles)
}

/// Controllers: reads the cycle balance of one service now, or of up to ten services whose
/// reading is the oldest. Returns how many were read.
pub async fn refresh_cycles<R: Runtime>(
    rt: &R,
    canister: Option<Principal>,
) -> Result<u32, AdminError> {
    let caller = rt.caller();
    if !rt.is_controller(&caller) {
        return Err(AdminError::NotController { caller });
    }
    let targets = match canister {
        Some(c) => {
            read_state(|s| s.service(&c)).ok_or(AdminError::UnknownService { canister: c })?;
            vec![c]
        }
        None => read_state(|s| {
            let mut all = s.services_where(|x| x.state != ServiceState::Deleted);
            all.sort_by_key(|x| x.cycles_checked_at_nanos.unwrap_or(0));
            all.into_iter()
                .take(CYCLE_CHECKS_PER_TICK)
                .map(|x| x.canister)
                .collect()
        }),
    };
    let mut read = 0;
    for c in targets {
        match refresh_one(rt, c).await {
            Ok(_) => read += 1,
            Err(e) if canister.is_some() => {
                return Err(AdminError::CallFailed {
                    message: e.to_string(),
                });
            }
            Err(_) => {}
        }
    }
    Ok(read)
}

/// Timer work: due hub registrations and due cycle readings.
pub async fn background<R: Runtime>(rt: &R) {
    let now = rt.time();
    for canister in read_state(|s| s.due_registrations(now, REGISTRATIONS_PER_TICK)) {
        if let Some(_lock) = ServiceLock::take(canister) {
            let _ = drive(rt, canister, false).await;
        }
    }
    for canister in read_state(|s| s.due_cycle_checks(now, CYCLE_CHECKS_PER_TICK)) {
        let Some(_lock) = ServiceLock::take(canister) else {
            continue;
        };
        let subnet_unknown = read_state(|s| {
            s.service(&canister)
                .is_some_and(|x| x.subnet.is_none() && x.state == ServiceState::Active)
        });
        if subnet_unknown {
            learn_subnet(rt, canister).await;
        }
        if refresh_one(rt, canister).await.is_err() {
            // Try again next period rather than every tick.
            let now = rt.time();
            mutate_state(|s| {
                if let Some(mut info) = s.service(&canister) {
                    info.cycles_checked_at_nanos = Some(now);
                    s.put_service(info);
                }
            });
        }
    }
}
