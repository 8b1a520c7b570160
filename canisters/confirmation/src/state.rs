//! The hub's state: stable structures (see [`crate::storage`]) plus one heap-only part, the
//! certified header tree (rebuilt on upgrade).
//!
//! Every method here is synchronous: the async flows in [`crate::confirm`] call them between
//! `await`s and never hold a borrow across one.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use candid::Principal;
use sha2::{Digest, Sha256};
use stratros_confirmation::merkle::{level_len, proof_from_levels};
use stratros_confirmation::{
    BatchHeader, Blob, Hash32, PolicyNode, QuorumPolicy, QuorumRule, Receipt, Record, RecordInput,
    Scheme, header_hash, header_signing_digest, leaf_hash, quorum_policy_hash,
};

use crate::certified::{CertifiedHeaders, witness_cbor};
use crate::fees::{FeeBook, FeeEvent, decode_event, encode_event};
use crate::storage::{
    self, Counters, Settings, StoredConfig, StoredPolicy, StoredRecord, due_key, parse_due_key,
};
use crate::types::node_api::{SignError, SignResponse};
use crate::types::{
    AdminError, Batch, BatchError, BatchPage, Config, FeeAccount, FeeConfig, FeeStatus,
    NodeProgress, ReceiptError, RecordProof, Status, SubmitError, Submitted,
};

/// The largest page `list_batches` returns.
pub const MAX_PAGE: u64 = 100;
/// The largest batch a configuration may ask for. Sealing is one message; at the measured cost
/// per leaf (README) this keeps the largest seal far below a fifth of the 40 B instruction limit.
pub const MAX_BATCH_RECORDS: u64 = 100_000;
/// The most `sign_header` calls one timer tick starts.
pub const MAX_REQUESTS_PER_TICK: usize = 64;
/// How long after its timeout a call's lease ends (its node is then asked again).
pub const LEASE_MARGIN_SECONDS: u64 = 60;

pub const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// What came of one `sign_header` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignOutcome {
    Signed(SignResponse),
    Refused(SignError),
    /// The call failed (reject, timeout, undecodable reply).
    CallFailed {
        reject_code: Option<u32>,
        message: String,
    },
}

/// A `sign_header` call to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignRequest {
    pub height: u64,
    pub node: Principal,
    pub scheme: Scheme,
    pub key_name: String,
    pub header: BatchHeader,
}

pub struct State {
    config_cell: storage::ConfigCell,
    settings: Settings,
    counters_cell: storage::CountersCell,
    counters: Counters,
    submitters: storage::Submitters,
    records: storage::Records,
    leaves: storage::HashVec,
    tree: storage::HashVec,
    batches: storage::Batches,
    batch_start: storage::U64Map,
    idempotency: storage::Idempotency,
    policies: storage::Policies,
    /// Each node's public key, from the management canister: its signatures are checked
    /// against it before they count.
    node_keys: storage::NodeKeys,
    open: storage::Open,
    due: storage::Due,
    certified: CertifiedHeaders,
    fee_log: storage::FeeLog,
    /// Heap: rebuilt from `fee_log` on upgrade.
    fees: FeeBook,
    /// Heap: submitters with a `deposit_fees` call in flight.
    deposits_in_flight: BTreeSet<Principal>,
    /// Heap: withdrawals with a transfer in flight.
    withdrawal_attempts: BTreeSet<u64>,
    /// Heap: a forwarding task is running.
    forwarding: bool,
}

/// Position of inner tree node `(level >= 1, index)` of a batch, relative to its `tree_offset`.
pub fn tree_position(leaf_count: u64, level: u32, index: u64) -> u64 {
    (1..level).map(|l| level_len(leaf_count, l)).sum::<u64>() + index
}

/// `SHA-256(u8 len || submitter || reference)`. No domain separator: the key never leaves the
/// index, and without one a reference of up to 25 bytes hashes in a single SHA-256 block.
fn idempotency_key(submitter: &Principal, reference: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    let p = submitter.as_slice();
    h.update([p.len() as u8]);
    h.update(p);
    h.update(reference.as_bytes());
    h.finalize().into()
}

fn backoff_nanos(config: &Config, attempts: u32) -> u64 {
    let exp = attempts.saturating_sub(1).min(40);
    config
        .retry_base_seconds
        .saturating_mul(1u64 << exp)
        .min(config.retry_max_seconds)
        .saturating_mul(NANOS_PER_SECOND)
}

fn check_len(index: usize, field: &str, got: usize, max: u32) -> Result<(), SubmitError> {
    if got > max as usize {
        return Err(SubmitError::RecordTooLarge {
            index: index as u64,
            field: field.to_string(),
            max,
            got: got as u64,
        });
    }
    Ok(())
}

impl State {
    /// A fresh hub.
    pub fn init(settings: Settings, submitters: &[Principal]) -> State {
        let mut config_cell = storage::open_config();
        config_cell.set(StoredConfig(Some(settings.clone())));
        let mut state = State::open(config_cell, settings);
        for s in submitters {
            state.submitters.insert(*s, ());
        }
        state
    }

    /// After an upgrade: reopens everything and rebuilds the certified tree.
    pub fn load() -> State {
        let config_cell = storage::open_config();
        let settings = config_cell
            .get()
            .0
            .clone()
            .unwrap_or_else(|| panic!("BUG: upgrading a hub that has no configuration"));
        State::open(config_cell, settings)
    }

    fn open(config_cell: storage::ConfigCell, settings: Settings) -> State {
        let counters_cell = storage::open_counters();
        let counters = *counters_cell.get();
        let batches = storage::open_batches();
        let mut certified = CertifiedHeaders::default();
        for entry in batches.iter() {
            let (height, storage::StoredBatch(batch)) = entry.into_pair();
            certified.insert(height, &batch.header_hash);
        }
        let fee_log = storage::open_fee_log();
        let mut fees = FeeBook::default();
        for bytes in fee_log.iter() {
            fees.apply(&decode_event(&bytes))
                .unwrap_or_else(|e| panic!("BUG: the fee log does not replay: {e}"));
        }
        State {
            config_cell,
            settings,
            counters_cell,
            counters,
            submitters: storage::open_submitters(),
            records: storage::open_records(),
            leaves: storage::open_leaves(),
            tree: storage::open_tree(),
            batches,
            batch_start: storage::open_batch_start(),
            idempotency: storage::open_idempotency(),
            policies: storage::open_policies(),
            node_keys: storage::open_node_keys(),
            open: storage::open_open(),
            due: storage::open_due(),
            certified,
            fee_log,
            fees,
            deposits_in_flight: BTreeSet::new(),
            withdrawal_attempts: BTreeSet::new(),
            forwarding: false,
        }
    }

    // ----- fees ------------------------------------------------------------------------

    /// The fee configuration, when fees are charged or collected.
    pub fn fee_config(&self) -> Option<&FeeConfig> {
        self.settings.fees.as_ref()
    }

    pub fn set_fee_config(&mut self, fees: Option<FeeConfig>) {
        self.settings.fees = fees;
        self.save_settings();
    }

    pub fn fees(&self) -> &FeeBook {
        &self.fees
    }

    /// Applies a fee event and appends it to the log (only if it applied).
    pub fn record_fee_event(&mut self, event: FeeEvent) -> Result<(), String> {
        self.fees.apply(&event)?;
        self.fee_log
            .append(&encode_event(&event))
            .unwrap_or_else(|e| panic!("BUG: cannot append a fee event: {e:?}"));
        Ok(())
    }

    pub fn note_forward_error(&mut self, id: u64, error: String) {
        self.fees.note_forward_error(id, error);
    }

    pub fn fee_account(&self, submitter: Principal) -> FeeAccount {
        self.fees.account(submitter, self.fee_config())
    }

    pub fn fee_status(&self) -> FeeStatus {
        self.fees.status(self.fee_config())
    }

    /// Marks a deposit of `p` in flight; `false` if one already is.
    pub fn note_withdrawal_error(&mut self, id: u64, error: String) {
        self.fees.note_withdrawal_error(id, error);
    }

    /// Marks an attempt of withdrawal `id` in flight; `false` if one already is.
    pub fn start_withdrawal_attempt(&mut self, id: u64) -> bool {
        self.withdrawal_attempts.insert(id)
    }

    pub fn end_withdrawal_attempt(&mut self, id: u64) {
        self.withdrawal_attempts.remove(&id);
    }

    pub fn start_deposit(&mut self, p: Principal) -> bool {
        self.deposits_in_flight.insert(p)
    }

    pub fn end_deposit(&mut self, p: &Principal) {
        self.deposits_in_flight.remove(p);
    }

    pub fn start_forwarding(&mut self) -> bool {
        !std::mem::replace(&mut self.forwarding, true)
    }

    pub fn end_forwarding(&mut self) {
        self.forwarding = false;
    }

    // ----- registrars ------------------------------------------------------------------

    pub fn registrars(&self) -> &[Principal] {
        self.settings.registrars.as_deref().unwrap_or(&[])
    }

    pub fn is_registrar(&self, p: &Principal) -> bool {
        self.registrars().contains(p)
    }

    pub fn set_registrars(&mut self, registrars: Vec<Principal>) {
        self.settings.registrars = Some(registrars);
        self.save_settings();
    }

    // ----- configuration ---------------------------------------------------------------

    pub fn config(&self) -> &Config {
        &self.settings.config
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn save_settings(&mut self) {
        self.config_cell
            .set(StoredConfig(Some(self.settings.clone())));
    }

    pub fn set_config(&mut self, config: Config) {
        self.settings.config = config;
        self.save_settings();
    }

    /// The policy new batches get.
    pub fn policy(&self) -> QuorumPolicy {
        self.settings.policy()
    }

    pub fn certified_root(&self) -> [u8; 32] {
        self.certified.root_hash()
    }

    pub fn is_submitter(&self, p: &Principal) -> bool {
        self.submitters.contains_key(p)
    }

    pub fn add_submitter(&mut self, p: Principal) {
        self.submitters.insert(p, ());
    }

    pub fn remove_submitter(&mut self, p: &Principal) -> bool {
        self.submitters.remove(p).is_some()
    }

    /// Adds a node, or updates its scheme and key name. The rule must stay satisfiable.
    pub fn register_node(&mut self, node: PolicyNode) -> Result<(), AdminError> {
        let mut nodes = self.settings.nodes.clone();
        match nodes.iter_mut().find(|n| n.node == node.node) {
            Some(existing) => *existing = node,
            None => nodes.push(node),
        }
        self.set_policy(nodes, self.settings.quorum_rule.clone())
    }

    pub fn remove_node(&mut self, node: &Principal) -> Result<(), AdminError> {
        let mut nodes = self.settings.nodes.clone();
        let before = nodes.len();
        nodes.retain(|n| &n.node != node);
        if nodes.len() == before {
            return Err(AdminError::UnknownNode(*node));
        }
        self.set_policy(nodes, self.settings.quorum_rule.clone())
    }

    pub fn set_quorum_rule(&mut self, rule: QuorumRule) -> Result<(), AdminError> {
        self.set_policy(self.settings.nodes.clone(), rule)
    }

    /// An empty node list is allowed (sealing waits for nodes); anything else must validate.
    fn set_policy(&mut self, nodes: Vec<PolicyNode>, rule: QuorumRule) -> Result<(), AdminError> {
        let policy = QuorumPolicy { nodes, rule };
        if !policy.nodes.is_empty() {
            policy.validate().map_err(AdminError::InvalidPolicy)?;
        }
        self.settings.nodes = policy.nodes;
        self.settings.quorum_rule = policy.rule;
        self.save_settings();
        Ok(())
    }

    fn save_counters(&mut self) {
        self.counters_cell.set(self.counters);
    }

    // ----- submission ------------------------------------------------------------------

    /// Accepts `inputs` from `caller` (all or nothing), assigning ids at once.
    pub fn submit(
        &mut self,
        caller: Principal,
        inputs: Vec<RecordInput>,
        now: u64,
    ) -> Result<Vec<Submitted>, SubmitError> {
        if !self.is_submitter(&caller) {
            return Err(SubmitError::Unauthorized { caller });
        }
        if inputs.is_empty() {
            return Err(SubmitError::EmptySubmission);
        }
        let config = &self.settings.config;
        if inputs.len() > config.max_records_per_call as usize {
            return Err(SubmitError::TooManyRecords {
                max: config.max_records_per_call,
                got: inputs.len() as u64,
            });
        }
        for (i, r) in inputs.iter().enumerate() {
            check_len(i, "kind", r.kind.len(), config.max_kind_bytes)?;
            check_len(
                i,
                "reference",
                r.reference.len(),
                config.max_reference_bytes,
            )?;
            let payload = r.payload.as_ref().map_or(0, |p| p.len());
            check_len(i, "payload", payload, config.max_payload_bytes)?;
        }
        let keys: Vec<Option<[u8; 32]>> = inputs
            .iter()
            .map(|r| (!r.reference.is_empty()).then(|| idempotency_key(&caller, &r.reference)))
            .collect();
        self.charge(caller, &keys)?;
        let mut out = Vec::with_capacity(inputs.len());
        for (input, key) in inputs.into_iter().zip(keys) {
            if let Some(id) = key.and_then(|k| self.idempotency.get(&k)) {
                out.push(Submitted {
                    id,
                    duplicate: true,
                });
                continue;
            }
            let id = self.counters.next_record_id;
            let record = Record {
                id,
                submitter: caller,
                content_hash: input.content_hash,
                kind: input.kind,
                reference: input.reference,
                payload: input.payload,
            };
            let leaf = leaf_hash(&record);
            let stored = StoredRecord {
                submitted_at: now,
                submitter: caller,
                content_hash: record.content_hash,
                kind: record.kind,
                reference: record.reference,
                payload: record.payload,
            };
            let index = self
                .records
                .append(&stored)
                .unwrap_or_else(|e| panic!("BUG: cannot store a record: {e:?}"));
            assert_eq!(index, id, "BUG: record log out of step with ids");
            self.leaves.push(&leaf.0);
            if let Some(k) = key {
                self.idempotency.insert(k, id);
            }
            self.counters.next_record_id += 1;
            out.push(Submitted {
                id,
                duplicate: false,
            });
        }
        self.save_counters();
        Ok(out)
    }

    /// Charges `caller` for the new records among `keys` (one per input; a known reference,
    /// or one repeated within the call, is a free duplicate). Nothing is charged, and the call
    /// is refused, when the credit does not cover them.
    fn charge(&mut self, caller: Principal, keys: &[Option<[u8; 32]>]) -> Result<(), SubmitError> {
        let fee = self.fee_config().map_or(0, |c| c.fee_per_record);
        if fee == 0 {
            return Ok(());
        }
        let mut seen = BTreeSet::new();
        let new = keys
            .iter()
            .filter(|k| match k {
                None => true,
                Some(k) => self.idempotency.get(k).is_none() && seen.insert(*k),
            })
            .count() as u64;
        if new == 0 {
            return Ok(());
        }
        let needed = fee.saturating_mul(u128::from(new));
        let available = self.fees.credit(&caller);
        if needed > available {
            return Err(SubmitError::InsufficientCredit { needed, available });
        }
        self.record_fee_event(FeeEvent::Charged {
            submitter: caller,
            records: new,
            amount: needed,
        })
        .unwrap_or_else(|e| panic!("BUG: a checked charge does not apply: {e}"));
        Ok(())
    }

    /// [`Self::submit`] with the records in the packed form.
    pub fn submit_packed(
        &mut self,
        caller: Principal,
        bytes: &[u8],
        now: u64,
    ) -> Result<Vec<Submitted>, SubmitError> {
        if !self.is_submitter(&caller) {
            return Err(SubmitError::Unauthorized { caller });
        }
        let max = self.settings.config.max_records_per_call;
        if let Some(count) = bytes.get(..4) {
            let count = u32::from_be_bytes([count[0], count[1], count[2], count[3]]);
            if count > max {
                return Err(SubmitError::TooManyRecords {
                    max,
                    got: u64::from(count),
                });
            }
        }
        let inputs = stratros_confirmation::decode_packed(bytes, max as usize)
            .map_err(|message| SubmitError::Malformed { message })?;
        self.submit(caller, inputs, now)
    }

    pub fn pending(&self) -> u64 {
        self.counters.next_record_id - self.counters.first_pending
    }

    fn stored_record(&self, id: u64) -> StoredRecord {
        self.records
            .get(id)
            .unwrap_or_else(|| panic!("BUG: record {id} is missing"))
    }

    fn leaf(&self, id: u64) -> Hash32 {
        Hash32(
            self.leaves
                .get(id)
                .unwrap_or_else(|| panic!("BUG: leaf {id} is missing")),
        )
    }

    /// When the pending records must be sealed: at once when a full batch is pending, else
    /// when the oldest is `max_batch_age` old. `None` with nothing pending or no valid policy.
    pub fn seal_deadline(&self) -> Option<u64> {
        if self.pending() == 0 || self.policy().validate().is_err() {
            return None;
        }
        if self.pending() >= self.settings.config.max_batch_records {
            return Some(0);
        }
        let oldest = self.stored_record(self.counters.first_pending).submitted_at;
        Some(
            oldest.saturating_add(
                self.settings
                    .config
                    .max_batch_age_seconds
                    .saturating_mul(NANOS_PER_SECOND),
            ),
        )
    }

    // ----- sealing ---------------------------------------------------------------------

    /// Seals up to `max_batch_records` pending records into the next batch and certifies its
    /// header. Returns the new height, or `None` when nothing is pending or no valid policy is
    /// configured.
    ///
    /// `counter` is the instruction counter: the batch records what sealing cost, and how much
    /// of it was the SHA-256 of the inner nodes.
    pub fn seal(&mut self, hub: Principal, now: u64, counter: &dyn Fn() -> u64) -> Option<u64> {
        let start = counter();
        let mut hash_instructions = 0u64;
        let first = self.counters.first_pending;
        let count = self.pending().min(self.settings.config.max_batch_records);
        if count == 0 {
            return None;
        }
        let policy = self.policy();
        policy.validate().ok()?;
        let policy_hash = quorum_policy_hash(&policy);
        if !self.policies.contains_key(&policy_hash.0) {
            self.policies
                .insert(policy_hash.0, StoredPolicy(policy.clone()));
        }

        // Level 0 is the leaf store itself; every level above is appended to the tree store.
        let tree_offset = self.tree.len();
        let mut level: Vec<Hash32> = (first..first + count).map(|id| self.leaf(id)).collect();
        while level.len() > 1 {
            let next: Vec<Hash32> = level
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => {
                        let t = counter();
                        let h = stratros_confirmation::encoding::node_hash(l, r);
                        hash_instructions += counter().saturating_sub(t);
                        h
                    }
                    [lone] => *lone,
                    _ => unreachable!("BUG: chunk of 2"),
                })
                .collect();
            for h in &next {
                self.tree.push(&h.0);
            }
            level = next;
        }
        let merkle_root = level[0];

        let height = self.counters.next_height;
        let header = BatchHeader {
            hub,
            height,
            prev_header_hash: self.counters.last_header_hash,
            merkle_root,
            leaf_count: count,
            first_record_id: first,
            last_record_id: first + count - 1,
            start_time_nanos: self.stored_record(first).submitted_at,
            end_time_nanos: now,
            quorum_policy_hash: policy_hash,
        };
        let hh = header_hash(&header);
        let mut batch = Batch {
            header,
            header_hash: hh,
            tree_offset,
            sealed_at_nanos: now,
            seal_instructions: 0,
            seal_hash_instructions: hash_instructions,
            confirmed_at_nanos: None,
            nodes: policy
                .nodes
                .iter()
                .map(|n| NodeProgress {
                    node: n.node,
                    scheme: n.scheme,
                    key_name: n.key_name.clone(),
                    confirmation: None,
                    attempts: 0,
                    next_attempt_nanos: now,
                    last_error: None,
                    refused: false,
                })
                .collect(),
        };
        batch.seal_instructions = counter().saturating_sub(start);
        for index in 0..batch.nodes.len() {
            self.due.insert(due_key(now, height, index as u32), ());
        }
        self.batches.insert(height, storage::StoredBatch(batch));
        self.batch_start.insert(first, height);
        self.open.insert(height, ());
        self.counters.first_pending = first + count;
        self.counters.next_height = height + 1;
        self.counters.last_header_hash = hh;
        self.save_counters();
        self.certified.insert(height, &hh);
        Some(height)
    }

    // ----- confirmation ----------------------------------------------------------------

    /// The `sign_header` calls due at `now`. Each gets a lease: its queue entry moves to
    /// `now + call timeout + LEASE_MARGIN`, so a call whose answer never comes (the hub was
    /// upgraded, the callback trapped) is made again when the lease ends.
    pub fn due_requests(&mut self, now: u64) -> Vec<SignRequest> {
        let keys: Vec<[u8; 20]> = self
            .due
            .range(..=due_key(now, u64::MAX, u32::MAX))
            .take(MAX_REQUESTS_PER_TICK)
            .map(|e| e.into_pair().0)
            .collect();
        let lease = now.saturating_add(
            (u64::from(self.settings.config.call_timeout_seconds) + LEASE_MARGIN_SECONDS)
                .saturating_mul(NANOS_PER_SECOND),
        );
        let mut batches: BTreeMap<u64, Batch> = BTreeMap::new();
        let mut out = Vec::new();
        for key in keys {
            self.due.remove(&key);
            let (_, height, index) = parse_due_key(&key);
            let batch = match batches.entry(height) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let Some(storage::StoredBatch(batch)) = self.batches.get(&height) else {
                        continue;
                    };
                    e.insert(batch)
                }
            };
            let header = batch.header.clone();
            let Some(n) = batch.nodes.get_mut(index as usize) else {
                continue;
            };
            if n.confirmation.is_some() || n.refused {
                continue;
            }
            n.next_attempt_nanos = lease;
            self.due.insert(due_key(lease, height, index), ());
            out.push(SignRequest {
                height,
                node: n.node,
                scheme: n.scheme,
                key_name: n.key_name.clone(),
                header,
            });
        }
        for (height, batch) in batches {
            self.batches.insert(height, storage::StoredBatch(batch));
        }
        out
    }

    /// Records what came of asking `node` to sign batch `height`. Returns `true` when this made
    /// the batch confirmed.
    /// `node`'s public key for `scheme` and `key_name`, if the hub has fetched it.
    pub fn node_key(&self, node: &Principal, scheme: Scheme, key_name: &str) -> Option<Vec<u8>> {
        self.node_keys
            .get(node)
            .filter(|k| k.scheme == scheme && k.key_name == key_name)
            .map(|k| k.public_key.0)
    }

    /// Records `node`'s public key (from the management canister).
    pub fn set_node_key(&mut self, node: Principal, scheme: Scheme, key_name: &str, key: Vec<u8>) {
        self.node_keys.insert(
            node,
            storage::StoredNodeKey {
                scheme,
                key_name: key_name.to_string(),
                public_key: Blob(key),
            },
        );
    }

    pub fn apply_sign_outcome(
        &mut self,
        height: u64,
        node: Principal,
        outcome: SignOutcome,
        now: u64,
    ) -> bool {
        let Some(storage::StoredBatch(mut batch)) = self.batches.get(&height) else {
            return false;
        };
        let policy = self.batch_policy(&batch);
        let config = self.settings.config.clone();
        let header_hash = batch.header_hash;
        let Some(index) = batch.nodes.iter().position(|n| n.node == node) else {
            return false;
        };
        let progress = &mut batch.nodes[index];
        if progress.confirmation.is_some() || progress.refused {
            return false;
        }
        self.due
            .remove(&due_key(progress.next_attempt_nanos, height, index as u32));
        let failure = match outcome {
            SignOutcome::Signed(reply) => {
                let c = &reply.confirmation;
                let problem = if c.node != node {
                    Some(format!("the confirmation names node {}", c.node))
                } else if c.scheme != progress.scheme || c.key_name != progress.key_name {
                    Some(format!(
                        "the confirmation is for {} {:?}, expected {} {:?}",
                        c.scheme, c.key_name, progress.scheme, progress.key_name
                    ))
                } else if reply.header_hash != header_hash {
                    Some("the node signed another header hash".to_string())
                } else if c.signature.len() != c.scheme.signature_len()
                    || c.public_key.len() != c.scheme.public_key_len()
                {
                    Some("malformed signature or public key".to_string())
                } else {
                    // Only a signature that verifies under the key the management canister
                    // gives for this node counts (and goes into receipts).
                    match self.node_key(&node, progress.scheme, &progress.key_name) {
                        None => Some("the node's public key is not known yet".to_string()),
                        Some(key) if key != c.public_key.0 => Some(
                            "the confirmation carries another public key than the management \
                             canister's for this node"
                                .to_string(),
                        ),
                        Some(key) => stratros_signatures::verify_signature(
                            progress.scheme,
                            &key,
                            &header_signing_digest(progress.scheme, &node, &batch.header),
                            &c.signature.0,
                        )
                        .err()
                        .map(|e| format!("the signature does not verify: {e}")),
                    }
                };
                match problem {
                    None => {
                        progress.confirmation = Some(reply.confirmation);
                        progress.last_error = None;
                        None
                    }
                    Some(p) => Some((p, false)),
                }
            }
            SignOutcome::Refused(e) => {
                let permanent = e.is_permanent();
                Some((format!("{e:?}"), permanent))
            }
            SignOutcome::CallFailed {
                reject_code,
                message,
            } => Some((
                format!("call failed (reject code {reject_code:?}): {message}"),
                false,
            )),
        };
        if let Some((message, permanent)) = failure {
            progress.attempts = progress.attempts.saturating_add(1);
            progress.next_attempt_nanos =
                now.saturating_add(backoff_nanos(&config, progress.attempts));
            progress.last_error = Some(message);
            progress.refused = permanent;
            if !permanent {
                self.due.insert(
                    due_key(progress.next_attempt_nanos, height, index as u32),
                    (),
                );
            }
        }
        let mut newly_confirmed = false;
        if batch.confirmed_at_nanos.is_none()
            && policy.is_satisfied(
                batch
                    .nodes
                    .iter()
                    .filter(|n| n.confirmation.is_some())
                    .map(|n| &n.node),
            )
        {
            batch.confirmed_at_nanos = Some(now);
            newly_confirmed = true;
        }
        if batch
            .nodes
            .iter()
            .all(|n| n.confirmation.is_some() || n.refused)
        {
            self.open.remove(&height);
        }
        self.batches.insert(height, storage::StoredBatch(batch));
        newly_confirmed
    }

    fn batch_policy(&self, batch: &Batch) -> QuorumPolicy {
        self.policies
            .get(&batch.header.quorum_policy_hash.0)
            .unwrap_or_else(|| panic!("BUG: policy of batch {} is missing", batch.header.height))
            .0
    }

    /// The earliest time the timer must run: a seal, or a retry. `None` when nothing waits.
    pub fn next_wakeup(&self) -> Option<u64> {
        let retry = self
            .due
            .iter()
            .next()
            .map(|e| parse_due_key(&e.into_pair().0).0);
        match (self.seal_deadline(), retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- queries ---------------------------------------------------------------------

    /// Tree node `(level, index)` of `batch`.
    fn tree_node(&self, batch: &Batch, level: u32, index: u64) -> Hash32 {
        if level == 0 {
            return self.leaf(batch.header.first_record_id + index);
        }
        let pos = batch.tree_offset + tree_position(batch.header.leaf_count, level, index);
        Hash32(
            self.tree
                .get(pos)
                .unwrap_or_else(|| panic!("BUG: tree node {pos} is missing")),
        )
    }

    /// The receipt of record `id`, without the certificate (only the query endpoint has it).
    pub fn receipt(&self, id: u64) -> Result<Receipt, ReceiptError> {
        let proof = self.record_proof(id)?;
        let height = proof.header.height;
        // Not `header_certificate`: that decodes the batch a second time (~1.5 M instructions).
        let certificate = crate::types::HeaderCertificate {
            height,
            header_hash: proof.header_hash,
            certificate: Vec::new().into(),
            witness: witness_cbor(&self.certified.witness(height)).into(),
        };
        let mut receipt = proof.into_receipt(certificate);
        receipt.certificate = Default::default();
        Ok(receipt)
    }

    /// The witness of `headers/<height>` with `certificate` (empty when called replicated).
    pub fn header_certificate(
        &self,
        height: u64,
        certificate: Vec<u8>,
    ) -> Result<crate::types::HeaderCertificate, BatchError> {
        let batch = self.batch(height)?;
        Ok(crate::types::HeaderCertificate {
            height,
            header_hash: batch.header_hash,
            certificate: certificate.into(),
            witness: witness_cbor(&self.certified.witness(height)).into(),
        })
    }

    /// Record `id` with its leaf, Merkle path, header and confirmations: a receipt without
    /// the IC certificate, for canisters (replicated calls) to relay.
    pub fn record_proof(&self, id: u64) -> Result<RecordProof, ReceiptError> {
        if id >= self.counters.next_record_id {
            return Err(ReceiptError::UnknownRecord {
                id,
                next_id: self.counters.next_record_id,
            });
        }
        if id >= self.counters.first_pending {
            return Err(ReceiptError::NotSealed { id });
        }
        let (first, height) = self
            .batch_start
            .range(..=id)
            .next_back()
            .map(|e| e.into_pair())
            .unwrap_or_else(|| panic!("BUG: sealed record {id} has no batch"));
        let storage::StoredBatch(batch) = self
            .batches
            .get(&height)
            .unwrap_or_else(|| panic!("BUG: batch {height} is missing"));
        if !batch.is_confirmed() {
            return Err(ReceiptError::NotConfirmed {
                height,
                confirmations: batch.confirmations().len() as u32,
                nodes: batch.nodes.len() as u32,
            });
        }
        let stored = self.stored_record(id);
        let record = Record {
            id,
            submitter: stored.submitter,
            content_hash: stored.content_hash,
            kind: stored.kind,
            reference: stored.reference,
            payload: stored.payload,
        };
        let leaf_index = id - first;
        let proof = proof_from_levels(
            |level, index| self.tree_node(&batch, level, index),
            batch.header.leaf_count,
            leaf_index,
        );
        Ok(RecordProof {
            record,
            leaf_index,
            leaf_hash: self.leaf(id),
            proof,
            confirmations: batch.confirmations(),
            quorum_policy: self.batch_policy(&batch),
            header_hash: batch.header_hash,
            header: batch.header,
        })
    }

    pub fn batch(&self, height: u64) -> Result<Batch, BatchError> {
        self.batches
            .get(&height)
            .map(|b| b.0)
            .ok_or(BatchError::UnknownHeight {
                height,
                next_height: self.counters.next_height,
            })
    }

    pub fn list_batches(&self, start: u64, limit: u64) -> BatchPage {
        let end = start.saturating_add(limit.min(MAX_PAGE));
        BatchPage {
            batches: self
                .batches
                .range(start..end)
                .map(|e| e.value().0)
                .collect(),
            total: self.counters.next_height,
        }
    }

    pub fn status(&self, hub: Principal, cycles: u128) -> Status {
        let quorum = self.policy();
        Status {
            hub,
            pending_records: self.pending(),
            next_record_id: self.counters.next_record_id,
            batches: self.counters.next_height,
            open_batches: self.open.len(),
            last_header_hash: self.counters.last_header_hash,
            quorum_valid: quorum.validate().is_ok(),
            quorum,
            submitters: self.submitters.len(),
            config: self.settings.config.clone(),
            cycles,
            registrars: self.registrars().to_vec(),
            fees: self.fee_status(),
        }
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
