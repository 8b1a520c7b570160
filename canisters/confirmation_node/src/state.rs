//! The node's state and the one way to reach it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candid::Principal;
use stratros_confirmation::{BatchHeader, Blob, Hash32, Scheme, SignedHeader, header_hash};

use crate::log::CertifiedLog;
use crate::storage::{self, Config, ConfigCell, LogMap, SlotKey, SlotMap, StoredConfig};
use crate::types::{LogEntry, SignError};

pub struct State {
    config_cell: ConfigCell,
    config: Config,
    log: LogMap,
    slots: SlotMap,
    certified: CertifiedLog,
    /// Slots whose signature is being produced (heap only: an upgrade drops them, and the
    /// calls they stood for can no longer record anything).
    in_flight: BTreeMap<SlotKey, Hash32>,
}

/// What the node has done for a (hub, height), as seen before signing.
#[derive(Debug, PartialEq, Eq)]
pub enum Slot {
    /// This very header was signed: return the stored signature.
    Signed(Box<LogEntry>),
    /// Nothing yet: the slot is now reserved for this header.
    Reserved,
}

impl State {
    /// A fresh node: writes the configuration.
    pub fn init(config: Config) -> State {
        let mut config_cell = storage::open_config();
        config_cell.set(StoredConfig(Some(config.clone())));
        let state = State::open(config_cell, config);
        assert_eq!(
            state.log.len(),
            0,
            "BUG: init found a non-empty log in stable memory"
        );
        state
    }

    /// The node after an upgrade: reads everything back from stable memory.
    pub fn load() -> State {
        let config_cell = storage::open_config();
        let config = config_cell
            .get()
            .0
            .clone()
            .unwrap_or_else(|| panic!("BUG: upgrading a node that has no configuration"));
        State::open(config_cell, config)
    }

    fn open(config_cell: ConfigCell, config: Config) -> State {
        let log = storage::open_log();
        let slots = storage::open_slots();
        let mut certified = CertifiedLog::default();
        for (_, entry) in log.iter().map(|e| e.into_pair()) {
            certified.push(&entry);
        }
        State {
            config_cell,
            config,
            log,
            slots,
            certified,
            in_flight: BTreeMap::new(),
        }
    }

    pub fn scheme(&self) -> Scheme {
        self.config.scheme
    }

    pub fn key_name(&self) -> &str {
        &self.config.key_name
    }

    pub fn hub(&self) -> Principal {
        self.config.hub
    }

    pub fn public_key(&self) -> Option<&Blob> {
        self.config.public_key.as_ref()
    }

    fn save_config(&mut self) {
        self.config_cell
            .set(StoredConfig(Some(self.config.clone())));
    }

    pub fn set_hub(&mut self, hub: Principal) {
        self.config.hub = hub;
        self.save_config();
    }

    pub fn set_public_key(&mut self, key: Blob) {
        self.config.public_key = Some(key);
        self.save_config();
    }

    pub fn log_len(&self) -> u64 {
        self.log.len()
    }

    pub fn certified_root(&self) -> [u8; 32] {
        self.certified.root_hash()
    }

    pub fn certified_log(&self) -> &CertifiedLog {
        &self.certified
    }

    pub fn entry(&self, index: u64) -> Option<LogEntry> {
        self.log.get(&index)
    }

    pub fn entries(&self, start: u64, end: u64) -> Vec<LogEntry> {
        self.log.range(start..end).map(|e| e.value()).collect()
    }

    pub fn signed_at(&self, hub: Principal, height: u64) -> Option<LogEntry> {
        let index = self.slots.get(&SlotKey { hub, height })?;
        Some(
            self.log
                .get(&index)
                .unwrap_or_else(|| panic!("BUG: slot ({hub}, {height}) points to no log entry")),
        )
    }

    /// Decides what to do with a request for `header` and, when the slot is free, reserves it.
    /// No `await` may separate this from the threshold call's start.
    pub fn check_and_reserve(
        &mut self,
        header: &BatchHeader,
        header_hash: &Hash32,
    ) -> Result<Slot, SignError> {
        let key = SlotKey {
            hub: header.hub,
            height: header.height,
        };
        if let Some(entry) = self.signed_at(key.hub, key.height) {
            if entry.header_hash == *header_hash {
                return Ok(Slot::Signed(Box::new(entry)));
            }
            return Err(SignError::AlreadySignedOtherHeader {
                log_index: entry.index,
                signed: Box::new(SignedHeader {
                    header: entry.header,
                    signature: entry.signature,
                }),
            });
        }
        if let Some(pending) = self.in_flight.get(&key) {
            return Err(SignError::SigningInProgress {
                height: key.height,
                header_hash: *pending,
            });
        }
        self.check_chain(header)?;
        self.in_flight.insert(key, *header_hash);
        Ok(Slot::Reserved)
    }

    /// The header must extend the header signed at `height - 1` and be extended by the one
    /// signed at `height + 1`, when those exist.
    fn check_chain(&self, header: &BatchHeader) -> Result<(), SignError> {
        if let Some(below) = header
            .height
            .checked_sub(1)
            .and_then(|h| self.signed_at(header.hub, h))
            && below.header_hash != header.prev_header_hash
        {
            return Err(SignError::ChainMismatch {
                signed_height: below.height,
                signed_header_hash: below.header_hash,
            });
        }
        if let Some(above) = header
            .height
            .checked_add(1)
            .and_then(|h| self.signed_at(header.hub, h))
            && above.header.prev_header_hash != header_hash(header)
        {
            return Err(SignError::ChainMismatch {
                signed_height: above.height,
                signed_header_hash: above.header_hash,
            });
        }
        Ok(())
    }

    /// Gives a reservation back (the threshold call failed or was abandoned).
    pub fn release(&mut self, hub: Principal, height: u64) {
        self.in_flight.remove(&SlotKey { hub, height });
    }

    /// Records a signature for a reserved slot, in stable memory and in the certified tree.
    pub fn record_signed(
        &mut self,
        header: BatchHeader,
        header_hash: Hash32,
        signature: Blob,
        now: u64,
    ) -> LogEntry {
        let key = SlotKey {
            hub: header.hub,
            height: header.height,
        };
        assert!(
            self.slots.get(&key).is_none(),
            "BUG: ({}, {}) is signed twice",
            key.hub,
            key.height
        );
        let entry = LogEntry {
            index: self.log.len(),
            hub: header.hub,
            height: header.height,
            header_hash,
            header,
            signature,
            signed_at_nanos: now,
        };
        self.log.insert(entry.index, entry.clone());
        self.slots.insert(key, entry.index);
        self.certified.push(&entry);
        self.in_flight.remove(&key);
        entry
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Sets the state, from `init` or `post_upgrade`.
pub fn init_state(state: State) {
    STATE.with_borrow_mut(|s| *s = Some(state));
}

pub fn read_state<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with_borrow(|s| f(s.as_ref().expect("BUG: state is not initialized")))
}

pub fn mutate_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with_borrow_mut(|s| f(s.as_mut().expect("BUG: state is not initialized")))
}

/// Drops the heap state (unit tests simulate an upgrade with it).
#[cfg(test)]
pub fn reset_state() {
    STATE.with_borrow_mut(|s| *s = None);
}
