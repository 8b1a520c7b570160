//! `init` and `post_upgrade`: argument checks and state setup; owner operations.

use candid::Principal;

use crate::runtime::Runtime;
use crate::state::{State, init_state, mutate_state, read_state};
use crate::storage::Meta;
use crate::types::{AdminError, Arg, Config, ConfigUpdate};

/// The longest kind or name.
pub const MAX_NAME_LEN: usize = 128;

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
        max_records_per_call: u
            .max_records_per_call
            .unwrap_or(config.max_records_per_call),
        max_field_bytes: u.max_field_bytes.unwrap_or(config.max_field_bytes),
        retry_seconds: u.retry_seconds.unwrap_or(config.retry_seconds),
    };
    if !(1..=100).contains(&c.max_records_per_call) {
        return Err(format!(
            "max_records_per_call must be 1..=100, got {}",
            c.max_records_per_call
        ));
    }
    if !(1..=65_536).contains(&c.max_field_bytes) {
        return Err(format!(
            "max_field_bytes must be 1..=65536, got {}",
            c.max_field_bytes
        ));
    }
    if !(1..=3_600).contains(&c.retry_seconds) {
        return Err(format!(
            "retry_seconds must be 1..=3600, got {}",
            c.retry_seconds
        ));
    }
    Ok(c)
}

/// Installs a fresh service.
pub fn init<R: Runtime>(rt: &R, arg: Arg) -> Result<(), String> {
    let Arg::Init(args) = arg else {
        return Err("expected an Init argument on install".to_string());
    };
    check_principal("owner", args.owner)?;
    check_principal("hub", args.hub)?;
    for (what, s) in [("kind", &args.kind), ("name", &args.name)] {
        if s.is_empty() || s.len() > MAX_NAME_LEN {
            return Err(format!("the {what} must have 1 to {MAX_NAME_LEN} bytes"));
        }
    }
    let credit_records = args.config.as_ref().and_then(|c| c.credit_records);
    let config = apply(&Config::default(), args.config)?;
    let mut writers = args.writers;
    writers.sort();
    writers.dedup();
    init_state(State::init(Meta {
        owner: args.owner,
        writers,
        hub: args.hub,
        kind: args.kind,
        name: args.name,
        config,
        scan_height: 0,
        refused: 0,
    }));
    if let Some(n) = credit_records {
        mutate_state(|s| s.mutate_fees(|f| f.credit_records = n));
    }
    mutate_state(|s| s.certify_pages());
    rt.set_certified_data(&read_state(|s| s.certified_root()));
    // Learn the hub's fee (and top the credit up) right away, before the first submission.
    rt.schedule_tick(0);
    Ok(())
}

/// Reopens stable memory after an upgrade, rebuilds the certified pages and applies the
/// optional changes.
pub fn post_upgrade<R: Runtime>(rt: &R, arg: Option<Arg>) -> Result<(), String> {
    let upgrade = match arg {
        None => None,
        Some(Arg::Upgrade(upgrade)) => upgrade,
        Some(Arg::Init(_)) => return Err("expected an Upgrade argument on upgrade".to_string()),
    };
    let state = State::load();
    let (hub, config) = match upgrade {
        Some(u) => {
            if let Some(hub) = u.hub {
                check_principal("hub", hub)?;
            }
            let credit_records = u.config.as_ref().and_then(|c| c.credit_records);
            (
                u.hub,
                Some((apply(state.config(), u.config)?, credit_records)),
            )
        }
        None => (None, None),
    };
    init_state(state);
    mutate_state(|s| {
        if let Some(hub) = hub {
            s.set_hub(hub);
        }
        if let Some((config, credit_records)) = config {
            s.set_config(config);
            if let Some(n) = credit_records {
                s.mutate_fees(|f| f.credit_records = n);
            }
        }
    });
    mutate_state(|s| s.certify_pages());
    rt.set_certified_data(&read_state(|s| s.certified_root()));
    Ok(())
}

fn check_owner<R: Runtime>(rt: &R) -> Result<(), AdminError> {
    let caller = rt.caller();
    if read_state(|s| s.is_owner(&caller)) || rt.is_controller(&caller) {
        Ok(())
    } else {
        Err(AdminError::NotOwner { caller })
    }
}

/// Owner or controller: lets `writer` add records.
pub fn add_writer<R: Runtime>(rt: &R, writer: Principal) -> Result<(), AdminError> {
    check_owner(rt)?;
    mutate_state(|s| s.add_writer(writer));
    crate::records::certify(rt);
    Ok(())
}

/// Owner or controller: revokes a writer (its records stay).
pub fn remove_writer<R: Runtime>(rt: &R, writer: Principal) -> Result<(), AdminError> {
    check_owner(rt)?;
    mutate_state(|s| s.remove_writer(writer));
    crate::records::certify(rt);
    Ok(())
}

/// Owner or controller: changes the configuration.
pub fn set_config<R: Runtime>(rt: &R, update: ConfigUpdate) -> Result<(), AdminError> {
    check_owner(rt)?;
    let credit_records = update.credit_records;
    let config =
        read_state(|s| apply(s.config(), Some(update))).map_err(AdminError::InvalidConfig)?;
    mutate_state(|s| {
        s.set_config(config);
        if let Some(n) = credit_records {
            s.mutate_fees(|f| f.credit_records = n);
        }
    });
    crate::records::certify(rt);
    Ok(())
}
