//! Public types of the emulator's API: reject codes, the IC's error codes and
//! the errors a call can end with.

use candid::Principal;
use std::fmt;

/// The reject codes of the IC Interface Specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectCode {
    SysFatal = 1,
    SysTransient = 2,
    DestinationInvalid = 3,
    CanisterReject = 4,
    CanisterError = 5,
    SysUnknown = 6,
}

impl RejectCode {
    pub fn from_u32(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::SysFatal,
            2 => Self::SysTransient,
            3 => Self::DestinationInvalid,
            4 => Self::CanisterReject,
            5 => Self::CanisterError,
            6 => Self::SysUnknown,
            _ => return None,
        })
    }
}

/// The replica's error codes (`IC0xxx`), a subset of `ic-error-types`.
/// The first digit gives the reject code, as on the IC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    CanisterQueueFull = 201,
    IngressMessageTimeout = 202,
    CanisterOutOfCycles = 207,
    CanisterNotFound = 301,
    InsufficientCyclesForCreateCanister = 403,
    SubnetNotFound = 404,
    CanisterRejectedMessage = 406,
    UnknownManagementMessage = 407,
    InvalidManagementPayload = 408,
    CanisterTrapped = 502,
    CanisterCalledTrap = 503,
    CanisterContractViolation = 504,
    CanisterInvalidWasm = 505,
    CanisterDidNotReply = 506,
    CanisterOutOfMemory = 507,
    CanisterStopped = 508,
    CanisterStopping = 509,
    CanisterNotStopped = 510,
    CanisterStoppingCancelled = 511,
    CanisterInvalidController = 512,
    CanisterFunctionNotFound = 513,
    CanisterNonEmpty = 514,
    QueryCallGraphLoopDetected = 517,
    QueryCallGraphTooDeep = 525,
    CompositeQueryCalledInReplicatedMode = 527,
    InsufficientCyclesInCall = 520,
    CanisterInstructionLimitExceeded = 522,
    CanisterMethodNotFound = 536,
    CanisterWasmModuleNotFound = 537,
    CanisterAlreadyInstalled = 538,
    DeadlineExpired = 601,
    ResponseDropped = 602,
}

impl ErrorCode {
    /// The reject code an error of this kind is delivered with.
    pub fn reject_code(self) -> RejectCode {
        match self as u32 / 100 {
            1 => RejectCode::SysFatal,
            2 => RejectCode::SysTransient,
            3 => RejectCode::DestinationInvalid,
            4 => RejectCode::CanisterReject,
            5 => RejectCode::CanisterError,
            _ => RejectCode::SysUnknown,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IC{:04}", *self as u32)
    }
}

/// How a call ended when it did not end with a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectResponse {
    pub reject_code: RejectCode,
    pub reject_message: String,
    /// The replica's error code, when the system (not the canister) rejected.
    pub error_code: Option<ErrorCode>,
}

impl RejectResponse {
    pub(crate) fn system(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            reject_code: code.reject_code(),
            reject_message: message.into(),
            error_code: Some(code),
        }
    }
    pub(crate) fn canister(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            reject_code: code,
            reject_message: message.into(),
            error_code: None,
        }
    }
}

impl fmt::Display for RejectResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error_code {
            Some(code) => write!(
                f,
                "reject {:?} ({}): {}",
                self.reject_code, code, self.reject_message
            ),
            None => write!(f, "reject {:?}: {}", self.reject_code, self.reject_message),
        }
    }
}

impl std::error::Error for RejectResponse {}

/// Identifies an ingress message submitted with `submit_call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

/// The run status of a canister.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanisterRunStatus {
    Running,
    Stopping,
    Stopped,
}

/// The kinds of subnet the emulator models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubnetKind {
    /// The root subnet: signs certificates with the root key directly.
    Nns,
    /// A 13-node application subnet.
    Application,
    /// The 34-node fiduciary subnet (where the `key_1` threshold keys live on mainnet).
    Fiduciary,
}

/// A subnet of the emulated IC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetInfo {
    pub id: Principal,
    pub kind: SubnetKind,
    pub node_count: u32,
    /// Inclusive canister id ranges, as canister indices.
    pub canister_ranges: Vec<(u64, u64)>,
}

/// Install modes of `install_code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallMode {
    Install,
    Reinstall,
    Upgrade,
}

/// A summary of `canister_status` for tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanisterStatus {
    pub status: CanisterRunStatus,
    pub module_hash: Option<[u8; 32]>,
    pub controllers: Vec<Principal>,
    pub cycles: u128,
    pub memory_size: u64,
    pub version: u64,
    pub subnet: Principal,
    pub freezing_threshold: u64,
}

/// One message execution, as metered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub canister: Principal,
    /// The entry point: `canister_update <m>`, `reply callback`, `canister_init`, …
    pub entry: String,
    pub instructions: u64,
    /// The trap, when the execution trapped.
    pub trapped: Option<String>,
}
