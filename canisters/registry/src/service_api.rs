//! The lifecycle argument every service kind's module takes: the `service` canister's `Arg`
//! (candid/service.did), from `stratros-service-api`.

use candid::Principal;
use stratros_service_api::{Arg, InitArgs};

fn encode(arg: &Arg) -> Vec<u8> {
    candid::encode_one(arg).unwrap_or_else(|e| panic!("BUG: cannot encode a service argument: {e}"))
}

pub fn init_arg(hub: Principal, owner: Principal, kind: &str, name: &str) -> Vec<u8> {
    encode(&Arg::Init(InitArgs {
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
    encode(&Arg::Upgrade(None))
}
