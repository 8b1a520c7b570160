//! [`IcBackend`] on the project's IC emulator (`libs/ic-emulator`).

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use candid::Principal;
use ic_emulator::{Emulator, EmulatorConfig, RejectResponse};

use crate::backend::{
    CallError, CallId, CanisterRunStatus, CanisterSpec, CanisterStatus, DEFAULT_CANISTER_CYCLES,
    IcBackend, InstallMode, SubnetKind, anonymous,
};

/// A fresh emulated IC (its own NNS, application and fiduciary subnets).
pub struct EmulatorBackend {
    emulator: RefCell<Emulator>,
}

impl EmulatorBackend {
    pub fn new() -> Self {
        Self::with_config(EmulatorConfig::default())
    }

    /// An emulator with its own key seed, schedule seed or heap snapshots.
    pub fn with_config(config: EmulatorConfig) -> Self {
        Self {
            emulator: RefCell::new(Emulator::with_config(config)),
        }
    }

    /// The underlying emulator, for what the neutral API does not cover.
    pub fn emulator(&self) -> &RefCell<Emulator> {
        &self.emulator
    }
}

impl Default for EmulatorBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn to_call_error(reject: RejectResponse) -> CallError {
    CallError {
        reject_code: reject.reject_code,
        message: reject.reject_message,
        error_code: reject.error_code.map(|code| code.to_string()),
    }
}

impl IcBackend for EmulatorBackend {
    fn as_emulator(&self) -> Option<&RefCell<Emulator>> {
        Some(&self.emulator)
    }

    fn name(&self) -> &'static str {
        "emulator"
    }

    fn create_canister(&self, spec: &CanisterSpec) -> Result<Principal, CallError> {
        let mut emulator = self.emulator.borrow_mut();
        let kind = match spec.subnet {
            SubnetKind::Application => ic_emulator::SubnetKind::Application,
            SubnetKind::Fiduciary => ic_emulator::SubnetKind::Fiduciary,
        };
        let subnet = emulator.subnet_of_kind(kind);
        emulator
            .create_canister_on_subnet(
                subnet,
                vec![anonymous(spec.controller)],
                spec.cycles.unwrap_or(DEFAULT_CANISTER_CYCLES),
            )
            .map_err(to_call_error)
    }

    fn install(
        &self,
        canister: Principal,
        mode: InstallMode,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        let mut emulator = self.emulator.borrow_mut();
        let result = match mode {
            InstallMode::Install => emulator.install_canister(canister, &wasm, arg, sender),
            InstallMode::Reinstall => emulator.reinstall_canister(canister, &wasm, arg, sender),
            // The bare install_code: `IcBackend::upgrade` stops and starts around it.
            InstallMode::Upgrade => emulator.install_code(
                sender.unwrap_or(Principal::anonymous()),
                canister,
                &wasm,
                arg,
                ic_emulator::InstallMode::Upgrade,
            ),
        };
        result.map_err(to_call_error)
    }

    fn update_call(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        self.emulator
            .borrow_mut()
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
        self.emulator
            .borrow_mut()
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
        self.emulator
            .borrow_mut()
            .submit_call(canister, anonymous(sender), method, arg)
            .map(|id| CallId(id.0))
            .map_err(to_call_error)
    }

    fn await_call(&self, call: CallId) -> Result<Vec<u8>, CallError> {
        self.emulator
            .borrow_mut()
            .await_call(ic_emulator::MessageId(call.0))
            .map_err(to_call_error)
    }

    fn tick(&self) {
        self.emulator.borrow_mut().tick();
    }

    fn advance_time(&self, by: Duration) {
        self.emulator.borrow_mut().advance_time(by);
    }

    fn set_time(&self, nanos_since_epoch: u64) {
        let time = SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos_since_epoch);
        self.emulator.borrow_mut().set_time(time);
    }

    fn time(&self) -> u64 {
        self.emulator.borrow().time_nanos()
    }

    fn root_key(&self) -> Vec<u8> {
        self.emulator.borrow().root_key()
    }

    fn canister_status(
        &self,
        canister: Principal,
        _sender: Option<Principal>,
    ) -> Result<CanisterStatus, CallError> {
        let status = self
            .emulator
            .borrow()
            .canister_status(canister)
            .map_err(to_call_error)?;
        Ok(CanisterStatus {
            status: match status.status {
                ic_emulator::CanisterRunStatus::Running => CanisterRunStatus::Running,
                ic_emulator::CanisterRunStatus::Stopping => CanisterRunStatus::Stopping,
                ic_emulator::CanisterRunStatus::Stopped => CanisterRunStatus::Stopped,
            },
            cycles: status.cycles,
            module_hash: status.module_hash.map(|hash| hash.to_vec()),
            controllers: status.controllers,
            memory_size: status.memory_size,
        })
    }

    fn add_cycles(&self, canister: Principal, amount: u128) -> u128 {
        self.emulator.borrow_mut().add_cycles(canister, amount)
    }

    fn cycle_balance(&self, canister: Principal) -> u128 {
        self.emulator.borrow().cycle_balance(canister)
    }

    fn stop_canister(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        self.emulator
            .borrow_mut()
            .stop_canister(canister, sender)
            .map_err(to_call_error)
    }

    fn start_canister(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        self.emulator
            .borrow_mut()
            .start_canister(canister, sender)
            .map_err(to_call_error)
    }

    fn delete_canister(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        self.emulator
            .borrow_mut()
            .delete_canister(canister, sender)
            .map_err(to_call_error)
    }

    fn set_controllers(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        controllers: Vec<Principal>,
    ) -> Result<(), CallError> {
        self.emulator
            .borrow_mut()
            .set_controllers(canister, sender, controllers)
            .map_err(to_call_error)
    }

    fn uninstall_code(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        self.emulator
            .borrow_mut()
            .uninstall_code(anonymous(sender), canister)
            .map_err(to_call_error)
    }

    fn run_until_idle(&self) {
        self.emulator.borrow_mut().run_until_idle();
    }
}
