//! Stable memory of the registry.
//!
//! One `MemoryManager` over the whole stable memory:
//!
//! ```text
//! MemoryId 0  META_MEMORY          StableCell<Meta>                      hub, cmc, config, id counters
//! MemoryId 1  KINDS_MEMORY         StableBTreeMap<String, KindInfo>      kinds, their versions, current version
//! MemoryId 2  UPLOADS_MEMORY       StableBTreeMap<u64, Upload>           uploads (in progress and published)
//! MemoryId 3  CHUNKS_MEMORY        StableBTreeMap<(u64, u64), Vec<u8>>   (upload, offset) -> module bytes
//! MemoryId 4  SERVICES_MEMORY      StableBTreeMap<Principal, ServiceInfo> the directory
//! MemoryId 5  CREATIONS_MEMORY     StableBTreeMap<u64, PendingCreation>  creation intents without a canister id
//! MemoryId 6  ROLLOUT_MEMORY       StableCell<Option<Rollout>>           the current (or last) rolling upgrade
//! MemoryId 7  EVENTS_INDEX_MEMORY  StableLog index                        append-only event log
//! MemoryId 8  EVENTS_DATA_MEMORY   StableLog data
//! ```
//!
//! Everything is written when it happens, so `pre_upgrade` does nothing and `post_upgrade`
//! only reopens the structures. The event log is for audit (where cycles went); the state is
//! not rebuilt from it, because every piece of state is already keyed stable data.

use std::borrow::Cow;
use std::cell::RefCell;

use candid::{CandidType, Decode, Encode, Principal};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell, StableLog, Storable};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::types::{Config, Event, KindInfo, PendingCreation, Rollout, ServiceInfo};

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// Hub, CMC, configuration, id counters. Never renumber.
const META_MEMORY: MemoryId = MemoryId::new(0);
/// Kinds and their published versions. Never renumber.
const KINDS_MEMORY: MemoryId = MemoryId::new(1);
/// Module uploads. Never renumber.
const UPLOADS_MEMORY: MemoryId = MemoryId::new(2);
/// Module bytes by (upload, offset). Never renumber.
const CHUNKS_MEMORY: MemoryId = MemoryId::new(3);
/// The service directory. Never renumber.
const SERVICES_MEMORY: MemoryId = MemoryId::new(4);
/// Creations whose canister id is not known yet. Never renumber.
const CREATIONS_MEMORY: MemoryId = MemoryId::new(5);
/// The rolling upgrade. Never renumber.
const ROLLOUT_MEMORY: MemoryId = MemoryId::new(6);
/// Event log index. Never renumber.
const EVENTS_INDEX_MEMORY: MemoryId = MemoryId::new(7);
/// Event log data. Never renumber.
const EVENTS_DATA_MEMORY: MemoryId = MemoryId::new(8);

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
}

fn memory(id: MemoryId) -> Memory {
    MEMORY_MANAGER.with_borrow(|m| m.get(id))
}

/// A fresh, empty stable memory (unit tests reinstall with it).
#[cfg(test)]
pub fn reset_memory() {
    MEMORY_MANAGER.with_borrow_mut(|m| *m = MemoryManager::init(DefaultMemoryImpl::default()));
}

/// A value stored as Candid (named fields: adding an `opt` field later keeps old data
/// readable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored<T>(pub T);

impl<T: CandidType + DeserializeOwned + Clone> Storable for Stored<T> {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        Encode!(&self.0).unwrap_or_else(|e| panic!("BUG: cannot encode a stored value: {e}"))
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Stored(
            Decode!(&bytes, T).unwrap_or_else(|e| panic!("BUG: cannot decode a stored value: {e}")),
        )
    }

    const BOUND: Bound = Bound::Unbounded;
}

/// The registry's settings and counters.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Meta {
    pub hub: Principal,
    pub cmc: Option<Principal>,
    pub config: Config,
    pub next_upload: u64,
    pub next_op: u64,
    pub next_rollout: u64,
}

/// A module upload: bytes arrive in order under `CHUNKS_MEMORY`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Upload {
    pub kind: String,
    pub sha256: Vec<u8>,
    pub size: u64,
    pub received: u64,
    /// Set once published: the bytes are then the version's module.
    pub version: Option<u32>,
}

pub type MetaCell = StableCell<Stored<Option<Meta>>, Memory>;
pub type KindMap = StableBTreeMap<String, Stored<KindInfo>, Memory>;
pub type UploadMap = StableBTreeMap<u64, Stored<Upload>, Memory>;
pub type ChunkMap = StableBTreeMap<(u64, u64), Vec<u8>, Memory>;
pub type ServiceMap = StableBTreeMap<Principal, Stored<ServiceInfo>, Memory>;
pub type CreationMap = StableBTreeMap<u64, Stored<PendingCreation>, Memory>;
pub type RolloutCell = StableCell<Stored<Option<Rollout>>, Memory>;
pub type EventLog = StableLog<Stored<Event>, Memory, Memory>;

pub fn open_meta() -> MetaCell {
    StableCell::init(memory(META_MEMORY), Stored(None))
}

pub fn open_kinds() -> KindMap {
    StableBTreeMap::init(memory(KINDS_MEMORY))
}

pub fn open_uploads() -> UploadMap {
    StableBTreeMap::init(memory(UPLOADS_MEMORY))
}

pub fn open_chunks() -> ChunkMap {
    StableBTreeMap::init(memory(CHUNKS_MEMORY))
}

pub fn open_services() -> ServiceMap {
    StableBTreeMap::init(memory(SERVICES_MEMORY))
}

pub fn open_creations() -> CreationMap {
    StableBTreeMap::init(memory(CREATIONS_MEMORY))
}

pub fn open_rollout() -> RolloutCell {
    StableCell::init(memory(ROLLOUT_MEMORY), Stored(None))
}

pub fn open_events() -> EventLog {
    StableLog::init(memory(EVENTS_INDEX_MEMORY), memory(EVENTS_DATA_MEMORY))
}
