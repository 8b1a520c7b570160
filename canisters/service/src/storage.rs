//! Stable memory of the service.
//!
//! One `MemoryManager` over the whole stable memory:
//!
//! ```text
//! MemoryId 0  META_MEMORY     StableCell<StoredMeta>            owner, writers, hub, config, scan height
//! MemoryId 1  RECORDS_MEMORY  StableBTreeMap<u64, StoredRecord>  every record, by local id
//! MemoryId 2  OPEN_MEMORY     StableBTreeMap<u64, ()>            local ids not yet confirmed or refused
//! MemoryId 3  HUB_IDS_MEMORY  StableBTreeMap<u64, u64>           hub record id -> local id
//! ```
//!
//! Everything is written when it happens, so `pre_upgrade` does nothing; `post_upgrade`
//! reopens the maps and rebuilds the certified HTTP tree (heap) from the records.

use std::borrow::Cow;
use std::cell::RefCell;

use candid::{CandidType, Decode, Encode, Principal};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell, Storable};
use serde::Deserialize;
use stratros_confirmation::Hash32;

use crate::types::{Config, RecordBody, RecordStatus};

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// Owner, writers, hub, configuration, scan height. Never renumber.
const META_MEMORY: MemoryId = MemoryId::new(0);
/// The records, by local id. Never renumber.
const RECORDS_MEMORY: MemoryId = MemoryId::new(1);
/// Local ids of records still on their way (pending, submitted, sealed). Never renumber.
const OPEN_MEMORY: MemoryId = MemoryId::new(2);
/// Hub record id -> local id. Never renumber.
const HUB_IDS_MEMORY: MemoryId = MemoryId::new(3);

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

/// The instance's settings. Candid with named fields: adding an `opt` field later keeps old
/// cells readable.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Meta {
    pub owner: Principal,
    pub writers: Vec<Principal>,
    pub hub: Principal,
    pub kind: String,
    pub name: String,
    pub config: Config,
    /// Lowest hub batch height not known to be fully confirmed.
    pub scan_height: u64,
    /// Records the hub refused for good.
    pub refused: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredMeta(pub Option<Meta>);

impl Storable for StoredMeta {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        Encode!(&self.0).unwrap_or_else(|e| panic!("BUG: cannot encode the meta cell: {e}"))
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        if bytes.is_empty() {
            return StoredMeta(None);
        }
        StoredMeta(
            Decode!(&bytes, Option<Meta>)
                .unwrap_or_else(|e| panic!("BUG: cannot decode the meta cell: {e}")),
        )
    }

    const BOUND: Bound = Bound::Unbounded;
}

/// A record as stored.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct StoredRecord {
    pub id: u64,
    pub author: Principal,
    pub created_at_nanos: u64,
    pub body: RecordBody,
    pub content_hash: Hash32,
    pub hub: Principal,
    pub hub_record_id: Option<u64>,
    pub status: RecordStatus,
}

impl Storable for StoredRecord {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        Encode!(&self).unwrap_or_else(|e| panic!("BUG: cannot encode a record: {e}"))
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Decode!(&bytes, StoredRecord).unwrap_or_else(|e| panic!("BUG: cannot decode a record: {e}"))
    }

    const BOUND: Bound = Bound::Unbounded;
}

pub type MetaCell = StableCell<StoredMeta, Memory>;
pub type RecordMap = StableBTreeMap<u64, StoredRecord, Memory>;
pub type OpenSet = StableBTreeMap<u64, (), Memory>;
pub type HubIdMap = StableBTreeMap<u64, u64, Memory>;

pub fn open_meta() -> MetaCell {
    StableCell::init(memory(META_MEMORY), StoredMeta::default())
}

pub fn open_records() -> RecordMap {
    StableBTreeMap::init(memory(RECORDS_MEMORY))
}

pub fn open_open_set() -> OpenSet {
    StableBTreeMap::init(memory(OPEN_MEMORY))
}

pub fn open_hub_ids() -> HubIdMap {
    StableBTreeMap::init(memory(HUB_IDS_MEMORY))
}
