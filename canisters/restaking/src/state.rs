//! The event log in stable memory, the heap state built from it, and the one way to reach
//! both: [`read_state`] and [`record`] (which applies an event with [`State::apply`] and, only
//! when it applied, appends it to the hash-chained log and certifies the new tip).

use std::cell::RefCell;

use ic_certification::{HashTree, fork, label, leaf};
use minicbor::{Decode, Encode};
use sha2::{Digest, Sha256};

use crate::events::Event;
use crate::model::{Applied, State};
use crate::storage::{EventLog, open_events};
use crate::types::RestakingError;

/// What the log stores per event.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Entry {
    #[n(0)]
    pub timestamp: u64,
    #[n(1)]
    pub event: Event,
}

struct Log {
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

fn chain(parent: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(parent);
    h.update(bytes);
    h.finalize().into()
}

fn split(stored: &[u8]) -> ([u8; 32], &[u8]) {
    let (hash, cbor) = stored
        .split_first_chunk::<32>()
        .unwrap_or_else(|| panic!("BUG: a stored event has {} bytes", stored.len()));
    (*hash, cbor)
}

pub fn decode_entry(cbor: &[u8]) -> Entry {
    minicbor::decode(cbor).unwrap_or_else(|e| panic!("BUG: cannot decode an event: {e}"))
}

/// Opens the log (empty on install) and rebuilds the state by replaying it with the same
/// `apply` used live, checking every stored hash.
pub fn replay() {
    let events = open_events();
    let mut state = State::default();
    let mut tip = [0u8; 32];
    for (index, stored) in events.iter().enumerate() {
        let (hash, cbor) = split(&stored);
        tip = chain(&tip, cbor);
        if hash != tip {
            panic!("BUG: event {index} does not match its stored hash");
        }
        let entry = decode_entry(cbor);
        state
            .apply(entry.timestamp, &entry.event)
            .unwrap_or_else(|e| panic!("BUG: event {index} does not replay: {e:?}"));
    }
    STATE.with_borrow_mut(|s| *s = Some(state));
    LOG.with_borrow_mut(|l| *l = Some(Log { events, tip }));
}

/// Applies `event` at `timestamp`; when it applies, appends it to the log. Returns the outcome
/// and the new certified data.
pub fn record(timestamp: u64, event: Event) -> Result<(Applied, [u8; 32]), RestakingError> {
    let applied = STATE.with_borrow_mut(|s| {
        s.as_mut()
            .unwrap_or_else(|| panic!("BUG: state not initialized"))
            .apply(timestamp, &event)
    })?;
    let cbor = minicbor::to_vec(Entry { timestamp, event })
        .unwrap_or_else(|e| panic!("BUG: cannot encode an event: {e}"));
    with_log(|l| {
        l.tip = chain(&l.tip, &cbor);
        let mut stored = Vec::with_capacity(32 + cbor.len());
        stored.extend_from_slice(&l.tip);
        stored.extend_from_slice(&cbor);
        l.events
            .append(&stored)
            .unwrap_or_else(|e| panic!("BUG: cannot grow the event log: {e:?}"));
    });
    Ok((applied, certified_root()))
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

/// One stored event: (index, timestamp, CBOR, hash, summary).
pub type StoredEvent = (u64, u64, Vec<u8>, [u8; 32], String);

/// Events `start..end`.
pub fn entries(start: u64, end: u64) -> Vec<StoredEvent> {
    with_log(|l| {
        (start..end)
            .filter_map(|i| l.events.get(i).map(|stored| (i, stored)))
            .map(|(i, stored)| {
                let (hash, cbor) = split(&stored);
                let entry = decode_entry(cbor);
                (
                    i,
                    entry.timestamp,
                    cbor.to_vec(),
                    hash,
                    format!("{:?}", entry.event),
                )
            })
            .collect()
    })
}
