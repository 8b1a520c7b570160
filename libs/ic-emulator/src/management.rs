//! The management canister (`aaaaa-aa`) as canisters and users reach it
//! through messages: canister lifecycle, chunked installs, randomness and the
//! threshold-key APIs, with the IC's controller checks and fees.

use crate::emulator::{Emulator, Origin};
use crate::fees::threshold_fee;
use crate::types::{CanisterRunStatus, ErrorCode, InstallMode, RejectCode, RejectResponse};
use crate::wasm;
use candid::{CandidType, Nat, Principal};
use ic_emulator_crypto::SchnorrAlgorithm as Alg;
use ic_management_canister_types as mc;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// Largest chunk `upload_chunk` accepts.
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024;
/// Most chunks a canister's chunk store holds.
pub const MAX_CHUNKS: usize = 100;

type Answer = Result<Vec<u8>, RejectResponse>;

fn decode<T: DeserializeOwned + CandidType>(arg: &[u8]) -> Result<T, RejectResponse> {
    candid::decode_one(arg).map_err(|e| {
        RejectResponse::system(
            ErrorCode::InvalidManagementPayload,
            format!("Error decoding candid: {e}"),
        )
    })
}

fn encode<T: CandidType>(value: &T) -> Answer {
    candid::encode_one(value).map_err(|e| {
        RejectResponse::canister(
            RejectCode::SysFatal,
            format!("BUG: encoding the reply failed: {e}"),
        )
    })
}

fn reject(message: impl Into<String>) -> RejectResponse {
    RejectResponse::canister(RejectCode::CanisterReject, message)
}

fn controller_check(
    emu: &Emulator,
    caller: Principal,
    canister: Principal,
    method: &str,
) -> Result<(), RejectResponse> {
    let c = emu.canister(canister)?;
    if c.controllers.contains(&caller) {
        Ok(())
    } else {
        Err(RejectResponse::system(
            ErrorCode::CanisterInvalidController,
            format!("Only controllers of canister {canister} can call ic00 method {method}"),
        ))
    }
}

/// Handles one request to the management canister and sends its answer.
pub(crate) fn handle(
    emu: &mut Emulator,
    origin: Origin,
    caller: Principal,
    method: &str,
    arg: &[u8],
    cycles: u128,
    _deadline: u64,
) {
    let from_canister = matches!(origin, Origin::Canister { .. });
    let mut refund = cycles;
    let answer: Answer = (|| match method {
        "create_canister" => {
            let args: mc::CreateCanisterArgs = decode(arg)?;
            if !from_canister {
                return Err(reject(
                    "create_canister can only be called by canisters; use provisional_create_canister_with_cycles",
                ));
            }
            let subnet = emu.canister(caller)?.subnet;
            let fee = emu.canister(caller)?.fees.create_canister();
            if cycles < fee {
                return Err(RejectResponse::system(
                    ErrorCode::InsufficientCyclesForCreateCanister,
                    format!(
                        "Creating a canister requires a fee of {fee} that is deducted from the canister's initial balance but only {cycles} cycles were received with the create_canister request."
                    ),
                ));
            }
            let controllers = args
                .settings
                .as_ref()
                .and_then(|s| s.controllers.clone())
                .unwrap_or_else(|| vec![caller]);
            let id = emu.create_canister_with(subnet, controllers, cycles - fee)?;
            apply_settings(emu, id, args.settings.as_ref())?;
            refund = 0;
            encode(&mc::CanisterIdRecord { canister_id: id })
        }
        "provisional_create_canister_with_cycles" => {
            let args: mc::ProvisionalCreateCanisterWithCyclesArgs = decode(arg)?;
            let amount = args
                .amount
                .map_or(crate::emulator::DEFAULT_CANISTER_CYCLES, nat_to_u128);
            let controllers = args
                .settings
                .as_ref()
                .and_then(|s| s.controllers.clone())
                .unwrap_or_else(|| vec![caller]);
            let id = match args.specified_id {
                Some(id) => emu.create_canister_with_id(id, controllers, amount)?,
                None => {
                    let subnet = match emu.canister(caller) {
                        Ok(c) => c.subnet,
                        Err(_) => emu.subnet_of_kind(crate::types::SubnetKind::Application),
                    };
                    emu.create_canister_with(subnet, controllers, amount)?
                }
            };
            apply_settings(emu, id, args.settings.as_ref())?;
            encode(&mc::CanisterIdRecord { canister_id: id })
        }
        "provisional_top_up_canister" => {
            let args: mc::ProvisionalTopUpCanisterArgs = decode(arg)?;
            emu.canister(args.canister_id)?;
            emu.add_cycles(args.canister_id, nat_to_u128(args.amount));
            encode(&())
        }
        "deposit_cycles" => {
            let args: mc::CanisterIdRecord = decode(arg)?;
            emu.canister(args.canister_id)?;
            emu.add_cycles(args.canister_id, cycles);
            refund = 0;
            encode(&())
        }
        "update_settings" => {
            let args: mc::UpdateSettingsArgs = decode(arg)?;
            controller_check(emu, caller, args.canister_id, method)?;
            apply_settings(emu, args.canister_id, Some(&args.settings))?;
            encode(&())
        }
        "install_code" => {
            let args: mc::InstallCodeArgs = decode(arg)?;
            controller_check(emu, caller, args.canister_id, method)?;
            emu.install_code(
                caller,
                args.canister_id,
                &args.wasm_module,
                args.arg,
                mode(args.mode),
            )?;
            encode(&())
        }
        "upload_chunk" => {
            let args: mc::UploadChunkArgs = decode(arg)?;
            controller_check(emu, caller, args.canister_id, method)?;
            if args.chunk.len() > MAX_CHUNK_SIZE {
                return Err(reject(format!(
                    "Wasm chunk size {} exceeds the maximum chunk size of {MAX_CHUNK_SIZE}",
                    args.chunk.len()
                )));
            }
            let hash: [u8; 32] = Sha256::digest(&args.chunk).into();
            let c = emu
                .canisters
                .get_mut(&args.canister_id)
                .ok_or_else(|| reject("canister vanished"))?;
            if c.chunks.len() >= MAX_CHUNKS && !c.chunks.contains_key(&hash) {
                return Err(reject(format!(
                    "Wasm chunk store of canister {} is full ({MAX_CHUNKS} chunks)",
                    args.canister_id
                )));
            }
            c.chunks.insert(hash, args.chunk);
            encode(&mc::ChunkHash {
                hash: hash.to_vec(),
            })
        }
        "stored_chunks" => {
            let args: mc::CanisterIdRecord = decode(arg)?;
            controller_check(emu, caller, args.canister_id, method)?;
            let c = emu.canister(args.canister_id)?;
            let hashes: Vec<mc::ChunkHash> = c
                .chunks
                .keys()
                .map(|h| mc::ChunkHash { hash: h.to_vec() })
                .collect();
            encode(&hashes)
        }
        "clear_chunk_store" => {
            let args: mc::CanisterIdRecord = decode(arg)?;
            controller_check(emu, caller, args.canister_id, method)?;
            if let Some(c) = emu.canisters.get_mut(&args.canister_id) {
                c.chunks.clear();
            }
            encode(&())
        }
        "install_chunked_code" => {
            let args: mc::InstallChunkedCodeArgs = decode(arg)?;
            controller_check(emu, caller, args.target_canister, method)?;
            let store = args.store_canister.unwrap_or(args.target_canister);
            controller_check(emu, caller, store, method)?;
            if emu.canister(store)?.subnet != emu.canister(args.target_canister)?.subnet {
                return Err(reject(
                    "the store canister must be on the same subnet as the target canister",
                ));
            }
            let chunks = &emu.canister(store)?.chunks;
            let mut module = Vec::new();
            for h in &args.chunk_hashes_list {
                let key: [u8; 32] = h
                    .hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| reject("chunk hash must be 32 bytes"))?;
                let chunk = chunks.get(&key).ok_or_else(|| {
                    reject(format!(
                        "Wasm chunk {} is not in the chunk store",
                        hex::encode(key)
                    ))
                })?;
                module.extend_from_slice(chunk);
            }
            let actual: [u8; 32] = Sha256::digest(&module).into();
            if actual.as_slice() != args.wasm_module_hash.as_slice() {
                return Err(reject(format!(
                    "Wasm module hash {} does not match the hash of the assembled chunks {}",
                    hex::encode(&args.wasm_module_hash),
                    hex::encode(actual)
                )));
            }
            let compiled = wasm::compile(&module)
                .map_err(|e| RejectResponse::system(e.error_code, e.message))?;
            emu.install_module_from(
                caller,
                args.target_canister,
                compiled,
                args.arg,
                mode(args.mode),
            )?;
            encode(&())
        }
        "uninstall_code" => {
            let args: mc::UninstallCodeArgs = decode(arg)?;
            emu.uninstall_code(caller, args.canister_id)?;
            encode(&())
        }
        "start_canister" => {
            let args: mc::CanisterIdRecord = decode(arg)?;
            controller_check(emu, caller, args.canister_id, method)?;
            emu.start(args.canister_id);
            encode(&())
        }
        "stop_canister" => {
            let args: mc::CanisterIdRecord = decode(arg)?;
            controller_check(emu, caller, args.canister_id, method)?;
            // Answered once the canister has stopped.
            emu.begin_stop(args.canister_id, origin);
            Err(RejectResponse::canister(
                RejectCode::SysUnknown,
                "__pending__",
            ))
        }
        "delete_canister" => {
            let args: mc::CanisterIdRecord = decode(arg)?;
            controller_check(emu, caller, args.canister_id, method)?;
            emu.delete(args.canister_id)?;
            // A deleted canister's remaining cycles are burned, as on the IC.
            encode(&())
        }
        "canister_status" => {
            let args: mc::CanisterIdRecord = decode(arg)?;
            controller_check(emu, caller, args.canister_id, method)?;
            encode(&status(emu, args.canister_id)?)
        }
        "raw_rand" => {
            if !from_canister {
                return Err(reject("raw_rand can only be called by canisters"));
            }
            let bytes = emu.random_bytes();
            encode(&serde_bytes::ByteBuf::from(bytes.to_vec()))
        }
        "ecdsa_public_key" => {
            let args: mc::EcdsaPublicKeyArgs = decode(arg)?;
            check_curve(
                args.key_id.curve == mc::EcdsaCurve::Secp256k1,
                "ecdsa",
                &args.key_id.name,
            )?;
            let canister = args.canister_id.unwrap_or(caller);
            let (public_key, chain_code) = emu
                .keys
                .ecdsa_public_key(
                    &args.key_id.name,
                    canister.as_slice(),
                    &args.derivation_path,
                )
                .map_err(|e| reject(e.to_string()))?;
            encode(&mc::EcdsaPublicKeyResult {
                public_key,
                chain_code,
            })
        }
        "sign_with_ecdsa" => {
            let args: mc::SignWithEcdsaArgs = decode(arg)?;
            require_canister(from_canister, method)?;
            check_curve(
                args.key_id.curve == mc::EcdsaCurve::Secp256k1,
                "ecdsa",
                &args.key_id.name,
            )?;
            refund = charge(method, &args.key_id.name, cycles)?;
            let signature = emu
                .keys
                .sign_with_ecdsa(
                    &args.key_id.name,
                    caller.as_slice(),
                    &args.derivation_path,
                    &args.message_hash,
                )
                .map_err(|e| reject(e.to_string()))?;
            encode(&mc::SignWithEcdsaResult { signature })
        }
        "schnorr_public_key" => {
            let args: mc::SchnorrPublicKeyArgs = decode(arg)?;
            check_curve(true, "schnorr", &args.key_id.name)?;
            let canister = args.canister_id.unwrap_or(caller);
            let (public_key, chain_code) = emu
                .keys
                .schnorr_public_key(
                    alg(args.key_id.algorithm),
                    &args.key_id.name,
                    canister.as_slice(),
                    &args.derivation_path,
                )
                .map_err(|e| reject(e.to_string()))?;
            encode(&mc::SchnorrPublicKeyResult {
                public_key,
                chain_code,
            })
        }
        "sign_with_schnorr" => {
            let args: mc::SignWithSchnorrArgs = decode(arg)?;
            require_canister(from_canister, method)?;
            check_curve(true, "schnorr", &args.key_id.name)?;
            refund = charge(method, &args.key_id.name, cycles)?;
            let merkle_root = args
                .aux
                .as_ref()
                .map(|mc::SchnorrAux::Bip341(b)| b.merkle_root_hash.clone());
            let aux_rand = emu.random_bytes();
            let signature = emu
                .keys
                .sign_with_schnorr(
                    alg(args.key_id.algorithm),
                    &args.key_id.name,
                    caller.as_slice(),
                    &args.derivation_path,
                    &args.message,
                    merkle_root.as_deref(),
                    aux_rand,
                )
                .map_err(|e| reject(e.to_string()))?;
            encode(&mc::SignWithSchnorrResult { signature })
        }
        "vetkd_public_key" => {
            let args: mc::VetKDPublicKeyArgs = decode(arg)?;
            check_curve(true, "vetkd", &args.key_id.name)?;
            let canister = args.canister_id.unwrap_or(caller);
            let public_key = emu
                .keys
                .vetkd_public_key(&args.key_id.name, canister.as_slice(), &args.context)
                .map_err(|e| reject(e.to_string()))?;
            encode(&mc::VetKDPublicKeyResult { public_key })
        }
        "vetkd_derive_key" => {
            let args: mc::VetKDDeriveKeyArgs = decode(arg)?;
            require_canister(from_canister, method)?;
            check_curve(true, "vetkd", &args.key_id.name)?;
            refund = charge(method, &args.key_id.name, cycles)?;
            let rand = emu.random_bytes();
            let encrypted_key = emu
                .keys
                .vetkd_derive_key(
                    &args.key_id.name,
                    caller.as_slice(),
                    &args.context,
                    &args.input,
                    &args.transport_public_key,
                    rand,
                )
                .map_err(|e| reject(e.to_string()))?;
            encode(&mc::VetKDDeriveKeyResult { encrypted_key })
        }
        _ => Err(RejectResponse::system(
            ErrorCode::UnknownManagementMessage,
            format!("Management canister has no method '{method}'"),
        )),
    })();
    match answer {
        Err(r) if r.reject_message == "__pending__" => {}
        Err(r) => emu.respond(origin, Err(r), cycles, Principal::management_canister()),
        Ok(bytes) => emu.respond(origin, Ok(bytes), refund, Principal::management_canister()),
    }
}

fn require_canister(from_canister: bool, method: &str) -> Result<(), RejectResponse> {
    if from_canister {
        Ok(())
    } else {
        Err(reject(format!("{method} can only be called by canisters")))
    }
}

fn check_curve(known: bool, scheme: &str, name: &str) -> Result<(), RejectResponse> {
    if !known || threshold_fee(name).is_none() {
        return Err(reject(format!(
            "Requested unknown threshold key: {scheme}:{name}, existing keys: [dfx_test_key, test_key_1, key_1]"
        )));
    }
    Ok(())
}

/// Takes the threshold fee out of the attached cycles; returns the refund.
fn charge(method: &str, key_name: &str, cycles: u128) -> Result<u128, RejectResponse> {
    let fee = threshold_fee(key_name).unwrap_or(u128::MAX);
    if cycles < fee {
        return Err(reject(format!(
            "{method} request sent with {cycles} cycles, but {fee} cycles are required."
        )));
    }
    Ok(cycles - fee)
}

fn alg(a: mc::SchnorrAlgorithm) -> Alg {
    match a {
        mc::SchnorrAlgorithm::Bip340secp256k1 => Alg::Bip340Secp256k1,
        mc::SchnorrAlgorithm::Ed25519 => Alg::Ed25519,
    }
}

fn mode(m: mc::CanisterInstallMode) -> InstallMode {
    match m {
        mc::CanisterInstallMode::Install => InstallMode::Install,
        mc::CanisterInstallMode::Reinstall => InstallMode::Reinstall,
        mc::CanisterInstallMode::Upgrade(_) => InstallMode::Upgrade,
    }
}

fn nat_to_u128(n: Nat) -> u128 {
    u128::try_from(n.0).unwrap_or(u128::MAX)
}

fn apply_settings(
    emu: &mut Emulator,
    canister: Principal,
    settings: Option<&mc::CanisterSettings>,
) -> Result<(), RejectResponse> {
    let Some(settings) = settings else {
        return Ok(());
    };
    let c = emu
        .canisters
        .get_mut(&canister)
        .ok_or_else(|| reject("canister vanished"))?;
    if let Some(controllers) = &settings.controllers {
        if controllers.len() > 10 {
            return Err(reject(
                "Invalid settings: at most 10 controllers are allowed",
            ));
        }
        c.controllers = controllers.clone();
    }
    if let Some(threshold) = &settings.freezing_threshold {
        c.freezing_threshold = u64::try_from(threshold.0.clone()).unwrap_or(u64::MAX);
    }
    if let Some(vars) = &settings.environment_variables {
        c.env_vars = vars
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect();
    }
    Ok(())
}

fn status(emu: &Emulator, canister: Principal) -> Result<mc::CanisterStatusResult, RejectResponse> {
    let c = emu.canister(canister)?;
    let memory = c.memory_size();
    let (heap, stable, binary) = c.runtime.as_ref().map_or((0, 0, 0), |rt| {
        let heap = rt
            .store
            .data()
            .memory
            .map_or(0, |m| m.data_size(&rt.store) as u64);
        (heap, rt.store.data().stable.len(), rt.module.size as u64)
    });
    Ok(mc::CanisterStatusResult {
        status: match c.status {
            CanisterRunStatus::Running => mc::CanisterStatusType::Running,
            CanisterRunStatus::Stopping => mc::CanisterStatusType::Stopping,
            CanisterRunStatus::Stopped => mc::CanisterStatusType::Stopped,
        },
        ready_for_migration: false,
        version: c.version,
        settings: mc::DefiniteCanisterSettings {
            controllers: c.controllers.clone(),
            compute_allocation: Nat::from(0u8),
            memory_allocation: Nat::from(0u8),
            freezing_threshold: Nat::from(c.freezing_threshold),
            reserved_cycles_limit: Nat::from(5_000_000_000_000u64),
            minimum_incoming_canister_call_cycles: Nat::from(0u8),
            log_visibility: mc::LogVisibility::Controllers,
            log_memory_limit: Nat::from(4096u32),
            snapshot_visibility: mc::SnapshotVisibility::Controllers,
            status_visibility: mc::StatusVisibility::Controllers,
            wasm_memory_limit: Nat::from(3u64 << 30),
            wasm_memory_threshold: Nat::from(0u8),
            environment_variables: c
                .env_vars
                .iter()
                .map(|(name, value)| mc::EnvironmentVariable {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        },
        module_hash: c.runtime.as_ref().map(|rt| rt.module.hash.to_vec()),
        memory_size: Nat::from(memory),
        memory_metrics: mc::MemoryMetrics {
            wasm_memory_size: Nat::from(heap),
            stable_memory_size: Nat::from(stable),
            global_memory_size: Nat::from(0u8),
            wasm_binary_size: Nat::from(binary),
            custom_sections_size: Nat::from(0u8),
            canister_history_size: Nat::from(0u8),
            wasm_chunk_store_size: Nat::from(
                c.chunks.values().map(|v| v.len() as u64).sum::<u64>(),
            ),
            snapshots_size: Nat::from(0u8),
            log_memory_store_size: Nat::from(0u8),
        },
        cycles: Nat::from(c.cycles),
        reserved_cycles: Nat::from(0u8),
        idle_cycles_burned_per_day: Nat::from(c.fees.idle_cycles_per_day(memory)),
        query_stats: mc::QueryStats {
            num_calls_total: Nat::from(0u8),
            num_instructions_total: Nat::from(0u8),
            request_payload_bytes_total: Nat::from(0u8),
            response_payload_bytes_total: Nat::from(0u8),
        },
    })
}
