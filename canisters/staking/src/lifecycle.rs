//! `init` and `post_upgrade`: argument checks, replay, configuration events.

use candid::Principal;
use stratros_staking_api::{
    Arg, DEFAULT_REWARD_PERIOD_SECONDS, DEFAULT_UNBONDING_SECONDS, SlashDestination, UpgradeArgs,
};

use crate::events::{Acct, Event, P, SlashTo};
use crate::log::{certified_root, replay};
use crate::ops::{add_asset_event, log_event};
use crate::runtime::Runtime;

/// At most a year of unbonding or reward streaming; at least a second.
const MAX_PERIOD_SECONDS: u64 = 365 * 24 * 3600;

fn check_period(name: &str, v: Option<u64>) -> Result<(), String> {
    match v {
        Some(s) if s == 0 || s > MAX_PERIOD_SECONDS => Err(format!(
            "{name} must be 1..={MAX_PERIOD_SECONDS} seconds, got {s}"
        )),
        _ => Ok(()),
    }
}

fn check_restaking(r: Option<Principal>) -> Result<(), String> {
    match r {
        Some(p) if p == Principal::anonymous() => Err("restaking cannot be anonymous".into()),
        _ => Ok(()),
    }
}

fn slash_to(d: SlashDestination) -> SlashTo {
    match d {
        SlashDestination::Burn => SlashTo::Burn,
        SlashDestination::Account(a) => SlashTo::Account(Acct::from(&a)),
    }
}

pub fn init<R: Runtime>(rt: &R, arg: Arg) -> Result<(), String> {
    let Arg::Init(args) = arg else {
        return Err("expected an Init argument on install".into());
    };
    check_restaking(args.restaking)?;
    check_period("unbonding_seconds", args.unbonding_seconds)?;
    check_period("reward_period_seconds", args.reward_period_seconds)?;
    check_period(
        "reconcile_interval_seconds",
        args.reconcile_interval_seconds,
    )?;
    let mut seen = std::collections::BTreeSet::new();
    for a in &args.assets {
        if !seen.insert(a.ledger) {
            return Err(format!("asset {} is listed twice", a.ledger));
        }
    }
    replay();
    log_event(
        rt,
        Event::Init {
            restaking: args.restaking.map(P),
            unbonding_seconds: args.unbonding_seconds.unwrap_or(DEFAULT_UNBONDING_SECONDS),
            reward_period_seconds: args
                .reward_period_seconds
                .unwrap_or(DEFAULT_REWARD_PERIOD_SECONDS),
            slash_to: args.slash_destination.map_or(SlashTo::Burn, slash_to),
            reconcile_interval_seconds: args.reconcile_interval_seconds.unwrap_or(60),
        },
    );
    for a in &args.assets {
        add_asset_event(rt, a).map_err(|e| format!("asset {}: {e:?}", a.ledger))?;
    }
    Ok(())
}

pub fn post_upgrade<R: Runtime>(rt: &R, arg: Option<Arg>) -> Result<(), String> {
    let upgrade = match arg {
        None => None,
        Some(Arg::Upgrade(u)) => u,
        Some(Arg::Init(_)) => return Err("expected an Upgrade argument on upgrade".into()),
    };
    let u = upgrade.unwrap_or_default();
    check_restaking(u.restaking)?;
    check_period("unbonding_seconds", u.unbonding_seconds)?;
    check_period("reward_period_seconds", u.reward_period_seconds)?;
    check_period("reconcile_interval_seconds", u.reconcile_interval_seconds)?;
    replay();
    if u != UpgradeArgs::default() {
        log_event(
            rt,
            Event::ConfigUpdated {
                restaking: u.restaking.map(P),
                unbonding_seconds: u.unbonding_seconds,
                reward_period_seconds: u.reward_period_seconds,
                slash_to: u.slash_destination.map(slash_to),
                reconcile_interval_seconds: u.reconcile_interval_seconds,
            },
        );
    }
    rt.set_certified_data(&certified_root());
    Ok(())
}
