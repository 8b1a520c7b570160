//! Module validation as the IC does it, the rewrite the emulator needs to run a
//! module (the replica instruments modules too), and a per-process cache of
//! compiled modules keyed by the hash of the installed bytes.

use crate::types::ErrorCode;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::{LazyLock, Mutex};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType};

/// The largest module the IC accepts once decompressed.
pub const MAX_WASM_MODULE_SIZE: usize = 100 * 1024 * 1024;
/// The largest code section the IC accepts.
pub const MAX_CODE_SECTION_SIZE: usize = 11 * 1024 * 1024;
pub const MAX_FUNCTIONS: usize = 50_000;
pub const MAX_GLOBALS: usize = 1_000;
pub const MAX_CUSTOM_SECTIONS: usize = 16;
pub const MAX_CUSTOM_SECTIONS_SIZE: usize = 1024 * 1024;

/// Export name under which the rewritten module exposes its function table.
pub(crate) const TABLE_EXPORT: &str = "__emu_table";
/// Prefix of the export names of the module's mutable globals.
pub(crate) const GLOBAL_EXPORT_PREFIX: &str = "__emu_global_";
/// Module and name under which the rewritten module imports its memory, so the
/// emulator chooses what backs it (see `heap`).
pub(crate) const HEAP_IMPORT: (&str, &str) = ("__emu", "memory");

use ValType::{I32, I64};

/// Every function of the `ic0` module (ic0 1.2) with its wasm32 signature.
pub(crate) const IC0_API: &[(&str, &[ValType], &[ValType])] = &[
    ("msg_arg_data_size", &[], &[I32]),
    ("msg_arg_data_copy", &[I32, I32, I32], &[]),
    ("msg_caller_size", &[], &[I32]),
    ("msg_caller_copy", &[I32, I32, I32], &[]),
    ("msg_caller_info_data_size", &[], &[I32]),
    ("msg_caller_info_data_copy", &[I32, I32, I32], &[]),
    ("msg_caller_info_signer_size", &[], &[I32]),
    ("msg_caller_info_signer_copy", &[I32, I32, I32], &[]),
    ("msg_reject_code", &[], &[I32]),
    ("msg_reject_msg_size", &[], &[I32]),
    ("msg_reject_msg_copy", &[I32, I32, I32], &[]),
    ("msg_deadline", &[], &[I64]),
    ("msg_reply_data_append", &[I32, I32], &[]),
    ("msg_reply", &[], &[]),
    ("msg_reject", &[I32, I32], &[]),
    ("msg_cycles_available128", &[I32], &[]),
    ("msg_cycles_refunded128", &[I32], &[]),
    ("msg_cycles_accept128", &[I64, I64, I32], &[]),
    ("cycles_burn128", &[I64, I64, I32], &[]),
    ("canister_self_size", &[], &[I32]),
    ("canister_self_copy", &[I32, I32, I32], &[]),
    ("canister_cycle_balance128", &[I32], &[]),
    ("canister_liquid_cycle_balance128", &[I32], &[]),
    ("canister_status", &[], &[I32]),
    ("canister_version", &[], &[I64]),
    ("subnet_self_size", &[], &[I32]),
    ("subnet_self_copy", &[I32, I32, I32], &[]),
    ("subnet_self_node_count", &[], &[I32]),
    ("msg_method_name_size", &[], &[I32]),
    ("msg_method_name_copy", &[I32, I32, I32], &[]),
    ("accept_message", &[], &[]),
    ("call_new", &[I32, I32, I32, I32, I32, I32, I32, I32], &[]),
    ("call_on_cleanup", &[I32, I32], &[]),
    ("call_data_append", &[I32, I32], &[]),
    ("call_with_best_effort_response", &[I32], &[]),
    ("call_cycles_add128", &[I64, I64], &[]),
    ("call_perform", &[], &[I32]),
    ("stable64_size", &[], &[I64]),
    ("stable64_grow", &[I64], &[I64]),
    ("stable64_write", &[I64, I64, I64], &[]),
    ("stable64_read", &[I64, I64, I64], &[]),
    ("root_key_size", &[], &[I32]),
    ("root_key_copy", &[I32, I32, I32], &[]),
    ("certified_data_set", &[I32, I32], &[]),
    ("data_certificate_present", &[], &[I32]),
    ("data_certificate_size", &[], &[I32]),
    ("data_certificate_copy", &[I32, I32, I32], &[]),
    ("time", &[], &[I64]),
    ("global_timer_set", &[I64], &[I64]),
    ("performance_counter", &[I32], &[I64]),
    ("is_controller", &[I32, I32], &[I32]),
    ("in_replicated_execution", &[], &[I32]),
    ("cost_call", &[I64, I64, I32], &[]),
    ("cost_create_canister", &[I32], &[]),
    ("cost_http_request", &[I64, I64, I32], &[]),
    ("cost_http_request_v2", &[I32, I32, I32], &[]),
    ("cost_sign_with_ecdsa", &[I32, I32, I32, I32], &[I32]),
    ("cost_sign_with_schnorr", &[I32, I32, I32, I32], &[I32]),
    ("cost_vetkd_derive_key", &[I32, I32, I32, I32], &[I32]),
    ("env_var_count", &[], &[I32]),
    ("env_var_name_size", &[I32], &[I32]),
    ("env_var_name_copy", &[I32, I32, I32, I32], &[]),
    ("env_var_name_exists", &[I32, I32], &[I32]),
    ("env_var_value_size", &[I32, I32], &[I32]),
    ("env_var_value_copy", &[I32, I32, I32, I32, I32], &[]),
    ("debug_print", &[I32, I32], &[]),
    ("trap", &[I32, I32], &[]),
];

/// What a canister module exports, as the IC reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleExports {
    pub updates: BTreeSet<String>,
    pub queries: BTreeSet<String>,
    pub composite_queries: BTreeSet<String>,
    pub init: bool,
    pub pre_upgrade: bool,
    pub post_upgrade: bool,
    pub heartbeat: bool,
    pub global_timer: bool,
    pub inspect_message: bool,
    pub on_low_wasm_memory: bool,
}

/// A module that passed the IC's checks, ready to instantiate.
#[derive(Clone, Debug)]
pub struct CompiledModule {
    pub hash: [u8; 32],
    pub exports: ModuleExports,
    /// `icp:public` / `icp:private` custom sections: name → (public, content).
    pub metadata: BTreeMap<String, (bool, Vec<u8>)>,
    pub(crate) module: wasmi::Module,
    pub(crate) mutable_globals: usize,
    pub(crate) size: usize,
}

/// Why a module was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidModule {
    pub error_code: ErrorCode,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> InvalidModule {
    InvalidModule {
        error_code: ErrorCode::CanisterInvalidWasm,
        message: format!("Wasm module is not valid: {}", message.into()),
    }
}

pub(crate) fn engine() -> &'static wasmi::Engine {
    static ENGINE: LazyLock<wasmi::Engine> = LazyLock::new(|| {
        let mut config = wasmi::Config::default();
        // Fuel is the instruction counter. Eager compilation keeps compilation
        // out of the fuel count, so the count of a message does not depend on
        // which functions earlier messages happened to compile.
        config
            .consume_fuel(true)
            .compilation_mode(wasmi::CompilationMode::Eager);
        wasmi::Engine::new(&config)
    });
    &ENGINE
}

static CACHE: LazyLock<Mutex<BTreeMap<[u8; 32], CompiledModule>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// Decompresses (gzip), validates, rewrites and compiles `bytes`, once per
/// process for the same bytes.
pub fn compile(bytes: &[u8]) -> Result<CompiledModule, InvalidModule> {
    // The module hash is over the bytes as installed (for a `.wasm.gz`, the compressed
    // bytes), as the IC reports it in `canister_status` and checks in chunked installs.
    let hash: [u8; 32] = Sha256::digest(bytes).into();
    if let Some(hit) = CACHE.lock().ok().and_then(|c| c.get(&hash).cloned()) {
        return Ok(hit);
    }
    let raw = decompress(bytes)?;
    let checked = check(&raw)?;
    let rewritten = rewrite(&raw, &checked)?;
    let module = wasmi::Module::new(engine(), &rewritten[..])
        .map_err(|e| invalid(format!("Wasm module could not be compiled: {e}")))?;
    let compiled = CompiledModule {
        hash,
        exports: checked.exports,
        metadata: checked.metadata,
        module,
        mutable_globals: checked.mutable_globals.len(),
        size: raw.len(),
    };
    if let Ok(mut cache) = CACHE.lock() {
        cache.insert(hash, compiled.clone());
    }
    Ok(compiled)
}

fn decompress(bytes: &[u8]) -> Result<Vec<u8>, InvalidModule> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_WASM_MODULE_SIZE as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| invalid(format!("Failed to decompress the gzipped module: {e}")))?;
        if out.len() > MAX_WASM_MODULE_SIZE {
            return Err(invalid(format!(
                "Wasm module size exceeds the limit of {MAX_WASM_MODULE_SIZE} bytes"
            )));
        }
        Ok(out)
    } else if bytes.len() > MAX_WASM_MODULE_SIZE {
        Err(invalid(format!(
            "Wasm module size {} exceeds the limit of {MAX_WASM_MODULE_SIZE} bytes",
            bytes.len()
        )))
    } else {
        Ok(bytes.to_vec())
    }
}

struct Checked {
    exports: ModuleExports,
    metadata: BTreeMap<String, (bool, Vec<u8>)>,
    mutable_globals: Vec<u32>,
    has_table: bool,
    /// The module's memory, when it is a plain 32-bit one that the rewrite
    /// turns into an import.
    heap: Option<wasmparser::MemoryType>,
}

fn check(raw: &[u8]) -> Result<Checked, InvalidModule> {
    let mut validator =
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::default());
    validator
        .validate_all(raw)
        .map_err(|e| invalid(format!("Failed to decode wasm module: {e}")))?;

    let mut types: Vec<(Vec<ValType>, Vec<ValType>)> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut exports = ModuleExports::default();
    let mut metadata = BTreeMap::new();
    let mut custom_size = 0usize;
    let mut mutable_globals = Vec::new();
    let mut globals = 0usize;
    let mut has_table = false;
    let mut memories = 0usize;
    let mut heap = None;
    let mut method_names: BTreeSet<String> = BTreeSet::new();
    let err =
        |e: wasmparser::BinaryReaderError| invalid(format!("Failed to decode wasm module: {e}"));

    for payload in Parser::new(0).parse_all(raw) {
        match payload.map_err(err)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(err)?.into_types() {
                        if let wasmparser::CompositeInnerType::Func(f) = &sub.composite_type.inner {
                            types.push((f.params().to_vec(), f.results().to_vec()));
                        } else {
                            types.push((vec![], vec![]));
                        }
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(err)?;
                    let TypeRef::Func(ty) = import.ty else {
                        return Err(invalid(format!(
                            "Wasm module has an invalid import section. Module imports '{}' from '{}', but only functions may be imported.",
                            import.name, import.module
                        )));
                    };
                    let known = (import.module == "ic0")
                        .then(|| IC0_API.iter().find(|(n, _, _)| *n == import.name))
                        .flatten();
                    let Some((_, params, results)) = known else {
                        return Err(invalid(format!(
                            "Wasm module has an invalid import section. Module imports function '{}' from '{}' that is not exported by the runtime.",
                            import.name, import.module
                        )));
                    };
                    let actual = types.get(ty as usize).cloned().unwrap_or_default();
                    if actual.0 != *params || actual.1 != *results {
                        return Err(invalid(format!(
                            "Wasm module has an invalid import section. Module imports function '{}' from 'ic0' with the wrong signature.",
                            import.name
                        )));
                    }
                    func_types.push(ty);
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    func_types.push(ty.map_err(err)?);
                }
                if func_types.len() > MAX_FUNCTIONS {
                    return Err(invalid(format!(
                        "Wasm module defines {} functions which exceeds the maximum number allowed {MAX_FUNCTIONS}.",
                        func_types.len()
                    )));
                }
            }
            Payload::TableSection(reader) => has_table |= reader.count() > 0,
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let memory = memory.map_err(err)?;
                    memories += 1;
                    let plain =
                        !memory.memory64 && !memory.shared && memory.page_size_log2.is_none();
                    heap = plain.then_some(memory);
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    let global = global.map_err(err)?;
                    if global.ty.mutable {
                        mutable_globals.push(globals as u32);
                    }
                    globals += 1;
                }
                if globals > MAX_GLOBALS {
                    return Err(invalid(format!(
                        "Wasm module defines {globals} globals which exceeds the maximum number allowed {MAX_GLOBALS}."
                    )));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(err)?;
                    check_export(
                        &export,
                        &types,
                        &func_types,
                        &mut exports,
                        &mut method_names,
                    )?;
                }
            }
            Payload::CodeSectionStart { size, .. } if size as usize > MAX_CODE_SECTION_SIZE => {
                return Err(invalid(format!(
                    "Wasm module code section size of {size} exceeds the maximum allowed size of {MAX_CODE_SECTION_SIZE}."
                )));
            }
            Payload::CustomSection(section) => {
                let name = section.name();
                if let Some(rest) = name.strip_prefix("icp:") {
                    let (public, meta_name) = if let Some(n) = rest.strip_prefix("public ") {
                        (true, n)
                    } else if let Some(n) = rest.strip_prefix("private ") {
                        (false, n)
                    } else {
                        return Err(invalid(format!(
                            "Invalid custom section: Custom section named {name} has no public/private scope defined."
                        )));
                    };
                    custom_size += meta_name.len() + section.data().len();
                    if metadata
                        .insert(meta_name.to_string(), (public, section.data().to_vec()))
                        .is_some()
                    {
                        return Err(invalid(format!(
                            "Invalid custom section: name {meta_name} collides with another custom section name."
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    if memories > 1 {
        return Err(invalid("Wasm module has more than one memory."));
    }
    if metadata.len() > MAX_CUSTOM_SECTIONS {
        return Err(invalid(format!(
            "Invalid custom sections: total number of custom sections exceeds the maximum allowed: {MAX_CUSTOM_SECTIONS}"
        )));
    }
    if custom_size > MAX_CUSTOM_SECTIONS_SIZE {
        return Err(invalid(format!(
            "Invalid custom sections: total size of the custom sections exceeds the maximum allowed: size {custom_size} bytes, allowed {MAX_CUSTOM_SECTIONS_SIZE} bytes"
        )));
    }
    Ok(Checked {
        exports,
        metadata,
        mutable_globals,
        has_table,
        heap,
    })
}

fn check_export(
    export: &wasmparser::Export<'_>,
    types: &[(Vec<ValType>, Vec<ValType>)],
    func_types: &[u32],
    exports: &mut ModuleExports,
    method_names: &mut BTreeSet<String>,
) -> Result<(), InvalidModule> {
    let name = export.name;
    if !name.starts_with("canister_") {
        return Ok(());
    }
    if export.kind != ExternalKind::Func {
        return Err(invalid(format!(
            "Wasm module has an invalid export section. Exporting reserved name '{name}' that is not a function."
        )));
    }
    let signature = func_types
        .get(export.index as usize)
        .and_then(|ty| types.get(*ty as usize));
    if !matches!(signature, Some((p, r)) if p.is_empty() && r.is_empty()) {
        return Err(invalid(format!(
            "Wasm module has an invalid function signature. Expected [] -> [] for '{name}'."
        )));
    }
    let mut method = |set: &mut BTreeSet<String>, m: &str| {
        if !method_names.insert(m.to_string()) {
            return Err(invalid(format!(
                "Wasm module has an invalid export section. Duplicate function '{m}' exported multiple times with different call types: update, query, or composite_query."
            )));
        }
        set.insert(m.to_string());
        Ok(())
    };
    if let Some(m) = name.strip_prefix("canister_update ") {
        method(&mut exports.updates, m)?;
    } else if let Some(m) = name.strip_prefix("canister_query ") {
        method(&mut exports.queries, m)?;
    } else if let Some(m) = name.strip_prefix("canister_composite_query ") {
        method(&mut exports.composite_queries, m)?;
    } else {
        match name {
            "canister_init" => exports.init = true,
            "canister_pre_upgrade" => exports.pre_upgrade = true,
            "canister_post_upgrade" => exports.post_upgrade = true,
            "canister_heartbeat" => exports.heartbeat = true,
            "canister_global_timer" => exports.global_timer = true,
            "canister_inspect_message" => exports.inspect_message = true,
            "canister_on_low_wasm_memory" => exports.on_low_wasm_memory = true,
            _ => {
                return Err(invalid(format!(
                    "Wasm module has an invalid export section. Exporting reserved function '{name}' with \"canister_\" prefix"
                )));
            }
        }
    }
    Ok(())
}

/// Re-emits the module with its function table and mutable globals exported,
/// so the emulator can call callbacks by table index and roll globals back,
/// and with its memory imported, so the emulator can back it with a mapping
/// whose written pages it tracks.
fn rewrite(raw: &[u8], checked: &Checked) -> Result<Vec<u8>, InvalidModule> {
    use wasm_encoder::{ExportKind, ExportSection, RawSection};
    let err =
        |e: wasmparser::BinaryReaderError| invalid(format!("Failed to decode wasm module: {e}"));
    let extra = |section: &mut ExportSection| {
        if checked.has_table {
            section.export(TABLE_EXPORT, ExportKind::Table, 0);
        }
        for index in &checked.mutable_globals {
            section.export(
                &format!("{GLOBAL_EXPORT_PREFIX}{index}"),
                ExportKind::Global,
                *index,
            );
        }
    };
    // The memory moves from the memory section to the end of the imports
    // (memory indices are unchanged: the module has at most one memory).
    let heap_import = checked.heap.map(|m| wasm_encoder::MemoryType {
        minimum: m.initial,
        maximum: m.maximum,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut imported = heap_import.is_none();
    let mut module = wasm_encoder::Module::new();
    let mut exported = false;
    for payload in Parser::new(0).parse_all(raw) {
        let payload = payload.map_err(err)?;
        if let (Payload::ImportSection(reader), Some(memory)) = (&payload, heap_import) {
            let mut section = wasm_encoder::ImportSection::new();
            for import in reader.clone().into_imports() {
                let import = import.map_err(err)?;
                let TypeRef::Func(ty) = import.ty else {
                    return Err(invalid("only functions may be imported"));
                };
                section.import(
                    import.module,
                    import.name,
                    wasm_encoder::EntityType::Function(ty),
                );
            }
            section.import(HEAP_IMPORT.0, HEAP_IMPORT.1, memory);
            module.section(&section);
            imported = true;
            continue;
        }
        if let Payload::ExportSection(reader) = &payload {
            let mut section = ExportSection::new();
            for export in reader.clone() {
                let export = export.map_err(err)?;
                let kind = match export.kind {
                    ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
                    ExternalKind::Table => ExportKind::Table,
                    ExternalKind::Memory => ExportKind::Memory,
                    ExternalKind::Global => ExportKind::Global,
                    ExternalKind::Tag => ExportKind::Tag,
                };
                section.export(export.name, kind, export.index);
            }
            extra(&mut section);
            module.section(&section);
            exported = true;
            continue;
        }
        let Some((id, range)) = payload.as_section() else {
            continue;
        };
        // A module without imports gets an import section for its memory,
        // right after the type section.
        if let (false, Some(memory)) = (imported, heap_import)
            && id > 2
        {
            let mut section = wasm_encoder::ImportSection::new();
            section.import(HEAP_IMPORT.0, HEAP_IMPORT.1, memory);
            module.section(&section);
            imported = true;
        }
        if matches!(payload, Payload::MemorySection(_)) && heap_import.is_some() {
            continue;
        }
        // Sections after the export section in the module order: start (8),
        // element (9), code (10), data (11), data count (12).
        if !exported && (8..=12).contains(&id) {
            let mut section = ExportSection::new();
            extra(&mut section);
            module.section(&section);
            exported = true;
        }
        module.section(&RawSection {
            id,
            data: &raw[range.start as usize..range.end as usize],
        });
    }
    Ok(module.finish())
}
