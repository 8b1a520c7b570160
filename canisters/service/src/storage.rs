//! Stable memory of the service.
//!
//! One `MemoryManager` over the whole stable memory:
//!
//! ```text
//! MemoryId 0  META_MEMORY     StableCell<StoredMeta>            owner, writers, hub, config, scan height
//! MemoryId 1  RECORDS_MEMORY  StableBTreeMap<u64, StoredRecord>  every record, by local id
//! MemoryId 2  OPEN_MEMORY     StableBTreeMap<u64, ()>            local ids not yet confirmed or refused (frozen, see below)
//! MemoryId 3  HUB_IDS_MEMORY  StableBTreeMap<u64, u64>           hub record id -> local id
//! MemoryId 4  PENDING_MEMORY  StableBTreeMap<u64, ()>            local ids with status Pending (to submit)
//! MemoryId 5  COUNTS_MEMORY   StableCell<Counts>                 next id and records per status (fixed layout)
//! MemoryId 6  FEES_MEMORY     StableCell<StoredFees>             fee ledger, hub credit, top-up journal
//! ```
//!
//! Everything is written when it happens, so `pre_upgrade` does nothing; `post_upgrade`
//! reopens the maps and rebuilds the certified HTTP tree (heap) from the records.
//!
//! Records are stored as CBOR (serde, field names as keys). Releases before it stored Candid,
//! which cost ~0.8 M instructions per encode or decode (measured) against a few tens of
//! thousands for CBOR; Candid records (they start with `DIDL`) still decode.

use std::borrow::Cow;
use std::cell::RefCell;

use candid::{CandidType, Decode, Encode, Principal};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell, Storable};
use serde::{Deserialize, Serialize};
use stratros_confirmation::Hash32;

use crate::types::{Config, RecordBody, RecordStatus};

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// Owner, writers, hub, configuration, scan height. Never renumber.
const META_MEMORY: MemoryId = MemoryId::new(0);
/// The records, by local id. Never renumber.
const RECORDS_MEMORY: MemoryId = MemoryId::new(1);
/// Local ids of records still on their way (pending, submitted, sealed), as releases before
/// the counts cell kept it: read only by the one-time rebuild of the counts after an upgrade
/// from such a release. Not written any more (the counts and the pending set replace it; it
/// cost a stable write per record). Never renumber.
const OPEN_MEMORY: MemoryId = MemoryId::new(2);
/// Hub record id -> local id. Never renumber.
const HUB_IDS_MEMORY: MemoryId = MemoryId::new(3);
/// Local ids of `Pending` records: what the next submission takes, without reading records.
/// Never renumber.
const PENDING_MEMORY: MemoryId = MemoryId::new(4);
/// Counters (next id, records per status), so the status is O(1). Never renumber.
const COUNTS_MEMORY: MemoryId = MemoryId::new(5);
/// The fee state (see `fees.rs`). Never renumber.
const FEES_MEMORY: MemoryId = MemoryId::new(6);

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
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
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
        let mut out = Vec::with_capacity(256);
        ciborium::into_writer(&self, &mut out)
            .unwrap_or_else(|e| panic!("BUG: cannot encode a record: {e}"));
        out
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        if bytes.starts_with(b"DIDL") {
            return Decode!(&bytes, StoredRecord)
                .unwrap_or_else(|e| panic!("BUG: cannot decode a record: {e}"));
        }
        ciborium::from_reader(bytes.as_ref())
            .unwrap_or_else(|e| panic!("BUG: cannot decode a record: {e}"))
    }

    const BOUND: Bound = Bound::Unbounded;
}

/// A [`StoredRecord`]'s stable bytes, decoded only when read ([`EncodedRecord::decode`]).
/// The same bytes as before: the layout of the records map does not change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRecord(Vec<u8>);

impl EncodedRecord {
    pub fn encode(record: StoredRecord) -> EncodedRecord {
        EncodedRecord(record.into_bytes())
    }

    pub fn decode(self) -> StoredRecord {
        StoredRecord::from_bytes(Cow::Owned(self.0))
    }
}

impl Storable for EncodedRecord {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }

    fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        EncodedRecord(bytes.into_owned())
    }

    const BOUND: Bound = Bound::Unbounded;
}

pub type MetaCell = StableCell<StoredMeta, Memory>;
/// Records are kept encoded in the map: `insert` hands back the previous value, and decoding
/// it (~0.1 M instructions) only to drop it cost as much as writing the record.
pub type RecordMap = StableBTreeMap<u64, EncodedRecord, Memory>;
pub type OpenSet = StableBTreeMap<u64, (), Memory>;
pub type HubIdMap = StableBTreeMap<u64, u64, Memory>;
pub type PendingSet = StableBTreeMap<u64, (), Memory>;
pub type CountsCell = StableCell<Counts, Memory>;
pub type FeesCell = StableCell<StoredFees, Memory>;

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

pub fn open_pending() -> PendingSet {
    StableBTreeMap::init(memory(PENDING_MEMORY))
}

pub fn open_counts() -> CountsCell {
    StableCell::init(memory(COUNTS_MEMORY), Counts::default())
}

pub fn open_fees() -> FeesCell {
    StableCell::init(memory(FEES_MEMORY), StoredFees::default())
}

/// Records by status and the next local id. Fixed layout, version byte first:
/// `0x01 | next_id | pending | submitted | sealed | confirmed` (u64 big-endian). A cell
/// without the version byte (a release before it) is rebuilt from the records once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub valid: bool,
    pub next_id: u64,
    pub pending: u64,
    pub submitted: u64,
    pub sealed: u64,
    pub confirmed: u64,
}

const COUNTS_LEN: usize = 1 + 5 * 8;

impl Storable for Counts {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(COUNTS_LEN);
        out.push(1);
        for v in [
            self.next_id,
            self.pending,
            self.submitted,
            self.sealed,
            self.confirmed,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        if bytes.len() < COUNTS_LEN || bytes[0] != 1 {
            return Counts::default();
        }
        let at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[1 + 8 * i..9 + 8 * i]);
            u64::from_be_bytes(b)
        };
        Counts {
            valid: true,
            next_id: at(0),
            pending: at(1),
            submitted: at(2),
            sealed: at(3),
            confirmed: at(4),
        }
    }
    const BOUND: Bound = Bound::Bounded {
        max_size: COUNTS_LEN as u32,
        is_fixed_size: true,
    };
}

/// The fee state as stored (Candid with named fields: an added `opt` field keeps old cells
/// readable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredFees(pub Option<crate::fees::FeeState>);

impl Storable for StoredFees {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        Encode!(&self.0).unwrap_or_else(|e| panic!("BUG: cannot encode the fee state: {e}"))
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        if bytes.is_empty() {
            return StoredFees(None);
        }
        StoredFees(
            Decode!(&bytes, Option<crate::fees::FeeState>)
                .unwrap_or_else(|e| panic!("BUG: cannot decode the fee state: {e}")),
        )
    }

    const BOUND: Bound = Bound::Unbounded;
}
