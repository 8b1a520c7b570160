//! Controller operations.

use candid::Principal;
use stratros_confirmation::{PolicyNode, QuorumRule};

use crate::confirm;
use crate::runtime::Runtime;
use crate::state::{mutate_state, read_state};
use crate::types::AdminError;

fn check_controller<R: Runtime>(rt: &R) -> Result<(), AdminError> {
    let caller = rt.caller();
    if rt.is_controller(&caller) {
        Ok(())
    } else {
        Err(AdminError::NotController { caller })
    }
}

/// Controllers and registrars.
fn check_registrar<R: Runtime>(rt: &R) -> Result<(), AdminError> {
    let caller = rt.caller();
    if rt.is_controller(&caller) || read_state(|s| s.is_registrar(&caller)) {
        Ok(())
    } else {
        Err(AdminError::NotController { caller })
    }
}

/// Controllers and registrars (e.g. the service registry).
pub fn add_submitter<R: Runtime>(rt: &R, p: Principal) -> Result<(), AdminError> {
    check_registrar(rt)?;
    mutate_state(|s| s.add_submitter(p));
    Ok(())
}

/// Controllers and registrars. Removing an unknown submitter is not an error.
pub fn remove_submitter<R: Runtime>(rt: &R, p: Principal) -> Result<(), AdminError> {
    check_registrar(rt)?;
    mutate_state(|s| s.remove_submitter(&p));
    Ok(())
}

/// Registers (or updates) a node; batches sealed from now on are asked to it.
pub fn register_node<R: Runtime>(rt: &R, node: PolicyNode) -> Result<(), AdminError> {
    check_controller(rt)?;
    mutate_state(|s| s.register_node(node))?;
    rt.schedule();
    Ok(())
}

pub fn remove_node<R: Runtime>(rt: &R, node: Principal) -> Result<(), AdminError> {
    check_controller(rt)?;
    mutate_state(|s| s.remove_node(&node))
}

pub fn set_quorum_rule<R: Runtime>(rt: &R, rule: QuorumRule) -> Result<(), AdminError> {
    check_controller(rt)?;
    mutate_state(|s| s.set_quorum_rule(rule))?;
    rt.schedule();
    Ok(())
}

/// Seals the pending records now (up to one batch) and schedules the signature requests.
pub fn seal_now<R: Runtime>(rt: &R) -> Result<u64, AdminError> {
    check_controller(rt)?;
    if read_state(|s| s.pending()) == 0 {
        return Err(AdminError::NothingPending);
    }
    if read_state(|s| s.policy().validate().is_err()) {
        return Err(AdminError::NoValidPolicy);
    }
    let height = confirm::seal_now(rt, rt.time()).ok_or(AdminError::NothingPending)?;
    rt.schedule();
    Ok(height)
}

/// Controllers: replaces the principals that may add and remove submitters.
pub fn set_registrars<R: Runtime>(rt: &R, registrars: Vec<Principal>) -> Result<(), AdminError> {
    check_controller(rt)?;
    if registrars.len() > 16 {
        return Err(AdminError::InvalidConfig("at most 16 registrars".into()));
    }
    mutate_state(|s| s.set_registrars(registrars));
    Ok(())
}
