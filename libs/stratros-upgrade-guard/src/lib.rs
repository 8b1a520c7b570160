//! Every Stratros canister upgrades only when it is stopped.
//!
//! On the IC, a response to a call made before an upgrade is delivered to the *new* module,
//! which runs the callback recorded by the old one: a function-table index and an `env`
//! pointer into the old heap. ic-cdk's callback turns that pointer back into an `Arc` of the
//! call's state, so in the new heap it frees whatever lives at that address and the
//! allocator is corrupted (we saw dlmalloc trap on the next allocation, or not, depending on
//! the heap layout of the build). The IC interface specification says such canisters must be
//! stopped before an upgrade; a stopped canister has no open call context, so no callback of
//! the old module can ever run. Motoko refuses to upgrade with outstanding callbacks; ic-cdk
//! does not, so each canister calls [`require_stopped`] first thing in `pre_upgrade`.
//!
//! The procedure is the NNS root's: `stop_canister`, `install_code` (upgrade), `start_canister`.
//! `scripts/deploy.sh` and the registry's rollouts follow it.

use ic_cdk::api::CanisterStatusCode;

/// Why an upgrade is refused.
pub fn check(status: CanisterStatusCode) -> Result<(), String> {
    match status {
        CanisterStatusCode::Stopped => Ok(()),
        other => Err(format!(
            "refusing to upgrade a canister that is {}: stop it first (stop_canister, then \
             install_code in upgrade mode, then start_canister), so that no response to a \
             call made by the old module reaches the new one",
            describe(other)
        )),
    }
}

fn describe(status: CanisterStatusCode) -> String {
    match status {
        CanisterStatusCode::Running => "running".into(),
        CanisterStatusCode::Stopping => "stopping (calls still outstanding)".into(),
        CanisterStatusCode::Stopped => "stopped".into(),
        CanisterStatusCode::Unrecognized(code) => format!("in status {code}"),
    }
}

/// Traps (so the upgrade fails and the old module keeps running, untouched) unless the
/// canister is stopped. Call it first in `#[pre_upgrade]`.
pub fn require_stopped() {
    if let Err(message) = check(ic_cdk::api::canister_status()) {
        ic_cdk::trap(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_allow_only_a_stopped_canister() {
        assert_eq!(check(CanisterStatusCode::Stopped), Ok(()));
        for status in [
            CanisterStatusCode::Running,
            CanisterStatusCode::Stopping,
            CanisterStatusCode::Unrecognized(7),
        ] {
            let message = check(status).expect_err("refused");
            assert!(message.contains("stop it first"), "{message}");
        }
        assert!(
            check(CanisterStatusCode::Stopping)
                .expect_err("refused")
                .contains("outstanding")
        );
    }
}
