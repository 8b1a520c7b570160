//! Rolling upgrades: every instance of a kind, one at a time, each step in its own timer
//! execution (so any number of instances fits, and a registry upgrade in the middle only
//! delays the next step), stopping at the first failure.

use crate::runtime::{InstallMode, Runtime};
use crate::service_api;
use crate::services::{ServiceLock, install};
use crate::state::{mutate_state, read_state};
use crate::types::{
    EventKind, InstanceProgress, InstanceStatus, Rollout, RolloutError, RolloutState, ServiceState,
    Step,
};

fn check_controller<R: Runtime>(rt: &R) -> Result<(), RolloutError> {
    let caller = rt.caller();
    if rt.is_controller(&caller) {
        Ok(())
    } else {
        Err(RolloutError::NotController { caller })
    }
}

/// Controllers: upgrades every instance of `kind` to `version`, one at a time, and makes
/// `version` the kind's current version (new services get it from now on). Instances that
/// are not installed are skipped; one rollout runs at a time.
pub fn upgrade_services<R: Runtime>(
    rt: &R,
    kind: String,
    version: u32,
) -> Result<Rollout, RolloutError> {
    check_controller(rt)?;
    let mut info = read_state(|s| s.kind(&kind))
        .ok_or_else(|| RolloutError::UnknownKind { kind: kind.clone() })?;
    let target = info
        .versions
        .iter()
        .find(|v| v.version == version)
        .cloned()
        .ok_or_else(|| RolloutError::UnknownVersion {
            kind: kind.clone(),
            version,
        })?;
    if let Some(r) = read_state(|s| s.rollout())
        && r.state == RolloutState::Running
    {
        return Err(RolloutError::InProgress {
            kind: r.kind,
            version: r.version,
        });
    }
    let instances = read_state(|s| s.services_where(|x| x.kind == kind))
        .into_iter()
        .map(|s| {
            let status = match &s.state {
                ServiceState::Active
                | ServiceState::Upgrading { .. }
                | ServiceState::Failed {
                    step: Step::Upgrade,
                    ..
                } => InstanceStatus::Pending,
                other => InstanceStatus::Skipped {
                    reason: format!("not upgradable while {other:?}"),
                },
            };
            InstanceProgress {
                canister: s.canister,
                from_version: s.version,
                status,
                instructions: 0,
            }
        })
        .collect();
    let now = rt.time();
    info.current_version = Some(version);
    let rollout = mutate_state(|s| {
        let rollout = Rollout {
            id: s.new_rollout_id(),
            kind: kind.clone(),
            version,
            module_hash: target.hash.clone(),
            state: RolloutState::Running,
            instances,
            started_at_nanos: now,
            finished_at_nanos: None,
        };
        s.put_kind(info);
        s.set_rollout(rollout.clone());
        s.log(
            now,
            EventKind::RolloutStarted {
                id: rollout.id,
                kind,
                version,
            },
        );
        rollout
    });
    crate::timer::reschedule(rt);
    Ok(rollout)
}

/// Controllers: continues a rollout that stopped at a failure (retrying the failed
/// instance), or one that was interrupted.
pub fn resume_rollout<R: Runtime>(rt: &R) -> Result<Rollout, RolloutError> {
    check_controller(rt)?;
    let mut rollout = read_state(|s| s.rollout()).ok_or(RolloutError::NothingToResume)?;
    match &rollout.state {
        RolloutState::Done => return Err(RolloutError::NothingToResume),
        RolloutState::Running => {}
        RolloutState::Failed { .. } => {
            for i in &mut rollout.instances {
                if matches!(i.status, InstanceStatus::Failed { .. }) {
                    i.status = InstanceStatus::Pending;
                }
            }
            rollout.state = RolloutState::Running;
            rollout.finished_at_nanos = None;
            mutate_state(|s| s.set_rollout(rollout.clone()));
        }
    }
    crate::timer::reschedule(rt);
    Ok(rollout)
}

fn finish(mut rollout: Rollout, state: RolloutState, now: u64) {
    rollout.state = state.clone();
    rollout.finished_at_nanos = Some(now);
    mutate_state(|s| {
        s.log(
            now,
            EventKind::RolloutFinished {
                id: rollout.id,
                state,
            },
        );
        s.set_rollout(rollout);
    });
}

fn update_instance(
    id: u64,
    index: usize,
    f: impl FnOnce(&mut InstanceProgress),
) -> Option<Rollout> {
    mutate_state(|s| {
        let mut r = s.rollout()?;
        if r.id != id {
            return None;
        }
        f(r.instances.get_mut(index)?);
        s.set_rollout(r.clone());
        Some(r)
    })
}

/// One step of the running rollout: upgrades the next instance. Returns whether the
/// rollout is still running (the caller schedules the next step).
pub async fn step<R: Runtime>(rt: &R) -> bool {
    let Some(rollout) = read_state(|s| s.rollout()) else {
        return false;
    };
    if rollout.state != RolloutState::Running {
        return false;
    }
    let Some(index) = rollout.instances.iter().position(|i| {
        matches!(
            i.status,
            InstanceStatus::Pending | InstanceStatus::Upgrading
        )
    }) else {
        finish(rollout, RolloutState::Done, rt.time());
        return false;
    };
    let instance = rollout.instances[index].clone();
    let canister = instance.canister;
    let Some(_lock) = ServiceLock::take(canister) else {
        // A retry or deletion holds the service: try again at the next step.
        return true;
    };
    let Some(service) = read_state(|s| s.service(&canister)) else {
        update_instance(rollout.id, index, |i| {
            i.status = InstanceStatus::Skipped {
                reason: "not in the directory".into(),
            }
        });
        return true;
    };
    let start = rt.instruction_counter();
    let interrupted = instance.status == InstanceStatus::Upgrading;
    let now = rt.time();
    // The intent is written before the call; after a registry upgrade an instance found
    // `Upgrading` is reconciled with its module hash.
    update_instance(rollout.id, index, |i| i.status = InstanceStatus::Upgrading);
    mutate_state(|s| {
        let mut info = service.clone();
        info.state = ServiceState::Upgrading {
            to_version: rollout.version,
        };
        info.updated_at_nanos = now;
        s.put_service(info);
    });
    let already = interrupted
        && rt
            .canister_status(canister)
            .await
            .is_ok_and(|st| st.module_hash.as_deref() == Some(rollout.module_hash.as_slice()));
    let upgraded = if already {
        Ok(())
    } else {
        let module = read_state(|s| {
            s.upload_of(&rollout.kind, rollout.version)
                .map(|u| s.module_bytes(u))
        });
        match module {
            // Stopped first: a service refuses an upgrade while running, as a response to a
            // call made by the old module must not reach the new one.
            Some(module) => match rt.stop_canister(canister).await {
                Ok(()) => {
                    install(
                        rt,
                        canister,
                        InstallMode::Upgrade,
                        module,
                        rollout.module_hash.to_vec(),
                        service_api::upgrade_arg(),
                    )
                    .await
                }
                Err(e) => Err(e),
            },
            None => Err(crate::runtime::CallError {
                reject_code: None,
                message: "BUG: the version's module is missing".into(),
            }),
        }
    };
    // Started again in every case: after a failed stop or upgrade the old module serves on,
    // and an instance interrupted after its upgrade may still be stopped.
    let started = rt.start_canister(canister).await;
    let result = upgraded.and(started);
    let now = rt.time();
    let spent = rt.instruction_counter().saturating_sub(start);
    match result {
        Ok(()) => {
            mutate_state(|s| {
                if let Some(mut info) = s.service(&canister) {
                    info.version = rollout.version;
                    info.module_hash = rollout.module_hash.clone();
                    info.state = ServiceState::Active;
                    info.updated_at_nanos = now;
                    s.put_service(info);
                }
                s.log(
                    now,
                    EventKind::ServiceUpgraded {
                        canister,
                        version: rollout.version,
                    },
                );
            });
            update_instance(rollout.id, index, |i| {
                i.status = InstanceStatus::Done;
                i.instructions = spent;
            });
            true
        }
        Err(e) => {
            let error = e.to_string();
            mutate_state(|s| {
                if let Some(mut info) = s.service(&canister) {
                    let attempts = match info.state {
                        ServiceState::Failed { attempts, .. } => attempts + 1,
                        _ => 1,
                    };
                    info.state = ServiceState::Failed {
                        step: Step::Upgrade,
                        error: error.clone(),
                        attempts,
                    };
                    info.updated_at_nanos = now;
                    s.put_service(info);
                }
            });
            if let Some(r) = update_instance(rollout.id, index, |i| {
                i.status = InstanceStatus::Failed {
                    error: error.clone(),
                };
                i.instructions = spent;
            }) {
                finish(r, RolloutState::Failed { canister, error }, now);
            }
            false
        }
    }
}
