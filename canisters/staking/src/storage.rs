//! Stable memory of the staking canister.
//!
//! One `MemoryManager` over the whole stable memory:
//!
//! ```text
//! MemoryId 0  EVENT_INDEX_MEMORY  Log index   ┐ append-only event log: entry i is
//! MemoryId 1  EVENT_DATA_MEMORY   Log data    ┘ SHA-256(parent ‖ cbor) (32 bytes) ‖ cbor
//! ```
//!
//! `cbor` is the minicbor encoding of `(timestamp, event)` with explicit tags.
//!
//! The event log is the only state that survives an upgrade: `post_upgrade` replays it through
//! the same `apply` used live. `pre_upgrade` does nothing.

use std::cell::RefCell;

use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, Log};

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// The event log's index. Never renumber.
const EVENT_INDEX_MEMORY: MemoryId = MemoryId::new(0);
/// The event log's entries. Never renumber.
const EVENT_DATA_MEMORY: MemoryId = MemoryId::new(1);

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
}

fn memory(id: MemoryId) -> Memory {
    MEMORY_MANAGER.with_borrow(|m| m.get(id))
}

/// A fresh, empty stable memory (native tests reinstall with it).
#[cfg(test)]
pub fn reset_memory() {
    MEMORY_MANAGER.with_borrow_mut(|m| *m = MemoryManager::init(DefaultMemoryImpl::default()));
}

pub type EventLog = Log<Vec<u8>, Memory, Memory>;

pub fn open_events() -> EventLog {
    Log::init(memory(EVENT_INDEX_MEMORY), memory(EVENT_DATA_MEMORY))
}
