//! The service's state and the one way to reach it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use candid::Principal;

use crate::fees::FeeState;
use crate::http::CertifiedPages;
use crate::storage::{
    self, Counts, CountsCell, EncodedRecord, FeesCell, HubIdMap, Meta, MetaCell, OpenSet,
    PendingSet, RecordMap, StoredFees, StoredMeta, StoredRecord,
};
use crate::types::{Config, RecordStatus, RecordView, ServiceStatus};

pub struct State {
    meta_cell: MetaCell,
    meta: Meta,
    records: RecordMap,
    open: OpenSet,
    hub_ids: HubIdMap,
    pending: PendingSet,
    counts_cell: CountsCell,
    counts: Counts,
    fees_cell: FeesCell,
    fees: FeeState,
    /// Certified HTTP responses (heap; rebuilt after an upgrade).
    pages: CertifiedPages,
    /// Records written since their page was last certified, as written (heap), and whether
    /// the status pages are stale: pages are certified once per message
    /// ([`State::certify_pages`]), not once per change. Every write goes through
    /// [`State::insert`] or [`State::update`], so the copies here are never stale: reads
    /// ([`State::record`], [`State::take_pending`]) use them before decoding stable memory,
    /// and a record written before a call is not decoded again in its callback.
    dirty: BTreeMap<u64, StoredRecord>,
    /// The records the last [`State::certify_pages`] certified, as written: still read from
    /// the heap (the reply of `add_records` shows them) until the next certification. Never
    /// stale either: a later write goes to `dirty`, which is read first.
    recent: BTreeMap<u64, StoredRecord>,
    status_dirty: bool,
    /// Records in a `submit` call right now (heap only: after an upgrade their calls can no
    /// longer record anything, and a retry is deduplicated by the hub).
    in_flight: BTreeSet<u64>,
    /// One confirmation scan at a time.
    scanning: bool,
}

/// The reference (idempotency key) of local record `id` at the hub.
pub fn reference(id: u64) -> String {
    format!("rec-{id}")
}

impl State {
    /// A fresh service.
    pub fn init(meta: Meta) -> State {
        let mut meta_cell = storage::open_meta();
        meta_cell.set(StoredMeta(Some(meta.clone())));
        let state = State::open(meta_cell, meta);
        assert_eq!(
            state.records.len(),
            0,
            "BUG: init found records in stable memory"
        );
        state
    }

    /// The service after an upgrade, read back from stable memory.
    pub fn load() -> State {
        let meta_cell = storage::open_meta();
        let meta = meta_cell
            .get()
            .0
            .clone()
            .unwrap_or_else(|| panic!("BUG: upgrading a service that has no meta cell"));
        State::open(meta_cell, meta)
    }

    fn open(meta_cell: MetaCell, meta: Meta) -> State {
        let counts_cell = storage::open_counts();
        let counts = *counts_cell.get();
        let fees_cell = storage::open_fees();
        let fees = fees_cell.get().0.clone().unwrap_or_default();
        let mut state = State {
            meta_cell,
            meta,
            records: storage::open_records(),
            open: storage::open_open_set(),
            hub_ids: storage::open_hub_ids(),
            pending: storage::open_pending(),
            counts_cell,
            counts,
            fees_cell,
            fees,
            pages: CertifiedPages::default(),
            dirty: BTreeMap::new(),
            recent: BTreeMap::new(),
            status_dirty: true,
            in_flight: BTreeSet::new(),
            scanning: false,
        };
        if !state.counts.valid {
            state.rebuild_counts();
        }
        let views: Vec<RecordView> = state
            .records
            .iter()
            .map(|e| view(&e.value().decode()))
            .collect();
        for v in &views {
            state.pages.put_record(v);
        }
        state.certify_pages();
        state
    }

    /// Counters and the pending set from the records (first upgrade from a release without
    /// them, or a fresh install).
    fn rebuild_counts(&mut self) {
        let mut counts = Counts {
            valid: true,
            next_id: self.records.last_key_value().map_or(0, |(k, _)| k + 1),
            ..Counts::default()
        };
        let open: Vec<(u64, RecordStatus)> = self
            .open
            .keys()
            .filter_map(|id| self.records.get(&id).map(|r| (id, r.decode().status)))
            .collect();
        for (id, status) in open {
            match status {
                RecordStatus::Pending { .. } => {
                    counts.pending += 1;
                    self.pending.insert(id, ());
                }
                RecordStatus::Submitted => counts.submitted += 1,
                RecordStatus::Sealed { .. } => counts.sealed += 1,
                _ => {}
            }
        }
        let closed = self.records.len() - self.open.len();
        counts.confirmed = closed.saturating_sub(self.meta.refused);
        self.counts = counts;
        self.counts_cell.set(counts);
    }

    fn count_mut(&mut self, status: &RecordStatus) -> Option<&mut u64> {
        match status {
            RecordStatus::Pending { .. } => Some(&mut self.counts.pending),
            RecordStatus::Submitted => Some(&mut self.counts.submitted),
            RecordStatus::Sealed { .. } => Some(&mut self.counts.sealed),
            RecordStatus::Confirmed { .. } => Some(&mut self.counts.confirmed),
            // Counted in the meta cell.
            RecordStatus::Refused { .. } => None,
        }
    }

    pub fn fees(&self) -> &FeeState {
        &self.fees
    }

    /// Changes the fee state and writes it to stable memory.
    pub fn mutate_fees<T>(&mut self, f: impl FnOnce(&mut FeeState) -> T) -> T {
        let out = f(&mut self.fees);
        self.fees_cell.set(StoredFees(Some(self.fees.clone())));
        self.status_dirty = true;
        out
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn config(&self) -> &Config {
        &self.meta.config
    }

    fn save_meta(&mut self) {
        self.meta_cell.set(StoredMeta(Some(self.meta.clone())));
        self.status_dirty = true;
    }

    pub fn set_config(&mut self, config: Config) {
        self.meta.config = config;
        self.save_meta();
    }

    pub fn set_hub(&mut self, hub: Principal) {
        if hub != self.meta.hub {
            self.meta.hub = hub;
            // A new hub has its own batch heights.
            self.meta.scan_height = 0;
            self.save_meta();
        }
    }

    pub fn is_owner(&self, p: &Principal) -> bool {
        self.meta.owner == *p
    }

    pub fn is_writer(&self, p: &Principal) -> bool {
        self.is_owner(p) || self.meta.writers.contains(p)
    }

    pub fn add_writer(&mut self, p: Principal) {
        if !self.meta.writers.contains(&p) {
            self.meta.writers.push(p);
            self.save_meta();
        }
    }

    pub fn remove_writer(&mut self, p: Principal) {
        self.meta.writers.retain(|w| *w != p);
        self.save_meta();
    }

    pub fn set_scan_height(&mut self, height: u64) {
        if height != self.meta.scan_height {
            self.meta.scan_height = height;
            self.save_meta();
        }
    }

    pub fn next_id(&self) -> u64 {
        self.counts.next_id
    }

    /// A record written in this message (or certified by its last certification), if any.
    fn cached(&self, id: u64) -> Option<&StoredRecord> {
        self.dirty.get(&id).or_else(|| self.recent.get(&id))
    }

    pub fn record(&self, id: u64) -> Option<StoredRecord> {
        match self.cached(id) {
            Some(r) => Some(r.clone()),
            None => self.records.get(&id).map(EncodedRecord::decode),
        }
    }

    pub fn view(&self, id: u64) -> Option<RecordView> {
        match self.cached(id) {
            Some(r) => Some(view(r)),
            None => self.records.get(&id).map(|r| view(&r.decode())),
        }
    }

    pub fn views(&self, start: u64, end: u64) -> Vec<RecordView> {
        self.records
            .range(start..end)
            .map(|e| view(&e.value().decode()))
            .collect()
    }

    pub fn record_count(&self) -> u64 {
        self.records.len()
    }

    /// Stores new records with status `Pending`, with consecutive ids from [`State::next_id`]
    /// (their pages are certified with the message's other changes).
    pub fn insert(&mut self, records: Vec<StoredRecord>) {
        for record in records {
            let id = record.id;
            assert!(
                id == self.counts.next_id && matches!(record.status, RecordStatus::Pending { .. }),
                "BUG: record {id} is not the next pending record"
            );
            self.records
                .insert(id, EncodedRecord::encode(record.clone()));
            self.pending.insert(id, ());
            self.counts.next_id += 1;
            self.counts.pending += 1;
            self.dirty.insert(id, record);
        }
        self.counts_cell.set(self.counts);
        self.status_dirty = true;
    }

    /// Writes changed records back (status, hub id), each with what it was before.
    pub fn update(&mut self, changes: Vec<(Previous, StoredRecord)>) {
        let mut counts_changed = false;
        for (previous, record) in changes {
            counts_changed |= self.update_one(&previous, record);
        }
        if counts_changed {
            self.counts_cell.set(self.counts);
            self.status_dirty = true;
        }
    }

    /// Writes one record back; returns whether the counts changed. Sets and maps are only
    /// written when the record enters or leaves them.
    fn update_one(&mut self, previous: &Previous, record: StoredRecord) -> bool {
        let id = record.id;
        if let Some(hub_id) = record.hub_record_id
            && previous.hub_record_id != Some(hub_id)
        {
            self.hub_ids.insert(hub_id, id);
        }
        let previous = &previous.status;
        let status = &record.status;
        let counts_changed = std::mem::discriminant(previous) != std::mem::discriminant(status);
        if counts_changed {
            if let Some(c) = self.count_mut(previous) {
                *c = c.saturating_sub(1);
            }
            if let Some(c) = self.count_mut(status) {
                *c += 1;
            }
        }
        let was_pending = matches!(previous, RecordStatus::Pending { .. });
        match (was_pending, matches!(status, RecordStatus::Pending { .. })) {
            (false, true) => {
                self.pending.insert(id, ());
            }
            (true, false) => {
                self.pending.remove(&id);
            }
            _ => {}
        }
        let refused = |s: &RecordStatus| matches!(s, RecordStatus::Refused { .. });
        if refused(status) && !refused(previous) {
            self.meta.refused += 1;
            self.meta_cell.set(StoredMeta(Some(self.meta.clone())));
        }
        self.records
            .insert(id, EncodedRecord::encode(record.clone()));
        self.dirty.insert(id, record);
        counts_changed
    }

    /// Pending records not in a call, oldest first, at most `limit`.
    pub fn take_pending(&mut self, limit: usize) -> Vec<StoredRecord> {
        let ids: Vec<u64> = self
            .pending
            .keys()
            .filter(|id| !self.in_flight.contains(id))
            .take(limit)
            .collect();
        let out: Vec<StoredRecord> = ids
            .iter()
            .map(|id| {
                self.record(*id)
                    .unwrap_or_else(|| panic!("BUG: pending record {id} is missing"))
            })
            .collect();
        self.in_flight.extend(ids);
        out
    }

    pub fn release(&mut self, ids: &[u64]) {
        for id in ids {
            self.in_flight.remove(id);
        }
    }

    /// Whether any record waits to be submitted (and is not in a call).
    pub fn has_pending(&self) -> bool {
        self.counts.pending > self.in_flight.len() as u64
            || self.pending.keys().any(|id| !self.in_flight.contains(&id))
    }

    /// Whether any record was accepted by the hub and is not confirmed yet.
    pub fn has_unconfirmed(&self) -> bool {
        self.counts.submitted + self.counts.sealed > 0
    }

    /// Local records whose hub ids lie in `first..=last`.
    pub fn local_ids_for_hub_range(&self, first: u64, last: u64) -> Vec<u64> {
        self.hub_ids
            .range(first..=last)
            .map(|e| e.value())
            .collect()
    }

    pub fn try_start_scan(&mut self) -> bool {
        if self.scanning {
            return false;
        }
        self.scanning = true;
        true
    }

    pub fn end_scan(&mut self) {
        self.scanning = false;
    }

    pub fn status(&self) -> ServiceStatus {
        ServiceStatus {
            kind: self.meta.kind.clone(),
            name: self.meta.name.clone(),
            owner: self.meta.owner,
            hub: self.meta.hub,
            writers: self.meta.writers.clone(),
            config: self.meta.config.clone(),
            records: self.counts.next_id,
            pending: self.counts.pending,
            submitted: self.counts.submitted,
            sealed: self.counts.sealed,
            confirmed: self.counts.confirmed,
            refused: self.meta.refused,
            scan_height: self.meta.scan_height,
            fees: self.fees.status(),
            // Known only to the entry point (`ic0.subnet_self`), which fills it in.
            subnet: None,
        }
    }

    /// Marks the status pages stale (they are re-certified by [`State::certify_pages`]).
    pub fn touch_status(&mut self) {
        self.status_dirty = true;
    }

    /// Re-certifies the pages of the records changed since the last call, and the status
    /// pages if anything they show changed. Returns whether the tree changed. Called once at
    /// the end of every message that changes records (before its `await`, in its callback):
    /// a record changed twice in one message is certified once.
    pub fn certify_pages(&mut self) -> bool {
        let changed = self.status_dirty || !self.dirty.is_empty();
        if !self.dirty.is_empty() {
            self.recent = std::mem::take(&mut self.dirty);
            for r in self.recent.values() {
                self.pages.put_record(&view(r));
            }
        }
        if self.status_dirty {
            let status = self.status();
            self.pages.put_status(&status);
            self.status_dirty = false;
        }
        changed
    }

    pub fn pages(&self) -> &CertifiedPages {
        &self.pages
    }

    pub fn certified_root(&self) -> [u8; 32] {
        self.pages.root_hash()
    }
}

/// What a record was before a change: [`State::update`] writes only the indexes it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Previous {
    pub status: RecordStatus,
    pub hub_record_id: Option<u64>,
}

impl Previous {
    pub fn of(r: &StoredRecord) -> Previous {
        Previous {
            status: r.status.clone(),
            hub_record_id: r.hub_record_id,
        }
    }
}

pub fn view(r: &StoredRecord) -> RecordView {
    RecordView {
        id: r.id,
        author: r.author,
        created_at_nanos: r.created_at_nanos,
        body: r.body.clone(),
        content_hash: r.content_hash,
        reference: reference(r.id),
        hub: r.hub,
        hub_record_id: r.hub_record_id,
        status: r.status.clone(),
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
