//! The hash-chained event log (ICRC-3 style) and the global state built from it.
//!
//! Every state change is an [`Event`]: [`record`] appends it to stable memory, chains its
//! hash (`SHA-256(parent_hash ‖ cbor)`, the first parent being 32 zero bytes), certifies the
//! tip, and applies it to the heap state. [`replay`] rebuilds the heap state from the log
//! with the same `apply`.

use std::cell::RefCell;

use ic_certification::{HashTree, fork, label, leaf};
use sha2::{Digest, Sha256};

use crate::events::{Entry, Event, decode_entry, encode_entry};
use crate::state::State;
use crate::storage::{EventLog, open_events};

pub struct Log {
    events: EventLog,
    tip: [u8; 32],
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    static LOG: RefCell<Option<Log>> = const { RefCell::new(None) };
}

pub fn read_state<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with_borrow(|s| {
        f(s.as_ref()
            .unwrap_or_else(|| panic!("BUG: state not initialized")))
    })
}

fn with_log<R>(f: impl FnOnce(&mut Log) -> R) -> R {
    LOG.with_borrow_mut(|l| f(l.as_mut().unwrap_or_else(|| panic!("BUG: log not opened"))))
}

/// Splits a stored entry into its hash and its CBOR.
fn split(stored: &[u8]) -> ([u8; 32], &[u8]) {
    let (hash, cbor) = stored
        .split_first_chunk::<32>()
        .unwrap_or_else(|| panic!("BUG: a stored event has {} bytes", stored.len()));
    (*hash, cbor)
}

/// Opens the log (empty on install) and rebuilds the state by replaying it, checking every
/// stored hash.
pub fn replay() {
    let events = open_events();
    let mut state = State::empty();
    let mut tip = [0u8; 32];
    for (index, stored) in events.iter().enumerate() {
        let (hash, cbor) = split(&stored);
        tip = chain(&tip, cbor);
        if hash != tip {
            panic!("BUG: event {index} does not match its stored hash");
        }
        let entry = decode_entry(cbor);
        state.apply(entry.timestamp, &entry.event);
    }
    STATE.with_borrow_mut(|s| *s = Some(state));
    LOG.with_borrow_mut(|l| *l = Some(Log { events, tip }));
}

fn chain(parent: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(parent);
    h.update(bytes);
    h.finalize().into()
}

/// Appends `event` at `timestamp`, applies it, and returns its index and the new certified
/// data.
pub fn record(timestamp: u64, event: Event) -> (u64, [u8; 32]) {
    let entry = Entry { timestamp, event };
    let cbor = encode_entry(&entry);
    let index = with_log(|l| {
        l.tip = chain(&l.tip, &cbor);
        let mut stored = Vec::with_capacity(32 + cbor.len());
        stored.extend_from_slice(&l.tip);
        stored.extend_from_slice(&cbor);
        l.events
            .append(&stored)
            .unwrap_or_else(|e| panic!("BUG: cannot grow the event log: {e:?}"))
    });
    STATE.with_borrow_mut(|s| {
        s.as_mut()
            .unwrap_or_else(|| panic!("BUG: state not initialized"))
            .apply(timestamp, &entry.event)
    });
    (index, certified_root())
}

pub fn len() -> u64 {
    with_log(|l| l.events.len())
}

/// The ICRC-3 certified tree: `last_block_index` (LEB128) and `last_block_hash`.
pub fn certified_tree() -> HashTree {
    with_log(|l| {
        let n = l.events.len();
        if n == 0 {
            return ic_certification::empty();
        }
        fork(
            label("last_block_hash", leaf(l.tip.to_vec())),
            label("last_block_index", leaf(leb128(n - 1))),
        )
    })
}

pub fn certified_root() -> [u8; 32] {
    certified_tree().digest()
}

fn leb128(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// One stored event: index, CBOR, hash, parent hash.
pub type StoredEvent = (u64, Vec<u8>, [u8; 32], [u8; 32]);

/// Events `start..end`.
pub fn entries(start: u64, end: u64) -> Vec<StoredEvent> {
    with_log(|l| {
        let mut parent = match start.checked_sub(1).and_then(|i| l.events.get(i)) {
            Some(stored) => split(&stored).0,
            None => [0u8; 32],
        };
        (start..end)
            .filter_map(|i| {
                let stored = l.events.get(i)?;
                let (hash, cbor) = split(&stored);
                let item = (i, cbor.to_vec(), hash, parent);
                parent = hash;
                Some(item)
            })
            .collect()
    })
}

pub fn decode(bytes: &[u8]) -> Entry {
    decode_entry(bytes)
}
