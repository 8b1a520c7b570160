//! The backend-neutral trait and its types.

use std::fmt;
use std::time::Duration;

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal};
use serde::de::DeserializeOwned;

/// Cycles a canister gets when [`CanisterSpec::cycles`] is `None` (PocketIC's default).
pub const DEFAULT_CANISTER_CYCLES: u128 = 100_000_000_000_000;

/// Rounds [`IcBackend::run_until_idle`] runs on a backend that cannot tell when it is idle
/// (PocketIC): enough for a few inter-canister round trips and a threshold signature.
pub const IDLE_ROUNDS: usize = 30;

/// The kind of subnet a canister is created on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SubnetKind {
    /// A 13-node application subnet (the default).
    #[default]
    Application,
    /// The 34-node fiduciary subnet (the one holding the `key_1` threshold keys on mainnet).
    Fiduciary,
}

/// How a module is put on a canister.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallMode {
    /// First install on an empty canister (`canister_init`).
    Install,
    /// Replace the module and wipe all state (`canister_init` again).
    Reinstall,
    /// Keep stable memory (`canister_pre_upgrade`, then `canister_post_upgrade`).
    Upgrade,
}

/// The reject codes of the IC Interface Specification (one type for both backends).
pub use ic_emulator::RejectCode;

/// The sender of a call made without one: the anonymous principal, as PocketIC does.
pub(crate) fn anonymous(sender: Option<Principal>) -> Principal {
    sender.unwrap_or(Principal::anonymous())
}

/// A call (or a management operation) that did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub reject_code: RejectCode,
    pub message: String,
    /// The IC's error code (e.g. `IC0503` for a trap) when the backend reports one.
    pub error_code: Option<String>,
}

impl CallError {
    pub fn new(reject_code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            reject_code,
            message: message.into(),
            error_code: None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reject {:?}", self.reject_code)?;
        if let Some(code) = &self.error_code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CallError {}

/// A call submitted with [`IcBackend::submit_call`], to be awaited with [`IcBackend::await_call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallId(pub u64);

/// Where and how to create a canister.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CanisterSpec {
    pub subnet: SubnetKind,
    /// The controller (and creator); the anonymous principal when `None`.
    pub controller: Option<Principal>,
    /// Initial cycles; [`DEFAULT_CANISTER_CYCLES`] when `None`.
    pub cycles: Option<u128>,
}

impl CanisterSpec {
    pub fn on(subnet: SubnetKind) -> Self {
        Self {
            subnet,
            ..Self::default()
        }
    }

    pub fn controller(mut self, controller: Principal) -> Self {
        self.controller = Some(controller);
        self
    }

    pub fn cycles(mut self, cycles: u128) -> Self {
        self.cycles = Some(cycles);
        self
    }
}

/// A canister's run status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanisterRunStatus {
    Running,
    Stopping,
    Stopped,
}

/// What scenarios read from the management canister's `canister_status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanisterStatus {
    pub status: CanisterRunStatus,
    pub cycles: u128,
    /// SHA-256 of the installed module, `None` when empty.
    pub module_hash: Option<Vec<u8>>,
    pub controllers: Vec<Principal>,
    pub memory_size: u64,
}

/// What integration scenarios need from an IC: the emulator and PocketIC implement it.
///
/// `sender: None` means the anonymous principal. Time is in nanoseconds since the Unix epoch.
pub trait IcBackend {
    /// `"emulator"` or `"pocketic"`.
    fn name(&self) -> &'static str;

    /// The emulator behind this backend, for what only it offers (its threshold master keys,
    /// fault injection); `None` on PocketIC.
    fn as_emulator(&self) -> Option<&std::cell::RefCell<ic_emulator::Emulator>> {
        None
    }

    fn create_canister(&self, spec: &CanisterSpec) -> Result<Principal, CallError>;

    /// Installs, reinstalls or upgrades `canister` with `wasm` and the raw argument `arg`.
    fn install(
        &self,
        canister: Principal,
        mode: InstallMode,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), CallError>;

    /// An ingress update call, executed to completion (rounds run until it finishes).
    fn update_call(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError>;

    /// A non-replicated query call.
    fn query_call(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError>;

    /// Submits an ingress update call without executing it (it runs on later ticks).
    fn submit_call(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<CallId, CallError>;

    /// Runs rounds until the submitted call completes, and returns its result.
    fn await_call(&self, call: CallId) -> Result<Vec<u8>, CallError>;

    /// Executes one round (messages, timers, heartbeats).
    fn tick(&self);

    fn advance_time(&self, by: Duration);

    fn set_time(&self, nanos_since_epoch: u64);

    fn time(&self) -> u64;

    /// The DER-encoded root public key that certificates verify against.
    fn root_key(&self) -> Vec<u8>;

    fn canister_status(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<CanisterStatus, CallError>;

    /// Adds cycles and returns the new balance.
    fn add_cycles(&self, canister: Principal, amount: u128) -> u128;

    fn cycle_balance(&self, canister: Principal) -> u128;

    fn stop_canister(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError>;

    fn start_canister(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError>;

    fn delete_canister(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError>;

    /// Replaces the controllers (the management canister's `update_settings`).
    fn set_controllers(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        controllers: Vec<Principal>,
    ) -> Result<(), CallError>;

    /// Removes the module and all state; open call contexts are rejected.
    fn uninstall_code(
        &self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), CallError>;

    /// Runs rounds until every message, callback and due timer has run. The emulator knows
    /// when it is idle; PocketIC runs [`IDLE_ROUNDS`] rounds.
    fn run_until_idle(&self) {
        for _ in 0..IDLE_ROUNDS {
            self.tick();
        }
    }
}

fn encode<A: ArgumentEncoder>(method: &str, args: A) -> Vec<u8> {
    candid::encode_args(args)
        .unwrap_or_else(|e| panic!("cannot Candid-encode the arguments of `{method}`: {e}"))
}

fn decode<R: for<'de> ArgumentDecoder<'de>>(method: &str, bytes: &[u8]) -> R {
    candid::decode_args(bytes)
        .unwrap_or_else(|e| panic!("cannot Candid-decode the reply of `{method}`: {e}"))
}

/// Typed (Candid) helpers over any [`IcBackend`]. A reply that does not decode is a bug in
/// the scenario or the canister, so it panics with the method's name.
pub trait IcBackendExt: IcBackend {
    /// An update with one argument and one result, as the anonymous principal.
    fn update<A: CandidType, R: CandidType + DeserializeOwned>(
        &self,
        canister: Principal,
        method: &str,
        arg: A,
    ) -> Result<R, CallError> {
        self.update_as(canister, None, method, arg)
    }

    fn update_as<A: CandidType, R: CandidType + DeserializeOwned>(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: A,
    ) -> Result<R, CallError> {
        let reply = self.update_call(canister, sender, method, encode(method, (arg,)))?;
        Ok(decode::<(R,)>(method, &reply).0)
    }

    /// An update with any tuple of arguments and results.
    fn update_args<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let reply = self.update_call(canister, sender, method, encode(method, args))?;
        Ok(decode(method, &reply))
    }

    /// A query with one argument and one result, as the anonymous principal.
    fn query<A: CandidType, R: CandidType + DeserializeOwned>(
        &self,
        canister: Principal,
        method: &str,
        arg: A,
    ) -> Result<R, CallError> {
        self.query_as(canister, None, method, arg)
    }

    fn query_as<A: CandidType, R: CandidType + DeserializeOwned>(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: A,
    ) -> Result<R, CallError> {
        let reply = self.query_call(canister, sender, method, encode(method, (arg,)))?;
        Ok(decode::<(R,)>(method, &reply).0)
    }

    fn query_args<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let reply = self.query_call(canister, sender, method, encode(method, args))?;
        Ok(decode(method, &reply))
    }

    /// Submits a typed update (see [`IcBackend::submit_call`]).
    fn submit<A: CandidType>(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: A,
    ) -> Result<CallId, CallError> {
        self.submit_call(canister, sender, method, encode(method, (arg,)))
    }

    /// Awaits a submitted call and decodes its one result.
    fn await_typed<R: CandidType + DeserializeOwned>(&self, call: CallId) -> Result<R, CallError> {
        let reply = self.await_call(call)?;
        Ok(decode::<(R,)>("<submitted call>", &reply).0)
    }

    /// Creates a canister and installs `wasm` with the Candid-encoded `init_arg`.
    fn deploy<A: CandidType>(
        &self,
        spec: &CanisterSpec,
        wasm: Vec<u8>,
        init_arg: A,
    ) -> Result<Principal, CallError> {
        let canister = self.create_canister(spec)?;
        let arg = encode("canister_init", (init_arg,));
        self.install(canister, InstallMode::Install, wasm, arg, spec.controller)?;
        Ok(canister)
    }

    /// Upgrades `canister` with the Candid-encoded `upgrade_arg` the way production does
    /// (and the canisters require, see `stratros-upgrade-guard`): a running canister is
    /// stopped first (its outstanding calls finish or time out) and started again afterwards,
    /// also when the upgrade fails. A canister that was already stopped stays stopped.
    fn upgrade<A: CandidType>(
        &self,
        canister: Principal,
        wasm: Vec<u8>,
        upgrade_arg: A,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        let arg = encode("canister_post_upgrade", (upgrade_arg,));
        self.upgrade_encoded(canister, wasm, arg, sender)
    }

    /// [`IcBackendExt::upgrade`] with an argument already encoded.
    fn upgrade_encoded(
        &self,
        canister: Principal,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        let was_running =
            self.canister_status(canister, sender)?.status != CanisterRunStatus::Stopped;
        if was_running {
            self.stop_canister(canister, sender)?;
        }
        let installed = self.install(canister, InstallMode::Upgrade, wasm, arg, sender);
        if was_running {
            self.start_canister(canister, sender)?;
        }
        installed
    }

    /// `install_code` in upgrade mode and nothing else: the canister is not stopped first.
    /// Only for testing that a running canister refuses the upgrade.
    fn upgrade_in_place<A: CandidType>(
        &self,
        canister: Principal,
        wasm: Vec<u8>,
        upgrade_arg: A,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        let arg = encode("canister_post_upgrade", (upgrade_arg,));
        self.install(canister, InstallMode::Upgrade, wasm, arg, sender)
    }

    /// Reinstalls `canister` (all state wiped) with the Candid-encoded `init_arg`.
    fn reinstall<A: CandidType>(
        &self,
        canister: Principal,
        wasm: Vec<u8>,
        init_arg: A,
        sender: Option<Principal>,
    ) -> Result<(), CallError> {
        let arg = encode("canister_init", (init_arg,));
        self.install(canister, InstallMode::Reinstall, wasm, arg, sender)
    }

    /// Advances time by `by`, then runs until idle, so that due timers and what they
    /// start (calls, their callbacks) complete.
    fn advance_and_settle(&self, by: Duration) {
        self.advance_time(by);
        self.run_until_idle();
    }

    /// Runs `n` rounds.
    fn tick_n(&self, n: usize) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// Advances time by `by`, then runs one round so that due timers fire.
    fn advance_and_tick(&self, by: Duration) {
        self.advance_time(by);
        self.tick();
    }
}

impl<T: IcBackend + ?Sized> IcBackendExt for T {}
