//! The emulated IC: subnets, canisters, message queues, call contexts and
//! callbacks, ingress, time and timers. The public API mirrors PocketIC's.

use crate::canister::{self, CanisterState, Entry, Outcome};
use crate::fees::Fees;
use crate::system_api::{Ctx, ExecResponse, HostState, MAX_PAYLOAD, PendingCall, StableMemory};
use crate::types::*;
use crate::wasm::{self, CompiledModule};
use candid::Principal;
use ic_emulator_crypto::Keys;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasmi::Linker;

const CLEANUP: &str = "cleanup callback";

/// Per-message instruction limits of the IC.
pub const UPDATE_INSTRUCTION_LIMIT: u64 = 40_000_000_000;
pub const QUERY_INSTRUCTION_LIMIT: u64 = 5_000_000_000;
pub const INSTALL_INSTRUCTION_LIMIT: u64 = 300_000_000_000;
pub const INSPECT_INSTRUCTION_LIMIT: u64 = 200_000_000;
/// Cycles a canister created by the test API starts with.
pub const DEFAULT_CANISTER_CYCLES: u128 = 100_000_000_000_000;
/// 2026-01-01T00:00:00Z: the emulator's clock starts here unless set.
pub const DEFAULT_START_TIME_NANOS: u64 = 1_767_225_600_000_000_000;
/// How many rounds `await_call` runs before it gives up.
const MAX_ROUNDS: usize = 100_000;

/// Options of a new emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Seed of every master key (root key, threshold keys).
    pub key_seed: [u8; 32],
    /// With `Some(seed)`, messages that may interleave are delivered in a
    /// seeded random order instead of FIFO.
    pub schedule_seed: Option<u64>,
    pub start_time_nanos: u64,
    /// How executions save the heap for rollback; by default dirty pages,
    /// unless `IC_EMULATOR_HEAP_SNAPSHOTS=full-copy`.
    pub heap_snapshots: crate::HeapSnapshots,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            key_seed: *b"stratros emulator master key sd!",
            schedule_seed: None,
            start_time_nanos: DEFAULT_START_TIME_NANOS,
            heap_snapshots: crate::HeapSnapshots::from_env(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Ingress(MessageId),
    Canister {
        caller: Principal,
        callback: u64,
    },
    /// Timers and heartbeats: nobody awaits the answer.
    System,
}

#[derive(Debug)]
pub(crate) struct CallContext {
    canister: Principal,
    origin: Origin,
    caller: Principal,
    cycles_available: u128,
    replied: bool,
    outstanding: u32,
    instructions: u64,
    deadline: u64,
}

#[derive(Debug)]
struct Callback {
    canister: Principal,
    context: u64,
    reply: (u32, u32),
    reject: (u32, u32),
    cleanup: Option<(u32, u32)>,
    prepayment: u128,
    deadline: Option<u64>,
    code_version: u64,
    timed_out: bool,
}

#[derive(Debug)]
pub(crate) enum Msg {
    Request {
        origin: Origin,
        caller: Principal,
        callee: Principal,
        method: String,
        arg: Vec<u8>,
        cycles: u128,
        deadline: u64,
    },
    Response {
        callback: u64,
        result: Result<Vec<u8>, (RejectCode, String)>,
        refund: u128,
    },
    Task {
        canister: Principal,
        entry: &'static str,
    },
}

#[derive(Debug)]
struct Envelope {
    src: Principal,
    dst: Principal,
    msg: Msg,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum IngressStatus {
    Processing,
    Done(Result<Vec<u8>, RejectResponse>),
}

pub(crate) struct Subnet {
    pub info: SubnetInfo,
    next_index: u64,
    signer: std::sync::Arc<ic_emulator_crypto::SubnetSigner>,
}

/// An emulated Internet Computer.
pub struct Emulator {
    linker: Linker<HostState>,
    heap_snapshots: crate::HeapSnapshots,
    pub(crate) keys: std::sync::Arc<Keys>,
    time: u64,
    pub(crate) subnets: Vec<Subnet>,
    pub(crate) canisters: BTreeMap<Principal, CanisterState>,
    queue: Vec<Envelope>,
    contexts: BTreeMap<u64, CallContext>,
    callbacks: BTreeMap<u64, Callback>,
    next_id: u64,
    ingress: BTreeMap<MessageId, IngressStatus>,
    schedule_rng: Option<ChaCha20Rng>,
    pub(crate) rng: ChaCha20Rng,
    executions: Vec<ExecutionRecord>,
    pub(crate) stop_waiters: BTreeMap<Principal, Vec<Origin>>,
    held: BTreeSet<Principal>,
    root_key: Vec<u8>,
    logs: Vec<(Principal, String)>,
    composite_stack: Vec<Principal>,
}

impl Default for Emulator {
    fn default() -> Self {
        Self::new()
    }
}

/// The canister id of index `index`, as the IC forms it.
pub fn canister_id_from_index(index: u64) -> Principal {
    let mut bytes = index.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0x01, 0x01]);
    Principal::from_slice(&bytes)
}

fn canister_index(id: &Principal) -> Option<u64> {
    let bytes = id.as_slice();
    (bytes.len() == 10 && bytes[8..] == [1, 1])
        .then(|| u64::from_be_bytes(bytes[..8].try_into().unwrap_or([0; 8])))
}

impl Emulator {
    pub fn new() -> Self {
        Self::with_config(EmulatorConfig::default())
    }

    pub fn with_config(config: EmulatorConfig) -> Self {
        let keys = Keys::from_seed(config.key_seed);
        let root_key = keys.root_public_key_der();
        // Ranges as on mainnet: the NNS subnet holds the first 2^20 ids, the
        // fiduciary subnet the range of the ckBTC and ckETH ledgers.
        let subnet = |label: &str, kind, node_count, range: (u64, u64)| {
            let id = Principal::self_authenticating(format!("stratros-emulator-subnet-{label}"));
            let ranges = vec![(
                canister_id_from_index(range.0).as_slice().to_vec(),
                canister_id_from_index(range.1).as_slice().to_vec(),
            )];
            let signer = keys
                .subnet_signer(id.as_slice(), kind == SubnetKind::Nns, &ranges)
                .unwrap_or_else(|e| panic!("BUG: subnet {label} has an invalid signer: {e}"));
            Subnet {
                info: SubnetInfo {
                    id,
                    kind,
                    node_count,
                    canister_ranges: vec![range],
                },
                next_index: range.0,
                signer: std::sync::Arc::new(signer),
            }
        };
        let subnets = vec![
            subnet("nns", SubnetKind::Nns, 40, (0, 0xF_FFFF)),
            subnet(
                "fiduciary",
                SubnetKind::Fiduciary,
                34,
                (0x210_0000, 0x21F_FFFF),
            ),
            subnet(
                "application",
                SubnetKind::Application,
                13,
                (0x200_0000, 0x20F_FFFF),
            ),
        ];
        Self {
            linker: crate::system_api::linker(wasm::engine())
                .unwrap_or_else(|e| panic!("BUG: the ic0 linker does not build: {e}")),
            heap_snapshots: config.heap_snapshots,
            keys: std::sync::Arc::new(keys),
            time: config.start_time_nanos,
            subnets,
            canisters: BTreeMap::new(),
            queue: Vec::new(),
            contexts: BTreeMap::new(),
            callbacks: BTreeMap::new(),
            next_id: 1,
            ingress: BTreeMap::new(),
            schedule_rng: config.schedule_seed.map(ChaCha20Rng::seed_from_u64),
            rng: ChaCha20Rng::from_seed(config.key_seed),
            executions: Vec::new(),
            stop_waiters: BTreeMap::new(),
            held: BTreeSet::new(),
            root_key,
            logs: Vec::new(),
            composite_stack: Vec::new(),
        }
    }

    // ----- subnets, keys and time -------------------------------------------------

    pub fn subnets(&self) -> Vec<SubnetInfo> {
        self.subnets.iter().map(|s| s.info.clone()).collect()
    }

    pub fn subnet_of_kind(&self, kind: SubnetKind) -> Principal {
        self.subnets
            .iter()
            .find(|s| s.info.kind == kind)
            .map(|s| s.info.id)
            .unwrap_or_else(|| panic!("BUG: the emulator always has a {kind:?} subnet"))
    }

    /// The subnet a canister lives on.
    pub fn get_subnet(&self, canister: Principal) -> Option<Principal> {
        self.canisters.get(&canister).map(|c| c.subnet)
    }

    /// The root key in DER, as `fetch_root_key` returns it on a local replica.
    pub fn root_key(&self) -> Vec<u8> {
        self.root_key.clone()
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn time_nanos(&self) -> u64 {
        self.time
    }

    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.time)
    }

    pub fn set_time(&mut self, time: SystemTime) {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // Time on the IC never goes backwards.
        self.time = self.time.max(nanos);
    }

    pub fn advance_time(&mut self, duration: Duration) {
        self.time += duration.as_nanos() as u64;
    }

    // ----- canisters ----------------------------------------------------------------

    /// Creates an empty canister on the application subnet, controlled by the
    /// anonymous principal (the test harness), with default cycles.
    pub fn create_canister(&mut self) -> Principal {
        let subnet = self.subnet_of_kind(SubnetKind::Application);
        self.create_canister_with(
            subnet,
            vec![Principal::anonymous()],
            DEFAULT_CANISTER_CYCLES,
        )
        .unwrap_or_else(|e| panic!("BUG: the application subnet is full: {e}"))
    }

    pub fn create_canister_on_subnet(
        &mut self,
        subnet: Principal,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> Result<Principal, RejectResponse> {
        self.create_canister_with(subnet, controllers, cycles)
    }

    pub(crate) fn create_canister_with(
        &mut self,
        subnet: Principal,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> Result<Principal, RejectResponse> {
        let s = self
            .subnets
            .iter_mut()
            .find(|s| s.info.id == subnet)
            .ok_or_else(|| {
                RejectResponse::system(
                    ErrorCode::SubnetNotFound,
                    format!("Subnet {subnet} not found"),
                )
            })?;
        let (_, end) = s.info.canister_ranges[0];
        if s.next_index > end {
            return Err(RejectResponse::system(
                ErrorCode::CanisterQueueFull,
                format!("Subnet {subnet} has no canister ids left"),
            ));
        }
        let id = canister_id_from_index(s.next_index);
        s.next_index += 1;
        let fees = Fees {
            node_count: s.info.node_count,
        };
        self.canisters.insert(
            id,
            CanisterState::new(id, subnet, fees, controllers, cycles),
        );
        Ok(id)
    }

    /// Creates a canister with a given id (like PocketIC's `create_canister_with_id`).
    pub fn create_canister_with_id(
        &mut self,
        id: Principal,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> Result<Principal, RejectResponse> {
        if self.canisters.contains_key(&id) {
            return Err(RejectResponse::system(
                ErrorCode::CanisterRejectedMessage,
                format!("Canister {id} is already installed."),
            ));
        }
        let index = canister_index(&id).ok_or_else(|| {
            RejectResponse::system(
                ErrorCode::CanisterNotFound,
                format!("{id} is not a canister id"),
            )
        })?;
        let subnet = self
            .subnets
            .iter()
            .find(|s| {
                s.info
                    .canister_ranges
                    .iter()
                    .any(|(a, b)| (*a..=*b).contains(&index))
            })
            .ok_or_else(|| {
                RejectResponse::system(
                    ErrorCode::SubnetNotFound,
                    format!("No subnet hosts canister id {id}"),
                )
            })?;
        let fees = Fees {
            node_count: subnet.info.node_count,
        };
        let subnet = subnet.info.id;
        self.canisters.insert(
            id,
            CanisterState::new(id, subnet, fees, controllers, cycles),
        );
        Ok(id)
    }

    pub fn canister_exists(&self, canister: Principal) -> bool {
        self.canisters.contains_key(&canister)
    }

    pub fn cycle_balance(&self, canister: Principal) -> u128 {
        self.canisters.get(&canister).map_or(0, |c| c.cycles)
    }

    pub fn add_cycles(&mut self, canister: Principal, cycles: u128) -> u128 {
        self.canisters.get_mut(&canister).map_or(0, |c| {
            c.cycles += cycles;
            c.cycles
        })
    }

    /// Sets a canister's balance (for out-of-cycles scenarios).
    pub fn set_cycle_balance(&mut self, canister: Principal, cycles: u128) {
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.cycles = cycles;
        }
    }

    pub fn canister_status(&self, canister: Principal) -> Result<CanisterStatus, RejectResponse> {
        let c = self.canister(canister)?;
        Ok(CanisterStatus {
            status: c.status,
            module_hash: c.runtime.as_ref().map(|rt| rt.module.hash),
            controllers: c.controllers.clone(),
            cycles: c.cycles,
            memory_size: c.memory_size(),
            version: c.version,
            subnet: c.subnet,
            freezing_threshold: c.freezing_threshold,
        })
    }

    pub fn stable_memory(&self, canister: Principal) -> Vec<u8> {
        self.canisters
            .get(&canister)
            .and_then(|c| c.runtime.as_ref())
            .map(|rt| rt.store.data().stable.to_vec())
            .unwrap_or_default()
    }

    /// How `canister`'s executions save its heap for rollback (`None` when it has no
    /// module): dirty pages unless configured otherwise or unavailable here.
    pub fn heap_snapshots_of(&self, canister: Principal) -> Option<crate::HeapSnapshots> {
        self.canisters
            .get(&canister)
            .and_then(|c| c.runtime.as_ref())
            .map(canister::Runtime::heap_snapshots)
    }

    pub fn certified_data(&self, canister: Principal) -> Vec<u8> {
        self.canisters
            .get(&canister)
            .map(|c| c.certified_data.clone())
            .unwrap_or_default()
    }

    /// The module's `icp:public`/`icp:private` metadata section `name`.
    pub fn canister_metadata(&self, canister: Principal, name: &str) -> Option<Vec<u8>> {
        let rt = self.canisters.get(&canister)?.runtime.as_ref()?;
        rt.module.metadata.get(name).map(|(_, bytes)| bytes.clone())
    }

    pub(crate) fn canister(&self, canister: Principal) -> Result<&CanisterState, RejectResponse> {
        self.canisters.get(&canister).ok_or_else(|| {
            RejectResponse::system(
                ErrorCode::CanisterNotFound,
                format!("Canister {canister} not found"),
            )
        })
    }

    // ----- installing code ------------------------------------------------------------

    pub fn install_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        self.install_code(
            sender.unwrap_or(Principal::anonymous()),
            canister,
            wasm,
            arg,
            InstallMode::Install,
        )
    }

    /// Upgrades `canister` by the procedure production uses (the NNS root's, and what
    /// Stratros canisters require in `pre_upgrade`): a running canister is stopped first, so
    /// its outstanding calls finish or time out, then `install_code` in upgrade mode, then it
    /// is started again, also when the upgrade failed. A stopped canister stays stopped.
    ///
    /// [`Emulator::install_code`] with [`InstallMode::Upgrade`] is the bare management call: on
    /// a running canister, responses to calls made before it reach the new module, whose
    /// callbacks then run with the old module's table indices and heap pointers, as on the IC.
    pub fn upgrade_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let was_running = self.canister(canister)?.status != CanisterRunStatus::Stopped;
        if was_running {
            self.stop_canister(canister, sender)?;
        }
        let installed = self.install_code(
            sender.unwrap_or(Principal::anonymous()),
            canister,
            wasm,
            arg,
            InstallMode::Upgrade,
        );
        if was_running {
            self.start_canister(canister, sender)?;
        }
        installed
    }

    pub fn reinstall_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        self.install_code(
            sender.unwrap_or(Principal::anonymous()),
            canister,
            wasm,
            arg,
            InstallMode::Reinstall,
        )
    }

    fn check_controller(
        &self,
        sender: Principal,
        canister: Principal,
        method: &str,
    ) -> Result<(), RejectResponse> {
        let c = self.canister(canister)?;
        if c.controllers.contains(&sender) {
            Ok(())
        } else {
            Err(RejectResponse::system(
                ErrorCode::CanisterInvalidController,
                format!("Only controllers of canister {canister} can call ic00 method {method}"),
            ))
        }
    }

    /// `install_code` with the IC's semantics: atomic (a trap in any hook leaves
    /// the canister exactly as it was), with the controller check.
    pub fn install_code(
        &mut self,
        sender: Principal,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        mode: InstallMode,
    ) -> Result<(), RejectResponse> {
        self.check_controller(sender, canister, "install_code")?;
        if arg.len() > MAX_PAYLOAD {
            return Err(RejectResponse::system(
                ErrorCode::CanisterContractViolation,
                format!(
                    "install_code argument of {} bytes exceeds the limit of {MAX_PAYLOAD} bytes",
                    arg.len()
                ),
            ));
        }
        let module = wasm::compile(wasm).map_err(|e| {
            RejectResponse::system(
                e.error_code,
                format!(
                    "Error from Canister {canister}: Canister's Wasm module is not valid: {}",
                    e.message
                ),
            )
        })?;
        self.install_module(sender, canister, module, arg, mode)
    }

    pub(crate) fn install_module(
        &mut self,
        sender: Principal,
        canister: Principal,
        module: CompiledModule,
        arg: Vec<u8>,
        mode: InstallMode,
    ) -> Result<(), RejectResponse> {
        let time = self.time;
        let root_key = self.root_key.clone();
        let linker = &self.linker;
        let heap_snapshots = self.heap_snapshots;
        let c = self.canisters.get_mut(&canister).ok_or_else(|| {
            RejectResponse::system(
                ErrorCode::CanisterNotFound,
                format!("Canister {canister} not found"),
            )
        })?;
        let fail = |code: ErrorCode, trap: &crate::system_api::TrapKind| {
            RejectResponse::system(code, format!("Error from Canister {canister}: {trap}"))
        };
        let trap_code = |t: &crate::system_api::TrapKind| match t {
            crate::system_api::TrapKind::CalledTrap(_) => ErrorCode::CanisterCalledTrap,
            crate::system_api::TrapKind::ContractViolation(_) => {
                ErrorCode::CanisterContractViolation
            }
            crate::system_api::TrapKind::InstructionLimit(_) => {
                ErrorCode::CanisterInstructionLimitExceeded
            }
            _ => ErrorCode::CanisterTrapped,
        };
        let fees = c.fees;
        let mut total_instructions = 0u64;
        let mut checkpoint = None;

        // Upgrade: run pre_upgrade on the old code; its stable memory carries over.
        let stable = match mode {
            InstallMode::Install if c.runtime.is_some() => {
                return Err(RejectResponse::system(
                    ErrorCode::CanisterNonEmpty,
                    format!(
                        "Canister {canister} cannot be installed because the canister is not empty. Try installing with mode='reinstall' instead."
                    ),
                ));
            }
            InstallMode::Install | InstallMode::Reinstall => StableMemory::default(),
            InstallMode::Upgrade => {
                let Some(rt) = c.runtime.as_mut() else {
                    return Err(RejectResponse::system(
                        ErrorCode::CanisterWasmModuleNotFound,
                        format!(
                            "Error from Canister {canister}: Attempted to execute a message, but the canister contains no Wasm module."
                        ),
                    ));
                };
                // Keep the old instance exactly as it is, for a failed upgrade.
                checkpoint = Some(canister::checkpoint(rt));
                if rt.module.exports.pre_upgrade {
                    let mut exec = c_exec(
                        c.id,
                        c.subnet,
                        fees,
                        &c.controllers,
                        c.cycles,
                        c.version,
                        c.global_timer,
                        c.status_code(),
                        time,
                        &root_key,
                        Ctx::PreUpgrade,
                        INSTALL_INSTRUCTION_LIMIT,
                    );
                    exec.caller = sender;
                    let rt = c.runtime.as_mut().ok_or_else(|| {
                        RejectResponse::system(ErrorCode::CanisterWasmModuleNotFound, "no module")
                    })?;
                    let outcome = canister::execute(
                        rt,
                        &Entry::Export("canister_pre_upgrade".into()),
                        exec,
                        false,
                    );
                    total_instructions += outcome.instructions;
                    if let Some(t) = &outcome.trap {
                        return Err(fail(trap_code(t), t));
                    }
                }
                c.runtime
                    .as_ref()
                    .map(|rt| rt.store.data().stable.clone())
                    .unwrap_or_default()
            }
        };
        let restore = |c: &mut CanisterState, checkpoint: Option<canister::Checkpoint>| {
            if let (Some(rt), Some(cp)) = (c.runtime.as_mut(), checkpoint) {
                canister::restore_checkpoint(rt, cp);
            }
        };

        let version = c.version + 1;
        let new_code_version = if mode == InstallMode::Upgrade {
            c.code_version
        } else {
            c.code_version + 1
        };
        let mut exec = c_exec(
            c.id,
            c.subnet,
            fees,
            &c.controllers,
            c.cycles,
            version,
            0,
            c.status_code(),
            time,
            &root_key,
            Ctx::Start,
            INSTALL_INSTRUCTION_LIMIT,
        );
        exec.caller = sender;
        let (mut rt, start_instructions) =
            match canister::instantiate(linker, module.clone(), stable, exec, heap_snapshots) {
                Ok(x) => x,
                Err((t, _)) => {
                    restore(c, checkpoint);
                    return Err(fail(trap_code(&t), &t));
                }
            };
        total_instructions += start_instructions;
        let hook = match mode {
            InstallMode::Upgrade if module.exports.post_upgrade => Some("canister_post_upgrade"),
            InstallMode::Install | InstallMode::Reinstall if module.exports.init => {
                Some("canister_init")
            }
            _ => None,
        };
        let mut exec = c_exec(
            c.id,
            c.subnet,
            fees,
            &c.controllers,
            c.cycles,
            version,
            0,
            c.status_code(),
            time,
            &root_key,
            Ctx::Init,
            INSTALL_INSTRUCTION_LIMIT,
        );
        exec.caller = sender;
        exec.arg = arg;
        exec.certified_data = None;
        let outcome = match hook {
            Some(name) => canister::execute(&mut rt, &Entry::Export(name.into()), exec, false),
            None => Outcome {
                exec,
                instructions: 0,
                trap: None,
            },
        };
        total_instructions += outcome.instructions;
        if let Some(t) = &outcome.trap {
            restore(c, checkpoint);
            return Err(fail(trap_code(t), t));
        }
        // Committed: the new code replaces the old.
        let e = outcome.exec;
        c.cycles = e.balance.saturating_sub(fees.execution(total_instructions));
        c.version = version;
        c.code_version = new_code_version;
        c.global_timer = e.global_timer;
        if mode != InstallMode::Upgrade {
            c.certified_data.clear();
        }
        if let Some(data) = e.certified_data {
            c.certified_data = data;
        }
        let logs: Vec<_> = e.logs.into_iter().map(|l| (canister, l)).collect();
        c.runtime = Some(rt);
        self.logs.extend(logs);
        self.executions.push(ExecutionRecord {
            canister,
            entry: format!("install_code ({mode:?})"),
            instructions: total_instructions,
            trapped: None,
        });
        if mode != InstallMode::Upgrade {
            self.reject_open_contexts(canister, "Canister has been reinstalled");
        }
        Ok(())
    }

    /// Removes the module, heap and stable memory; open calls are rejected.
    pub fn uninstall_code(
        &mut self,
        sender: Principal,
        canister: Principal,
    ) -> Result<(), RejectResponse> {
        self.check_controller(sender, canister, "uninstall_code")?;
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.runtime = None;
            c.certified_data.clear();
            c.global_timer = 0;
            c.version += 1;
            c.code_version += 1;
        }
        self.reject_open_contexts(canister, "Canister has been uninstalled.");
        Ok(())
    }

    fn reject_open_contexts(&mut self, canister: Principal, message: &str) {
        let ids: Vec<u64> = self
            .contexts
            .iter()
            .filter(|(_, ctx)| ctx.canister == canister)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(ctx) = self.contexts.remove(&id)
                && !ctx.replied
            {
                {
                    self.respond(
                        ctx.origin,
                        Err(RejectResponse::canister(
                            RejectCode::CanisterReject,
                            message,
                        )),
                        ctx.cycles_available,
                        canister,
                    );
                }
            }
        }
        self.callbacks.retain(|_, cb| cb.canister != canister);
        self.maybe_stopped(canister);
    }

    pub fn stop_canister(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.check_controller(sender, canister, "stop_canister")?;
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.ingress.insert(id, IngressStatus::Processing);
        self.begin_stop(canister, Origin::Ingress(id));
        self.await_call(id).map(|_| ())
    }

    pub(crate) fn begin_stop(&mut self, canister: Principal, origin: Origin) {
        let Some(c) = self.canisters.get_mut(&canister) else {
            return;
        };
        match c.status {
            CanisterRunStatus::Stopped => {
                self.respond(
                    origin,
                    Ok(candid::encode_one(()).unwrap_or_default()),
                    0,
                    canister,
                );
            }
            _ => {
                c.status = CanisterRunStatus::Stopping;
                self.stop_waiters.entry(canister).or_default().push(origin);
                self.maybe_stopped(canister);
            }
        }
    }

    fn maybe_stopped(&mut self, canister: Principal) {
        let stopping = self
            .canisters
            .get(&canister)
            .is_some_and(|c| c.status == CanisterRunStatus::Stopping);
        let open = self.contexts.values().any(|ctx| ctx.canister == canister);
        if stopping && !open {
            if let Some(c) = self.canisters.get_mut(&canister) {
                c.status = CanisterRunStatus::Stopped;
            }
            for origin in self.stop_waiters.remove(&canister).unwrap_or_default() {
                self.respond(
                    origin,
                    Ok(candid::encode_one(()).unwrap_or_default()),
                    0,
                    Principal::management_canister(),
                );
            }
        }
    }

    pub fn start_canister(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.check_controller(sender, canister, "start_canister")?;
        self.start(canister);
        Ok(())
    }

    pub(crate) fn start(&mut self, canister: Principal) {
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.status = CanisterRunStatus::Running;
        }
        for origin in self.stop_waiters.remove(&canister).unwrap_or_default() {
            self.respond(
                origin,
                Err(RejectResponse::system(
                    ErrorCode::CanisterStoppingCancelled,
                    format!("Canister {canister} has been restarted."),
                )),
                0,
                Principal::management_canister(),
            );
        }
    }

    pub fn delete_canister(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.check_controller(sender, canister, "delete_canister")?;
        self.delete(canister)
    }

    pub(crate) fn delete(&mut self, canister: Principal) -> Result<(), RejectResponse> {
        let c = self.canister(canister)?;
        if c.status != CanisterRunStatus::Stopped {
            return Err(RejectResponse::system(
                ErrorCode::CanisterNotStopped,
                format!("Canister {canister} must be stopped before it is deleted."),
            ));
        }
        self.canisters.remove(&canister);
        Ok(())
    }

    pub fn set_controllers(
        &mut self,
        canister: Principal,
        sender: Option<Principal>,
        controllers: Vec<Principal>,
    ) -> Result<(), RejectResponse> {
        let sender = sender.unwrap_or(Principal::anonymous());
        self.check_controller(sender, canister, "update_settings")?;
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.controllers = controllers;
        }
        Ok(())
    }

    // ----- fault injection ------------------------------------------------------------

    /// Holds the requests addressed to `canister` in the queue until
    /// [`Emulator::release_messages`] (responses to its own calls still arrive): lets tests
    /// make bounded-wait calls to it time out.
    pub fn hold_messages(&mut self, canister: Principal) {
        self.held.insert(canister);
    }

    pub fn release_messages(&mut self, canister: Principal) {
        self.held.remove(&canister);
    }

    // ----- calls ------------------------------------------------------------------------

    /// Submits an ingress update call without executing it.
    pub fn submit_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<MessageId, RejectResponse> {
        if arg.len() + method.len() > MAX_PAYLOAD {
            return Err(RejectResponse::system(
                ErrorCode::CanisterContractViolation,
                format!(
                    "Request of {} bytes exceeds the ingress message limit of {MAX_PAYLOAD} bytes",
                    arg.len() + method.len()
                ),
            ));
        }
        if canister != Principal::management_canister() {
            self.check_ingress(canister, sender, method, &arg)?;
        }
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.ingress.insert(id, IngressStatus::Processing);
        self.enqueue(
            sender,
            canister,
            Msg::Request {
                origin: Origin::Ingress(id),
                caller: sender,
                callee: canister,
                method: method.to_string(),
                arg,
                cycles: 0,
                deadline: 0,
            },
        );
        Ok(id)
    }

    fn check_ingress(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: &[u8],
    ) -> Result<(), RejectResponse> {
        let c = self.canister(canister)?;
        match c.status {
            CanisterRunStatus::Running => {}
            CanisterRunStatus::Stopping => {
                return Err(RejectResponse::system(
                    ErrorCode::CanisterStopping,
                    format!("Canister {canister} is stopping"),
                ));
            }
            CanisterRunStatus::Stopped => {
                return Err(RejectResponse::system(
                    ErrorCode::CanisterStopped,
                    format!("Canister {canister} is stopped"),
                ));
            }
        }
        let Some(rt) = c.runtime.as_ref() else {
            return Err(RejectResponse::system(
                ErrorCode::CanisterWasmModuleNotFound,
                format!(
                    "Error from Canister {canister}: Attempted to execute a message, but the canister contains no Wasm module."
                ),
            ));
        };
        let exports = &rt.module.exports;
        if exports.composite_queries.contains(method) {
            return Err(RejectResponse::system(
                ErrorCode::CompositeQueryCalledInReplicatedMode,
                "Composite query cannot be called in replicated mode",
            ));
        }
        if !exports.updates.contains(method) && !exports.queries.contains(method) {
            return Err(RejectResponse::system(
                ErrorCode::CanisterMethodNotFound,
                format!(
                    "Error from Canister {canister}: Canister has no update method '{method}'."
                ),
            ));
        }
        let induction = c.fees.ingress_induction(method.len() + arg.len());
        if c.cycles < c.freezing_limit() + induction {
            return Err(out_of_cycles(
                canister,
                c.cycles,
                c.freezing_limit() + induction,
            ));
        }
        let inspect = exports.inspect_message;
        if inspect {
            let mut exec = c.exec(
                Ctx::InspectMessage,
                self.time,
                &self.root_key,
                INSPECT_INSTRUCTION_LIMIT,
            );
            exec.caller = sender;
            exec.method = method.to_string();
            exec.arg = arg.to_vec();
            let c = self
                .canisters
                .get_mut(&canister)
                .ok_or_else(|| RejectResponse::system(ErrorCode::CanisterNotFound, "gone"))?;
            let Some(rt) = c.runtime.as_mut() else {
                return Err(RejectResponse::system(
                    ErrorCode::CanisterWasmModuleNotFound,
                    "no module",
                ));
            };
            let outcome = canister::execute(
                rt,
                &Entry::Export("canister_inspect_message".into()),
                exec,
                true,
            );
            if let Some(t) = outcome.trap {
                return Err(trap_reject(canister, &t));
            }
            if !outcome.exec.accepted_message {
                return Err(RejectResponse::system(
                    ErrorCode::CanisterRejectedMessage,
                    format!("Canister {canister} rejected the message"),
                ));
            }
        }
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.cycles -= induction;
        }
        Ok(())
    }

    /// Runs rounds until the ingress message `id` completes.
    pub fn await_call(&mut self, id: MessageId) -> Result<Vec<u8>, RejectResponse> {
        for _ in 0..MAX_ROUNDS {
            match self.ingress.get(&id) {
                Some(IngressStatus::Done(result)) => return result.clone(),
                Some(IngressStatus::Processing) => {}
                None => {
                    return Err(RejectResponse::system(
                        ErrorCode::IngressMessageTimeout,
                        format!("unknown message {id:?}"),
                    ));
                }
            }
            if !self.tick() {
                // Nothing runs until time passes. On the IC it passes by itself: a bounded-wait
                // call the awaited message depends on (say, a `stop_canister` waiting for a
                // call to a held canister) times out. Jump to the earliest such deadline.
                if let Some(deadline) = self.next_callback_deadline() {
                    self.time = self.time.max(deadline);
                    continue;
                }
                return Err(RejectResponse::system(
                    ErrorCode::IngressMessageTimeout,
                    format!(
                        "message {id:?} is still being processed and the emulator is idle (advance time or release held messages)"
                    ),
                ));
            }
        }
        Err(RejectResponse::system(
            ErrorCode::IngressMessageTimeout,
            format!("message {id:?} did not complete within {MAX_ROUNDS} rounds"),
        ))
    }

    /// The status of an ingress message: `None` while it is processing.
    pub fn ingress_status(&self, id: MessageId) -> Option<Result<Vec<u8>, RejectResponse>> {
        match self.ingress.get(&id) {
            Some(IngressStatus::Done(r)) => Some(r.clone()),
            _ => None,
        }
    }

    pub fn update_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let id = self.submit_call(canister, sender, method, arg)?;
        self.await_call(id)
    }

    /// A non-replicated query: the state is never changed, and the canister can
    /// read a certificate of its certified data.
    pub fn query_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let c = self.canister(canister)?;
        if c.status != CanisterRunStatus::Running {
            return Err(RejectResponse::system(
                ErrorCode::CanisterStopped,
                format!("Canister {canister} is stopped"),
            ));
        }
        let Some(rt) = c.runtime.as_ref() else {
            return Err(RejectResponse::system(
                ErrorCode::CanisterWasmModuleNotFound,
                format!(
                    "Error from Canister {canister}: Attempted to execute a message, but the canister contains no Wasm module."
                ),
            ));
        };
        let (entry, ctx) = if rt.module.exports.queries.contains(method) {
            (format!("canister_query {method}"), Ctx::NonReplicatedQuery)
        } else if rt.module.exports.composite_queries.contains(method) {
            (
                format!("canister_composite_query {method}"),
                Ctx::CompositeQuery,
            )
        } else {
            return Err(RejectResponse::system(
                ErrorCode::CanisterMethodNotFound,
                format!("Error from Canister {canister}: Canister has no query method '{method}'."),
            ));
        };
        if ctx == Ctx::CompositeQuery {
            let mut checkpoints = BTreeMap::new();
            let result = self.composite(canister, sender, method, arg, 0, &mut checkpoints);
            // Nothing a composite query does survives it, on any canister.
            for (id, checkpoint) in checkpoints {
                if let Some(rt) = self.canisters.get_mut(&id).and_then(|c| c.runtime.as_mut()) {
                    canister::restore_checkpoint(rt, checkpoint);
                }
            }
            return result;
        }
        let certificate = self.lazy_certificate(canister);
        let c = self.canister(canister)?;
        let mut exec = c.exec(ctx, self.time, &self.root_key, QUERY_INSTRUCTION_LIMIT);
        exec.caller = sender;
        exec.method = method.to_string();
        exec.arg = arg;
        exec.can_respond = true;
        exec.data_certificate = Some(certificate);
        let c = self
            .canisters
            .get_mut(&canister)
            .ok_or_else(|| RejectResponse::system(ErrorCode::CanisterNotFound, "gone"))?;
        let rt = c.runtime.as_mut().ok_or_else(|| {
            RejectResponse::system(ErrorCode::CanisterWasmModuleNotFound, "no module")
        })?;
        let outcome = canister::execute(rt, &Entry::Export(entry.clone()), exec, true);
        self.executions.push(ExecutionRecord {
            canister,
            entry,
            instructions: outcome.instructions,
            trapped: outcome.trap.as_ref().map(|t| t.to_string()),
        });
        if let Some(t) = outcome.trap {
            return Err(trap_reject(canister, &t));
        }
        match outcome.exec.response {
            Some(ExecResponse::Reply(bytes)) => Ok(bytes),
            Some(ExecResponse::Reject(message)) => Err(RejectResponse::canister(
                RejectCode::CanisterReject,
                message,
            )),
            None => Err(RejectResponse::system(
                ErrorCode::CanisterDidNotReply,
                format!("Error from Canister {canister}: Canister did not reply to the call"),
            )),
        }
    }

    /// Evaluates a (composite) query and the query calls it makes, depth first,
    /// on canisters of one subnet, keeping a checkpoint of every canister it
    /// touches so the caller can discard all of it.
    fn composite(
        &mut self,
        canister: Principal,
        caller: Principal,
        method: &str,
        arg: Vec<u8>,
        depth: usize,
        checkpoints: &mut BTreeMap<Principal, canister::Checkpoint>,
    ) -> Result<Vec<u8>, RejectResponse> {
        const MAX_DEPTH: usize = 6;
        if depth > MAX_DEPTH {
            return Err(RejectResponse::system(
                ErrorCode::QueryCallGraphTooDeep,
                "Composite query call graph went too deep",
            ));
        }
        if depth > 0
            && checkpoints.contains_key(&canister)
            && self.composite_stack.contains(&canister)
        {
            return Err(RejectResponse::system(
                ErrorCode::QueryCallGraphLoopDetected,
                "Loop detected in the composite query call graph",
            ));
        }
        let c = self.canister(canister)?;
        if c.status != CanisterRunStatus::Running {
            return Err(RejectResponse::system(
                ErrorCode::CanisterStopped,
                format!("Canister {canister} is stopped"),
            ));
        }
        let rt = c.runtime.as_ref().ok_or_else(|| {
            RejectResponse::system(
                ErrorCode::CanisterWasmModuleNotFound,
                format!("Error from Canister {canister}: Attempted to execute a message, but the canister contains no Wasm module."),
            )
        })?;
        let (entry, ctx) = if rt.module.exports.queries.contains(method) {
            (format!("canister_query {method}"), Ctx::NonReplicatedQuery)
        } else if rt.module.exports.composite_queries.contains(method) {
            (
                format!("canister_composite_query {method}"),
                Ctx::CompositeQuery,
            )
        } else {
            return Err(RejectResponse::system(
                ErrorCode::CanisterMethodNotFound,
                format!("Error from Canister {canister}: Canister has no query method '{method}'."),
            ));
        };
        let certificate = (depth == 0).then(|| self.lazy_certificate(canister));
        let subnet = c.subnet;
        let mut exec = c.exec(ctx, self.time, &self.root_key, QUERY_INSTRUCTION_LIMIT);
        exec.caller = caller;
        exec.method = method.to_string();
        exec.arg = arg;
        exec.can_respond = true;
        exec.data_certificate = certificate;
        let rt = self.runtime_mut(canister)?;
        checkpoints
            .entry(canister)
            .or_insert_with(|| canister::checkpoint(rt));
        self.composite_stack.push(canister);
        let result = self.composite_run(
            canister,
            subnet,
            Entry::Export(entry),
            exec,
            depth,
            checkpoints,
        );
        self.composite_stack.pop();
        result
    }

    fn composite_run(
        &mut self,
        canister: Principal,
        subnet: Principal,
        entry: Entry,
        exec: crate::system_api::Exec,
        depth: usize,
        checkpoints: &mut BTreeMap<Principal, canister::Checkpoint>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let rt = self.runtime_mut(canister)?;
        let outcome = canister::execute(rt, &entry, exec, false);
        self.executions.push(ExecutionRecord {
            canister,
            entry: entry.label(),
            instructions: outcome.instructions,
            trapped: outcome.trap.as_ref().map(|t| t.to_string()),
        });
        if let Some(t) = outcome.trap {
            return Err(trap_reject(canister, &t));
        }
        let mut response = outcome.exec.response;
        let mut pending: std::collections::VecDeque<PendingCall> = outcome.exec.calls.into();
        let mut failure = None;
        while let Some(call) = pending.pop_front() {
            let same_subnet = self
                .canisters
                .get(&call.callee)
                .is_some_and(|c| c.subnet == subnet);
            let result = if same_subnet {
                self.composite(
                    call.callee,
                    canister,
                    &call.method,
                    call.arg,
                    depth + 1,
                    checkpoints,
                )
            } else {
                Err(RejectResponse::system(
                    ErrorCode::CanisterContractViolation,
                    format!(
                        "Composite query cannot be used to call canister {} on another subnet",
                        call.callee
                    ),
                ))
            };
            let c = self.canister(canister)?;
            let (fun, env, ctx) = match &result {
                Ok(_) => (call.reply.0, call.reply.1, Ctx::CompositeReply),
                Err(_) => (call.reject.0, call.reject.1, Ctx::CompositeReject),
            };
            let mut exec = c.exec(ctx, self.time, &self.root_key, QUERY_INSTRUCTION_LIMIT);
            exec.caller = canister;
            exec.can_respond = response.is_none();
            match result {
                Ok(bytes) => exec.arg = bytes,
                Err(r) => exec.reject = Some((r.reject_code as u32, r.reject_message)),
            }
            let rt = self.runtime_mut(canister)?;
            let label = if ctx == Ctx::CompositeReply {
                "composite reply callback"
            } else {
                "composite reject callback"
            };
            let outcome = canister::execute(rt, &Entry::Callback { fun, env, label }, exec, false);
            self.executions.push(ExecutionRecord {
                canister,
                entry: label.into(),
                instructions: outcome.instructions,
                trapped: outcome.trap.as_ref().map(|t| t.to_string()),
            });
            match outcome.trap {
                Some(t) => {
                    if let Some((fun, env)) = call.cleanup {
                        let c = self.canister(canister)?;
                        let exec = c.exec(
                            Ctx::CompositeCleanup,
                            self.time,
                            &self.root_key,
                            QUERY_INSTRUCTION_LIMIT,
                        );
                        let rt = self.runtime_mut(canister)?;
                        let _ = canister::execute(
                            rt,
                            &Entry::Callback {
                                fun,
                                env,
                                label: "composite cleanup callback",
                            },
                            exec,
                            false,
                        );
                    }
                    failure = Some(trap_reject(canister, &t));
                }
                None => {
                    if response.is_none() {
                        response = outcome.exec.response;
                    }
                    pending.extend(outcome.exec.calls);
                }
            }
        }
        match response {
            Some(ExecResponse::Reply(bytes)) => Ok(bytes),
            Some(ExecResponse::Reject(message)) => Err(RejectResponse::canister(
                RejectCode::CanisterReject,
                message,
            )),
            None => Err(failure.unwrap_or_else(|| {
                RejectResponse::system(
                    ErrorCode::CanisterDidNotReply,
                    format!("Error from Canister {canister}: Canister did not reply to the call"),
                )
            })),
        }
    }

    fn runtime_mut(
        &mut self,
        canister: Principal,
    ) -> Result<&mut canister::Runtime, RejectResponse> {
        self.canisters
            .get_mut(&canister)
            .and_then(|c| c.runtime.as_mut())
            .ok_or_else(|| {
                RejectResponse::system(
                    ErrorCode::CanisterWasmModuleNotFound,
                    format!("Canister {canister} has no Wasm module"),
                )
            })
    }

    fn lazy_certificate(&self, canister: Principal) -> crate::system_api::DataCertificate {
        let keys = self.keys.clone();
        let c = self.canisters.get(&canister);
        let data = c.map(|c| c.certified_data.clone()).unwrap_or_default();
        let signer = c
            .and_then(|c| self.subnets.iter().find(|s| s.info.id == c.subnet))
            .map(|s| s.signer.clone());
        let time = self.time;
        crate::system_api::DataCertificate::new(move || match &signer {
            Some(signer) => keys
                .certificate(signer, time, canister.as_slice(), &data)
                .unwrap_or_else(|e| panic!("BUG: certificate for {canister} failed: {e}")),
            None => Vec::new(),
        })
    }

    /// A certificate of `canister`'s certified data at the current time, signed
    /// by its subnet (with a delegation from the root subnet unless it is the root).
    pub fn certificate_for(&self, canister: Principal) -> Vec<u8> {
        let Some(c) = self.canisters.get(&canister) else {
            return Vec::new();
        };
        let Some(subnet) = self.subnets.iter().find(|s| s.info.id == c.subnet) else {
            return Vec::new();
        };
        self.keys
            .certificate(
                &subnet.signer,
                self.time,
                canister.as_slice(),
                &c.certified_data,
            )
            .unwrap_or_else(|e| panic!("BUG: certificate for {canister} failed: {e}"))
    }

    // ----- execution log --------------------------------------------------------------

    pub fn executions(&self) -> &[ExecutionRecord] {
        &self.executions
    }

    pub fn take_executions(&mut self) -> Vec<ExecutionRecord> {
        std::mem::take(&mut self.executions)
    }

    /// Everything canisters printed with `ic0.debug_print`.
    pub fn take_logs(&mut self) -> Vec<(Principal, String)> {
        std::mem::take(&mut self.logs)
    }

    // ----- rounds -----------------------------------------------------------------------

    fn enqueue(&mut self, src: Principal, dst: Principal, msg: Msg) {
        self.queue.push(Envelope { src, dst, msg });
    }

    /// True when messages are queued (held ones included).
    pub fn has_pending_messages(&self) -> bool {
        !self.queue.is_empty()
    }

    /// One round: due timers and heartbeats are scheduled, expired bounded-wait
    /// calls time out, and every message queued at the start of the round is
    /// executed. Returns whether anything happened. Time moves on by 1 ns.
    pub fn tick(&mut self) -> bool {
        let mut progressed = self.schedule_system_tasks();
        progressed |= self.expire_callbacks();
        let mut budget = self.queue.len();
        while budget > 0 {
            budget -= 1;
            if !self.step() {
                break;
            }
            progressed = true;
        }
        self.time += 1;
        progressed
    }

    /// Executes tick() until no message is queued or the round limit is hit.
    pub fn run_until_idle(&mut self) {
        for _ in 0..MAX_ROUNDS {
            if !self.tick() {
                return;
            }
        }
    }

    fn schedule_system_tasks(&mut self) -> bool {
        let due: Vec<(Principal, &'static str)> = self
            .canisters
            .values()
            .filter(|c| c.status == CanisterRunStatus::Running)
            .filter_map(|c| {
                let exports = &c.runtime.as_ref()?.module.exports;
                (exports.global_timer && c.global_timer != 0 && c.global_timer <= self.time)
                    .then_some((c.id, "canister_global_timer"))
            })
            .collect();
        for (id, entry) in &due {
            if let Some(c) = self.canisters.get_mut(id) {
                // The timer is deactivated when it fires.
                c.global_timer = 0;
            }
            self.enqueue(
                *id,
                *id,
                Msg::Task {
                    canister: *id,
                    entry,
                },
            );
        }
        !due.is_empty()
    }

    /// The earliest deadline of a bounded-wait call that has not timed out yet.
    fn next_callback_deadline(&self) -> Option<u64> {
        self.callbacks
            .values()
            .filter(|cb| !cb.timed_out)
            .filter_map(|cb| cb.deadline)
            .min()
    }

    fn expire_callbacks(&mut self) -> bool {
        let now = self.time;
        // A response already queued arrived before the deadline: it is the answer, not the
        // timeout (on the IC exactly one of the two reaches the callback).
        let answered: BTreeSet<u64> = self
            .queue
            .iter()
            .filter_map(|e| match e.msg {
                Msg::Response { callback, .. } => Some(callback),
                _ => None,
            })
            .collect();
        let expired: Vec<u64> = self
            .callbacks
            .iter()
            .filter(|(id, cb)| {
                !cb.timed_out && cb.deadline.is_some_and(|d| d <= now) && !answered.contains(id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            let Some(cb) = self.callbacks.get_mut(id) else {
                continue;
            };
            cb.timed_out = true;
            let canister = cb.canister;
            // The late response (if any) will be dropped; this one takes its place.
            self.queue.push(Envelope {
                src: canister,
                dst: canister,
                msg: Msg::Response {
                    callback: *id,
                    result: Err((RejectCode::SysUnknown, "Timeout expired".into())),
                    refund: 0,
                },
            });
        }
        !expired.is_empty()
    }

    /// Executes exactly one message, if one is eligible. Returns whether it did.
    pub fn step(&mut self) -> bool {
        let Some(index) = self.pick() else {
            return false;
        };
        let envelope = self.queue.remove(index);
        self.deliver(envelope);
        true
    }

    fn pick(&mut self) -> Option<usize> {
        let mut seen_pairs = BTreeSet::new();
        let mut eligible = Vec::new();
        for (i, e) in self.queue.iter().enumerate() {
            if self.held.contains(&e.dst) && !matches!(e.msg, Msg::Response { .. }) {
                continue;
            }
            match e.msg {
                // Requests between one pair of canisters stay in order.
                Msg::Request { .. } => {
                    if seen_pairs.insert((e.src, e.dst)) {
                        eligible.push(i);
                    }
                }
                _ => eligible.push(i),
            }
        }
        if eligible.is_empty() {
            return None;
        }
        match self.schedule_rng.as_mut() {
            None => eligible.first().copied(),
            Some(rng) => Some(eligible[rng.gen_range(0..eligible.len())]),
        }
    }

    fn deliver(&mut self, envelope: Envelope) {
        match envelope.msg {
            Msg::Request {
                origin,
                caller,
                callee,
                method,
                arg,
                cycles,
                deadline,
            } => {
                if callee == Principal::management_canister() {
                    crate::management::handle(
                        self, origin, caller, &method, &arg, cycles, deadline,
                    );
                } else if crate::cmc::routes_here(self, callee) {
                    crate::cmc::handle(self, origin, caller, &method, &arg, cycles);
                } else {
                    self.deliver_request(origin, caller, callee, method, arg, cycles, deadline);
                }
            }
            Msg::Response {
                callback,
                result,
                refund,
            } => self.deliver_response(callback, result, refund),
            Msg::Task { canister, entry } => self.run_task(canister, entry),
        }
    }

    /// Sends the answer of a call context to whoever is waiting for it.
    pub(crate) fn respond(
        &mut self,
        origin: Origin,
        result: Result<Vec<u8>, RejectResponse>,
        refund: u128,
        from: Principal,
    ) {
        match origin {
            Origin::Ingress(id) => {
                self.ingress.insert(id, IngressStatus::Done(result));
            }
            Origin::Canister { caller, callback } => {
                let result = result.map_err(|r| (r.reject_code, r.reject_message));
                self.enqueue(
                    from,
                    caller,
                    Msg::Response {
                        callback,
                        result,
                        refund,
                    },
                );
            }
            Origin::System => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_request(
        &mut self,
        origin: Origin,
        caller: Principal,
        callee: Principal,
        method: String,
        arg: Vec<u8>,
        cycles: u128,
        deadline: u64,
    ) {
        if deadline != 0 && self.time > deadline {
            // An expired bounded-wait request is dropped; the caller's
            // callback times out with SYS_UNKNOWN.
            return;
        }
        let reject = |code: ErrorCode, message: String| Err(RejectResponse::system(code, message));
        let checked: Result<(String, Ctx), RejectResponse> = match self.canisters.get(&callee) {
            None => reject(
                ErrorCode::CanisterNotFound,
                format!("Canister {callee} not found"),
            ),
            Some(c) if c.status == CanisterRunStatus::Stopped => reject(
                ErrorCode::CanisterStopped,
                format!("Canister {callee} is stopped"),
            ),
            Some(c) if c.status == CanisterRunStatus::Stopping => reject(
                ErrorCode::CanisterStopping,
                format!("Canister {callee} is stopping"),
            ),
            Some(c) => match c.runtime.as_ref() {
                None => reject(
                    ErrorCode::CanisterWasmModuleNotFound,
                    format!(
                        "Error from Canister {callee}: Attempted to execute a message, but the canister contains no Wasm module."
                    ),
                ),
                Some(rt) if rt.module.exports.updates.contains(&method) => {
                    Ok((format!("canister_update {method}"), Ctx::Update))
                }
                Some(rt) if rt.module.exports.queries.contains(&method) => {
                    Ok((format!("canister_query {method}"), Ctx::ReplicatedQuery))
                }
                Some(rt) if rt.module.exports.composite_queries.contains(&method) => reject(
                    ErrorCode::CompositeQueryCalledInReplicatedMode,
                    "Composite query cannot be called in replicated mode".into(),
                ),
                Some(_) => reject(
                    ErrorCode::CanisterMethodNotFound,
                    format!(
                        "Error from Canister {callee}: Canister has no update method '{method}'."
                    ),
                ),
            },
        };
        let (entry, ctx) = match checked {
            Ok(x) => x,
            Err(r) => return self.respond(origin, Err(r), cycles, callee),
        };
        let context = self.new_id();
        let Some(c) = self.canisters.get(&callee) else {
            return;
        };
        let prepay = c.fees.execution(UPDATE_INSTRUCTION_LIMIT);
        if c.cycles < c.freezing_limit() + prepay {
            let r = out_of_cycles(callee, c.cycles, c.freezing_limit() + prepay);
            return self.respond(origin, Err(r), cycles, callee);
        }
        self.contexts.insert(
            context,
            CallContext {
                canister: callee,
                origin,
                caller,
                cycles_available: cycles,
                replied: false,
                outstanding: 0,
                instructions: 0,
                deadline,
            },
        );
        let mut exec = c.exec(ctx, self.time, &self.root_key, UPDATE_INSTRUCTION_LIMIT);
        exec.caller = caller;
        exec.method = method;
        exec.arg = arg;
        exec.cycles_available = cycles;
        exec.can_respond = true;
        exec.deadline = deadline;
        self.run(
            callee,
            context,
            Entry::Export(entry),
            exec,
            ctx == Ctx::ReplicatedQuery,
            None,
        );
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn deliver_response(
        &mut self,
        callback: u64,
        result: Result<Vec<u8>, (RejectCode, String)>,
        refund: u128,
    ) {
        let Some(cb) = self.callbacks.get(&callback) else {
            return;
        };
        let is_timeout = matches!(&result, Err((RejectCode::SysUnknown, _))) && cb.timed_out;
        if cb.timed_out && !is_timeout {
            // A late response after the timeout: dropped, as on the IC. The callback stays for
            // the queued timeout, which is what runs it.
            return;
        }
        let Some(cb) = self.callbacks.remove(&callback) else {
            return;
        };
        let Some(c) = self.canisters.get_mut(&cb.canister) else {
            return;
        };
        c.cycles += refund + cb.prepayment;
        let code_matches = c.code_version == cb.code_version && c.runtime.is_some();
        let Some(context) = self.contexts.get(&cb.context) else {
            return;
        };
        if !code_matches {
            return;
        }
        let (entry, ctx, reject) = match &result {
            Ok(_) => (
                Entry::Callback {
                    fun: cb.reply.0,
                    env: cb.reply.1,
                    label: "reply callback",
                },
                Ctx::Reply,
                None,
            ),
            Err((code, message)) => (
                Entry::Callback {
                    fun: cb.reject.0,
                    env: cb.reject.1,
                    label: "reject callback",
                },
                Ctx::Reject,
                Some((*code as u32, message.clone())),
            ),
        };
        let mut exec = c.exec(ctx, self.time, &self.root_key, UPDATE_INSTRUCTION_LIMIT);
        exec.caller = context.caller;
        exec.arg = result.clone().unwrap_or_default();
        exec.reject = reject;
        exec.refunded = refund;
        exec.cycles_available = context.cycles_available;
        exec.can_respond = !context.replied;
        exec.deadline = context.deadline;
        exec.call_context_instructions = context.instructions;
        let cleanup = cb.cleanup;
        self.run(cb.canister, cb.context, entry, exec, false, cleanup);
    }

    fn run_task(&mut self, canister: Principal, entry: &'static str) {
        let context = self.new_id();
        let Some(c) = self.canisters.get(&canister) else {
            return;
        };
        if c.runtime.is_none() || c.status != CanisterRunStatus::Running {
            return;
        }
        self.contexts.insert(
            context,
            CallContext {
                canister,
                origin: Origin::System,
                caller: canister,
                cycles_available: 0,
                replied: true,
                outstanding: 0,
                instructions: 0,
                deadline: 0,
            },
        );
        let mut exec = c.exec(
            Ctx::SystemTask,
            self.time,
            &self.root_key,
            UPDATE_INSTRUCTION_LIMIT,
        );
        exec.caller = canister;
        self.run(
            canister,
            context,
            Entry::Export(entry.into()),
            exec,
            false,
            None,
        );
    }

    /// Executes one message in a call context and commits its effects (or only
    /// its cost, on a trap), then settles the call context.
    fn run(
        &mut self,
        canister: Principal,
        context: u64,
        entry: Entry,
        mut exec: crate::system_api::Exec,
        discard: bool,
        cleanup: Option<(u32, u32)>,
    ) {
        let Some(c) = self.canisters.get_mut(&canister) else {
            return;
        };
        let Some(rt) = c.runtime.as_mut() else { return };
        let start_cycles = c.cycles;
        // The IC withdraws the cost of the largest possible execution before it
        // runs (and refunds what was not used): the canister sees a balance
        // without it.
        let prepayment = c.fees.execution(exec.instruction_limit).min(exec.balance);
        exec.balance -= prepayment;
        let outcome = canister::execute(rt, &entry, exec, discard);
        let instructions = outcome.instructions;
        let cost = c.fees.execution(instructions);
        self.executions.push(ExecutionRecord {
            canister,
            entry: entry.label(),
            instructions,
            trapped: outcome.trap.as_ref().map(|t| t.to_string()),
        });
        self.logs
            .extend(outcome.exec.logs.iter().map(|l| (canister, l.clone())));
        if let Some(ctx) = self.contexts.get_mut(&context) {
            ctx.instructions += instructions;
        }
        let Some(c) = self.canisters.get_mut(&canister) else {
            return;
        };
        if let Some(trap) = outcome.trap {
            c.cycles = start_cycles.saturating_sub(cost);
            let is_callback = matches!(entry, Entry::Callback { .. });
            if is_callback {
                if let Some((fun, env)) = cleanup {
                    let mut exec = c.exec(
                        Ctx::Cleanup,
                        self.time,
                        &self.root_key,
                        UPDATE_INSTRUCTION_LIMIT,
                    );
                    exec.caller = canister;
                    self.run(
                        canister,
                        context,
                        Entry::Callback {
                            fun,
                            env,
                            label: CLEANUP,
                        },
                        exec,
                        false,
                        None,
                    );
                }
                // A context that ends unanswered after a trapped callback is
                // rejected with that trap, as the replica does.
                self.settle_with(context, None, 1, Some(trap_reject(canister, &trap)));
            } else if let Some(ctx) = self.contexts.remove(&context) {
                // The first execution of a call context trapped: reject it.
                let reject = trap_reject(canister, &trap);
                if !ctx.replied {
                    self.respond(ctx.origin, Err(reject), ctx.cycles_available, canister);
                }
                self.maybe_stopped(canister);
            }
            return;
        }
        let exec = outcome.exec;
        if discard {
            c.cycles = start_cycles.saturating_sub(cost);
        } else {
            c.cycles = (exec.balance + prepayment).saturating_sub(cost);
            if let Some(data) = exec.certified_data {
                c.certified_data = data;
            }
            c.global_timer = exec.global_timer;
        }
        let code_version = c.code_version;
        let subnet_time = self.time;
        let calls = exec.calls;
        let accepted = exec.cycles_accepted;
        let n = calls.len() as u32;
        for call in calls {
            self.send_call(canister, context, call, code_version, subnet_time);
        }
        if let Some(ctx) = self.contexts.get_mut(&context) {
            ctx.outstanding += n;
            ctx.cycles_available -= accepted.min(ctx.cycles_available);
        }
        // A reply or reject callback finishes one outstanding call; a cleanup
        // callback runs for a callback already counted.
        let finished = matches!(entry, Entry::Callback { label, .. } if label != CLEANUP);
        self.settle(context, exec.response, u32::from(finished));
    }

    fn send_call(
        &mut self,
        canister: Principal,
        context: u64,
        call: PendingCall,
        code_version: u64,
        now: u64,
    ) {
        let id = self.new_id();
        let deadline = call
            .timeout_seconds
            .map(|s| now + u64::from(s) * 1_000_000_000);
        self.callbacks.insert(
            id,
            Callback {
                canister,
                context,
                reply: call.reply,
                reject: call.reject,
                cleanup: call.cleanup,
                prepayment: call.prepayment,
                deadline,
                code_version,
                timed_out: false,
            },
        );
        self.enqueue(
            canister,
            call.callee,
            Msg::Request {
                origin: Origin::Canister {
                    caller: canister,
                    callback: id,
                },
                caller: canister,
                callee: call.callee,
                method: call.method,
                arg: call.arg,
                cycles: call.cycles,
                deadline: deadline.unwrap_or(0),
            },
        );
    }

    /// Applies a response produced by an execution and closes the call context
    /// when nothing more can answer it.
    fn settle(&mut self, context: u64, response: Option<ExecResponse>, finished_callbacks: u32) {
        self.settle_with(context, response, finished_callbacks, None);
    }

    fn settle_with(
        &mut self,
        context: u64,
        response: Option<ExecResponse>,
        finished_callbacks: u32,
        failure: Option<RejectResponse>,
    ) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        ctx.outstanding -= finished_callbacks.min(ctx.outstanding);
        let canister = ctx.canister;
        if let Some(response) = response {
            ctx.replied = true;
            let refund = std::mem::take(&mut ctx.cycles_available);
            let origin = ctx.origin;
            let result = match response {
                ExecResponse::Reply(bytes) => Ok(bytes),
                ExecResponse::Reject(message) => Err(RejectResponse::canister(
                    RejectCode::CanisterReject,
                    message,
                )),
            };
            self.respond(origin, result, refund, canister);
        }
        let Some(ctx) = self.contexts.get(&context) else {
            return;
        };
        if ctx.outstanding == 0 {
            let ctx = self.contexts.remove(&context);
            if let Some(ctx) = ctx.filter(|c| !c.replied) {
                let reject = failure.unwrap_or_else(|| {
                    RejectResponse::system(
                        ErrorCode::CanisterDidNotReply,
                        format!(
                            "Error from Canister {canister}: Canister did not reply to the call"
                        ),
                    )
                });
                self.respond(ctx.origin, Err(reject), ctx.cycles_available, canister);
            }
            self.maybe_stopped(canister);
        }
    }

    pub(crate) fn random_bytes(&mut self) -> [u8; 32] {
        self.rng.r#gen()
    }

    pub(crate) fn install_module_from(
        &mut self,
        sender: Principal,
        canister: Principal,
        module: CompiledModule,
        arg: Vec<u8>,
        mode: InstallMode,
    ) -> Result<(), RejectResponse> {
        self.install_module(sender, canister, module, arg, mode)
    }
}

pub(crate) fn out_of_cycles(canister: Principal, balance: u128, needed: u128) -> RejectResponse {
    RejectResponse::system(
        ErrorCode::CanisterOutOfCycles,
        format!(
            "Canister {canister} is out of cycles: please top up the canister with at least {} additional cycles",
            needed.saturating_sub(balance)
        ),
    )
}

pub(crate) fn trap_reject(
    canister: Principal,
    trap: &crate::system_api::TrapKind,
) -> RejectResponse {
    use crate::system_api::TrapKind;
    let code = match trap {
        TrapKind::CalledTrap(_) => ErrorCode::CanisterCalledTrap,
        TrapKind::ContractViolation(_) => ErrorCode::CanisterContractViolation,
        TrapKind::InstructionLimit(_) => ErrorCode::CanisterInstructionLimitExceeded,
        _ => ErrorCode::CanisterTrapped,
    };
    RejectResponse::system(code, format!("Error from Canister {canister}: {trap}"))
}

#[allow(clippy::too_many_arguments)]
fn c_exec(
    id: Principal,
    subnet: Principal,
    fees: Fees,
    controllers: &[Principal],
    cycles: u128,
    version: u64,
    global_timer: u64,
    status: u32,
    time: u64,
    root_key: &[u8],
    ctx: Ctx,
    limit: u64,
) -> crate::system_api::Exec {
    let mut exec = crate::system_api::Exec::new(ctx, id, subnet, fees);
    exec.controllers = controllers.to_vec();
    exec.balance = cycles;
    exec.version = version;
    exec.global_timer = global_timer;
    exec.status = status;
    exec.time = time;
    exec.root_key = root_key.to_vec();
    exec.instruction_limit = limit;
    exec
}
