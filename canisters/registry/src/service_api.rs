//! The lifecycle argument every service kind's module takes: the `service` canister's `Arg`
//! (candid/service.did). A mirror, because linking the service crate would clash on the
//! canister entry points.

use candid::{CandidType, Principal};

#[derive(Clone, Debug, CandidType)]
pub enum ServiceArg {
    Init(ServiceInitArgs),
    Upgrade(Option<ServiceUpgradeArgs>),
}

#[derive(Clone, Debug, CandidType)]
pub struct ServiceInitArgs {
    pub hub: Principal,
    pub owner: Principal,
    pub kind: String,
    pub name: String,
    pub writers: Vec<Principal>,
    pub config: Option<ServiceConfigUpdate>,
}

#[derive(Clone, Debug, CandidType)]
pub struct ServiceConfigUpdate {
    pub retry_seconds: Option<u64>,
    pub max_field_bytes: Option<u32>,
    pub max_records_per_call: Option<u32>,
}

#[derive(Clone, Debug, CandidType)]
pub struct ServiceUpgradeArgs {
    pub hub: Option<Principal>,
    pub config: Option<ServiceConfigUpdate>,
}

fn encode(arg: &ServiceArg) -> Vec<u8> {
    candid::encode_one(arg).unwrap_or_else(|e| panic!("BUG: cannot encode a service argument: {e}"))
}

pub fn init_arg(hub: Principal, owner: Principal, kind: &str, name: &str) -> Vec<u8> {
    encode(&ServiceArg::Init(ServiceInitArgs {
        hub,
        owner,
        kind: kind.to_string(),
        name: name.to_string(),
        writers: Vec::new(),
        config: None,
    }))
}

/// `(variant { Upgrade = null })`: the service keeps its settings.
pub fn upgrade_arg() -> Vec<u8> {
    encode(&ServiceArg::Upgrade(None))
}
