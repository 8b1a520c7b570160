//! The `ic0` System API: per-execution state, the specification's table of
//! which function each context may call, and the host functions themselves.

use crate::fees::{Fees, threshold_fee};
use crate::wasm::IC0_API;
use candid::Principal;
use wasmi::{Caller, Error, Linker, Memory};

/// The execution contexts of the specification's System API table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    /// `(start)`
    Start,
    /// `canister_init` and `canister_post_upgrade` (I)
    Init,
    /// `canister_pre_upgrade` (G)
    PreUpgrade,
    /// update method (U)
    Update,
    /// query method executed in replicated mode (RQ)
    ReplicatedQuery,
    /// query method executed in non-replicated mode (NRQ)
    NonReplicatedQuery,
    /// composite query method (CQ)
    CompositeQuery,
    /// reply callback (Ry)
    Reply,
    /// reject callback (Rt)
    Reject,
    /// reply callback of a composite query (CRy)
    CompositeReply,
    /// reject callback of a composite query (CRt)
    CompositeReject,
    /// cleanup callback (C)
    Cleanup,
    /// cleanup callback of a composite query (CC)
    CompositeCleanup,
    /// `canister_inspect_message` (F)
    InspectMessage,
    /// `canister_global_timer`, `canister_heartbeat`, `canister_on_low_wasm_memory` (T)
    SystemTask,
}

impl Ctx {
    fn bit(self) -> u32 {
        1 << (self as u32)
    }
    /// The name the IC uses in its contract-violation messages.
    pub fn mode_name(self) -> &'static str {
        match self {
            Ctx::Start => "start",
            Ctx::Init => "init",
            Ctx::PreUpgrade => "pre upgrade",
            Ctx::Update => "update",
            Ctx::ReplicatedQuery => "replicated query",
            Ctx::NonReplicatedQuery => "non replicated query",
            Ctx::CompositeQuery => "composite query",
            Ctx::Reply => "reply callback",
            Ctx::Reject => "reject callback",
            Ctx::CompositeReply => "composite reply callback",
            Ctx::CompositeReject => "composite reject callback",
            Ctx::Cleanup => "cleanup",
            Ctx::CompositeCleanup => "composite cleanup",
            Ctx::InspectMessage => "inspect message",
            Ctx::SystemTask => "system task",
        }
    }
    pub fn is_replicated(self) -> bool {
        !matches!(
            self,
            Ctx::NonReplicatedQuery
                | Ctx::CompositeQuery
                | Ctx::CompositeReply
                | Ctx::CompositeReject
                | Ctx::CompositeCleanup
                | Ctx::InspectMessage
        )
    }
}

const S: u32 = 1 << Ctx::Start as u32;
const I: u32 = 1 << Ctx::Init as u32;
const G: u32 = 1 << Ctx::PreUpgrade as u32;
const U: u32 = 1 << Ctx::Update as u32;
const RQ: u32 = 1 << Ctx::ReplicatedQuery as u32;
const NRQ: u32 = 1 << Ctx::NonReplicatedQuery as u32;
const CQ: u32 = 1 << Ctx::CompositeQuery as u32;
const RY: u32 = 1 << Ctx::Reply as u32;
const RT: u32 = 1 << Ctx::Reject as u32;
const CRY: u32 = 1 << Ctx::CompositeReply as u32;
const CRT: u32 = 1 << Ctx::CompositeReject as u32;
const C: u32 = 1 << Ctx::Cleanup as u32;
const CC: u32 = 1 << Ctx::CompositeCleanup as u32;
const F: u32 = 1 << Ctx::InspectMessage as u32;
const T: u32 = 1 << Ctx::SystemTask as u32;
/// `*`: every context but `(start)`.
const ALL: u32 = I | G | U | RQ | NRQ | CQ | RY | RT | CRY | CRT | C | CC | F | T;

/// The specification's table: the contexts in which each function may be called.
pub fn permitted_contexts(name: &str) -> u32 {
    match name {
        "msg_arg_data_size" | "msg_arg_data_copy" => I | U | RQ | NRQ | CQ | RY | CRY | F,
        "msg_caller_size" | "msg_caller_copy" => ALL,
        "msg_caller_info_data_size"
        | "msg_caller_info_data_copy"
        | "msg_caller_info_signer_size"
        | "msg_caller_info_signer_copy" => ALL,
        "msg_reject_code" => RY | RT | CRY | CRT,
        "msg_reject_msg_size" | "msg_reject_msg_copy" => RT | CRT,
        "msg_deadline" => U | RQ | NRQ | CQ | RY | RT | CRY | CRT,
        "msg_reply_data_append" | "msg_reply" | "msg_reject" => {
            U | RQ | NRQ | CQ | RY | RT | CRY | CRT
        }
        "msg_cycles_available128" | "msg_cycles_accept128" => U | RQ | RT | RY,
        "msg_cycles_refunded128" => RT | RY,
        "cycles_burn128" => I | G | U | RQ | RY | RT | C | T,
        "canister_self_size"
        | "canister_self_copy"
        | "canister_cycle_balance128"
        | "canister_liquid_cycle_balance128"
        | "canister_status"
        | "canister_version"
        | "subnet_self_size"
        | "subnet_self_copy"
        | "subnet_self_node_count" => ALL,
        "msg_method_name_size" | "msg_method_name_copy" | "accept_message" => F,
        "call_new"
        | "call_on_cleanup"
        | "call_data_append"
        | "call_with_best_effort_response"
        | "call_perform" => U | CQ | RY | RT | CRY | CRT | T,
        "call_cycles_add128" => U | RY | RT | T,
        "stable64_size" | "stable64_grow" | "stable64_write" | "stable64_read" => ALL | S,
        "root_key_size" | "root_key_copy" => I | G | U | RQ | RY | RT | C | T,
        "certified_data_set" => I | G | U | RY | RT | T,
        "data_certificate_present" => ALL,
        "data_certificate_size" | "data_certificate_copy" => NRQ | CQ,
        "time" => ALL,
        "global_timer_set" => I | G | U | RY | RT | C | T,
        "performance_counter"
        | "is_controller"
        | "in_replicated_execution"
        | "cost_call"
        | "cost_create_canister"
        | "cost_http_request"
        | "cost_http_request_v2"
        | "cost_sign_with_ecdsa"
        | "cost_sign_with_schnorr"
        | "cost_vetkd_derive_key" => ALL | S,
        "env_var_count"
        | "env_var_name_size"
        | "env_var_name_copy"
        | "env_var_name_exists"
        | "env_var_value_size"
        | "env_var_value_copy" => ALL,
        "debug_print" | "trap" => ALL | S,
        _ => 0,
    }
}

pub fn is_permitted(name: &str, ctx: Ctx) -> bool {
    permitted_contexts(name) & ctx.bit() != 0
}

/// Why an execution trapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrapKind {
    /// `ic0.trap` with its message (a Rust panic ends here).
    CalledTrap(String),
    /// A System API call the context forbids, or a misuse of the API.
    ContractViolation(String),
    InstructionLimit(u64),
    HeapOutOfBounds,
    StableMemoryOutOfBounds,
    /// A Wasm trap (`unreachable`, division by zero, …).
    Wasm(String),
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrapKind::CalledTrap(m) => write!(f, "Canister called `ic0.trap` with message: '{m}'"),
            TrapKind::ContractViolation(m) => write!(f, "Canister violated contract: {m}"),
            TrapKind::InstructionLimit(l) => write!(
                f,
                "Canister exceeded the limit of {l} instructions for single message execution."
            ),
            TrapKind::HeapOutOfBounds => write!(f, "Canister trapped: heap out of bounds"),
            TrapKind::StableMemoryOutOfBounds => {
                write!(f, "Canister trapped: stable memory out of bounds")
            }
            TrapKind::Wasm(m) => write!(f, "Canister trapped: {m}"),
        }
    }
}

impl wasmi::errors::HostError for TrapKind {}

fn trap(kind: TrapKind) -> Error {
    Error::host(kind)
}

fn violation(message: impl Into<String>) -> Error {
    trap(TrapKind::ContractViolation(message.into()))
}

/// A call under construction (`call_new` … `call_perform`).
#[derive(Clone, Debug)]
pub struct PendingCall {
    pub callee: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub reply: (u32, u32),
    pub reject: (u32, u32),
    pub cleanup: Option<(u32, u32)>,
    pub cycles: u128,
    pub timeout_seconds: Option<u32>,
    /// Cycles reserved for the response, refunded less its cost.
    pub prepayment: u128,
}

/// What an execution answered its call context with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecResponse {
    Reply(Vec<u8>),
    Reject(String),
}

pub const MAX_PAYLOAD: usize = 2 * 1024 * 1024;
pub const MAX_CERTIFIED_DATA: usize = 32;
/// System API calls cost a small base in instructions, plus one per byte copied.
const SYSTEM_API_BASE_COST: u64 = 20;

/// The certificate a non-replicated query can read, signed only if it asks
/// for it (a BLS signature costs milliseconds; most queries never read it).
#[derive(Clone)]
pub struct DataCertificate {
    make: std::sync::Arc<dyn Fn() -> Vec<u8> + Send + Sync>,
    value: Option<Vec<u8>>,
}

impl DataCertificate {
    pub fn new(make: impl Fn() -> Vec<u8> + Send + Sync + 'static) -> Self {
        Self {
            make: std::sync::Arc::new(make),
            value: None,
        }
    }
    fn bytes(&mut self) -> &[u8] {
        let make = &self.make;
        self.value.get_or_insert_with(|| make())
    }
}

impl std::fmt::Debug for DataCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataCertificate")
    }
}

/// Everything one message execution may read or change through `ic0`.
#[derive(Clone, Debug)]
pub struct Exec {
    pub ctx: Ctx,
    pub canister_id: Principal,
    pub subnet_id: Principal,
    pub fees: Fees,
    pub caller: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub reject: Option<(u32, String)>,
    pub refunded: u128,
    pub deadline: u64,
    pub reply_data: Vec<u8>,
    pub response: Option<ExecResponse>,
    /// False once the call context has been answered.
    pub can_respond: bool,
    pub cycles_available: u128,
    pub cycles_accepted: u128,
    pub balance: u128,
    pub freezing_limit: u128,
    pub pending_call: Option<PendingCall>,
    pub calls: Vec<PendingCall>,
    pub certified_data: Option<Vec<u8>>,
    pub global_timer: u64,
    pub time: u64,
    pub status: u32,
    pub version: u64,
    pub controllers: Vec<Principal>,
    pub root_key: Vec<u8>,
    pub data_certificate: Option<DataCertificate>,
    pub accepted_message: bool,
    pub instruction_limit: u64,
    pub call_context_instructions: u64,
    pub env_vars: Vec<(String, String)>,
    pub logs: Vec<String>,
}

impl Exec {
    pub fn new(ctx: Ctx, canister_id: Principal, subnet_id: Principal, fees: Fees) -> Self {
        Self {
            ctx,
            canister_id,
            subnet_id,
            fees,
            caller: Principal::anonymous(),
            method: String::new(),
            arg: Vec::new(),
            reject: None,
            refunded: 0,
            deadline: 0,
            reply_data: Vec::new(),
            response: None,
            can_respond: false,
            cycles_available: 0,
            cycles_accepted: 0,
            balance: 0,
            freezing_limit: 0,
            pending_call: None,
            calls: Vec::new(),
            certified_data: None,
            global_timer: 0,
            time: 0,
            status: 1,
            version: 0,
            controllers: Vec::new(),
            root_key: Vec::new(),
            data_certificate: None,
            accepted_message: false,
            instruction_limit: 0,
            call_context_instructions: 0,
            env_vars: Vec::new(),
            logs: Vec::new(),
        }
    }
}

pub const WASM_PAGE: u64 = 64 * 1024;
/// The IC's stable memory limit (500 GiB). Pages are allocated when first
/// written, so a large but sparse stable memory costs what it touches.
pub const MAX_STABLE_PAGES: u64 = 500 * 1024 * 1024 * 1024 / WASM_PAGE;

/// Stable memory: sparse 64 KiB pages (untouched pages read as zeros) with an
/// undo log, so a trap rolls it back without copying it.
#[derive(Clone, Debug, Default)]
pub struct StableMemory {
    pages: u64,
    data: std::collections::BTreeMap<u64, Box<[u8]>>,
    undo: Vec<(u64, Vec<u8>)>,
    size_before: Option<u64>,
}

impl StableMemory {
    pub fn pages(&self) -> u64 {
        self.pages
    }
    pub fn len(&self) -> u64 {
        self.pages * WASM_PAGE
    }
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }
    /// The whole stable memory as bytes (for tests and inspection).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.len() as usize];
        self.copy_to(0, &mut out);
        out
    }
    pub fn begin(&mut self) {
        self.undo.clear();
        self.size_before = None;
    }
    pub fn rollback(&mut self) {
        while let Some((offset, bytes)) = self.undo.pop() {
            self.copy_from(offset, &bytes);
        }
        if let Some(pages) = self.size_before.take() {
            self.pages = pages;
            self.data.retain(|page, _| *page < pages);
        }
    }
    fn grow(&mut self, pages: u64) -> u64 {
        let old = self.pages;
        match old.checked_add(pages) {
            Some(new) if new <= MAX_STABLE_PAGES => {
                self.size_before.get_or_insert(old);
                self.pages = new;
                old
            }
            _ => u64::MAX,
        }
    }
    fn check(&self, offset: u64, size: u64) -> Result<(), Error> {
        match offset.checked_add(size) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(trap(TrapKind::StableMemoryOutOfBounds)),
        }
    }
    fn copy_to(&self, offset: u64, out: &mut [u8]) {
        let mut done = 0usize;
        while done < out.len() {
            let at = offset + done as u64;
            let (page, within) = (at / WASM_PAGE, (at % WASM_PAGE) as usize);
            let n = (WASM_PAGE as usize - within).min(out.len() - done);
            match self.data.get(&page) {
                Some(bytes) => out[done..done + n].copy_from_slice(&bytes[within..within + n]),
                None => out[done..done + n].fill(0),
            }
            done += n;
        }
    }
    fn copy_from(&mut self, offset: u64, src: &[u8]) {
        let mut done = 0usize;
        while done < src.len() {
            let at = offset + done as u64;
            let (page, within) = (at / WASM_PAGE, (at % WASM_PAGE) as usize);
            let n = (WASM_PAGE as usize - within).min(src.len() - done);
            let bytes = self
                .data
                .entry(page)
                .or_insert_with(|| vec![0; WASM_PAGE as usize].into_boxed_slice());
            bytes[within..within + n].copy_from_slice(&src[done..done + n]);
            done += n;
        }
    }
    fn write(&mut self, offset: u64, src: &[u8]) {
        let mut old = vec![0; src.len()];
        self.copy_to(offset, &mut old);
        self.undo.push((offset, old));
        self.copy_from(offset, src);
    }
}

/// The data of a canister's wasmi store.
#[derive(Debug)]
pub struct HostState {
    pub memory: Option<Memory>,
    pub stable: StableMemory,
    pub exec: Exec,
}

fn enter(caller: &mut Caller<'_, HostState>, name: &str, bytes: u64) -> Result<(), Error> {
    let ctx = caller.data().exec.ctx;
    if !is_permitted(name, ctx) {
        return Err(violation(format!(
            "\"ic0_{name}\" cannot be executed in {} mode",
            ctx.mode_name()
        )));
    }
    charge(caller, SYSTEM_API_BASE_COST + bytes)
}

fn charge(caller: &mut Caller<'_, HostState>, instructions: u64) -> Result<(), Error> {
    let fuel = caller.get_fuel()?;
    if fuel < instructions {
        let limit = caller.data().exec.instruction_limit;
        return Err(trap(TrapKind::InstructionLimit(limit)));
    }
    caller.set_fuel(fuel - instructions)
}

fn memory(caller: &Caller<'_, HostState>) -> Result<Memory, Error> {
    caller
        .data()
        .memory
        .ok_or_else(|| violation("the module exports no memory"))
}

fn read_heap(caller: &Caller<'_, HostState>, src: i32, size: i32) -> Result<Vec<u8>, Error> {
    let mem = memory(caller)?;
    let data = mem.data(caller);
    let (start, len) = (src as u32 as usize, size as u32 as usize);
    data.get(start..start.saturating_add(len))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| trap(TrapKind::HeapOutOfBounds))
}

fn write_heap(caller: &mut Caller<'_, HostState>, dst: i32, bytes: &[u8]) -> Result<(), Error> {
    let mem = memory(caller)?;
    let data = mem.data_mut(caller);
    let start = dst as u32 as usize;
    data.get_mut(start..start.saturating_add(bytes.len()))
        .ok_or_else(|| trap(TrapKind::HeapOutOfBounds))?
        .copy_from_slice(bytes);
    Ok(())
}

/// `*_copy(dst, offset, size)`: copies `source[offset..offset+size]` to the heap.
fn copy_out(
    caller: &mut Caller<'_, HostState>,
    name: &str,
    source: impl FnOnce(&Exec) -> Vec<u8>,
    dst: i32,
    offset: i32,
    size: i32,
) -> Result<(), Error> {
    let source = source(&caller.data().exec);
    let (offset, size) = (offset as u32 as usize, size as u32 as usize);
    let Some(slice) = source.get(offset..offset.saturating_add(size)) else {
        return Err(violation(format!(
            "ic0.{name}: src={offset} + length={size} exceeds the slice size={}",
            source.len()
        )));
    };
    let slice = slice.to_vec();
    charge(caller, size as u64)?;
    write_heap(caller, dst, &slice)
}

fn write_u128(caller: &mut Caller<'_, HostState>, dst: i32, value: u128) -> Result<(), Error> {
    write_heap(caller, dst, &value.to_le_bytes())
}

fn u128_of(high: i64, low: i64) -> u128 {
    (u128::from(high as u64) << 64) | u128::from(low as u64)
}

fn key_name(caller: &Caller<'_, HostState>, src: i32, size: i32) -> Result<String, Error> {
    let bytes = read_heap(caller, src, size)?;
    String::from_utf8(bytes).map_err(|_| violation("key name is not valid UTF-8"))
}

fn liquid(exec: &Exec) -> u128 {
    exec.balance.saturating_sub(exec.freezing_limit)
}

fn principal(bytes: &[u8]) -> Result<Principal, Error> {
    Principal::try_from_slice(bytes).map_err(|_| violation("invalid principal"))
}

macro_rules! api {
    ($linker:ident, $name:literal, |$caller:ident $(, $arg:ident : $ty:ty)*| $body:block) => {
        $linker.func_wrap(
            "ic0",
            $name,
            #[allow(unused_mut)]
            |mut $caller: Caller<'_, HostState>, $($arg: $ty),*| {
                enter(&mut $caller, $name, 0)?;
                $body
            },
        )?;
    };
}

/// Builds the linker that provides the whole `ic0` module.
pub fn linker(engine: &wasmi::Engine) -> Result<Linker<HostState>, Error> {
    let mut l = Linker::<HostState>::new(engine);

    api!(l, "msg_arg_data_size", |c| {
        Ok(c.data().exec.arg.len() as i32)
    });
    api!(
        l,
        "msg_arg_data_copy",
        |c, dst: i32, off: i32, size: i32| {
            copy_out(
                &mut c,
                "msg_arg_data_copy",
                |e| e.arg.clone(),
                dst,
                off,
                size,
            )
        }
    );
    api!(l, "msg_caller_size", |c| {
        Ok(c.data().exec.caller.as_slice().len() as i32)
    });
    api!(l, "msg_caller_copy", |c, dst: i32, off: i32, size: i32| {
        copy_out(
            &mut c,
            "msg_caller_copy",
            |e| e.caller.as_slice().to_vec(),
            dst,
            off,
            size,
        )
    });
    // Caller info (signed attributes of the caller) is not modelled: always empty.
    api!(l, "msg_caller_info_data_size", |c| { Ok(0i32) });
    api!(
        l,
        "msg_caller_info_data_copy",
        |c, dst: i32, off: i32, size: i32| {
            copy_out(
                &mut c,
                "msg_caller_info_data_copy",
                |_| Vec::new(),
                dst,
                off,
                size,
            )
        }
    );
    api!(l, "msg_caller_info_signer_size", |c| { Ok(0i32) });
    api!(
        l,
        "msg_caller_info_signer_copy",
        |c, dst: i32, off: i32, size: i32| {
            copy_out(
                &mut c,
                "msg_caller_info_signer_copy",
                |_| Vec::new(),
                dst,
                off,
                size,
            )
        }
    );
    api!(l, "msg_reject_code", |c| {
        Ok(c.data().exec.reject.as_ref().map_or(0, |(code, _)| *code) as i32)
    });
    api!(l, "msg_reject_msg_size", |c| {
        Ok(c.data().exec.reject.as_ref().map_or(0, |(_, m)| m.len()) as i32)
    });
    api!(
        l,
        "msg_reject_msg_copy",
        |c, dst: i32, off: i32, size: i32| {
            copy_out(
                &mut c,
                "msg_reject_msg_copy",
                |e| {
                    e.reject
                        .as_ref()
                        .map(|(_, m)| m.clone().into_bytes())
                        .unwrap_or_default()
                },
                dst,
                off,
                size,
            )
        }
    );
    api!(l, "msg_deadline", |c| { Ok(c.data().exec.deadline as i64) });
    api!(l, "msg_reply_data_append", |c, src: i32, size: i32| {
        let bytes = read_heap(&c, src, size)?;
        charge(&mut c, bytes.len() as u64)?;
        let exec = &mut c.data_mut().exec;
        if !exec.can_respond {
            return Err(violation(
                "ic0.msg_reply_data_append: the call is already replied",
            ));
        }
        if exec.reply_data.len() + bytes.len() > MAX_PAYLOAD {
            return Err(violation(format!(
                "ic0.msg_reply_data_append: application payload size ({}) cannot be larger than {MAX_PAYLOAD}.",
                exec.reply_data.len() + bytes.len()
            )));
        }
        exec.reply_data.extend_from_slice(&bytes);
        Ok(())
    });
    api!(l, "msg_reply", |c| {
        let exec = &mut c.data_mut().exec;
        if !exec.can_respond {
            return Err(violation("ic0.msg_reply: the call is already replied"));
        }
        exec.can_respond = false;
        exec.response = Some(ExecResponse::Reply(std::mem::take(&mut exec.reply_data)));
        Ok(())
    });
    api!(l, "msg_reject", |c, src: i32, size: i32| {
        let bytes = read_heap(&c, src, size)?;
        let exec = &mut c.data_mut().exec;
        if !exec.can_respond {
            return Err(violation("ic0.msg_reject: the call is already replied"));
        }
        exec.can_respond = false;
        exec.response = Some(ExecResponse::Reject(
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
        Ok(())
    });
    api!(l, "msg_cycles_available128", |c, dst: i32| {
        let e = &c.data().exec;
        let available = e.cycles_available - e.cycles_accepted;
        write_u128(&mut c, dst, available)
    });
    api!(l, "msg_cycles_refunded128", |c, dst: i32| {
        let refunded = c.data().exec.refunded;
        write_u128(&mut c, dst, refunded)
    });
    api!(
        l,
        "msg_cycles_accept128",
        |c, high: i64, low: i64, dst: i32| {
            let exec = &mut c.data_mut().exec;
            let amount = u128_of(high, low).min(exec.cycles_available - exec.cycles_accepted);
            exec.cycles_accepted += amount;
            exec.balance += amount;
            write_u128(&mut c, dst, amount)
        }
    );
    api!(l, "cycles_burn128", |c, high: i64, low: i64, dst: i32| {
        let exec = &mut c.data_mut().exec;
        let amount = u128_of(high, low).min(liquid(exec));
        exec.balance -= amount;
        write_u128(&mut c, dst, amount)
    });
    api!(l, "canister_self_size", |c| {
        Ok(c.data().exec.canister_id.as_slice().len() as i32)
    });
    api!(
        l,
        "canister_self_copy",
        |c, dst: i32, off: i32, size: i32| {
            copy_out(
                &mut c,
                "canister_self_copy",
                |e| e.canister_id.as_slice().to_vec(),
                dst,
                off,
                size,
            )
        }
    );
    api!(l, "canister_cycle_balance128", |c, dst: i32| {
        let balance = c.data().exec.balance;
        write_u128(&mut c, dst, balance)
    });
    api!(l, "canister_liquid_cycle_balance128", |c, dst: i32| {
        let balance = liquid(&c.data().exec);
        write_u128(&mut c, dst, balance)
    });
    api!(l, "canister_status", |c| {
        Ok(c.data().exec.status as i32)
    });
    api!(l, "canister_version", |c| {
        Ok(c.data().exec.version as i64)
    });
    api!(l, "subnet_self_size", |c| {
        Ok(c.data().exec.subnet_id.as_slice().len() as i32)
    });
    api!(l, "subnet_self_copy", |c, dst: i32, off: i32, size: i32| {
        copy_out(
            &mut c,
            "subnet_self_copy",
            |e| e.subnet_id.as_slice().to_vec(),
            dst,
            off,
            size,
        )
    });
    api!(l, "subnet_self_node_count", |c| {
        Ok(c.data().exec.fees.node_count as i32)
    });
    api!(l, "msg_method_name_size", |c| {
        Ok(c.data().exec.method.len() as i32)
    });
    api!(
        l,
        "msg_method_name_copy",
        |c, dst: i32, off: i32, size: i32| {
            copy_out(
                &mut c,
                "msg_method_name_copy",
                |e| e.method.clone().into_bytes(),
                dst,
                off,
                size,
            )
        }
    );
    api!(l, "accept_message", |c| {
        let exec = &mut c.data_mut().exec;
        if exec.accepted_message {
            return Err(violation(
                "ic0.accept_message: the message was already accepted",
            ));
        }
        exec.accepted_message = true;
        Ok(())
    });
    api!(l, "call_new", |c,
                         callee_src: i32,
                         callee_size: i32,
                         name_src: i32,
                         name_size: i32,
                         reply_fun: i32,
                         reply_env: i32,
                         reject_fun: i32,
                         reject_env: i32| {
        let callee = principal(&read_heap(&c, callee_src, callee_size)?)?;
        let method = String::from_utf8(read_heap(&c, name_src, name_size)?)
            .map_err(|_| violation("ic0.call_new: method name is not valid UTF-8"))?;
        let exec = &mut c.data_mut().exec;
        // An unfinished call is discarded, and its cycles go back to the balance.
        if let Some(previous) = exec.pending_call.take() {
            exec.balance += previous.cycles;
        }
        exec.pending_call = Some(PendingCall {
            callee,
            method,
            arg: Vec::new(),
            reply: (reply_fun as u32, reply_env as u32),
            reject: (reject_fun as u32, reject_env as u32),
            cleanup: None,
            cycles: 0,
            timeout_seconds: None,
            prepayment: 0,
        });
        Ok(())
    });
    api!(l, "call_on_cleanup", |c, fun: i32, env: i32| {
        let call = c
            .data_mut()
            .exec
            .pending_call
            .as_mut()
            .ok_or_else(|| violation("ic0.call_on_cleanup: no call is under construction"))?;
        if call.cleanup.is_some() {
            return Err(violation(
                "ic0.call_on_cleanup: cleanup callback is already set",
            ));
        }
        call.cleanup = Some((fun as u32, env as u32));
        Ok(())
    });
    api!(l, "call_data_append", |c, src: i32, size: i32| {
        let bytes = read_heap(&c, src, size)?;
        charge(&mut c, bytes.len() as u64)?;
        let call = c
            .data_mut()
            .exec
            .pending_call
            .as_mut()
            .ok_or_else(|| violation("ic0.call_data_append: no call is under construction"))?;
        if call.arg.len() + bytes.len() > MAX_PAYLOAD {
            return Err(violation(format!(
                "ic0.call_data_append: call payload size ({}) cannot be larger than {MAX_PAYLOAD}.",
                call.arg.len() + bytes.len()
            )));
        }
        call.arg.extend_from_slice(&bytes);
        Ok(())
    });
    api!(l, "call_with_best_effort_response", |c, timeout: i32| {
        let call = c.data_mut().exec.pending_call.as_mut().ok_or_else(|| {
            violation("ic0.call_with_best_effort_response: no call is under construction")
        })?;
        if call.timeout_seconds.is_some() {
            return Err(violation(
                "ic0.call_with_best_effort_response: timeout is already set",
            ));
        }
        // The IC caps bounded-wait timeouts at 300 seconds.
        call.timeout_seconds = Some((timeout as u32).min(300));
        Ok(())
    });
    api!(l, "call_cycles_add128", |c, high: i64, low: i64| {
        let amount = u128_of(high, low);
        let exec = &mut c.data_mut().exec;
        let Some(call) = exec.pending_call.as_mut() else {
            return Err(violation(
                "ic0.call_cycles_add128: no call is under construction",
            ));
        };
        let available = exec.balance.saturating_sub(exec.freezing_limit);
        if amount > available {
            return Err(violation(format!(
                "Canister {} is out of cycles: requested {amount} cycles, available {available}",
                exec.canister_id
            )));
        }
        call.cycles += amount;
        exec.balance -= amount;
        Ok(())
    });
    api!(l, "call_perform", |c| {
        let exec = &mut c.data_mut().exec;
        let Some(mut call) = exec.pending_call.take() else {
            return Err(violation("ic0.call_perform: no call is under construction"));
        };
        let cost = exec
            .fees
            .call(call.method.len() as u64, call.arg.len() as u64);
        let prepayment = exec.fees.response_prepayment();
        if liquid(exec) < cost + prepayment {
            exec.balance += call.cycles;
            return Ok(crate::types::RejectCode::SysTransient as i32);
        }
        exec.balance -= cost + prepayment;
        call.prepayment = prepayment;
        exec.calls.push(call);
        Ok(0i32)
    });
    api!(l, "stable64_size", |c| {
        Ok(c.data().stable.pages() as i64)
    });
    api!(l, "stable64_grow", |c, pages: i64| {
        Ok(c.data_mut().stable.grow(pages as u64) as i64)
    });
    api!(
        l,
        "stable64_write",
        |c, offset: i64, src: i64, size: i64| {
            c.data().stable.check(offset as u64, size as u64)?;
            let src = i32::try_from(src).map_err(|_| trap(TrapKind::HeapOutOfBounds))?;
            let size = i32::try_from(size).map_err(|_| trap(TrapKind::HeapOutOfBounds))?;
            let bytes = read_heap(&c, src, size)?;
            charge(&mut c, bytes.len() as u64)?;
            c.data_mut().stable.write(offset as u64, &bytes);
            Ok(())
        }
    );
    api!(l, "stable64_read", |c, dst: i64, offset: i64, size: i64| {
        c.data().stable.check(offset as u64, size as u64)?;
        let dst = i32::try_from(dst).map_err(|_| trap(TrapKind::HeapOutOfBounds))?;
        charge(&mut c, size as u64)?;
        let mem = memory(&c)?;
        let (heap, state) = mem.data_and_store_mut(&mut c);
        let start = dst as u32 as usize;
        let out = heap
            .get_mut(start..start.saturating_add(size as usize))
            .ok_or_else(|| trap(TrapKind::HeapOutOfBounds))?;
        state.stable.copy_to(offset as u64, out);
        Ok(())
    });
    api!(l, "root_key_size", |c| {
        Ok(c.data().exec.root_key.len() as i32)
    });
    api!(l, "root_key_copy", |c, dst: i32, off: i32, size: i32| {
        copy_out(
            &mut c,
            "root_key_copy",
            |e| e.root_key.clone(),
            dst,
            off,
            size,
        )
    });
    api!(l, "certified_data_set", |c, src: i32, size: i32| {
        if size as u32 as usize > MAX_CERTIFIED_DATA {
            return Err(violation(format!(
                "ic0_certified_data_set failed because the passed data must be no larger than {MAX_CERTIFIED_DATA} bytes. Found {} bytes.",
                size as u32
            )));
        }
        let bytes = read_heap(&c, src, size)?;
        c.data_mut().exec.certified_data = Some(bytes);
        Ok(())
    });
    api!(l, "data_certificate_present", |c| {
        Ok(i32::from(c.data().exec.data_certificate.is_some()))
    });
    api!(l, "data_certificate_size", |c| {
        Ok(c.data_mut()
            .exec
            .data_certificate
            .as_mut()
            .map_or(0, |d| d.bytes().len()) as i32)
    });
    api!(
        l,
        "data_certificate_copy",
        |c, dst: i32, off: i32, size: i32| {
            copy_out(
                &mut c,
                "data_certificate_copy",
                |e| {
                    e.data_certificate
                        .clone()
                        .map(|mut d| d.bytes().to_vec())
                        .unwrap_or_default()
                },
                dst,
                off,
                size,
            )
        }
    );
    api!(l, "time", |c| { Ok(c.data().exec.time as i64) });
    api!(l, "global_timer_set", |c, timestamp: i64| {
        let exec = &mut c.data_mut().exec;
        let previous = exec.global_timer;
        exec.global_timer = timestamp as u64;
        Ok(previous as i64)
    });
    api!(l, "performance_counter", |c, counter: i32| {
        let limit = c.data().exec.instruction_limit;
        let used = limit.saturating_sub(c.get_fuel()?);
        match counter {
            0 => Ok(used as i64),
            1 => Ok((c.data().exec.call_context_instructions + used) as i64),
            _ => Err(violation(format!(
                "ic0.performance_counter: unknown counter type {counter}"
            ))),
        }
    });
    api!(l, "is_controller", |c, src: i32, size: i32| {
        let bytes = read_heap(&c, src, size)?;
        let p = principal(&bytes)?;
        Ok(i32::from(c.data().exec.controllers.contains(&p)))
    });
    api!(l, "in_replicated_execution", |c| {
        Ok(i32::from(c.data().exec.ctx.is_replicated()))
    });
    api!(l, "cost_call", |c,
                          name_size: i64,
                          payload_size: i64,
                          dst: i32| {
        let cost = c
            .data()
            .exec
            .fees
            .call(name_size as u64, payload_size as u64);
        write_u128(&mut c, dst, cost)
    });
    api!(l, "cost_create_canister", |c, dst: i32| {
        let cost = c.data().exec.fees.create_canister();
        write_u128(&mut c, dst, cost)
    });
    api!(
        l,
        "cost_http_request",
        |c, request_size: i64, max_res: i64, dst: i32| {
            let cost = c
                .data()
                .exec
                .fees
                .http_request(request_size as u64, max_res as u64);
            write_u128(&mut c, dst, cost)
        }
    );
    api!(
        l,
        "cost_http_request_v2",
        |c, src: i32, size: i32, dst: i32| {
            let _ = (src, size, dst);
            Err::<(), Error>(violation(
                "ic0.cost_http_request_v2: HTTPS outcalls are not modelled by the emulator",
            ))
        }
    );
    api!(
        l,
        "cost_sign_with_ecdsa",
        |c, src: i32, size: i32, curve: i32, dst: i32| {
            let name = key_name(&c, src, size)?;
            cost_threshold(&mut c, &name, curve == 0, dst)
        }
    );
    api!(
        l,
        "cost_sign_with_schnorr",
        |c, src: i32, size: i32, algorithm: i32, dst: i32| {
            let name = key_name(&c, src, size)?;
            cost_threshold(&mut c, &name, algorithm == 0 || algorithm == 1, dst)
        }
    );
    api!(
        l,
        "cost_vetkd_derive_key",
        |c, src: i32, size: i32, curve: i32, dst: i32| {
            let name = key_name(&c, src, size)?;
            cost_threshold(&mut c, &name, curve == 0, dst)
        }
    );
    api!(l, "env_var_count", |c| {
        Ok(c.data().exec.env_vars.len() as i32)
    });
    api!(l, "env_var_name_size", |c, index: i32| {
        let exec = &c.data().exec;
        exec.env_vars
            .get(index as u32 as usize)
            .map(|(n, _)| n.len() as i32)
            .ok_or_else(|| violation("ic0.env_var_name_size: index out of bounds"))
    });
    api!(
        l,
        "env_var_name_copy",
        |c, index: i32, dst: i32, off: i32, size: i32| {
            let name = c
                .data()
                .exec
                .env_vars
                .get(index as u32 as usize)
                .map(|(n, _)| n.clone())
                .ok_or_else(|| violation("ic0.env_var_name_copy: index out of bounds"))?;
            copy_out(
                &mut c,
                "env_var_name_copy",
                |_| name.into_bytes(),
                dst,
                off,
                size,
            )
        }
    );
    api!(l, "env_var_name_exists", |c, src: i32, size: i32| {
        let name = read_heap(&c, src, size)?;
        Ok(i32::from(
            c.data()
                .exec
                .env_vars
                .iter()
                .any(|(n, _)| n.as_bytes() == name),
        ))
    });
    api!(l, "env_var_value_size", |c, src: i32, size: i32| {
        let name = read_heap(&c, src, size)?;
        c.data()
            .exec
            .env_vars
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, v)| v.len() as i32)
            .ok_or_else(|| violation("ic0.env_var_value_size: no such environment variable"))
    });
    api!(
        l,
        "env_var_value_copy",
        |c, src: i32, size: i32, dst: i32, off: i32, len: i32| {
            let name = read_heap(&c, src, size)?;
            let value = c
                .data()
                .exec
                .env_vars
                .iter()
                .find(|(n, _)| n.as_bytes() == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| violation("ic0.env_var_value_copy: no such environment variable"))?;
            copy_out(
                &mut c,
                "env_var_value_copy",
                |_| value.into_bytes(),
                dst,
                off,
                len,
            )
        }
    );
    api!(l, "debug_print", |c, src: i32, size: i32| {
        // The IC ignores an out-of-bounds debug_print rather than trapping.
        let line = read_heap(&c, src, size).map(|b| String::from_utf8_lossy(&b).into_owned());
        if let Ok(line) = line {
            if std::env::var_os("EMULATOR_DEBUG").is_some() {
                eprintln!("[{}] {line}", c.data().exec.canister_id);
            }
            c.data_mut().exec.logs.push(line);
        }
        Ok(())
    });
    api!(l, "trap", |c, src: i32, size: i32| {
        let message = read_heap(&c, src, size)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Err::<(), Error>(trap(TrapKind::CalledTrap(message)))
    });

    debug_assert_eq!(IC0_API.len(), 67);
    Ok(l)
}

fn cost_threshold(
    caller: &mut Caller<'_, HostState>,
    key_name: &str,
    known_algorithm: bool,
    dst: i32,
) -> Result<i32, Error> {
    if !known_algorithm {
        return Ok(1);
    }
    match threshold_fee(key_name) {
        Some(fee) => {
            write_u128(caller, dst, fee)?;
            Ok(0)
        }
        None => Ok(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_define_a_context_for_every_ic0_function() {
        for (name, _, _) in IC0_API {
            assert_ne!(permitted_contexts(name), 0, "{name} has no contexts");
        }
    }

    #[test]
    fn should_forbid_certified_data_set_in_queries() {
        assert!(!is_permitted("certified_data_set", Ctx::NonReplicatedQuery));
        assert!(!is_permitted("certified_data_set", Ctx::ReplicatedQuery));
        assert!(is_permitted("certified_data_set", Ctx::Update));
        assert!(is_permitted(
            "data_certificate_copy",
            Ctx::NonReplicatedQuery
        ));
        assert!(!is_permitted("data_certificate_copy", Ctx::Update));
        assert!(!is_permitted("call_new", Ctx::NonReplicatedQuery));
        assert!(is_permitted("stable64_size", Ctx::Start));
        assert!(!is_permitted("time", Ctx::Start));
    }

    #[test]
    fn should_roll_back_stable_memory_writes_and_growth() {
        let mut stable = StableMemory::default();
        stable.grow(1);
        stable.write(0, &[7]);
        stable.begin();
        stable.write(0, &[9]);
        stable.grow(2);
        stable.write(WASM_PAGE * 2 + 5, &[1, 2, 3]);
        stable.rollback();
        assert_eq!(stable.pages(), 1);
        assert_eq!(stable.to_vec()[0], 7);
        assert_eq!(stable.data.len(), 1);
    }

    #[test]
    fn should_read_untouched_stable_pages_as_zeros_across_page_boundaries() {
        let mut stable = StableMemory::default();
        stable.grow(3);
        stable.write(WASM_PAGE - 2, &[1, 2, 3, 4]);
        let mut out = [9u8; 8];
        stable.copy_to(WASM_PAGE - 4, &mut out);
        assert_eq!(out, [0, 0, 1, 2, 3, 4, 0, 0]);
        assert!(stable.check(WASM_PAGE * 3 - 1, 1).is_ok());
        assert!(stable.check(WASM_PAGE * 3, 1).is_err());
        assert_eq!(stable.grow(MAX_STABLE_PAGES), u64::MAX);
    }
}
