//! `init` and `post_upgrade`: argument checks and state setup.

use stratros_confirmation::QuorumRule;

use crate::runtime::Runtime;
use crate::state::{MAX_BATCH_RECORDS, State, init_state, mutate_state, read_state};
use crate::storage::Settings;
use crate::types::{Arg, Config, ConfigUpdate, FeeConfig};

/// Largest payload a configuration may allow (a message is at most 2 MiB).
pub const MAX_PAYLOAD_LIMIT: u32 = 1 << 20;
/// Largest `kind` / `reference` a configuration may allow.
pub const MAX_TEXT_LIMIT: u32 = 1_024;
/// Most records per call a configuration may allow.
pub const MAX_RECORDS_PER_CALL_LIMIT: u32 = 10_000;

/// `config` with the fields of `update` that are set.
pub fn apply_update(mut config: Config, update: ConfigUpdate) -> Config {
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = update.$f { config.$f = v; } )* };
    }
    set!(
        max_batch_records,
        max_batch_age_seconds,
        max_records_per_call,
        max_payload_bytes,
        max_kind_bytes,
        max_reference_bytes,
        call_timeout_seconds,
        retry_base_seconds,
        retry_max_seconds
    );
    config
}

pub fn validate_config(c: &Config) -> Result<(), String> {
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
    check(
        (1..=MAX_BATCH_RECORDS).contains(&c.max_batch_records),
        &format!("max_batch_records must be 1..={MAX_BATCH_RECORDS}"),
    )?;
    check(
        (1..=86_400).contains(&c.max_batch_age_seconds),
        "max_batch_age_seconds must be 1..=86400",
    )?;
    check(
        (1..=MAX_RECORDS_PER_CALL_LIMIT).contains(&c.max_records_per_call),
        &format!("max_records_per_call must be 1..={MAX_RECORDS_PER_CALL_LIMIT}"),
    )?;
    check(
        c.max_payload_bytes <= MAX_PAYLOAD_LIMIT,
        &format!("max_payload_bytes must be at most {MAX_PAYLOAD_LIMIT}"),
    )?;
    check(
        c.max_kind_bytes <= MAX_TEXT_LIMIT && c.max_reference_bytes <= MAX_TEXT_LIMIT,
        &format!("max_kind_bytes and max_reference_bytes must be at most {MAX_TEXT_LIMIT}"),
    )?;
    check(
        (1..=300).contains(&c.call_timeout_seconds),
        "call_timeout_seconds must be 1..=300",
    )?;
    check(
        c.retry_base_seconds >= 1 && c.retry_max_seconds >= c.retry_base_seconds,
        "retry_base_seconds must be at least 1 and at most retry_max_seconds",
    )?;
    Ok(())
}

pub fn validate_fees(f: &FeeConfig) -> Result<(), String> {
    if !(60..=86_400).contains(&f.forward_interval_seconds) {
        return Err("fees.forward_interval_seconds must be 60..=86400".into());
    }
    if f.restaking.is_some() && (f.avs.is_empty() || f.avs.len() > 64) {
        return Err("fees.avs must have 1 to 64 bytes when fees go to restaking".into());
    }
    if f.ledger == candid::Principal::anonymous() {
        return Err("fees.ledger cannot be the anonymous principal".into());
    }
    Ok(())
}

/// Installs a fresh hub.
pub fn init<R: Runtime>(rt: &R, arg: Arg) -> Result<(), String> {
    let Arg::Init(args) = arg else {
        return Err("expected an Init argument on install".to_string());
    };
    let config = apply_update(Config::default(), args.config.unwrap_or_default());
    validate_config(&config)?;
    if let Some(f) = &args.fees {
        validate_fees(f)?;
    }
    let settings = Settings {
        config,
        nodes: args.nodes,
        quorum_rule: args.quorum_rule.unwrap_or(QuorumRule::OneOfEachScheme),
        fees: args.fees,
        registrars: args.registrars,
    };
    let policy = settings.policy();
    if !policy.nodes.is_empty() {
        policy
            .validate()
            .map_err(|e| format!("invalid quorum policy: {e}"))?;
    }
    init_state(State::init(settings, &args.submitters));
    rt.set_certified_data(&read_state(|s| s.certified_root()));
    Ok(())
}

/// Reopens stable memory after an upgrade, rebuilds the certified tree and applies the
/// optional configuration change.
pub fn post_upgrade<R: Runtime>(rt: &R, arg: Option<Arg>) -> Result<(), String> {
    let upgrade = match arg {
        None => None,
        Some(Arg::Upgrade(upgrade)) => upgrade,
        Some(Arg::Init(_)) => return Err("expected an Upgrade argument on upgrade".to_string()),
    }
    .unwrap_or_default();
    init_state(State::load());
    if let Some(update) = upgrade.config {
        let config = apply_update(read_state(|s| s.config().clone()), update);
        validate_config(&config)?;
        mutate_state(|s| s.set_config(config));
    }
    if let Some(fees) = upgrade.fees {
        validate_fees(&fees)?;
        let (old_ledger, credits) =
            read_state(|s| (s.fee_config().map(|c| c.ledger), s.fees().credits()));
        if old_ledger.is_some_and(|l| l != fees.ledger) && credits > 0 {
            return Err(format!(
                "cannot change the fee ledger while {credits} of credit is outstanding"
            ));
        }
        mutate_state(|s| s.set_fee_config(Some(fees)));
    }
    if let Some(registrars) = upgrade.registrars {
        mutate_state(|s| s.set_registrars(registrars));
    }
    rt.set_certified_data(&read_state(|s| s.certified_root()));
    Ok(())
}
