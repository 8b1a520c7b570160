//! The service's state and the one way to reach it.

use std::cell::RefCell;
use std::collections::BTreeSet;

use candid::Principal;

use crate::http::CertifiedPages;
use crate::storage::{
    self, HubIdMap, Meta, MetaCell, OpenSet, RecordMap, StoredMeta, StoredRecord,
};
use crate::types::{Config, RecordStatus, RecordView, ServiceStatus};

pub struct State {
    meta_cell: MetaCell,
    meta: Meta,
    records: RecordMap,
    open: OpenSet,
    hub_ids: HubIdMap,
    /// Certified HTTP responses (heap; rebuilt after an upgrade).
    pages: CertifiedPages,
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
        let mut state = State {
            meta_cell,
            meta,
            records: storage::open_records(),
            open: storage::open_open_set(),
            hub_ids: storage::open_hub_ids(),
            pages: CertifiedPages::default(),
            in_flight: BTreeSet::new(),
            scanning: false,
        };
        let views: Vec<RecordView> = state.records.iter().map(|e| view(&e.value())).collect();
        for v in &views {
            state.pages.put_record(v);
        }
        let status = state.status();
        state.pages.put_status(&status);
        state
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn config(&self) -> &Config {
        &self.meta.config
    }

    fn save_meta(&mut self) {
        self.meta_cell.set(StoredMeta(Some(self.meta.clone())));
        self.refresh_status_page();
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
        self.records.last_key_value().map_or(0, |(k, _)| k + 1)
    }

    pub fn record(&self, id: u64) -> Option<StoredRecord> {
        self.records.get(&id)
    }

    pub fn view(&self, id: u64) -> Option<RecordView> {
        self.records.get(&id).map(|r| view(&r))
    }

    pub fn views(&self, start: u64, end: u64) -> Vec<RecordView> {
        self.records
            .range(start..end)
            .map(|e| view(&e.value()))
            .collect()
    }

    pub fn record_count(&self) -> u64 {
        self.records.len()
    }

    /// Stores a new record (status `Pending`) and certifies its page.
    pub fn insert(&mut self, record: StoredRecord) {
        let id = record.id;
        assert!(
            self.records.get(&id).is_none(),
            "BUG: record {id} is inserted twice"
        );
        self.pages.put_record(&view(&record));
        self.records.insert(id, record);
        self.open.insert(id, ());
    }

    /// Writes a changed record back (status, hub id) and re-certifies its page.
    pub fn update(&mut self, record: StoredRecord) {
        let id = record.id;
        if let Some(hub_id) = record.hub_record_id {
            self.hub_ids.insert(hub_id, id);
        }
        match record.status {
            RecordStatus::Refused { .. } => {
                if self.open.remove(&id).is_some() {
                    self.meta.refused += 1;
                    self.meta_cell.set(StoredMeta(Some(self.meta.clone())));
                }
            }
            RecordStatus::Confirmed { .. } => {
                self.open.remove(&id);
            }
            _ => {
                self.open.insert(id, ());
            }
        }
        self.pages.put_record(&view(&record));
        self.records.insert(id, record);
    }

    /// Local ids of pending records not in a call, oldest first, at most `limit`.
    pub fn take_pending(&mut self, limit: usize) -> Vec<StoredRecord> {
        let mut out = Vec::new();
        for id in self.open.keys() {
            if out.len() >= limit {
                break;
            }
            if self.in_flight.contains(&id) {
                continue;
            }
            let record = self
                .records
                .get(&id)
                .unwrap_or_else(|| panic!("BUG: open record {id} is missing"));
            if matches!(record.status, RecordStatus::Pending { .. }) {
                out.push(record);
            }
        }
        for r in &out {
            self.in_flight.insert(r.id);
        }
        out
    }

    pub fn release(&mut self, ids: &[u64]) {
        for id in ids {
            self.in_flight.remove(id);
        }
    }

    /// Whether any record waits to be submitted (and is not in a call).
    pub fn has_pending(&self) -> bool {
        self.open.keys().any(|id| {
            !self.in_flight.contains(&id)
                && self
                    .records
                    .get(&id)
                    .is_some_and(|r| matches!(r.status, RecordStatus::Pending { .. }))
        })
    }

    /// Whether any record was accepted by the hub and is not confirmed yet.
    pub fn has_unconfirmed(&self) -> bool {
        self.open.keys().any(|id| {
            self.records.get(&id).is_some_and(|r| {
                matches!(
                    r.status,
                    RecordStatus::Submitted | RecordStatus::Sealed { .. }
                )
            })
        })
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
        let mut s = ServiceStatus {
            kind: self.meta.kind.clone(),
            name: self.meta.name.clone(),
            owner: self.meta.owner,
            hub: self.meta.hub,
            writers: self.meta.writers.clone(),
            config: self.meta.config.clone(),
            records: self.records.len(),
            pending: 0,
            submitted: 0,
            sealed: 0,
            confirmed: 0,
            refused: 0,
            scan_height: self.meta.scan_height,
        };
        let open: u64 = self.open.len();
        for id in self.open.keys() {
            match self.records.get(&id).map(|r| r.status) {
                Some(RecordStatus::Pending { .. }) => s.pending += 1,
                Some(RecordStatus::Submitted) => s.submitted += 1,
                Some(RecordStatus::Sealed { .. }) => s.sealed += 1,
                _ => {}
            }
        }
        // Closed records are confirmed or refused; refused ones are rare, count them apart.
        let closed = s.records - open;
        s.refused = self.meta.refused;
        s.confirmed = closed.saturating_sub(s.refused);
        s
    }

    /// Re-certifies the status page; call after any change that shows on it.
    pub fn refresh_status_page(&mut self) {
        let status = self.status();
        self.pages.put_status(&status);
    }

    pub fn pages(&self) -> &CertifiedPages {
        &self.pages
    }

    pub fn certified_root(&self) -> [u8; 32] {
        self.pages.root_hash()
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
