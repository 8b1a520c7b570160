//! One canister: its installed module and instance, its system state, and the
//! execution of one message with the IC's atomicity (a trap rolls back the heap,
//! globals, stable memory and every effect the execution asked for).

use crate::fees::{DEFAULT_FREEZING_THRESHOLD_SECONDS, Fees};
use crate::heap::{HeapSnapshots, Region};
use crate::system_api::{Ctx, Exec, HostState, StableMemory, TrapKind, WASM_PAGE};
use crate::types::CanisterRunStatus;
use crate::wasm::{CompiledModule, GLOBAL_EXPORT_PREFIX, HEAP_IMPORT, TABLE_EXPORT};
use candid::Principal;
use std::collections::BTreeMap;
use wasmi::{Instance, Linker, Memory, Store, Val};

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
    /// A heap-sized buffer reused by full-copy snapshots, so a message does
    /// not pay for allocating (and faulting in) a fresh copy of the heap.
    spare: Vec<u8>,
    /// The mapping that backs the heap when its written pages are tracked.
    /// Declared after `store`, whose memory points into it, so it is dropped
    /// after the store.
    region: Option<Region>,
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

/// The memory type of the module's heap when the rewrite made it an import.
fn heap_type(module: &wasmi::Module) -> Option<wasmi::MemoryType> {
    module.imports().find_map(|import| match import.ty() {
        wasmi::ExternType::Memory(ty) if (import.module(), import.name()) == HEAP_IMPORT => {
            Some(*ty)
        }
        _ => None,
    })
}

/// Instantiates `module` in `store`, backing an imported heap with `region`
/// (or with a plain vector). Runs data segments and the start function.
fn new_instance(
    linker: &Linker<HostState>,
    module: &wasmi::Module,
    store: &mut Store<HostState>,
    region: Option<&Region>,
) -> Result<(Instance, Option<Memory>), wasmi::Error> {
    let Some(ty) = heap_type(module) else {
        let instance = linker.instantiate_and_start(&mut *store, module)?;
        let memory = instance.get_memory(&*store, "memory");
        return Ok((instance, memory));
    };
    let memory = match region {
        // SAFETY: the region belongs to the runtime that will own this store,
        // and is declared after the store in `Runtime`, so it outlives it.
        Some(region) => Memory::new_static(&mut *store, ty, unsafe { region.buffer() })?,
        None => Memory::new(&mut *store, ty)?,
    };
    let mut linker = linker.clone();
    linker.define(HEAP_IMPORT.0, HEAP_IMPORT.1, memory)?;
    let instance = linker.instantiate_and_start(&mut *store, module)?;
    Ok((instance, Some(memory)))
}

impl Runtime {
    /// How this instance's executions save the heap.
    pub fn heap_snapshots(&self) -> HeapSnapshots {
        if self.region.is_some() {
            HeapSnapshots::DirtyPages
        } else {
            HeapSnapshots::FullCopy
        }
    }
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
    snapshots: HeapSnapshots,
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
    let region = match (snapshots, heap_type(&module.module)) {
        (HeapSnapshots::DirtyPages, Some(ty)) => {
            // A wasm32 heap without a declared maximum may grow to 4 GiB.
            let pages = ty.maximum().unwrap_or(1 << 16).min(1 << 16);
            Region::new((pages * WASM_PAGE) as usize)
        }
        _ => None,
    };
    let (instance, memory) =
        on_wasm_stack(|| new_instance(linker, &module.module, &mut store, region.as_ref()))
            .map_err(|e| (classify(&e, limit), limit - store.get_fuel().unwrap_or(0)))?;
    let instructions = limit - store.get_fuel().unwrap_or(0);
    store.data_mut().memory = memory;
    let globals = mutable_globals(&instance, &store, module.mutable_globals);
    let mut region = region;
    if let (Some(region), Some(memory)) = (region.as_mut(), memory) {
        // The shadow starts as the initialised heap, all of it protected.
        region.commit(memory.data_size(&store));
    }
    Ok((
        Runtime {
            module,
            store,
            instance,
            globals,
            spare: Vec::new(),
            region,
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
    heap: Vec<u8>,
    globals: Vec<Val>,
    stable: StableMemory,
}

pub fn checkpoint(rt: &mut Runtime) -> Checkpoint {
    Checkpoint {
        heap: rt
            .store
            .data()
            .memory
            .map(|m| m.data(&rt.store).to_vec())
            .unwrap_or_default(),
        globals: rt.globals.iter().map(|g| g.get(&rt.store)).collect(),
        stable: rt.store.data().stable.clone(),
    }
}

pub fn restore_checkpoint(rt: &mut Runtime, checkpoint: Checkpoint) {
    let mut stable = checkpoint.stable;
    stable.begin();
    rt.store.data_mut().stable = stable;
    write_heap(rt, &checkpoint.heap);
    restore_globals(rt, checkpoint.globals);
}

/// What one execution needs to undo its writes.
struct Snapshot {
    heap: SavedHeap,
    globals: Vec<Val>,
}

enum SavedHeap {
    /// The whole heap.
    Copy(Vec<u8>),
    /// The heap's size; the region knows the pages written since.
    Tracked { len: usize },
}

fn heap_len(rt: &Runtime) -> usize {
    rt.store.data().memory.map_or(0, |m| m.data_size(&rt.store))
}

fn snapshot(rt: &mut Runtime) -> Snapshot {
    let globals = rt.globals.iter().map(|g| g.get(&rt.store)).collect();
    rt.store.data_mut().stable.begin();
    let heap = match &rt.region {
        Some(_) => SavedHeap::Tracked { len: heap_len(rt) },
        None => {
            let mut heap = std::mem::take(&mut rt.spare);
            heap.clear();
            if let Some(memory) = rt.store.data().memory {
                heap.extend_from_slice(memory.data(&rt.store));
            }
            SavedHeap::Copy(heap)
        }
    };
    Snapshot { heap, globals }
}

/// Keeps what the execution did.
fn commit(rt: &mut Runtime, snapshot: Snapshot) {
    match snapshot.heap {
        SavedHeap::Copy(heap) => rt.spare = heap,
        SavedHeap::Tracked { .. } => {
            let len = heap_len(rt);
            if let Some(region) = rt.region.as_mut() {
                region.commit(len);
            }
        }
    }
}

fn restore(rt: &mut Runtime, snapshot: Snapshot) {
    rt.store.data_mut().stable.rollback();
    match snapshot.heap {
        SavedHeap::Copy(heap) => {
            write_heap(rt, &heap);
            rt.spare = heap;
        }
        SavedHeap::Tracked { len } => {
            if let Some(region) = rt.region.as_mut() {
                region.roll_back();
            }
            if heap_len(rt) != len {
                // The heap grew: its first `len` bytes are restored, the rest
                // must go, which only a fresh instance can do.
                let heap = rt
                    .store
                    .data()
                    .memory
                    .and_then(|m| m.data(&rt.store).get(..len).map(<[u8]>::to_vec))
                    .unwrap_or_default();
                rebuild(rt, &heap);
            }
        }
    }
    restore_globals(rt, snapshot.globals);
}

fn restore_globals(rt: &mut Runtime, globals: Vec<Val>) {
    for (global, value) in rt.globals.iter().zip(globals) {
        let _ = global.set(&mut rt.store, value);
    }
}

/// Makes the heap equal to `heap`.
fn write_heap(rt: &mut Runtime, heap: &[u8]) {
    if let Some(memory) = rt.store.data().memory {
        let data = memory.data_mut(&mut rt.store);
        if data.len() == heap.len() {
            data.copy_from_slice(heap);
            let len = heap.len();
            if let Some(region) = rt.region.as_mut() {
                region.commit(len);
            }
        } else {
            // The heap grew: Wasm memory cannot shrink, so roll back by
            // building a fresh instance and restoring the heap into it.
            rebuild(rt, heap);
        }
    }
}

fn rebuild(rt: &mut Runtime, heap: &[u8]) {
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
    // effects the restored heap overwrites. A region is reused as it is: its
    // old store is dropped below, before anything touches the heap again.
    let _ = store.set_fuel(u64::MAX / 2);
    let Ok((instance, memory)) =
        on_wasm_stack(|| new_instance(&linker, &rt.module.module, &mut store, rt.region.as_ref()))
    else {
        return;
    };
    if let Some(memory) = memory {
        let pages = heap.len() as u64 / WASM_PAGE;
        let current = memory.size(&store);
        if pages > current {
            let _ = memory.grow(&mut store, pages - current);
        }
        if let Some(data) = memory.data_mut(&mut store).get_mut(..heap.len()) {
            data.copy_from_slice(heap);
        }
    }
    store.data_mut().memory = memory;
    rt.globals = mutable_globals(&instance, &store, rt.module.mutable_globals);
    rt.store = store;
    rt.instance = instance;
    // Instantiation and the copy wrote the heap: what it holds now is committed.
    let len = heap_len(rt);
    if let Some(region) = rt.region.as_mut() {
        region.commit(len);
    }
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
        commit(rt, saved);
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
