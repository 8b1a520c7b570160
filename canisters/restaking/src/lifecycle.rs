//! `init` and `post_upgrade`: argument checks, the Init event, replay of the log.

use candid::Principal;

use crate::events::{Event, P};
use crate::model::{
    DEFAULT_ALLOCATION_DELAY_NS, DEFAULT_COMMISSION_DELAY_NS, DEFAULT_DEALLOCATION_DELAY_NS,
    DEFAULT_WITHDRAWAL_DELAY_NS, NANOS,
};
use crate::ops::log;
use crate::runtime::Runtime;
use crate::state::{certified_root, replay};
use crate::types::{Arg, InitArgs};

fn check_staking(p: Principal) -> Result<(), String> {
    if p == Principal::anonymous() || p == Principal::management_canister() {
        return Err(format!("{p} cannot be the staking canister"));
    }
    Ok(())
}

fn seconds(s: Option<u64>, default_ns: u64) -> u64 {
    s.map_or(default_ns, |s| s.saturating_mul(NANOS))
}

pub fn init_event(args: &InitArgs) -> Event {
    Event::Init {
        staking: P(args.staking),
        withdrawal_delay_ns: seconds(args.withdrawal_delay_seconds, DEFAULT_WITHDRAWAL_DELAY_NS),
        allocation_delay_ns: seconds(args.allocation_delay_seconds, DEFAULT_ALLOCATION_DELAY_NS),
        deallocation_delay_ns: seconds(
            args.deallocation_delay_seconds,
            DEFAULT_DEALLOCATION_DELAY_NS,
        ),
        commission_delay_ns: seconds(args.commission_delay_seconds, DEFAULT_COMMISSION_DELAY_NS),
    }
}

pub fn init<Rt: Runtime>(rt: &Rt, arg: Arg) -> Result<(), String> {
    let Arg::Init(args) = arg else {
        return Err("expected an Init argument on install".into());
    };
    check_staking(args.staking)?;
    replay();
    log(rt, init_event(&args)).map_err(|e| format!("{e:?}"))?;
    Ok(())
}

pub fn post_upgrade<Rt: Runtime>(rt: &Rt, arg: Option<Arg>) -> Result<(), String> {
    let upgrade = match arg {
        None => None,
        Some(Arg::Upgrade(u)) => u,
        Some(Arg::Init(_)) => return Err("expected an Upgrade argument on upgrade".into()),
    };
    if let Some(s) = upgrade.as_ref().and_then(|u| u.staking) {
        check_staking(s)?;
    }
    replay();
    rt.set_certified_data(&certified_root());
    if let Some(s) = upgrade.and_then(|u| u.staking) {
        log(
            rt,
            Event::ConfigUpdated {
                staking: Some(P(s)),
            },
        )
        .map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}
