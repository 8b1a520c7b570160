//! Stable memory of the confirmation node.
//!
//! One `MemoryManager` over the whole stable memory:
//!
//! ```text
//! MemoryId 0  CONFIG_MEMORY  StableCell<StoredConfig>          scheme, key name, hub, cached public key
//! MemoryId 1  LOG_MEMORY     StableBTreeMap<u64, LogEntry>     every signature, by log index
//! MemoryId 2  SLOTS_MEMORY   StableBTreeMap<SlotKey, u64>      (hub, height) -> log index
//! ```
//!
//! Everything is written when it happens, so `pre_upgrade` does nothing; `post_upgrade` reopens
//! the maps and rebuilds the certified tree (heap) from the log.

use std::borrow::Cow;
use std::cell::RefCell;

use candid::{CandidType, Decode, Encode, Principal};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell, Storable};
use serde::Deserialize;
use stratros_confirmation::{Blob, Scheme};

use crate::types::LogEntry;

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// The node's configuration and cached public key. Never renumber.
const CONFIG_MEMORY: MemoryId = MemoryId::new(0);
/// The signature log, keyed by log index. Never renumber.
const LOG_MEMORY: MemoryId = MemoryId::new(1);
/// The slot index: (hub, height) -> log index. Never renumber.
const SLOTS_MEMORY: MemoryId = MemoryId::new(2);

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

pub fn config_memory() -> Memory {
    memory(CONFIG_MEMORY)
}

pub fn log_memory() -> Memory {
    memory(LOG_MEMORY)
}

pub fn slots_memory() -> Memory {
    memory(SLOTS_MEMORY)
}

/// What the configuration cell holds. Candid with named fields: adding an `opt` field later
/// keeps old cells readable.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Config {
    pub scheme: Scheme,
    pub key_name: String,
    pub hub: Principal,
    pub public_key: Option<Blob>,
}

/// The cell's value: `None` before `init`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredConfig(pub Option<Config>);

impl Storable for StoredConfig {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        Encode!(&self.0).unwrap_or_else(|e| panic!("BUG: cannot encode the config: {e}"))
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        if bytes.is_empty() {
            return StoredConfig(None);
        }
        StoredConfig(
            Decode!(&bytes, Option<Config>)
                .unwrap_or_else(|e| panic!("BUG: cannot decode the config: {e}")),
        )
    }

    const BOUND: Bound = Bound::Unbounded;
}

impl Storable for LogEntry {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        Encode!(&self).unwrap_or_else(|e| panic!("BUG: cannot encode a log entry: {e}"))
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Decode!(&bytes, LogEntry).unwrap_or_else(|e| panic!("BUG: cannot decode a log entry: {e}"))
    }

    const BOUND: Bound = Bound::Unbounded;
}

/// `(hub, height)` as `u8 len || principal || height u64 BE`: one hub's heights sort together,
/// in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotKey {
    pub hub: Principal,
    pub height: u64,
}

impl Storable for SlotKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        let hub = self.hub.as_slice();
        let mut out = Vec::with_capacity(1 + hub.len() + 8);
        // A principal is at most 29 bytes.
        out.push(hub.len() as u8);
        out.extend_from_slice(hub);
        out.extend_from_slice(&self.height.to_be_bytes());
        out
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let len = usize::from(bytes[0]);
        let hub = Principal::from_slice(&bytes[1..1 + len]);
        let height = u64::from_be_bytes(
            bytes[1 + len..1 + len + 8]
                .try_into()
                .unwrap_or_else(|_| panic!("BUG: a slot key is {} bytes", bytes.len())),
        );
        SlotKey { hub, height }
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: 1 + 29 + 8,
        is_fixed_size: false,
    };
}

pub type ConfigCell = StableCell<StoredConfig, Memory>;
pub type LogMap = StableBTreeMap<u64, LogEntry, Memory>;
pub type SlotMap = StableBTreeMap<SlotKey, u64, Memory>;

pub fn open_config() -> ConfigCell {
    StableCell::init(config_memory(), StoredConfig::default())
}

pub fn open_log() -> LogMap {
    StableBTreeMap::init(log_memory())
}

pub fn open_slots() -> SlotMap {
    StableBTreeMap::init(slots_memory())
}
