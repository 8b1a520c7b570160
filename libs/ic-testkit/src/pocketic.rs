//! [`IcBackend`] on PocketIC (the `pocket-ic` client; the server binary comes from
//! `POCKET_IC_BIN`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use candid::{CandidType, Principal};
use ic_management_canister_types::CanisterStatusType;
use pocket_ic::common::rest::{RawEffectivePrincipal, RawMessageId};
use pocket_ic::{
    CanisterInstallMode, CreateCanisterParams, CreateCanisterPlacement, PocketIc, PocketIcBuilder,
    RejectResponse,
};
use serde_bytes::ByteBuf;

use crate::backend::{
    CallError, CallId, CanisterRunStatus, CanisterSpec, CanisterStatus, IcBackend, InstallMode,
    RejectCode, SubnetKind, anonymous,
};

/// The management canister's `install_code` argument.
#[derive(CandidType)]
struct InstallCodeArgs {
    mode: CanisterInstallMode,
    canister_id: Principal,
    wasm_module: ByteBuf,
    arg: ByteBuf,
    sender_canister_version: Option<u64>,
}

/// A PocketIC instance with an NNS subnet (for the root key), one application subnet and the
/// fiduciary subnet (threshold keys `dfx_test_key`, `test_key_1`, `key_1`).
pub struct PocketIcBackend {
    pic: PocketIc,
    application: Principal,
    fiduciary: Principal,
    next_call: Cell<u64>,
    submitted: RefCell<HashMap<CallId, RawMessageId>>,
}

impl PocketIcBackend {
    /// Starts a PocketIC instance. Needs `POCKET_IC_BIN` (the `pocket-ic` client would
    /// otherwise try to download a server, which these machines cannot do).
    pub fn new() -> Self {
        let pic = PocketIcBuilder::new()
            .with_nns_subnet()
            .with_application_subnet()
            .with_fiduciary_subnet()
            .build();
        let topology = pic.topology();
        let application = *topology
            .get_app_subnets()
            .first()
            .expect("BUG: PocketIC built without an application subnet");
        let fiduciary = topology
            .get_fiduciary()
            .expect("BUG: PocketIC built without a fiduciary subnet");
        Self {
            pic,
            application,
            fiduciary,
            next_call: Cell::new(0),
            submitted: RefCell::new(HashMap::new()),
        }
    }

    /// The underlying instance, for what the neutral API does not cover.
    pub fn pocket_ic(&self) -> &PocketIc {
        &self.pic
    }
}

impl Default for PocketIcBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// The Candid argument of the management canister's `install_code`.
fn install_code_payload(
    canister: Principal,
    mode: InstallMode,
    wasm: Vec<u8>,
    arg: Vec<u8>,
) -> Vec<u8> {
    let mode = match mode {
        InstallMode::Install => CanisterInstallMode::Install,
        InstallMode::Reinstall => CanisterInstallMode::Reinstall,
        InstallMode::Upgrade => CanisterInstallMode::Upgrade(None),
    };
    let args = InstallCodeArgs {
        mode,
        canister_id: canister,
        wasm_module: ByteBuf::from(wasm),
        arg: ByteBuf::from(arg),
        sender_canister_version: None,
    };
    candid::encode_one(&args).expect("BUG: cannot encode install_code args")
}

fn to_call_error(reject: RejectResponse) -> CallError {
    CallError {
        reject_code: RejectCode::from_u32(reject.reject_code as u32)
            .expect("BUG: PocketIC reject code outside 1..=6"),
        message: reject.reject_message,
        error_code: Some(reject.error_code.to_string()),
    }
}

impl IcBackend for PocketIcBackend {
    fn name(&self) -> &'static str {
        "pocketic"
    }

    fn create_canister(&self, spec: &CanisterSpec) -> Result<Principal, CallError> {
        let subnet = match spec.subnet {
            SubnetKind::Application => self.application,
            SubnetKind::Fiduciary => self.fiduciary,
        };
        let params = CreateCanisterParams {
            cycles: spec.cycles,
            settings: None,
            placement: Some(CreateCanisterPlacement::SubnetId(subnet)),
        };
        self.pic
            .create_canister_with_params(spec.controller, params)
            .map_err(|message| CallError::new(RejectCode::SysFatal, message))
    }

    fn install(
        &self,
        canister: Principal,
        mode: InstallMode,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        let payload = install_code_payload(canister, mode, wasm, arg);
        self.pic
            .update_call_with_effective_principal(
                Principal::management_canister(),
                RawEffectivePrincipal::CanisterId(canister.as_slice().to_vec()),
                anonymous(sender),
                "install_code",
                payload,
            )
            .map(drop)
            .map_err(to_call_error)
    }

    fn update_call(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        self.pic
            .update_call(canister, anonymous(sender), method, arg)
            .map_err(to_call_error)
    }

    fn query_call(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        self.pic
            .query_call(canister, anonymous(sender), method, arg)
            .map_err(to_call_error)
    }

    fn submit_call(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<CallId, CallError> {
        let message = self
            .pic
            .submit_call(canister, anonymous(sender), method, arg)
            .map_err(to_call_error)?;
        let id = CallId(self.next_call.get());
        self.next_call.set(id.0 + 1);
        self.submitted.borrow_mut().insert(id, message);
        Ok(id)
    }

    fn await_call(&self, call: CallId) -> Result<Vec<u8>, CallError> {
        let message = self
            .submitted
            .borrow_mut()
            .remove(&call)
            .unwrap_or_else(|| panic!("{call:?} was never submitted or was already awaited"));
        self.pic.await_call(message).map_err(to_call_error)
    }

    fn tick(&self) {
        self.pic.tick();
    }

    fn advance_time(&self, by: Duration) {
        self.pic.advance_time(by);
    }

    fn set_time(&self, nanos_since_epoch: u64) {
        let time = SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos_since_epoch);
        self.pic.set_time(time.into());
    }

    fn time(&self) -> u64 {
        self.pic.get_time().as_nanos_since_unix_epoch()
    }

    fn root_key(&self) -> Vec<u8> {
        self.pic
            .root_key()
            .expect("BUG: PocketIC built without an NNS subnet has no root key")
    }

    fn canister_status(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<CanisterStatus, CallError> {
        let status = self
            .pic
            .canister_status(canister, sender)
            .map_err(to_call_error)?;
        let run_status = match status.status {
            CanisterStatusType::Running => CanisterRunStatus::Running,
            CanisterStatusType::Stopping => CanisterRunStatus::Stopping,
            CanisterStatusType::Stopped => CanisterRunStatus::Stopped,
        };
        Ok(CanisterStatus {
            status: run_status,
            cycles: u128::try_from(status.cycles.0).expect("cycle balance above u128"),
            module_hash: status.module_hash,
            controllers: status.settings.controllers,
            memory_size: u64::try_from(status.memory_size.0).expect("memory size above u64"),
        })
    }

    fn add_cycles(&self, canister: Principal, amount: u128) -> u128 {
        self.pic.add_cycles(canister, amount)
    }

    fn cycle_balance(&self, canister: Principal) -> u128 {
        self.pic.cycle_balance(canister)
    }

    fn stop_canister(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        self.pic
            .stop_canister(canister, sender)
            .map_err(to_call_error)
    }

    fn start_canister(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        self.pic
            .start_canister(canister, sender)
            .map_err(to_call_error)
    }

    fn delete_canister(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        self.pic
            .delete_canister(canister, sender)
            .map_err(to_call_error)
    }

    fn set_controllers(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        controllers: Vec<Principal>,
    ) -> Result<(), CallError> {
        self.pic
            .set_controllers(canister, sender, controllers)
            .map_err(to_call_error)
    }

    fn uninstall_code(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        self.pic
            .uninstall_canister(canister, sender)
            .map_err(to_call_error)
    }
}

#[cfg(test)]
mod tests {
    //! What can be checked without a PocketIC server.
    use super::*;

    #[test]
    fn should_encode_install_code_as_the_management_canister_expects() {
        let canister = Principal::from_slice(&[1, 2, 3]);
        for (mode, expected) in [
            (InstallMode::Install, CanisterInstallMode::Install),
            (InstallMode::Reinstall, CanisterInstallMode::Reinstall),
            (InstallMode::Upgrade, CanisterInstallMode::Upgrade(None)),
        ] {
            let payload = install_code_payload(canister, mode, vec![0, 97, 115, 109], vec![7]);
            let decoded: ic_management_canister_types::InstallCodeArgs =
                candid::decode_one(&payload).expect("decodes as the management canister's type");
            assert_eq!(decoded.mode, expected);
            assert_eq!(decoded.canister_id, canister);
            assert_eq!(decoded.wasm_module, vec![0, 97, 115, 109]);
            assert_eq!(decoded.arg, vec![7]);
        }
    }

    #[test]
    fn should_keep_reject_code_message_and_error_code() {
        let error = to_call_error(RejectResponse {
            reject_code: pocket_ic::RejectCode::CanisterError,
            reject_message: "trapped".into(),
            error_code: pocket_ic::ErrorCode::CanisterCalledTrap,
            certified: true,
        });
        assert_eq!(error.reject_code, RejectCode::CanisterError);
        assert_eq!(error.message, "trapped");
        assert_eq!(
            error.error_code.as_deref(),
            Some(
                pocket_ic::ErrorCode::CanisterCalledTrap
                    .to_string()
                    .as_str()
            )
        );
    }

    #[test]
    fn should_be_usable_as_a_backend_object() {
        fn object(backend: &PocketIcBackend) -> &dyn IcBackend {
            backend
        }
        let _ = object;
    }
}
