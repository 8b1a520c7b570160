//! What the registry's logic needs from the IC, behind a trait so that the logic runs
//! natively in unit tests with a stub.

use candid::{CandidType, Principal};
use ic_cdk::call::Call;
use ic_cdk_management_canister as mgmt;
use serde::Deserialize;

/// Why an inter-canister call produced no answer (or an error the registry cannot type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    /// The IC reject code, when the call was rejected.
    pub reject_code: Option<u32>,
    pub message: String,
}

/// `SYS_UNKNOWN`: a bounded-wait call whose outcome is unknown.
pub const SYS_UNKNOWN: u32 = 6;
/// `CANISTER_ERROR`: the callee trapped (possibly after doing something).
pub const CANISTER_ERROR: u32 = 5;

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reject_code {
            Some(code) => write!(f, "rejected ({code}): {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// How a module is put on a canister.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallMode {
    Install,
    Upgrade,
}

/// What `canister_status` tells the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReading {
    pub cycles: u128,
    pub module_hash: Option<Vec<u8>>,
}

// The cycles minting canister's `create_canister` (rs/nns/cmc/cmc.did).

#[derive(Clone, Debug, Default, CandidType, Deserialize)]
pub struct CmcCanisterSettings {
    pub controllers: Option<Vec<Principal>>,
    pub compute_allocation: Option<candid::Nat>,
    pub memory_allocation: Option<candid::Nat>,
    pub freezing_threshold: Option<candid::Nat>,
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

#[derive(Clone, Debug, CandidType, Deserialize)]
pub struct CmcCreateCanisterArg {
    pub settings: Option<CmcCanisterSettings>,
    pub subnet_type: Option<String>,
    pub subnet_selection: Option<SubnetSelection>,
}

/// Current CMCs only answer `Refunded`; older ones could answer `RefundFailed`.
#[derive(Clone, Debug, CandidType, Deserialize)]
pub enum CmcCreateCanisterError {
    Refunded {
        refund_amount: candid::Nat,
        create_error: String,
    },
    RefundFailed {
        create_error: String,
        refund_error: String,
    },
}

/// The hub's `AdminError`: any value (a mirror would break when the hub adds a variant).
pub type HubAdminError = candid::Reserved;

/// The IC as the registry sees it.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    fn caller(&self) -> Principal;
    fn time(&self) -> u64;
    fn is_controller(&self, p: &Principal) -> bool;
    fn canister_self(&self) -> Principal;
    fn subnet_self(&self) -> Principal;
    fn cycle_balance(&self) -> u128;
    /// The fee of `create_canister` on the registry's subnet.
    fn create_canister_fee(&self) -> u128;
    fn instruction_counter(&self) -> u64;
    /// Runs [`crate::timer::tick`] after `seconds` (replacing an earlier schedule).
    fn schedule_tick(&self, seconds: u64);

    /// `create_canister` on the registry's subnet, with `cycles` attached (fee included).
    async fn create_canister(
        &self,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> Result<Principal, CallError>;
    /// The CMC's `create_canister`, with `cycles` attached.
    async fn cmc_create_canister(
        &self,
        cmc: Principal,
        arg: CmcCreateCanisterArg,
        cycles: u128,
    ) -> Result<Result<Principal, CmcCreateCanisterError>, CallError>;
    async fn install_code(
        &self,
        canister: Principal,
        mode: InstallMode,
        module: Vec<u8>,
        arg: Vec<u8>,
    ) -> Result<(), CallError>;
    /// Stores a chunk in `canister`'s chunk store; returns its hash.
    async fn upload_chunk(&self, canister: Principal, chunk: Vec<u8>)
    -> Result<Vec<u8>, CallError>;
    async fn install_chunked_code(
        &self,
        canister: Principal,
        mode: InstallMode,
        chunk_hashes: Vec<Vec<u8>>,
        module_hash: Vec<u8>,
        arg: Vec<u8>,
    ) -> Result<(), CallError>;
    async fn clear_chunk_store(&self, canister: Principal) -> Result<(), CallError>;
    async fn canister_status(&self, canister: Principal) -> Result<StatusReading, CallError>;
    async fn stop_canister(&self, canister: Principal) -> Result<(), CallError>;
    async fn start_canister(&self, canister: Principal) -> Result<(), CallError>;
    async fn delete_canister(&self, canister: Principal) -> Result<(), CallError>;
    /// The hub's `add_submitter`.
    async fn hub_add_submitter(
        &self,
        hub: Principal,
        submitter: Principal,
    ) -> Result<Result<(), HubAdminError>, CallError>;
    /// The subnet a service reports in its `get_status` (`None` from a version that does not).
    async fn service_subnet(&self, service: Principal) -> Result<Option<Principal>, CallError>;
}

/// The real IC, through ic-cdk.
pub struct IcRuntime;

/// Seconds a bounded-wait call (hub, `canister_status`) may take.
const CALL_TIMEOUT_SECONDS: u32 = 60;

fn from_error(e: ic_cdk::call::Error) -> CallError {
    match e {
        ic_cdk::call::Error::CallRejected(r) => CallError {
            reject_code: Some(r.raw_reject_code()),
            message: r.reject_message().to_string(),
        },
        other => CallError {
            reject_code: None,
            message: other.to_string(),
        },
    }
}

fn from_call_failed(e: ic_cdk::call::CallFailed) -> CallError {
    match e {
        ic_cdk::call::CallFailed::CallRejected(r) => CallError {
            reject_code: Some(r.raw_reject_code()),
            message: r.reject_message().to_string(),
        },
        other => CallError {
            reject_code: None,
            message: other.to_string(),
        },
    }
}

fn decode_failed(e: ic_cdk::call::CandidDecodeFailed) -> CallError {
    CallError {
        reject_code: None,
        message: format!("cannot decode the reply: {e}"),
    }
}

fn mode(m: InstallMode) -> mgmt::CanisterInstallMode {
    match m {
        InstallMode::Install => mgmt::CanisterInstallMode::Install,
        InstallMode::Upgrade => mgmt::CanisterInstallMode::Upgrade(None),
    }
}

thread_local! {
    static TICK_TIMER: std::cell::Cell<Option<ic_cdk_timers::TimerId>> =
        const { std::cell::Cell::new(None) };
}

impl Runtime for IcRuntime {
    fn caller(&self) -> Principal {
        ic_cdk::api::msg_caller()
    }

    fn time(&self) -> u64 {
        ic_cdk::api::time()
    }

    fn is_controller(&self, p: &Principal) -> bool {
        ic_cdk::api::is_controller(p)
    }

    fn canister_self(&self) -> Principal {
        ic_cdk::api::canister_self()
    }

    fn subnet_self(&self) -> Principal {
        ic_cdk::api::subnet_self()
    }

    fn cycle_balance(&self) -> u128 {
        ic_cdk::api::canister_cycle_balance()
    }

    fn create_canister_fee(&self) -> u128 {
        ic_cdk::api::cost_create_canister()
    }

    fn instruction_counter(&self) -> u64 {
        ic_cdk::api::call_context_instruction_counter()
    }

    fn schedule_tick(&self, seconds: u64) {
        if let Some(old) = TICK_TIMER.take() {
            ic_cdk_timers::clear_timer(old);
        }
        let id = ic_cdk_timers::set_timer(std::time::Duration::from_secs(seconds), async {
            TICK_TIMER.set(None);
            crate::timer::tick(&IcRuntime).await;
        });
        TICK_TIMER.set(Some(id));
    }

    async fn create_canister(
        &self,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> Result<Principal, CallError> {
        let arg = mgmt::CreateCanisterArgs {
            settings: Some(mgmt::CanisterSettings {
                controllers: Some(controllers),
                ..Default::default()
            }),
        };
        let fee = ic_cdk::api::cost_create_canister();
        mgmt::create_canister_with_extra_cycles(&arg, cycles.saturating_sub(fee))
            .await
            .map(|r| r.canister_id)
            .map_err(from_error)
    }

    async fn cmc_create_canister(
        &self,
        cmc: Principal,
        arg: CmcCreateCanisterArg,
        cycles: u128,
    ) -> Result<Result<Principal, CmcCreateCanisterError>, CallError> {
        // Unbounded wait: cycles travel with the call, so its outcome must be known.
        let response = Call::unbounded_wait(cmc, "create_canister")
            .with_arg(&arg)
            .with_cycles(cycles)
            .await
            .map_err(from_call_failed)?;
        response.candid().map_err(decode_failed)
    }

    async fn install_code(
        &self,
        canister: Principal,
        install_mode: InstallMode,
        module: Vec<u8>,
        arg: Vec<u8>,
    ) -> Result<(), CallError> {
        mgmt::install_code(&mgmt::InstallCodeArgs {
            mode: mode(install_mode),
            canister_id: canister,
            wasm_module: module,
            arg,
        })
        .await
        .map_err(from_error)
    }

    async fn upload_chunk(
        &self,
        canister: Principal,
        chunk: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        mgmt::upload_chunk(&mgmt::UploadChunkArgs {
            canister_id: canister,
            chunk,
        })
        .await
        .map(|h| h.hash)
        .map_err(from_error)
    }

    async fn install_chunked_code(
        &self,
        canister: Principal,
        install_mode: InstallMode,
        chunk_hashes: Vec<Vec<u8>>,
        module_hash: Vec<u8>,
        arg: Vec<u8>,
    ) -> Result<(), CallError> {
        mgmt::install_chunked_code(&mgmt::InstallChunkedCodeArgs {
            mode: mode(install_mode),
            target_canister: canister,
            store_canister: None,
            chunk_hashes_list: chunk_hashes
                .into_iter()
                .map(|hash| mgmt::ChunkHash { hash })
                .collect(),
            wasm_module_hash: module_hash,
            arg,
        })
        .await
        .map_err(from_error)
    }

    async fn clear_chunk_store(&self, canister: Principal) -> Result<(), CallError> {
        mgmt::clear_chunk_store(&mgmt::ClearChunkStoreArgs {
            canister_id: canister,
        })
        .await
        .map_err(from_error)
    }

    async fn canister_status(&self, canister: Principal) -> Result<StatusReading, CallError> {
        let status = mgmt::canister_status(&mgmt::CanisterStatusArgs {
            canister_id: canister,
        })
        .await
        .map_err(from_error)?;
        Ok(StatusReading {
            cycles: u128::try_from(status.cycles.0).unwrap_or(u128::MAX),
            module_hash: status.module_hash,
        })
    }

    async fn stop_canister(&self, canister: Principal) -> Result<(), CallError> {
        mgmt::stop_canister(&mgmt::StopCanisterArgs {
            canister_id: canister,
        })
        .await
        .map_err(from_error)
    }

    async fn start_canister(&self, canister: Principal) -> Result<(), CallError> {
        mgmt::start_canister(&mgmt::StartCanisterArgs {
            canister_id: canister,
        })
        .await
        .map_err(from_error)
    }

    async fn delete_canister(&self, canister: Principal) -> Result<(), CallError> {
        mgmt::delete_canister(&mgmt::DeleteCanisterArgs {
            canister_id: canister,
        })
        .await
        .map_err(from_error)
    }

    async fn hub_add_submitter(
        &self,
        hub: Principal,
        submitter: Principal,
    ) -> Result<Result<(), HubAdminError>, CallError> {
        // Bounded wait: the hub is another team's canister; add_submitter is idempotent, so
        // an unknown outcome is simply retried.
        let response = Call::bounded_wait(hub, "add_submitter")
            .change_timeout(CALL_TIMEOUT_SECONDS)
            .with_arg(submitter)
            .await
            .map_err(from_call_failed)?;
        response.candid().map_err(decode_failed)
    }

    async fn service_subnet(&self, service: Principal) -> Result<Option<Principal>, CallError> {
        // A read: an unknown outcome is simply asked again later.
        let response = Call::bounded_wait(service, "get_status")
            .change_timeout(CALL_TIMEOUT_SECONDS)
            .await
            .map_err(from_call_failed)?;
        let status: stratros_service_api::ServiceStatus =
            response.candid().map_err(decode_failed)?;
        Ok(status.subnet)
    }
}
