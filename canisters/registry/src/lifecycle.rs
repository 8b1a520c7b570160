//! `init` and `post_upgrade`: argument checks and state setup; controller settings.

use candid::Principal;

use crate::runtime::Runtime;
use crate::state::{State, init_state, mutate_state, read_state};
use crate::storage::Meta;
use crate::types::{AdminError, Arg, Config, ConfigUpdate, KindInfo};

/// The longest kind or service name.
pub const MAX_NAME_LEN: usize = 128;
/// The largest module the IC installs (chunked).
pub const IC_MAX_MODULE_BYTES: u64 = 100 * 1024 * 1024;

fn check_principal(what: &str, p: Principal) -> Result<(), String> {
    if p == Principal::anonymous() || p == Principal::management_canister() {
        return Err(format!("{p} cannot be the {what}"));
    }
    Ok(())
}

/// Applies an update to a configuration and checks the bounds.
pub fn apply(config: &Config, update: Option<ConfigUpdate>) -> Result<Config, String> {
    let u = update.unwrap_or_default();
    let c = Config {
        service_cycles: u.service_cycles.unwrap_or(config.service_cycles),
        reserve_cycles: u.reserve_cycles.unwrap_or(config.reserve_cycles),
        max_module_bytes: u.max_module_bytes.unwrap_or(config.max_module_bytes),
        retry_seconds: u.retry_seconds.unwrap_or(config.retry_seconds),
        cycles_refresh_seconds: u
            .cycles_refresh_seconds
            .unwrap_or(config.cycles_refresh_seconds),
    };
    if !(1..=IC_MAX_MODULE_BYTES).contains(&c.max_module_bytes) {
        return Err(format!(
            "max_module_bytes must be 1..={IC_MAX_MODULE_BYTES}, got {}",
            c.max_module_bytes
        ));
    }
    if !(1..=86_400).contains(&c.retry_seconds) {
        return Err(format!(
            "retry_seconds must be 1..=86400, got {}",
            c.retry_seconds
        ));
    }
    Ok(c)
}

/// Checks a kind or service name: 1 to 128 bytes, no control characters.
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_NAME_LEN || s.chars().any(char::is_control) {
        return Err(format!(
            "the {what} must have 1 to {MAX_NAME_LEN} bytes and no control characters"
        ));
    }
    Ok(())
}

fn new_kind(kind: &str) -> KindInfo {
    KindInfo {
        kind: kind.to_string(),
        current_version: None,
        versions: Vec::new(),
    }
}

pub fn init<R: Runtime>(rt: &R, arg: Arg) -> Result<(), String> {
    let Arg::Init(args) = arg else {
        return Err("expected an Init argument on install".to_string());
    };
    check_principal("hub", args.hub)?;
    if let Some(cmc) = args.cmc {
        check_principal("cycles minting canister", cmc)?;
    }
    for k in &args.kinds {
        check_name("kind", k)?;
    }
    let config = apply(&Config::default(), args.config)?;
    init_state(State::init(Meta {
        hub: args.hub,
        cmc: args.cmc,
        config,
        next_upload: 0,
        next_op: 0,
        next_rollout: 0,
    }));
    mutate_state(|s| {
        for k in &args.kinds {
            if s.kind(k).is_none() {
                s.put_kind(new_kind(k));
            }
        }
    });
    crate::timer::reschedule(rt);
    Ok(())
}

/// Reopens stable memory after an upgrade and applies the optional changes. Creations in
/// flight are marked as having an unknown outcome; a rollout in progress resumes.
pub fn post_upgrade<R: Runtime>(rt: &R, arg: Option<Arg>) -> Result<(), String> {
    let upgrade = match arg {
        None => None,
        Some(Arg::Upgrade(upgrade)) => upgrade,
        Some(Arg::Init(_)) => return Err("expected an Upgrade argument on upgrade".to_string()),
    };
    let state = State::load();
    let mut meta = state.meta().clone();
    if let Some(u) = upgrade {
        if let Some(hub) = u.hub {
            check_principal("hub", hub)?;
            meta.hub = hub;
        }
        if let Some(cmc) = u.cmc {
            check_principal("cycles minting canister", cmc)?;
            meta.cmc = Some(cmc);
        }
        meta.config = apply(&meta.config, u.config)?;
    }
    init_state(state);
    let now = rt.time();
    mutate_state(|s| {
        s.set_meta(meta);
        s.mark_in_flight_creations_unknown(now);
    });
    crate::timer::reschedule(rt);
    Ok(())
}

fn check_controller<R: Runtime>(rt: &R) -> Result<(), AdminError> {
    let caller = rt.caller();
    if rt.is_controller(&caller) {
        Ok(())
    } else {
        Err(AdminError::NotController { caller })
    }
}

/// Controllers: adds a service kind (adding a known kind is a no-op).
pub fn add_kind<R: Runtime>(rt: &R, kind: String) -> Result<(), AdminError> {
    check_controller(rt)?;
    check_name("kind", &kind).map_err(|reason| AdminError::InvalidKind { reason })?;
    mutate_state(|s| {
        if s.kind(&kind).is_none() {
            s.put_kind(new_kind(&kind));
        }
    });
    Ok(())
}

/// Controllers: changes the configuration.
pub fn set_config<R: Runtime>(rt: &R, update: ConfigUpdate) -> Result<(), AdminError> {
    check_controller(rt)?;
    let config =
        read_state(|s| apply(s.config(), Some(update))).map_err(AdminError::InvalidConfig)?;
    mutate_state(|s| {
        let mut meta = s.meta().clone();
        meta.config = config;
        s.set_meta(meta);
    });
    crate::timer::reschedule(rt);
    Ok(())
}
