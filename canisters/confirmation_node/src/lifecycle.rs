//! `init` and `post_upgrade`: argument checks and state setup.

use candid::Principal;

use crate::runtime::Runtime;
use crate::state::{State, init_state, mutate_state, read_state};
use crate::storage::Config;
use crate::types::{Arg, InitArgs};

/// The longest key name accepted (the IC's are `key_1`, `test_key_1`, `dfx_test_key`).
pub const MAX_KEY_NAME_LEN: usize = 64;

fn check_hub(hub: Principal) -> Result<(), String> {
    if hub == Principal::anonymous() || hub == Principal::management_canister() {
        return Err(format!("{hub} cannot be a hub"));
    }
    Ok(())
}

fn validate<R: Runtime>(rt: &R, args: &InitArgs) -> Result<(), String> {
    check_hub(args.hub)?;
    if args.key_name.is_empty() || args.key_name.len() > MAX_KEY_NAME_LEN {
        return Err(format!(
            "the key name must have 1 to {MAX_KEY_NAME_LEN} bytes, got {}",
            args.key_name.len()
        ));
    }
    // The subnet prices only keys it knows: an unknown name fails here, not at the first
    // signature.
    rt.threshold_fee(args.scheme, &args.key_name)
        .map_err(|e| format!("the subnet has no {} key: {e:?}", args.scheme))?;
    Ok(())
}

/// Installs a fresh node.
pub fn init<R: Runtime>(rt: &R, arg: Arg) -> Result<(), String> {
    let Arg::Init(args) = arg else {
        return Err("expected an Init argument on install".to_string());
    };
    validate(rt, &args)?;
    init_state(State::init(Config {
        scheme: args.scheme,
        key_name: args.key_name,
        hub: args.hub,
        public_key: None,
    }));
    rt.set_certified_data(&read_state(|s| s.certified_root()));
    Ok(())
}

/// Reopens stable memory after an upgrade, rebuilds the certified tree and applies the
/// optional new hub.
pub fn post_upgrade<R: Runtime>(rt: &R, arg: Option<Arg>) -> Result<(), String> {
    let upgrade = match arg {
        None => None,
        Some(Arg::Upgrade(upgrade)) => upgrade,
        Some(Arg::Init(_)) => return Err("expected an Upgrade argument on upgrade".to_string()),
    };
    let hub = upgrade.and_then(|u| u.hub);
    if let Some(hub) = hub {
        check_hub(hub)?;
    }
    init_state(State::load());
    if let Some(hub) = hub {
        mutate_state(|s| s.set_hub(hub));
    }
    rt.set_certified_data(&read_state(|s| s.certified_root()));
    Ok(())
}
