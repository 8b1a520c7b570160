//! The registry's public Candid types: lifecycle arguments, directory entries, per-endpoint
//! errors. Shared by the registry canister (which re-exports them) and its clients, which
//! cannot link a canister crate.

use candid::{CandidType, Principal};
use serde::Deserialize;

/// The argument of `canister_init` (`Init`) and `canister_post_upgrade` (`Upgrade`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum Arg {
    Init(InitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct InitArgs {
    /// The confirmation hub every service forwards its records to; the registry registers
    /// each new service there with `add_submitter`.
    pub hub: Principal,
    /// The cycles minting canister (mainnet: `rkp4c-7iaaa-aaaaa-aaaca-cai`). Without it only
    /// `OwnSubnet` placement is available.
    pub cmc: Option<Principal>,
    /// Service kinds known from the start (more with `add_kind`).
    pub kinds: Vec<String>,
    /// Defaults and bounds: see [`Config`].
    pub config: Option<ConfigUpdate>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeArgs {
    pub hub: Option<Principal>,
    pub cmc: Option<Principal>,
    pub config: Option<ConfigUpdate>,
}

/// The registry's tunables.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Config {
    /// Cycles each new service receives on top of the creation fee.
    pub service_cycles: u128,
    /// Cycles the registry keeps for itself: a creation that would go below is refused.
    pub reserve_cycles: u128,
    /// Largest module accepted for upload (the IC installs at most 100 MiB in chunks).
    pub max_module_bytes: u64,
    /// Delay before a failed hub registration is retried from the timer (1..=86400).
    pub retry_seconds: u64,
    /// How often the timer refreshes each service's cycle balance; 0 turns it off.
    pub cycles_refresh_seconds: u64,
}

/// The defaults a registry starts with (each bounded as `lifecycle::apply` checks).
impl Default for Config {
    fn default() -> Self {
        Config {
            service_cycles: 2_000_000_000_000,
            reserve_cycles: 1_000_000_000_000,
            max_module_bytes: 50 * 1024 * 1024,
            retry_seconds: 60,
            cycles_refresh_seconds: 6 * 3600,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct ConfigUpdate {
    pub service_cycles: Option<u128>,
    pub reserve_cycles: Option<u128>,
    pub max_module_bytes: Option<u64>,
    pub retry_seconds: Option<u64>,
    pub cycles_refresh_seconds: Option<u64>,
}

/// Where a new service canister is created.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum Placement {
    /// The registry's own subnet, through the management canister.
    OwnSubnet,
    /// A given subnet, through the cycles minting canister (`subnet_selection = Subnet`).
    Subnet(Principal),
    /// Any subnet of a type (e.g. `"fiduciary"`), through the cycles minting canister
    /// (`subnet_selection = Filter`).
    SubnetType(String),
}

/// A step of a service's creation or upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum Step {
    Install,
    Register,
    Upgrade,
    Delete,
}

/// Where a service instance stands.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum ServiceState {
    /// Created; the module is being installed.
    Installing,
    /// Installed; being authorized at the hub.
    Registering,
    /// Installed, authorized, running its current version.
    Active,
    /// Being upgraded by the rollout to `to_version`.
    Upgrading { to_version: u32 },
    /// Stopped halfway: retried by `retry_service` (and by the timer for `Register`), or
    /// removed with `delete_service`. Never forgotten.
    Failed {
        step: Step,
        error: String,
        attempts: u32,
    },
    /// Stopped and deleted with `delete_service` (kept in the directory as history).
    Deleted,
}

/// One service instance in the directory.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ServiceInfo {
    pub canister: Principal,
    pub kind: String,
    pub name: String,
    /// Controls the canister together with the registry.
    pub owner: Principal,
    /// The version installed (or being installed).
    pub version: u32,
    pub module_hash: serde_bytes::ByteBuf,
    pub placement: Placement,
    /// The subnet: the registry's own for `OwnSubnet`, the chosen one for `Subnet`; for
    /// `SubnetType` (the cycles minting canister picks it) the one the service reports once
    /// installed (`get_status`), `None` until then.
    pub subnet: Option<Principal>,
    pub state: ServiceState,
    /// Cycles given at creation.
    pub initial_cycles: u128,
    /// The last balance read with `canister_status`, and when.
    pub cycles: Option<u128>,
    pub cycles_checked_at_nanos: Option<u64>,
    pub created_at_nanos: u64,
    pub updated_at_nanos: u64,
}

/// A creation whose canister id is not known: its call is in flight, or was in flight when
/// the registry was upgraded (then a canister may exist without being recorded: check the
/// cycles minting canister's or the subnet's records and delete it by hand).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct PendingCreation {
    pub op: u64,
    pub kind: String,
    pub name: String,
    pub owner: Principal,
    pub placement: Placement,
    pub cycles: u128,
    pub started_at_nanos: u64,
    /// `None` while the call is in flight.
    pub outcome_unknown: Option<String>,
}

/// Everything that needs attention: services not `Active` (nor `Deleted`) and creations
/// without a known canister.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Incomplete {
    pub services: Vec<ServiceInfo>,
    pub creations: Vec<PendingCreation>,
}

/// Directory filter: every given field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct ServiceFilter {
    pub kind: Option<String>,
    pub owner: Option<Principal>,
    pub subnet: Option<Principal>,
    /// Canister ids above this one (paging: pass the last id of the previous page).
    pub after: Option<Principal>,
    /// At most 100 (0 means 100).
    pub limit: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ServicePage {
    pub services: Vec<ServiceInfo>,
    /// Whether more matching services follow the last one.
    pub more: bool,
}

/// A published version of a kind.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct VersionInfo {
    pub kind: String,
    pub version: u32,
    /// SHA-256 of the module (what `canister_status` reports as `module_hash`).
    pub hash: serde_bytes::ByteBuf,
    pub size: u64,
    pub published_at_nanos: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct KindInfo {
    pub kind: String,
    /// The version new services get (set by the first publication, then by `upgrade_services`).
    pub current_version: Option<u32>,
    pub versions: Vec<VersionInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct StartUploadArgs {
    pub kind: String,
    /// SHA-256 of the whole module, checked at `publish_module`.
    pub sha256: serde_bytes::ByteBuf,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct UploadChunkArgs {
    pub upload: u64,
    /// Where the chunk starts: chunks arrive in order; resending an accepted chunk is a
    /// no-op (so a client can retry after a lost answer).
    pub offset: u64,
    pub bytes: serde_bytes::ByteBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct UploadProgress {
    pub upload: u64,
    pub received: u64,
    pub size: u64,
}

/// Why a module operation did nothing.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum ModuleError {
    NotController {
        caller: Principal,
    },
    UnknownKind {
        kind: String,
    },
    UnknownUpload {
        upload: u64,
    },
    EmptyModule,
    TooLarge {
        size: u64,
        max: u64,
    },
    /// The hash is not 32 bytes.
    InvalidHash,
    /// A chunk must start where the received bytes end.
    OutOfOrder {
        expected_offset: u64,
        got: u64,
    },
    /// The chunk goes past the announced size.
    BeyondSize {
        end: u64,
        size: u64,
    },
    /// A resent chunk differs from the one accepted at that offset.
    ChunkMismatch {
        offset: u64,
    },
    Incomplete {
        received: u64,
        size: u64,
    },
    HashMismatch {
        expected: serde_bytes::ByteBuf,
        actual: serde_bytes::ByteBuf,
    },
    /// Neither a Wasm module (`\0asm`, version 1) nor a gzipped one.
    NotWasm,
    /// This module is already a version of the kind.
    AlreadyPublished {
        kind: String,
        version: u32,
    },
}

/// Why a service was not created (or not completely: the error says which canister holds
/// the half-done service, which is in the directory as `Failed`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum CreateError {
    NotAuthorized {
        caller: Principal,
    },
    UnknownKind {
        kind: String,
    },
    /// The kind has no published version yet.
    NoVersion {
        kind: String,
    },
    InvalidName {
        reason: String,
    },
    /// `Subnet` and `SubnetType` need the cycles minting canister, which is not configured.
    PlacementUnavailable {
        reason: String,
    },
    InsufficientCycles {
        balance: u128,
        required: u128,
    },
    /// Too many operations in flight (or one on this service already).
    Busy,
    UnknownService {
        canister: Principal,
    },
    /// Nothing was created; the cycles came back (minus any fee the CMC keeps).
    CreateFailed {
        reject_code: Option<u32>,
        message: String,
    },
    /// The creation's outcome is unknown; listed in `list_incomplete` under `op`.
    OutcomeUnknown {
        op: u64,
        message: String,
    },
    /// The canister exists but a later step failed; it is in the directory as `Failed`.
    StepFailed {
        canister: Principal,
        step: Step,
        message: String,
    },
    /// `retry_service` on a service that has nothing to retry.
    NothingToRetry {
        state: ServiceState,
    },
}

/// The state of a rolling upgrade.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum RolloutState {
    Running,
    /// Stopped at the first failure; `resume_rollout` retries from the failed instance.
    Failed {
        canister: Principal,
        error: String,
    },
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum InstanceStatus {
    Pending,
    /// The upgrade call is (or was, before a registry upgrade) in flight.
    Upgrading,
    Done,
    Failed {
        error: String,
    },
    /// Not upgraded: the instance is not installed (failed creation, deleted).
    Skipped {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct InstanceProgress {
    pub canister: Principal,
    pub from_version: u32,
    pub status: InstanceStatus,
    /// Instructions the registry spent on this instance (its upgrade call included).
    pub instructions: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Rollout {
    pub id: u64,
    pub kind: String,
    pub version: u32,
    pub module_hash: serde_bytes::ByteBuf,
    pub state: RolloutState,
    /// In the order they are upgraded (by canister id).
    pub instances: Vec<InstanceProgress>,
    pub started_at_nanos: u64,
    pub finished_at_nanos: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum RolloutError {
    NotController {
        caller: Principal,
    },
    UnknownKind {
        kind: String,
    },
    UnknownVersion {
        kind: String,
        version: u32,
    },
    /// One rollout at a time.
    InProgress {
        kind: String,
        version: u32,
    },
    /// `resume_rollout` without a failed or interrupted rollout.
    NothingToResume,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum AdminError {
    NotController { caller: Principal },
    InvalidConfig(String),
    InvalidKind { reason: String },
    UnknownService { canister: Principal },
    Busy,
    CallFailed { message: String },
}

/// What `get_status` reports.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct RegistryStatus {
    pub hub: Principal,
    pub cmc: Option<Principal>,
    pub config: Config,
    pub kinds: u64,
    pub services: u64,
    pub cycles: u128,
    pub events: u64,
}

/// What moved cycles or changed the directory, in order (append-only, in stable memory).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum EventKind {
    Published {
        kind: String,
        version: u32,
        hash: serde_bytes::ByteBuf,
    },
    /// Cycles attached to a creation call (before its outcome is known).
    CreationStarted {
        op: u64,
        kind: String,
        cycles: u128,
    },
    ServiceCreated {
        op: u64,
        canister: Principal,
        cycles: u128,
    },
    CreationFailed {
        op: u64,
        message: String,
    },
    CreationOutcomeUnknown {
        op: u64,
    },
    StepFailed {
        canister: Principal,
        step: Step,
        message: String,
    },
    ServiceActive {
        canister: Principal,
        version: u32,
    },
    /// The subnet a service placed by subnet type reported (`get_status`).
    SubnetLearned {
        canister: Principal,
        subnet: Principal,
    },
    ServiceUpgraded {
        canister: Principal,
        version: u32,
    },
    ServiceDeleted {
        canister: Principal,
    },
    RolloutStarted {
        id: u64,
        kind: String,
        version: u32,
    },
    RolloutFinished {
        id: u64,
        state: RolloutState,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Event {
    pub at_nanos: u64,
    pub kind: EventKind,
}
