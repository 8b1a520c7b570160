//! One canister: its installed module and instance, its system state, and the
//! execution of one message with the IC's atomicity (a trap rolls back the heap,
//! globals, stable memory and every effect the execution asked for).

use crate::fees::{DEFAULT_FREEZING_THRESHOLD_SECONDS, Fees};
use crate::system_api::{Ctx, Exec, HostState, StableMemory, TrapKind, WASM_PAGE};
use crate::types::CanisterRunStatus;
use crate::wasm::{CompiledModule, GLOBAL_EXPORT_PREFIX, TABLE_EXPORT};
use candid::Principal;
use std::collections::BTreeMap;
use wasmi::{Instance, Linker, Store, Val};

/// The entry point of one execution.
#[derive(Clone, Debug)]
pub enum Entry {
    /// An exported function: `canister_update m`, `canister_init`, …
    Export(String),
    /// A callback by table index, with its environment pointer.
    Callback {
        fun: u32,
        env: u32,
        label: &'static str,
    },
}

impl Entry {
    pub fn label(&self) -> String {
        match self {
            Entry::Export(name) => name.clone(),
            Entry::Callback { label, .. } => (*label).to_string(),
        }
    }
}

/// A live module instance with its store.
pub struct Runtime {
    pub module: CompiledModule,
    pub store: Store<HostState>,
    pub instance: Instance,
    /// The module's mutable globals, saved and restored around executions.
    globals: Vec<wasmi::Global>,
    /// A heap-sized buffer reused by snapshots, so a message does not pay for
    /// allocating (and faulting in) a fresh copy of the heap.
    spare: Vec<u8>,
}

fn mutable_globals(
    instance: &Instance,
    store: &Store<HostState>,
    count: usize,
) -> Vec<wasmi::Global> {
    (0..count)
        .filter_map(|i| instance.get_global(store, &format!("{GLOBAL_EXPORT_PREFIX}{i}")))
        .collect()
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("module", &hex::encode(self.module.hash))
            .finish()
    }
}

/// The outcome of one execution.
#[derive(Debug)]
pub struct Outcome {
    pub exec: Exec,
    pub instructions: u64,
    pub trap: Option<TrapKind>,
}

#[derive(Debug)]
pub struct CanisterState {
    pub id: Principal,
    pub subnet: Principal,
    pub fees: Fees,
    pub controllers: Vec<Principal>,
    pub cycles: u128,
    pub freezing_threshold: u64,
    pub status: CanisterRunStatus,
    pub version: u64,
    pub certified_data: Vec<u8>,
    pub global_timer: u64,
    pub runtime: Option<Runtime>,
    pub chunks: BTreeMap<[u8; 32], Vec<u8>>,
    pub env_vars: Vec<(String, String)>,
    /// Bumped on reinstall and uninstall: callbacks of older code are dropped.
    pub code_version: u64,
}

impl CanisterState {
    pub fn new(
        id: Principal,
        subnet: Principal,
        fees: Fees,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> Self {
        Self {
            id,
            subnet,
            fees,
            controllers,
            cycles,
            freezing_threshold: DEFAULT_FREEZING_THRESHOLD_SECONDS,
            status: CanisterRunStatus::Running,
            version: 0,
            certified_data: Vec::new(),
            global_timer: 0,
            runtime: None,
            chunks: BTreeMap::new(),
            env_vars: Vec::new(),
            code_version: 0,
        }
    }

    pub fn status_code(&self) -> u32 {
        match self.status {
            CanisterRunStatus::Running => 1,
            CanisterRunStatus::Stopping => 2,
            CanisterRunStatus::Stopped => 3,
        }
    }

    pub fn memory_size(&self) -> u64 {
        self.runtime.as_ref().map_or(0, |rt| {
            let heap = rt
                .store
                .data()
                .memory
                .map_or(0, |m| m.data_size(&rt.store) as u64);
            heap + rt.store.data().stable.len() + rt.module.size as u64
        })
    }

    pub fn freezing_limit(&self) -> u128 {
        self.fees
            .freezing_limit(self.memory_size(), self.freezing_threshold)
    }

    /// A fresh `Exec` for this canister, filled with its system state.
    pub fn exec(&self, ctx: Ctx, time: u64, root_key: &[u8], instruction_limit: u64) -> Exec {
        let mut exec = Exec::new(ctx, self.id, self.subnet, self.fees);
        exec.balance = self.cycles;
        exec.freezing_limit = self.freezing_limit();
        exec.global_timer = self.global_timer;
        exec.time = time;
        exec.status = self.status_code();
        exec.version = self.version;
        exec.controllers = self.controllers.clone();
        exec.root_key = root_key.to_vec();
        exec.instruction_limit = instruction_limit;
        exec.env_vars = self.env_vars.clone();
        exec
    }
}

/// Instantiates `module` with `stable` memory; runs the start function (in the
/// `(start)` context) as part of instantiation, as the IC does at install.
pub fn instantiate(
    linker: &Linker<HostState>,
    module: CompiledModule,
    stable: StableMemory,
    exec: Exec,
) -> Result<(Runtime, u64), (TrapKind, u64)> {
    let engine = crate::wasm::engine();
    let limit = exec.instruction_limit;
    let mut store = Store::new(
        engine,
        HostState {
            memory: None,
            stable,
            exec,
        },
    );
    store
        .set_fuel(limit)
        .map_err(|e| (TrapKind::Wasm(e.to_string()), 0))?;
    let pre = on_wasm_stack(|| linker.instantiate_and_start(&mut store, &module.module))
        .map_err(|e| (classify(&e, limit), limit - store.get_fuel().unwrap_or(0)))?;
    let instructions = limit - store.get_fuel().unwrap_or(0);
    let memory = pre.get_memory(&store, "memory");
    store.data_mut().memory = memory;
    let globals = mutable_globals(&pre, &store, module.mutable_globals);
    Ok((
        Runtime {
            module,
            store,
            instance: pre,
            globals,
            spare: Vec::new(),
        },
        instructions,
    ))
}

/// wasmi runs Wasm calls on the native stack, and the deepest call chains it
/// allows (its recursion limit) need far more than a test thread's 2 MiB: every
/// execution gets a stack of its own (reserved, not committed, until used).
const WASM_NATIVE_STACK: usize = 256 * 1024 * 1024;

fn on_wasm_stack<R>(f: impl FnOnce() -> R) -> R {
    crate::stack::run(WASM_NATIVE_STACK, f)
}

/// Maps a wasmi error to the IC's trap kinds.
pub fn classify(error: &wasmi::Error, limit: u64) -> TrapKind {
    if let Some(kind) = error.downcast_ref::<TrapKind>() {
        return kind.clone();
    }
    match error.as_trap_code() {
        Some(wasmi::TrapCode::OutOfFuel) => TrapKind::InstructionLimit(limit),
        Some(wasmi::TrapCode::MemoryOutOfBounds) => TrapKind::HeapOutOfBounds,
        Some(wasmi::TrapCode::UnreachableCodeReached) => TrapKind::Wasm("unreachable".into()),
        Some(code) => TrapKind::Wasm(code.trap_message().to_string()),
        None => TrapKind::Wasm(error.to_string()),
    }
}

/// A full copy of an instance's state, to undo several executions at once.
pub struct Checkpoint {
    snapshot: Snapshot,
    stable: StableMemory,
}

pub fn checkpoint(rt: &mut Runtime) -> Checkpoint {
    let stable = rt.store.data().stable.clone();
    Checkpoint {
        snapshot: snapshot(rt),
        stable,
    }
}

pub fn restore_checkpoint(rt: &mut Runtime, checkpoint: Checkpoint) {
    let mut stable = checkpoint.stable;
    stable.begin();
    rt.store.data_mut().stable = stable;
    restore(rt, checkpoint.snapshot);
}

struct Snapshot {
    heap: Vec<u8>,
    globals: Vec<Val>,
}

fn snapshot(rt: &mut Runtime) -> Snapshot {
    let mut heap = std::mem::take(&mut rt.spare);
    heap.clear();
    if let Some(memory) = rt.store.data().memory {
        heap.extend_from_slice(memory.data(&rt.store));
    }
    let globals = rt.globals.iter().map(|g| g.get(&rt.store)).collect();
    rt.store.data_mut().stable.begin();
    Snapshot { heap, globals }
}

fn restore(rt: &mut Runtime, snapshot: Snapshot) {
    rt.store.data_mut().stable.rollback();
    if let Some(memory) = rt.store.data().memory {
        let data = memory.data_mut(&mut rt.store);
        if data.len() == snapshot.heap.len() {
            data.copy_from_slice(&snapshot.heap);
        } else {
            // The heap grew: Wasm memory cannot shrink, so roll back by
            // building a fresh instance and restoring the snapshot into it.
            rebuild(rt, &snapshot);
        }
    }
    for (global, value) in rt.globals.iter().zip(snapshot.globals) {
        let _ = global.set(&mut rt.store, value);
    }
    rt.spare = snapshot.heap;
}

fn rebuild(rt: &mut Runtime, snapshot: &Snapshot) {
    let engine = crate::wasm::engine();
    let state = std::mem::replace(
        rt.store.data_mut(),
        HostState {
            memory: None,
            stable: StableMemory::default(),
            exec: Exec::new(
                Ctx::Start,
                Principal::anonymous(),
                Principal::anonymous(),
                Fees { node_count: 13 },
            ),
        },
    );
    let mut store = Store::new(engine, state);
    let Ok(linker) = crate::system_api::linker(engine) else {
        return;
    };
    // Instantiation only runs data segments and the start function, whose
    // effects the restored heap overwrites.
    let _ = store.set_fuel(u64::MAX / 2);
    let Ok(instance) = linker.instantiate_and_start(&mut store, &rt.module.module) else {
        return;
    };
    if let Some(memory) = instance.get_memory(&store, "memory") {
        let pages = snapshot.heap.len() as u64 / WASM_PAGE;
        let current = memory.size(&store);
        if pages > current {
            let _ = memory.grow(&mut store, pages - current);
        }
        memory.data_mut(&mut store)[..snapshot.heap.len()].copy_from_slice(&snapshot.heap);
        store.data_mut().memory = Some(memory);
    }
    rt.globals = mutable_globals(&instance, &store, rt.module.mutable_globals);
    rt.store = store;
    rt.instance = instance;
}

/// Runs `entry` with `exec`. On a trap everything is rolled back; with
/// `discard` (queries) the state is rolled back even on success.
pub fn execute(rt: &mut Runtime, entry: &Entry, exec: Exec, discard: bool) -> Outcome {
    let limit = exec.instruction_limit;
    let saved = snapshot(rt);
    rt.store.data_mut().exec = exec;
    let _ = rt.store.set_fuel(limit);
    let result = on_wasm_stack(|| call(rt, entry));
    let instructions = limit.saturating_sub(rt.store.get_fuel().unwrap_or(0));
    let trap = result.err().map(|e| classify(&e, limit));
    if trap.is_some() || discard {
        restore(rt, saved);
    } else {
        rt.spare = saved.heap;
    }
    let exec = std::mem::replace(
        &mut rt.store.data_mut().exec,
        Exec::new(
            Ctx::Start,
            Principal::anonymous(),
            Principal::anonymous(),
            Fees { node_count: 13 },
        ),
    );
    Outcome {
        exec,
        instructions,
        trap,
    }
}

fn call(rt: &mut Runtime, entry: &Entry) -> Result<(), wasmi::Error> {
    match entry {
        Entry::Export(name) => {
            let func = rt
                .instance
                .get_typed_func::<(), ()>(&rt.store, name)
                .map_err(|_| {
                    wasmi::Error::host(TrapKind::ContractViolation(format!(
                        "the module does not export {name}"
                    )))
                })?;
            func.call(&mut rt.store, ())
        }
        Entry::Callback { fun, env, .. } => {
            let table = rt
                .instance
                .get_table(&rt.store, TABLE_EXPORT)
                .ok_or_else(|| {
                    wasmi::Error::host(TrapKind::ContractViolation(
                        "the module has no function table for callbacks".into(),
                    ))
                })?;
            let func = table
                .get(&rt.store, u64::from(*fun))
                .and_then(|r| match r {
                    wasmi::Ref::Func(f) => f.val().copied(),
                    _ => None,
                })
                .ok_or_else(|| {
                    wasmi::Error::host(TrapKind::ContractViolation(format!(
                        "callback {fun} is not a function in the table"
                    )))
                })?;
            let typed = func.typed::<i32, ()>(&rt.store)?;
            typed.call(&mut rt.store, *env as i32)
        }
    }
}
