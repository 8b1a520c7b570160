//! The registry's state and the one way to reach it.

use std::cell::RefCell;
use std::collections::BTreeSet;

use candid::Principal;

use crate::storage::{
    self, ChunkMap, CreationMap, EventLog, KindMap, Meta, MetaCell, RolloutCell, ServiceMap,
    Stored, Upload, UploadMap,
};
use crate::types::{
    Config, Event, EventKind, KindInfo, PendingCreation, Rollout, ServiceFilter, ServiceInfo,
    ServicePage, ServiceState, VersionInfo,
};

/// The most services one directory page holds.
pub const MAX_PAGE: u32 = 100;
/// The most operations (creations, retries, deletions) in flight at once.
pub const MAX_IN_FLIGHT: usize = 10;

pub struct State {
    meta_cell: MetaCell,
    meta: Meta,
    kinds: KindMap,
    uploads: UploadMap,
    chunks: ChunkMap,
    services: ServiceMap,
    creations: CreationMap,
    rollout: RolloutCell,
    events: EventLog,
    /// Canisters with an operation in flight (heap: after an upgrade no call of the old code
    /// can answer, so the set starts empty).
    busy: BTreeSet<Principal>,
    /// Callers with a creation in flight.
    creating: BTreeSet<Principal>,
    /// One timer task at a time.
    ticking: bool,
}

impl State {
    pub fn init(meta: Meta) -> State {
        let mut meta_cell = storage::open_meta();
        meta_cell.set(Stored(Some(meta.clone())));
        let state = State::open(meta_cell, meta);
        assert_eq!(
            state.services.len(),
            0,
            "BUG: init found services in stable memory"
        );
        state
    }

    /// The registry after an upgrade, read back from stable memory.
    pub fn load() -> State {
        let meta_cell = storage::open_meta();
        let meta = meta_cell
            .get()
            .0
            .clone()
            .unwrap_or_else(|| panic!("BUG: upgrading a registry that has no meta cell"));
        State::open(meta_cell, meta)
    }

    fn open(meta_cell: MetaCell, meta: Meta) -> State {
        State {
            meta_cell,
            meta,
            kinds: storage::open_kinds(),
            uploads: storage::open_uploads(),
            chunks: storage::open_chunks(),
            services: storage::open_services(),
            creations: storage::open_creations(),
            rollout: storage::open_rollout(),
            events: storage::open_events(),
            busy: BTreeSet::new(),
            creating: BTreeSet::new(),
            ticking: false,
        }
    }

    // ----- settings -----------------------------------------------------------------

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn config(&self) -> &Config {
        &self.meta.config
    }

    pub fn set_meta(&mut self, meta: Meta) {
        self.meta = meta;
        self.meta_cell.set(Stored(Some(self.meta.clone())));
    }

    fn next_id(&mut self, field: fn(&mut Meta) -> &mut u64) -> u64 {
        let mut meta = self.meta.clone();
        let slot = field(&mut meta);
        let id = *slot;
        *slot += 1;
        self.set_meta(meta);
        id
    }

    // ----- events -------------------------------------------------------------------

    pub fn log(&mut self, at_nanos: u64, kind: EventKind) {
        self.events
            .append(&Stored(Event { at_nanos, kind }))
            .unwrap_or_else(|e| panic!("BUG: the event log is full: {e:?}"));
    }

    pub fn event_count(&self) -> u64 {
        self.events.len()
    }

    pub fn events(&self, start: u64, limit: u64) -> Vec<Event> {
        let end = start.saturating_add(limit).min(self.events.len());
        (start..end)
            .filter_map(|i| self.events.get(i).map(|e| e.0))
            .collect()
    }

    // ----- kinds and modules --------------------------------------------------------

    pub fn kind(&self, kind: &str) -> Option<KindInfo> {
        self.kinds.get(&kind.to_string()).map(|k| k.0)
    }

    pub fn kinds(&self) -> Vec<KindInfo> {
        self.kinds.iter().map(|e| e.value().0).collect()
    }

    pub fn kind_count(&self) -> u64 {
        self.kinds.len()
    }

    pub fn put_kind(&mut self, info: KindInfo) {
        self.kinds.insert(info.kind.clone(), Stored(info));
    }

    pub fn new_upload(&mut self, upload: Upload) -> u64 {
        let id = self.next_id(|m| &mut m.next_upload);
        self.uploads.insert(id, Stored(upload));
        id
    }

    pub fn upload(&self, id: u64) -> Option<Upload> {
        self.uploads.get(&id).map(|u| u.0)
    }

    pub fn put_upload(&mut self, id: u64, upload: Upload) {
        self.uploads.insert(id, Stored(upload));
    }

    pub fn chunk(&self, upload: u64, offset: u64) -> Option<Vec<u8>> {
        self.chunks.get(&(upload, offset))
    }

    pub fn put_chunk(&mut self, upload: u64, offset: u64, bytes: Vec<u8>) {
        self.chunks.insert((upload, offset), bytes);
    }

    /// The bytes of an upload, in order.
    pub fn module_bytes(&self, upload: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in self.chunks.range((upload, 0)..=(upload, u64::MAX)) {
            out.extend_from_slice(&entry.value());
        }
        out
    }

    /// Drops an upload's bytes (a failed publication).
    pub fn drop_upload(&mut self, upload: u64) {
        let keys: Vec<(u64, u64)> = self
            .chunks
            .range((upload, 0)..=(upload, u64::MAX))
            .map(|e| *e.key())
            .collect();
        for k in keys {
            self.chunks.remove(&k);
        }
        self.uploads.remove(&upload);
    }

    /// The upload holding the module of `kind` at `version`.
    pub fn upload_of(&self, kind: &str, version: u32) -> Option<u64> {
        self.uploads
            .iter()
            .find(|e| {
                let u = e.value();
                u.0.kind == kind && u.0.version == Some(version)
            })
            .map(|e| *e.key())
    }

    pub fn version(&self, kind: &str, version: u32) -> Option<VersionInfo> {
        self.kind(kind)?
            .versions
            .into_iter()
            .find(|v| v.version == version)
    }

    // ----- services -----------------------------------------------------------------

    pub fn service(&self, canister: &Principal) -> Option<ServiceInfo> {
        self.services.get(canister).map(|s| s.0)
    }

    pub fn put_service(&mut self, info: ServiceInfo) {
        self.services.insert(info.canister, Stored(info));
    }

    pub fn service_count(&self) -> u64 {
        self.services.len()
    }

    pub fn services_where(&self, f: impl Fn(&ServiceInfo) -> bool) -> Vec<ServiceInfo> {
        self.services
            .iter()
            .map(|e| e.value().0)
            .filter(|s| f(s))
            .collect()
    }

    /// One page of the directory. A scan over the map: the directory holds hundreds or
    /// thousands of services, and a query may spend 5 B instructions.
    pub fn page(&self, filter: &ServiceFilter) -> ServicePage {
        let limit = match filter.limit {
            0 => MAX_PAGE,
            n => n.min(MAX_PAGE),
        } as usize;
        let matches = |s: &ServiceInfo| {
            filter.kind.as_ref().is_none_or(|k| *k == s.kind)
                && filter.owner.is_none_or(|o| o == s.owner)
                && filter.subnet.is_none_or(|n| Some(n) == s.subnet)
        };
        let mut services = Vec::new();
        let mut more = false;
        let iter: Box<dyn Iterator<Item = _>> = match filter.after {
            Some(after) => Box::new(
                self.services
                    .range(after..)
                    .filter(move |e| *e.key() != after),
            ),
            None => Box::new(self.services.iter()),
        };
        for entry in iter {
            let s = entry.value().0;
            if !matches(&s) {
                continue;
            }
            if services.len() == limit {
                more = true;
                break;
            }
            services.push(s);
        }
        ServicePage { services, more }
    }

    // ----- creations ----------------------------------------------------------------

    pub fn new_creation(&mut self, mut c: PendingCreation) -> u64 {
        let op = self.next_id(|m| &mut m.next_op);
        c.op = op;
        self.creations.insert(op, Stored(c));
        op
    }

    pub fn creation(&self, op: u64) -> Option<PendingCreation> {
        self.creations.get(&op).map(|c| c.0)
    }

    pub fn put_creation(&mut self, c: PendingCreation) {
        self.creations.insert(c.op, Stored(c));
    }

    pub fn remove_creation(&mut self, op: u64) {
        self.creations.remove(&op);
    }

    pub fn creations(&self) -> Vec<PendingCreation> {
        self.creations.iter().map(|e| e.value().0).collect()
    }

    /// After an upgrade: calls of the old code can no longer answer, so a creation still in
    /// flight has an unknown outcome.
    pub fn mark_in_flight_creations_unknown(&mut self, now: u64) {
        let open: Vec<PendingCreation> = self
            .creations()
            .into_iter()
            .filter(|c| c.outcome_unknown.is_none())
            .collect();
        for mut c in open {
            c.outcome_unknown =
                Some("the registry was upgraded while the creation call was in flight".to_string());
            let op = c.op;
            self.creations.insert(op, Stored(c));
            self.log(now, EventKind::CreationOutcomeUnknown { op });
        }
    }

    // ----- rollout ------------------------------------------------------------------

    pub fn rollout(&self) -> Option<Rollout> {
        self.rollout.get().0.clone()
    }

    pub fn set_rollout(&mut self, rollout: Rollout) {
        self.rollout.set(Stored(Some(rollout)));
    }

    pub fn new_rollout_id(&mut self) -> u64 {
        self.next_id(|m| &mut m.next_rollout)
    }

    // ----- guards -------------------------------------------------------------------

    pub fn in_flight(&self) -> usize {
        self.busy.len() + self.creating.len()
    }

    pub fn try_lock_service(&mut self, canister: Principal) -> bool {
        self.in_flight() < MAX_IN_FLIGHT && self.busy.insert(canister)
    }

    pub fn is_locked(&self, canister: &Principal) -> bool {
        self.busy.contains(canister)
    }

    pub fn unlock_service(&mut self, canister: &Principal) {
        self.busy.remove(canister);
    }

    pub fn try_lock_creator(&mut self, caller: Principal) -> bool {
        self.in_flight() < MAX_IN_FLIGHT && self.creating.insert(caller)
    }

    pub fn unlock_creator(&mut self, caller: &Principal) {
        self.creating.remove(caller);
    }

    pub fn try_start_tick(&mut self) -> bool {
        !std::mem::replace(&mut self.ticking, true)
    }

    pub fn end_tick(&mut self) {
        self.ticking = false;
    }

    /// Services whose hub registration failed and is due for a retry.
    pub fn due_registrations(&self, now: u64, limit: usize) -> Vec<Principal> {
        let retry = self.meta.config.retry_seconds.saturating_mul(1_000_000_000);
        self.services
            .iter()
            .filter_map(|e| {
                let s = e.value().0;
                // `Registering` without a lock: its call died with an upgrade of the registry.
                let due = match &s.state {
                    ServiceState::Failed {
                        step: crate::types::Step::Register,
                        ..
                    }
                    | ServiceState::Registering => s.updated_at_nanos.saturating_add(retry) <= now,
                    _ => false,
                };
                (due && !self.busy.contains(&s.canister)).then_some(s.canister)
            })
            .take(limit)
            .collect()
    }

    pub fn has_failed_registrations(&self) -> bool {
        self.services.iter().any(|e| {
            matches!(
                e.value().0.state,
                ServiceState::Failed {
                    step: crate::types::Step::Register,
                    ..
                } | ServiceState::Registering
            )
        })
    }

    /// Installed services whose cycle balance is older than the refresh period.
    pub fn due_cycle_checks(&self, now: u64, limit: usize) -> Vec<Principal> {
        let period = self.meta.config.cycles_refresh_seconds;
        if period == 0 {
            return Vec::new();
        }
        let period = period.saturating_mul(1_000_000_000);
        self.services
            .iter()
            .filter_map(|e| {
                let s = e.value().0;
                let due = !matches!(s.state, ServiceState::Deleted)
                    && s.cycles_checked_at_nanos
                        .is_none_or(|t| t.saturating_add(period) <= now);
                (due && !self.busy.contains(&s.canister)).then_some(s.canister)
            })
            .take(limit)
            .collect()
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
