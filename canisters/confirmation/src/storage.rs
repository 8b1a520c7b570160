//! Stable memory of the hub. Every piece of state lives here, written when it changes: nothing
//! is serialized in `pre_upgrade`, and `post_upgrade` only reopens the structures and rebuilds
//! the certified tree (heap) from the headers.
//!
//! One `MemoryManager` over the whole stable memory:
//!
//! ```text
//! MemoryId 0   CONFIG_MEMORY        StableCell<StoredConfig>            config, nodes, quorum rule
//! MemoryId 1   COUNTERS_MEMORY      StableCell<Counters>                next id, first pending id, next height, last header hash
//! MemoryId 2   SUBMITTERS_MEMORY    StableBTreeMap<Principal, ()>       authorized submitters
//! MemoryId 3   RECORDS_INDEX_MEMORY StableLog index  } record id = log index:
//! MemoryId 4   RECORDS_DATA_MEMORY  StableLog data   } StoredRecord (compact binary)
//! MemoryId 5   LEAVES_MEMORY        StableVec<[u8; 32]>                 leaf hash of record id i at index i (tree level 0)
//! MemoryId 6   TREE_MEMORY          StableVec<[u8; 32]>                 inner levels 1.. of every batch, batch after batch
//! MemoryId 7   BATCHES_MEMORY       StableBTreeMap<u64, Batch>          height -> header, confirmations, progress
//! MemoryId 8   BATCH_START_MEMORY   StableBTreeMap<u64, u64>            first record id -> height
//! MemoryId 9   IDEMPOTENCY_MEMORY   IdempotencyIndex (raw hash tables)  SHA-256(submitter, reference) -> record id
//! MemoryId 10  POLICIES_MEMORY      StableBTreeMap<[u8; 32], StoredPolicy> policy hash -> policy
//! MemoryId 11  OPEN_MEMORY          StableBTreeMap<u64, ()>             heights with nodes still to sign
//! MemoryId 12  DUE_MEMORY           StableBTreeMap<[u8; 20], ()>        due u64 | height u64 | node index u32: when to ask next
//! MemoryId 13  FEE_EVENTS_INDEX     StableLog index  } the fee event log (CBOR `fees::FeeEvent`),
//! MemoryId 14  FEE_EVENTS_DATA      StableLog data   } replayed into the fee books on upgrade
//! MemoryId 15  NODE_KEYS_MEMORY     StableBTreeMap<Principal, StoredNodeKey> node -> its public key, from the management canister
//! ```
//!
//! Tree node `(height, level, index)` is `LEAVES[first_record_id + index]` at level 0, and
//! `TREE[tree_offset + level_offset(leaf_count, level) + index]` above (see
//! [`crate::state::tree_position`]): one read per node whatever the history, so a proof costs
//! O(log n) reads.

use std::borrow::Cow;
use std::cell::RefCell;

use candid::{CandidType, Decode, Encode, Principal};
use ic_stable_structures::log::Log;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell, StableVec, Storable};
use serde::Deserialize;
use stratros_confirmation::{Blob, Hash32, PolicyNode, QuorumPolicy, QuorumRule};

use crate::types::{Batch, Config, FeeConfig};

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// Config, nodes, quorum rule. Never renumber.
const CONFIG_MEMORY: MemoryId = MemoryId::new(0);
/// Counters. Never renumber.
const COUNTERS_MEMORY: MemoryId = MemoryId::new(1);
/// Authorized submitters. Never renumber.
const SUBMITTERS_MEMORY: MemoryId = MemoryId::new(2);
/// Record log, index part. Never renumber.
const RECORDS_INDEX_MEMORY: MemoryId = MemoryId::new(3);
/// Record log, data part. Never renumber.
const RECORDS_DATA_MEMORY: MemoryId = MemoryId::new(4);
/// Leaf hashes by record id. Never renumber.
const LEAVES_MEMORY: MemoryId = MemoryId::new(5);
/// Inner tree levels. Never renumber.
const TREE_MEMORY: MemoryId = MemoryId::new(6);
/// Batches by height. Never renumber.
const BATCHES_MEMORY: MemoryId = MemoryId::new(7);
/// First record id -> height. Never renumber.
const BATCH_START_MEMORY: MemoryId = MemoryId::new(8);
/// Idempotency keys. Never renumber.
const IDEMPOTENCY_MEMORY: MemoryId = MemoryId::new(9);
/// Quorum policies by hash. Never renumber.
const POLICIES_MEMORY: MemoryId = MemoryId::new(10);
/// Open batches. Never renumber.
const OPEN_MEMORY: MemoryId = MemoryId::new(11);
/// The retry queue. Never renumber.
const DUE_MEMORY: MemoryId = MemoryId::new(12);
/// Fee event log, index part. Never renumber.
const FEE_EVENTS_INDEX_MEMORY: MemoryId = MemoryId::new(13);
/// Fee event log, data part. Never renumber.
const FEE_EVENTS_DATA_MEMORY: MemoryId = MemoryId::new(14);
/// Node public keys. Never renumber.
const NODE_KEYS_MEMORY: MemoryId = MemoryId::new(15);

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

pub type ConfigCell = StableCell<StoredConfig, Memory>;
pub type CountersCell = StableCell<Counters, Memory>;
pub type Submitters = StableBTreeMap<Principal, (), Memory>;
pub type Records = Log<StoredRecord, Memory, Memory>;
pub type HashVec = StableVec<[u8; 32], Memory>;
pub type Batches = StableBTreeMap<u64, StoredBatch, Memory>;
pub type U64Map = StableBTreeMap<u64, u64, Memory>;
pub type Idempotency = crate::index::IdempotencyIndex;
pub type Policies = StableBTreeMap<[u8; 32], StoredPolicy, Memory>;
pub type Open = StableBTreeMap<u64, (), Memory>;
pub type Due = StableBTreeMap<[u8; 20], (), Memory>;
pub type FeeLog = Log<Vec<u8>, Memory, Memory>;
pub type NodeKeys = StableBTreeMap<Principal, StoredNodeKey, Memory>;

pub fn open_node_keys() -> NodeKeys {
    StableBTreeMap::init(memory(NODE_KEYS_MEMORY))
}

pub fn open_fee_log() -> FeeLog {
    Log::init(
        memory(FEE_EVENTS_INDEX_MEMORY),
        memory(FEE_EVENTS_DATA_MEMORY),
    )
}

pub fn open_config() -> ConfigCell {
    StableCell::init(memory(CONFIG_MEMORY), StoredConfig::default())
}
pub fn open_counters() -> CountersCell {
    StableCell::init(memory(COUNTERS_MEMORY), Counters::default())
}
pub fn open_submitters() -> Submitters {
    StableBTreeMap::init(memory(SUBMITTERS_MEMORY))
}
pub fn open_records() -> Records {
    Log::init(memory(RECORDS_INDEX_MEMORY), memory(RECORDS_DATA_MEMORY))
}
pub fn open_leaves() -> HashVec {
    StableVec::init(memory(LEAVES_MEMORY))
}
pub fn open_tree() -> HashVec {
    StableVec::init(memory(TREE_MEMORY))
}
pub fn open_batches() -> Batches {
    StableBTreeMap::init(memory(BATCHES_MEMORY))
}
pub fn open_batch_start() -> U64Map {
    StableBTreeMap::init(memory(BATCH_START_MEMORY))
}
pub fn open_idempotency() -> Idempotency {
    crate::index::IdempotencyIndex::init(memory(IDEMPOTENCY_MEMORY))
}
pub fn open_policies() -> Policies {
    StableBTreeMap::init(memory(POLICIES_MEMORY))
}
pub fn open_open() -> Open {
    StableBTreeMap::init(memory(OPEN_MEMORY))
}
pub fn open_due() -> Due {
    StableBTreeMap::init(memory(DUE_MEMORY))
}

/// A key of the retry queue: ordered by due time, then height, then node index.
pub fn due_key(due: u64, height: u64, node_index: u32) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..8].copy_from_slice(&due.to_be_bytes());
    k[8..16].copy_from_slice(&height.to_be_bytes());
    k[16..].copy_from_slice(&node_index.to_be_bytes());
    k
}

/// `(due, height, node index)` of a retry queue key.
pub fn parse_due_key(k: &[u8; 20]) -> (u64, u64, u32) {
    let mut i = [0u8; 4];
    i.copy_from_slice(&k[16..]);
    (read_u64(k, 0), read_u64(k, 8), u32::from_be_bytes(i))
}

/// Configuration, registered nodes and the quorum rule. Candid with named fields: adding an
/// `opt` field later keeps old cells readable.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Settings {
    pub config: Config,
    pub nodes: Vec<PolicyNode>,
    pub quorum_rule: QuorumRule,
    /// Per-record fees (none: free).
    pub fees: Option<FeeConfig>,
    /// Principals besides the controllers that may add submitters.
    pub registrars: Option<Vec<Principal>>,
}

impl Settings {
    pub fn policy(&self) -> QuorumPolicy {
        QuorumPolicy {
            nodes: self.nodes.clone(),
            rule: self.quorum_rule.clone(),
        }
    }
}

/// The cell's value: `None` before `init`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredConfig(pub Option<Settings>);

fn encode<T: CandidType>(value: &T, what: &str) -> Vec<u8> {
    Encode!(value).unwrap_or_else(|e| panic!("BUG: cannot encode {what}: {e}"))
}

impl Storable for StoredConfig {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(encode(&self.0, "the config"))
    }
    fn into_bytes(self) -> Vec<u8> {
        encode(&self.0, "the config")
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        if bytes.is_empty() {
            return StoredConfig(None);
        }
        StoredConfig(
            Decode!(&bytes, Option<Settings>)
                .unwrap_or_else(|e| panic!("BUG: cannot decode the config: {e}")),
        )
    }
    const BOUND: Bound = Bound::Unbounded;
}

/// The hub's counters, fixed layout: `next_record_id u64 | first_pending u64 | next_height u64 |
/// last_header_hash 32` (big-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Ids below it are assigned.
    pub next_record_id: u64,
    /// Ids below it are sealed; `first_pending..next_record_id` are pending.
    pub first_pending: u64,
    /// Heights below it are sealed.
    pub next_height: u64,
    /// Header hash of `next_height - 1` (zero before the first batch).
    pub last_header_hash: Hash32,
}

const COUNTERS_LEN: usize = 8 * 3 + 32;

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(b)
}

impl Storable for Counters {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(COUNTERS_LEN);
        out.extend_from_slice(&self.next_record_id.to_be_bytes());
        out.extend_from_slice(&self.first_pending.to_be_bytes());
        out.extend_from_slice(&self.next_height.to_be_bytes());
        out.extend_from_slice(&self.last_header_hash.0);
        out
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        if bytes.len() < COUNTERS_LEN {
            return Counters::default();
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[24..56]);
        Counters {
            next_record_id: read_u64(&bytes, 0),
            first_pending: read_u64(&bytes, 8),
            next_height: read_u64(&bytes, 16),
            last_header_hash: Hash32(hash),
        }
    }
    const BOUND: Bound = Bound::Bounded {
        max_size: COUNTERS_LEN as u32,
        is_fixed_size: true,
    };
}

/// A record as stored (its id is its log index), compact binary, version 1:
///
/// ```text
/// 0x01 | submitted_at u64 | submitter u8 len || bytes | content_hash 32
/// | kind u32 len || UTF-8 | reference u32 len || UTF-8 | payload 0x00 | 0x01 u32 len || bytes
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub submitted_at: u64,
    pub submitter: Principal,
    pub content_hash: Hash32,
    pub kind: String,
    pub reference: String,
    pub payload: Option<Blob>,
}

const RECORD_VERSION: u8 = 1;

fn put_bytes32(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// A cursor that panics with `BUG:` on truncated data (only the hub writes these bytes).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(self.0.len() >= n, "BUG: truncated stored record");
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u32(&mut self) -> usize {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4));
        u32::from_be_bytes(b) as usize
    }
    fn u64(&mut self) -> u64 {
        read_u64(self.take(8), 0)
    }
    fn string(&mut self) -> String {
        let n = self.u32();
        String::from_utf8(self.take(n).to_vec())
            .unwrap_or_else(|_| panic!("BUG: stored record has invalid UTF-8"))
    }
}

impl Storable for StoredRecord {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        let payload_len = self.payload.as_ref().map_or(0, |p| p.len());
        let mut out =
            Vec::with_capacity(60 + self.kind.len() + self.reference.len() + payload_len + 16);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.submitted_at.to_be_bytes());
        let p = self.submitter.as_slice();
        out.push(p.len() as u8);
        out.extend_from_slice(p);
        out.extend_from_slice(&self.content_hash.0);
        put_bytes32(&mut out, self.kind.as_bytes());
        put_bytes32(&mut out, self.reference.as_bytes());
        match &self.payload {
            None => out.push(0),
            Some(payload) => {
                out.push(1);
                put_bytes32(&mut out, payload.as_slice());
            }
        }
        Cow::Owned(out)
    }
    fn into_bytes(self) -> Vec<u8> {
        self.to_bytes().into_owned()
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let mut r = Reader(&bytes);
        assert_eq!(r.u8(), RECORD_VERSION, "BUG: unknown stored record version");
        let submitted_at = r.u64();
        let plen = r.u8() as usize;
        let submitter = Principal::from_slice(r.take(plen));
        let mut hash = [0u8; 32];
        hash.copy_from_slice(r.take(32));
        let kind = r.string();
        let reference = r.string();
        let payload = match r.u8() {
            0 => None,
            _ => {
                let n = r.u32();
                Some(Blob(r.take(n).to_vec()))
            }
        };
        StoredRecord {
            submitted_at,
            submitter,
            content_hash: Hash32(hash),
            kind,
            reference,
            payload,
        }
    }
    const BOUND: Bound = Bound::Unbounded;
}

/// A batch as stored (Candid).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBatch(pub Batch);

impl Storable for StoredBatch {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(encode(&self.0, "a batch"))
    }
    fn into_bytes(self) -> Vec<u8> {
        encode(&self.0, "a batch")
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        StoredBatch(
            Decode!(&bytes, Batch).unwrap_or_else(|e| panic!("BUG: cannot decode a batch: {e}")),
        )
    }
    const BOUND: Bound = Bound::Unbounded;
}

/// A quorum policy as stored (Candid).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPolicy(pub QuorumPolicy);

impl Storable for StoredPolicy {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(encode(&self.0, "a policy"))
    }
    fn into_bytes(self) -> Vec<u8> {
        encode(&self.0, "a policy")
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        StoredPolicy(
            Decode!(&bytes, QuorumPolicy)
                .unwrap_or_else(|e| panic!("BUG: cannot decode a policy: {e}")),
        )
    }
    const BOUND: Bound = Bound::Unbounded;
}

/// A node's public key for one scheme and key name, as the management canister gave it.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct StoredNodeKey {
    pub scheme: stratros_confirmation::Scheme,
    pub key_name: String,
    pub public_key: Blob,
}

impl Storable for StoredNodeKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(encode(self, "a node key"))
    }
    fn into_bytes(self) -> Vec<u8> {
        encode(&self, "a node key")
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Decode!(&bytes, StoredNodeKey)
            .unwrap_or_else(|e| panic!("BUG: cannot decode a node key: {e}"))
    }
    const BOUND: Bound = Bound::Unbounded;
}
