//! A minimal model of the NNS cycles minting canister (CMC) at its mainnet id
//! `rkp4c-7iaaa-aaaaa-aaaca-cai`: `create_canister` with cycles attached and a subnet
//! selection, so that canisters creating canisters "through the CMC" (as they must on
//! mainnet to choose a subnet) run on the emulator too.
//!
//! Modelled (the Candid of `rs/nns/cmc/cmc.did`):
//! `create_canister : (record { settings : opt CanisterSettings; subnet_type : opt text;
//! subnet_selection : opt SubnetSelection }) -> (variant { Ok : principal; Err :
//! CreateCanisterError })`, where `SubnetSelection = variant { Subnet : record { subnet :
//! principal }; Filter : record { subnet_type : opt text } }` and `CreateCanisterError =
//! variant { Refunded : record { refund_amount : nat; create_error : text } }`.
//!
//! - Subnets: the application subnet is the only *default* subnet (no selection, or a
//!   filter without type); the fiduciary subnet has the type `"fiduciary"`; either can be
//!   named with `Subnet`. The NNS subnet is not open to canister creation.
//! - Cycles: all attached cycles are taken; the new canister gets them minus the target
//!   subnet's creation fee. When creation fails, the CMC deposits the cycles back to the
//!   caller minus `BAD_REQUEST_CYCLES_PENALTY` and answers `Err(Refunded)`.
//! - Controllers: `settings.controllers`, or the caller; `freezing_threshold` is applied.
//! - `get_default_subnets` and `get_subnet_types_to_subnets` answer from the same tables.
//!
//! Not modelled: ICP payments (`notify_create_canister`, `notify_top_up`,
//! `notify_mint_cycles`), exchange rates, the authorized-subnets lists per principal, the
//! cycles ledger. A canister installed at the CMC id (a test deploying its own CMC) takes
//! precedence over this model.

use candid::{CandidType, Nat, Principal};
use serde::Deserialize;

use crate::emulator::{Emulator, Origin};
use crate::types::{RejectCode, RejectResponse, SubnetKind};

/// The CMC's id on mainnet: `rkp4c-7iaaa-aaaaa-aaaca-cai` (index 4 on the NNS subnet).
pub const CMC_ID: Principal = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 4, 1, 1]);
/// Cycles the CMC keeps when it refunds a failed creation (as `rs/nns/cmc` does).
pub const BAD_REQUEST_CYCLES_PENALTY: u128 = 100_000_000;
/// The subnet type of the emulator's fiduciary subnet.
pub const FIDUCIARY_SUBNET_TYPE: &str = "fiduciary";

#[derive(Clone, Debug, Default, CandidType, Deserialize)]
pub struct CanisterSettings {
    pub controllers: Option<Vec<Principal>>,
    pub compute_allocation: Option<Nat>,
    pub memory_allocation: Option<Nat>,
    pub freezing_threshold: Option<Nat>,
    pub reserved_cycles_limit: Option<Nat>,
    pub wasm_memory_limit: Option<Nat>,
}

#[derive(Clone, Debug, CandidType, Deserialize)]
pub struct SubnetFilter {
    pub subnet_type: Option<String>,
}

#[derive(Clone, Debug, CandidType, Deserialize)]
pub enum SubnetSelection {
    Subnet { subnet: Principal },
    Filter(SubnetFilter),
}

#[derive(Clone, Debug, Default, CandidType, Deserialize)]
pub struct CreateCanisterArg {
    pub settings: Option<CanisterSettings>,
    pub subnet_type: Option<String>,
    pub subnet_selection: Option<SubnetSelection>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum CreateCanisterError {
    Refunded {
        refund_amount: Nat,
        create_error: String,
    },
}

#[derive(Clone, Debug, CandidType, Deserialize)]
struct SubnetTypesToSubnetsResponse {
    data: Vec<(String, Vec<Principal>)>,
}

/// Whether a message to `callee` is answered by this model.
pub(crate) fn routes_here(emu: &Emulator, callee: Principal) -> bool {
    callee == CMC_ID && !emu.canister_exists(callee)
}

/// Handles one request to the CMC and sends its answer.
pub(crate) fn handle(
    emu: &mut Emulator,
    origin: Origin,
    caller: Principal,
    method: &str,
    arg: &[u8],
    cycles: u128,
) {
    let answer = match method {
        "create_canister" => match candid::decode_one::<CreateCanisterArg>(arg) {
            Ok(arg) => {
                let result = create_canister(emu, caller, arg, cycles);
                encode(&result).map(|bytes| (bytes, 0))
            }
            Err(e) => Err(trap(format!("Error decoding candid: {e}"))),
        },
        "get_default_subnets" => {
            encode(&vec![emu.subnet_of_kind(SubnetKind::Application)]).map(|b| (b, cycles))
        }
        "get_subnet_types_to_subnets" => encode(&SubnetTypesToSubnetsResponse {
            data: vec![(
                FIDUCIARY_SUBNET_TYPE.to_string(),
                vec![emu.subnet_of_kind(SubnetKind::Fiduciary)],
            )],
        })
        .map(|b| (b, cycles)),
        other => Err(RejectResponse::canister(
            RejectCode::DestinationInvalid,
            format!(
                "Canister {CMC_ID} has no method '{other}' in the emulator's CMC model \
                 (modelled: create_canister, get_default_subnets, get_subnet_types_to_subnets)"
            ),
        )),
    };
    match answer {
        Ok((bytes, refund)) => emu.respond(origin, Ok(bytes), refund, CMC_ID),
        Err(r) => emu.respond(origin, Err(r), cycles, CMC_ID),
    }
}

fn trap(message: String) -> RejectResponse {
    RejectResponse::canister(
        RejectCode::CanisterError,
        format!("Error from Canister {CMC_ID}: Canister called `ic0.trap`: {message}"),
    )
}

fn encode<T: CandidType>(value: &T) -> Result<Vec<u8>, RejectResponse> {
    candid::encode_one(value).map_err(|e| trap(format!("BUG: encoding the reply failed: {e}")))
}

/// The subnet a creation lands on, or why none.
fn choose_subnet(emu: &Emulator, arg: &CreateCanisterArg) -> Result<Principal, String> {
    let app = emu.subnet_of_kind(SubnetKind::Application);
    let fid = emu.subnet_of_kind(SubnetKind::Fiduciary);
    let by_type = |t: &Option<String>| match t.as_deref() {
        None => Ok(app),
        Some(FIDUCIARY_SUBNET_TYPE) => Ok(fid),
        Some(other) => Err(format!("Provided subnet type {other} does not exist")),
    };
    match (&arg.subnet_type, &arg.subnet_selection) {
        (Some(_), Some(_)) => {
            Err("Cannot specify both subnet_type and subnet_selection".to_string())
        }
        (t, None) => by_type(t),
        (None, Some(SubnetSelection::Filter(f))) => by_type(&f.subnet_type),
        (None, Some(SubnetSelection::Subnet { subnet })) => {
            if *subnet == app || *subnet == fid {
                Ok(*subnet)
            } else {
                Err(format!(
                    "Subnet {subnet} does not exist or is not authorized for canister creation"
                ))
            }
        }
    }
}

fn create_canister(
    emu: &mut Emulator,
    caller: Principal,
    arg: CreateCanisterArg,
    cycles: u128,
) -> Result<Principal, CreateCanisterError> {
    let refund = |emu: &mut Emulator, create_error: String| {
        let refund_amount = cycles.saturating_sub(BAD_REQUEST_CYCLES_PENALTY);
        // The CMC sends refunds with `deposit_cycles`.
        emu.add_cycles(caller, refund_amount);
        CreateCanisterError::Refunded {
            refund_amount: Nat::from(refund_amount),
            create_error,
        }
    };
    let subnet = match choose_subnet(emu, &arg) {
        Ok(s) => s,
        Err(e) => return Err(refund(emu, e)),
    };
    let fee = emu
        .subnets()
        .iter()
        .find(|s| s.id == subnet)
        .map(|s| crate::fees::Fees {
            node_count: s.node_count,
        })
        .map_or(crate::fees::CANISTER_CREATION_FEE, |f| f.create_canister());
    if cycles < fee {
        return Err(refund(
            emu,
            format!(
                "Creating a canister requires a fee of {fee} that is deducted from the canister's initial balance but only {cycles} cycles were received with the create_canister request."
            ),
        ));
    }
    let settings = arg.settings.unwrap_or_default();
    let controllers = settings.controllers.unwrap_or_else(|| vec![caller]);
    if controllers.len() > 10 {
        return Err(refund(
            emu,
            "Invalid settings: at most 10 controllers are allowed".to_string(),
        ));
    }
    let id = match emu.create_canister_with(subnet, controllers, cycles - fee) {
        Ok(id) => id,
        Err(e) => return Err(refund(emu, e.reject_message)),
    };
    if let (Some(threshold), Some(c)) = (settings.freezing_threshold, emu.canisters.get_mut(&id)) {
        c.freezing_threshold = u64::try_from(threshold.0).unwrap_or(u64::MAX);
    }
    Ok(id)
}
