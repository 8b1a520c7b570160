//! Native unit tests of the hub's logic, with a stub runtime.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use candid::{Nat, Principal};
use candid_parser::utils::{CandidSource, service_equal};
use ic_cbor::HashTreeToCbor;
use ic_certification::{HashTree, LookupResult};
use icrc_ledger_types::icrc::generic_value::ICRC3Value;
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::allowance::AllowanceArgs;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use icrc_ledger_types::icrc3::blocks::{BlockWithId, GetBlocksResult};
use proptest::prelude::*;
use stratros_confirmation::merkle::verify_proof;
use stratros_confirmation::{
    BatchHeader, Blob, Confirmation, Hash32, PolicyNode, QuorumRule, RecordInput, Scheme,
    VETKD_CONTEXT, certified_header_path, header_hash, header_signing_digest, leaf_hash,
};

use crate::confirm::run_tick;
use crate::runtime::{DepositRewardsArgs, Runtime};
use crate::state::{NANOS_PER_SECOND, SignOutcome, mutate_state, read_state, reset_state};
use crate::types::node_api::{SignError, SignResponse};
use crate::types::{
    AdminError, Arg, BatchError, ConfigUpdate, InitArgs, ReceiptError, SubmitError, UpgradeArgs,
};
use crate::{admin, lifecycle};

const T0: u64 = 1_767_225_600_000_000_000;

fn hub() -> Principal {
    Principal::from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 1, 1])
}
fn controller() -> Principal {
    Principal::from_slice(&[7; 10])
}
fn submitter(i: u8) -> Principal {
    Principal::from_slice(&[0x50, i, 1, 1])
}
fn node(i: u8) -> Principal {
    Principal::from_slice(&[9, 9, 9, 9, 9, 9, 9, i, 1, 1])
}

fn nodes() -> Vec<PolicyNode> {
    Scheme::ALL
        .iter()
        .enumerate()
        .map(|(i, scheme)| PolicyNode {
            node: node(i as u8),
            scheme: *scheme,
            key_name: "key_1".into(),
        })
        .collect()
}

/// A stub IC: `sign_header` answers at once, with the queued outcome of that node if any, else
/// with the node's real signature (keys derived from fixed master keys).
struct Stub {
    caller: Cell<Principal>,
    now: Cell<u64>,
    certified: Cell<[u8; 32]>,
    outcomes: RefCell<BTreeMap<Principal, VecDeque<SignOutcome>>>,
    calls: RefCell<Vec<(Principal, u64)>>,
    /// Nodes whose public key the hub asked for, in order.
    key_fetches: RefCell<Vec<Principal>>,
    /// Queued failures of the next key fetches.
    key_fetch_failures: RefCell<VecDeque<String>>,
    ledger: RefCell<LedgerStub>,
}

/// A ledger and restaking in one: transfers, the hub's allowance for restaking, deposits.
#[derive(Default)]
struct LedgerStub {
    next_block: u64,
    /// Ledger transactions by `created_at_time` (the ledger's deduplication).
    seen: BTreeMap<(Principal, u64), u64>,
    /// Queued transfer outcomes: `true` = applied but the answer is lost.
    lose_transfer_answer: VecDeque<bool>,
    allowance: u128,
    approvals: u32,
    /// Queued deposit outcomes: `Some(pulled)` = answer lost, tokens pulled or not.
    lose_deposit_answer: VecDeque<bool>,
    deposited: u128,
    allocated: u128,
    /// Queued behaviours of the next `icrc1_transfer` calls.
    transfer_faults: VecDeque<TransferFault>,
    /// What `icrc1_transfer` paid, by recipient.
    received: BTreeMap<Principal, u128>,
    /// Queued refusals of the next `icrc2_transfer_from` calls (not executed).
    transfer_from_faults: VecDeque<TransferFromError>,
    /// The ICRC-3 blocks of every executed transfer, served by `icrc3_get_blocks` when
    /// `icrc3` is set (otherwise the method does not exist).
    blocks: Vec<ICRC3Value>,
    icrc3: bool,
}

impl LedgerStub {
    /// Appends the ICRC-3 block of an executed transfer (as DFINITY's ledgers write it).
    fn record_block(
        &mut self,
        now: u64,
        from: Account,
        to: Account,
        amount: &Nat,
        memo: Option<Vec<u8>>,
        created_at_time: Option<u64>,
    ) {
        let account = |a: Account| {
            let mut parts = vec![ICRC3Value::Blob(a.owner.as_slice().to_vec().into())];
            if let Some(s) = a.subaccount {
                parts.push(ICRC3Value::Blob(s.to_vec().into()));
            }
            ICRC3Value::Array(parts)
        };
        let mut tx = BTreeMap::new();
        tx.insert("op".to_string(), ICRC3Value::Text("xfer".into()));
        tx.insert("from".to_string(), account(from));
        tx.insert("to".to_string(), account(to));
        tx.insert("amt".to_string(), ICRC3Value::Nat(amount.clone()));
        if let Some(m) = memo {
            tx.insert("memo".to_string(), ICRC3Value::Blob(m.into()));
        }
        if let Some(t) = created_at_time {
            tx.insert("ts".to_string(), ICRC3Value::Nat(Nat::from(t)));
        }
        let mut block = BTreeMap::new();
        block.insert("ts".to_string(), ICRC3Value::Nat(Nat::from(now)));
        block.insert("tx".to_string(), ICRC3Value::Map(tx));
        self.blocks.push(ICRC3Value::Map(block));
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TransferFault {
    /// Refused without executing.
    Refuse(TransferError),
    /// Not executed, and no answer.
    Unreachable,
    /// Executed, and the answer is lost.
    AnswerLost,
}

impl Stub {
    fn new() -> Self {
        Stub {
            caller: Cell::new(submitter(1)),
            now: Cell::new(T0),
            certified: Cell::new([0; 32]),
            outcomes: RefCell::new(BTreeMap::new()),
            calls: RefCell::new(Vec::new()),
            key_fetches: RefCell::new(Vec::new()),
            key_fetch_failures: RefCell::new(VecDeque::new()),
            ledger: RefCell::new(LedgerStub {
                allocated: 1,
                ..LedgerStub::default()
            }),
        }
    }
    fn advance(&self, seconds: u64) {
        self.now.set(self.now.get() + seconds * NANOS_PER_SECOND);
    }
    fn queue(&self, node: Principal, outcome: SignOutcome) {
        self.outcomes
            .borrow_mut()
            .entry(node)
            .or_default()
            .push_back(outcome);
    }
}

thread_local! {
    /// Master keys standing for the IC's threshold keys: nodes' keys are derived from them as
    /// the management canister derives them.
    static KEYS: ic_emulator_crypto::Keys = ic_emulator_crypto::Keys::from_seed([7; 32]);
}

/// `node`'s public key, as the management canister would give it.
fn node_public_key(node: Principal, scheme: Scheme) -> Vec<u8> {
    use ic_emulator_crypto::SchnorrAlgorithm;
    KEYS.with(|k| match scheme {
        Scheme::EcdsaSecp256k1 => k
            .ecdsa_public_key("key_1", node.as_slice(), &[])
            .map(|r| r.0),
        Scheme::SchnorrBip340 => k
            .schnorr_public_key(
                SchnorrAlgorithm::Bip340Secp256k1,
                "key_1",
                node.as_slice(),
                &[],
            )
            .map(|r| r.0),
        Scheme::SchnorrEd25519 => k
            .schnorr_public_key(SchnorrAlgorithm::Ed25519, "key_1", node.as_slice(), &[])
            .map(|r| r.0),
        Scheme::Bls12_381 => k.vetkd_public_key("key_1", node.as_slice(), VETKD_CONTEXT),
    })
    .expect("derives")
}

/// `node`'s real signature of `header`, as its confirmation node canister would produce it.
fn node_signature(node: Principal, scheme: Scheme, header: &BatchHeader) -> Vec<u8> {
    use ic_emulator_crypto::SchnorrAlgorithm;
    let digest = header_signing_digest(scheme, &node, header);
    let id = node.as_slice();
    KEYS.with(|k| match scheme {
        Scheme::EcdsaSecp256k1 => k.sign_with_ecdsa("key_1", id, &[], &digest.0),
        Scheme::SchnorrBip340 => k.sign_with_schnorr(
            SchnorrAlgorithm::Bip340Secp256k1,
            "key_1",
            id,
            &[],
            &digest.0,
            None,
            [0; 32],
        ),
        Scheme::SchnorrEd25519 => k.sign_with_schnorr(
            SchnorrAlgorithm::Ed25519,
            "key_1",
            id,
            &[],
            &digest.0,
            None,
            [0; 32],
        ),
        // With the identity as transport key, the last 48 bytes of the vetKD key are the plain
        // BLS signature (see the confirmation node).
        Scheme::Bls12_381 => {
            let mut transport = [0u8; 48];
            transport[0] = 0xc0;
            k.vetkd_derive_key("key_1", id, VETKD_CONTEXT, &digest.0, &transport, [0; 32])
                .map(|key| key[144..192].to_vec())
        }
    })
    .expect("signs")
}

/// What an honest node answers: its real key and signature.
fn signed_confirmation(node: Principal, scheme: Scheme, header: &BatchHeader) -> SignResponse {
    SignResponse {
        confirmation: Confirmation {
            node,
            scheme,
            key_name: "key_1".into(),
            public_key: Blob(node_public_key(node, scheme)),
            signature: Blob(node_signature(node, scheme, header)),
        },
        header_hash: header_hash(header),
        log_index: header.height,
        newly_signed: true,
    }
}

impl Runtime for Stub {
    fn caller(&self) -> Principal {
        self.caller.get()
    }
    fn canister_id(&self) -> Principal {
        hub()
    }
    fn time(&self) -> u64 {
        self.now.get()
    }
    fn is_controller(&self, p: &Principal) -> bool {
        *p == controller()
    }
    fn cycle_balance(&self) -> u128 {
        1_000
    }
    fn set_certified_data(&self, data: &[u8; 32]) {
        self.certified.set(*data);
    }
    fn instruction_counter(&self) -> u64 {
        0
    }
    fn schedule(&self) {}
    async fn node_public_key(
        &self,
        node: Principal,
        scheme: Scheme,
        _key_name: &str,
    ) -> Result<Vec<u8>, String> {
        self.key_fetches.borrow_mut().push(node);
        if let Some(error) = self.key_fetch_failures.borrow_mut().pop_front() {
            return Err(error);
        }
        Ok(node_public_key(node, scheme))
    }
    async fn sign_header(&self, node: Principal, header: &BatchHeader, _: u32) -> SignOutcome {
        self.calls.borrow_mut().push((node, header.height));
        if let Some(o) = self
            .outcomes
            .borrow_mut()
            .get_mut(&node)
            .and_then(|q| q.pop_front())
        {
            return o;
        }
        let scheme = nodes()
            .into_iter()
            .find(|n| n.node == node)
            .map_or(Scheme::EcdsaSecp256k1, |n| n.scheme);
        SignOutcome::Signed(signed_confirmation(node, scheme, header))
    }
    async fn transfer_from(
        &self,
        _: Principal,
        args: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, String> {
        let mut l = self.ledger.borrow_mut();
        if let Some(e) = l.transfer_from_faults.pop_front() {
            return Ok(Err(e));
        }
        let key = (args.from.owner, args.created_at_time.unwrap_or(0));
        let result = match l.seen.get(&key) {
            Some(b) => Err(TransferFromError::Duplicate {
                duplicate_of: Nat::from(*b),
            }),
            None => {
                let b = l.next_block;
                l.next_block += 1;
                l.seen.insert(key, b);
                l.record_block(
                    self.now.get(),
                    args.from,
                    args.to,
                    &args.amount,
                    args.memo.clone().map(|m| m.0.to_vec()),
                    args.created_at_time,
                );
                Ok(Nat::from(b))
            }
        };
        if l.lose_transfer_answer.pop_front() == Some(true) {
            return Err("answer lost".into());
        }
        Ok(result)
    }
    async fn transfer(
        &self,
        _: Principal,
        args: TransferArg,
    ) -> Result<Result<Nat, TransferError>, String> {
        let mut l = self.ledger.borrow_mut();
        let fault = l.transfer_faults.pop_front();
        if let Some(TransferFault::Refuse(e)) = fault {
            return Ok(Err(e));
        }
        if let Some(TransferFault::Unreachable) = fault {
            return Err("no answer".into());
        }
        // Deduplicated like a ledger: same sender, created_at_time and memo.
        let key = (hub(), args.created_at_time.unwrap_or(0));
        let result = match l.seen.get(&key) {
            Some(b) => Err(TransferError::Duplicate {
                duplicate_of: Nat::from(*b),
            }),
            None => {
                let b = l.next_block;
                l.next_block += 1;
                l.seen.insert(key, b);
                *l.received.entry(args.to.owner).or_default() +=
                    u128::try_from(&args.amount.0).expect("u128");
                l.record_block(
                    self.now.get(),
                    Account::from(hub()),
                    args.to,
                    &args.amount,
                    args.memo.clone().map(|m| m.0.to_vec()),
                    args.created_at_time,
                );
                Ok(Nat::from(b))
            }
        };
        if fault == Some(TransferFault::AnswerLost) {
            return Err("answer lost".into());
        }
        Ok(result)
    }
    async fn approve(
        &self,
        _: Principal,
        args: ApproveArgs,
    ) -> Result<Result<Nat, ApproveError>, String> {
        let mut l = self.ledger.borrow_mut();
        l.approvals += 1;
        l.allowance = u128::try_from(&args.amount.0).expect("u128");
        Ok(Ok(Nat::from(0u8)))
    }
    async fn allowance(&self, _: Principal, _: AllowanceArgs) -> Result<u128, String> {
        Ok(self.ledger.borrow().allowance)
    }
    async fn ledger_fee(&self, _: Principal) -> Result<u128, String> {
        Ok(10)
    }
    async fn avs_allocated(&self, _: Principal, _: &str) -> Result<Option<u128>, String> {
        Ok(Some(self.ledger.borrow().allocated))
    }
    async fn deposit_rewards(
        &self,
        _: Principal,
        args: DepositRewardsArgs,
    ) -> Result<Result<(), String>, String> {
        let mut l = self.ledger.borrow_mut();
        let amount = u128::try_from(&args.amount.0).expect("u128");
        let lost = l.lose_deposit_answer.pop_front();
        // Restaking pulls `amount`; the ledger takes amount + fee from the allowance.
        let pulled = lost.unwrap_or(true);
        if pulled {
            if l.allowance < amount + 10 {
                return Ok(Err("LedgerError(InsufficientAllowance)".into()));
            }
            l.allowance -= amount + 10;
            l.deposited += amount;
        }
        match lost {
            Some(_) => Err("deposit_rewards failed: SysUnknown".into()),
            None => Ok(Ok(())),
        }
    }
    async fn get_blocks(
        &self,
        _: Principal,
        start: u64,
        length: u64,
    ) -> Result<GetBlocksResult, String> {
        let l = self.ledger.borrow();
        if !l.icrc3 {
            return Err("icrc3_get_blocks rejected (3): no such method".into());
        }
        let end = start.saturating_add(length).min(l.blocks.len() as u64);
        Ok(GetBlocksResult {
            log_length: Nat::from(l.blocks.len() as u64),
            blocks: (start..end)
                .map(|i| BlockWithId {
                    id: Nat::from(i),
                    block: l.blocks[i as usize].clone(),
                })
                .collect(),
            archived_blocks: vec![],
        })
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn install(config: ConfigUpdate) -> Stub {
    reset_state();
    crate::storage::reset_memory();
    let rt = Stub::new();
    lifecycle::init(
        &rt,
        Arg::Init(InitArgs {
            submitters: vec![submitter(1), submitter(2)],
            nodes: nodes(),
            quorum_rule: None,
            config: Some(config),
            ..Default::default()
        }),
    )
    .expect("installs");
    rt
}

fn small_batches(n: u64) -> ConfigUpdate {
    ConfigUpdate {
        max_batch_records: Some(n),
        max_batch_age_seconds: Some(10),
        ..Default::default()
    }
}

fn input(i: u32, reference: &str) -> RecordInput {
    RecordInput {
        content_hash: Hash32([i as u8; 32]),
        kind: "inference".into(),
        reference: reference.into(),
        payload: i.is_multiple_of(2).then(|| Blob(i.to_be_bytes().to_vec())),
    }
}

fn submit(rt: &Stub, who: Principal, inputs: Vec<RecordInput>) -> Vec<u64> {
    rt.caller.set(who);
    mutate_state(|s| s.submit(who, inputs, rt.time()))
        .expect("accepted")
        .into_iter()
        .map(|s| s.id)
        .collect()
}

fn check_receipt(rt: &Stub, id: u64) {
    let receipt = read_state(|s| s.receipt(id)).expect("receipt");
    assert_eq!(receipt.record.id, id);
    assert_eq!(leaf_hash(&receipt.record), receipt.leaf_hash);
    assert!(verify_proof(
        &receipt.header.merkle_root,
        &receipt.leaf_hash,
        receipt.leaf_index,
        receipt.header.leaf_count,
        &receipt.proof
    ));
    let tree = HashTree::from_cbor(receipt.witness.as_slice()).expect("CBOR");
    assert_eq!(
        tree.digest(),
        rt.certified.get(),
        "witness root = certified"
    );
    let path = certified_header_path(receipt.header.height);
    assert_eq!(
        tree.lookup_path(path.iter().map(|p| p.as_slice())),
        LookupResult::Found(&header_hash(&receipt.header).0[..])
    );
    assert!(
        receipt
            .quorum_policy
            .is_satisfied(receipt.confirmations.iter().map(|c| &c.node))
    );
}

#[test]
fn should_assign_ids_at_once_and_return_same_id_for_same_reference() {
    let rt = install(small_batches(100));
    let ids = submit(
        &rt,
        submitter(1),
        vec![input(0, "a"), input(1, "b"), input(2, "")],
    );
    assert_eq!(ids, vec![0, 1, 2]);
    rt.caller.set(submitter(1));
    let again = mutate_state(|s| s.submit(submitter(1), vec![input(9, "b"), input(3, "")], T0))
        .expect("accepted");
    assert_eq!((again[0].id, again[0].duplicate), (1, true));
    assert_eq!((again[1].id, again[1].duplicate), (3, false));
    // Another submitter's reference space is its own.
    assert_eq!(submit(&rt, submitter(2), vec![input(0, "a")]), vec![4]);
    // A reference repeated inside one call gives one record.
    assert_eq!(
        submit(&rt, submitter(2), vec![input(0, "z"), input(0, "z")]),
        vec![5, 5]
    );
    assert_eq!(read_state(|s| s.pending()), 6);
}

#[test]
fn should_accept_packed_submissions_like_candid_ones() {
    let rt = install(small_batches(100));
    let inputs: Vec<_> = (0..5).map(|i| input(i, &format!("p{i}"))).collect();
    let packed = stratros_confirmation::encode_packed(&inputs);
    let out = mutate_state(|s| s.submit_packed(submitter(1), &packed, rt.time())).expect("ok");
    assert_eq!(
        out.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    // The same references through the Candid endpoint are duplicates.
    let again = mutate_state(|s| s.submit(submitter(1), inputs.clone(), rt.time())).expect("ok");
    assert!(again.iter().all(|s| s.duplicate));
    assert!(matches!(
        mutate_state(|s| s.submit_packed(submitter(1), &packed[..packed.len() - 1], rt.time())),
        Err(SubmitError::Malformed { .. })
    ));
    assert_eq!(
        mutate_state(|s| s.submit_packed(
            submitter(1),
            &stratros_confirmation::encode_packed(&[]),
            0
        )),
        Err(SubmitError::EmptySubmission)
    );
    assert_eq!(
        mutate_state(|s| s.submit_packed(submitter(9), &packed, 0)),
        Err(SubmitError::Unauthorized {
            caller: submitter(9)
        })
    );
}

#[test]
fn should_find_every_key_of_the_idempotency_index_across_tables() {
    reset_state();
    crate::storage::reset_memory();
    let mut index = crate::storage::open_idempotency();
    let key = |i: u64| -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::digest(i.to_be_bytes()).into()
    };
    let n = crate::index::BASE * 2; // spans three tables
    for i in 0..n {
        index.insert(key(i), i);
    }
    assert_eq!(index.len(), n);
    // Reopened from memory, as after an upgrade.
    let index = crate::storage::open_idempotency();
    for i in (0..n).step_by(97) {
        assert_eq!(index.get(&key(i)), Some(i));
    }
    assert_eq!(index.get(&key(n + 1)), None);
}

#[test]
fn should_refuse_unauthorized_empty_oversized_and_too_many() {
    let _rt = install(ConfigUpdate {
        max_records_per_call: Some(3),
        max_payload_bytes: Some(4),
        ..Default::default()
    });
    let stranger = submitter(9);
    assert_eq!(
        mutate_state(|s| s.submit(stranger, vec![input(0, "")], T0)),
        Err(SubmitError::Unauthorized { caller: stranger })
    );
    assert_eq!(
        mutate_state(|s| s.submit(submitter(1), vec![], T0)),
        Err(SubmitError::EmptySubmission)
    );
    assert_eq!(
        mutate_state(|s| s.submit(submitter(1), vec![input(1, ""); 4], T0)),
        Err(SubmitError::TooManyRecords { max: 3, got: 4 })
    );
    let mut big = input(1, "");
    big.payload = Some(Blob(vec![0; 5]));
    assert_eq!(
        mutate_state(|s| s.submit(submitter(1), vec![input(1, ""), big], T0)),
        Err(SubmitError::RecordTooLarge {
            index: 1,
            field: "payload".into(),
            max: 4,
            got: 5
        })
    );
    let mut long = input(1, "");
    long.kind = "k".repeat(65);
    assert!(matches!(
        mutate_state(|s| s.submit(submitter(1), vec![long], T0)),
        Err(SubmitError::RecordTooLarge { index: 0, .. })
    ));
    assert_eq!(read_state(|s| s.pending()), 0, "nothing was stored");
}

#[test]
fn should_seal_by_size_and_by_age_and_chain_headers() {
    let rt = install(small_batches(5));
    submit(&rt, submitter(1), (0..3).map(|i| input(i, "")).collect());
    assert_eq!(
        read_state(|s| s.seal_deadline()),
        Some(T0 + 10 * NANOS_PER_SECOND),
        "age deadline"
    );
    block_on(run_tick(&rt));
    assert_eq!(read_state(|s| s.list_batches(0, 10).total), 0, "not due");
    submit(&rt, submitter(2), (3..7).map(|i| input(i, "")).collect());
    assert_eq!(read_state(|s| s.seal_deadline()), Some(0), "size reached");
    block_on(run_tick(&rt));
    let b0 = read_state(|s| s.batch(0)).expect("sealed by size");
    assert_eq!(
        (
            b0.header.leaf_count,
            b0.header.first_record_id,
            b0.header.last_record_id
        ),
        (5, 0, 4)
    );
    assert_eq!(b0.header.prev_header_hash, Hash32::ZERO);
    assert!(b0.is_confirmed(), "every stub node signed");
    rt.advance(9);
    block_on(run_tick(&rt));
    assert_eq!(read_state(|s| s.pending()), 2, "not old enough");
    rt.advance(2);
    block_on(run_tick(&rt));
    let b1 = read_state(|s| s.batch(1)).expect("sealed by age");
    assert_eq!(b1.header.leaf_count, 2);
    assert_eq!(b1.header.prev_header_hash, header_hash(&b0.header));
    for id in 0..7 {
        check_receipt(&rt, id);
    }
}

#[test]
fn should_give_typed_errors_for_unknown_pending_and_unconfirmed() {
    let rt = install(small_batches(2));
    assert_eq!(
        read_state(|s| s.receipt(0)),
        Err(ReceiptError::UnknownRecord { id: 0, next_id: 0 })
    );
    assert_eq!(
        read_state(|s| s.batch(3)),
        Err(BatchError::UnknownHeight {
            height: 3,
            next_height: 0
        })
    );
    submit(
        &rt,
        submitter(1),
        vec![input(0, ""), input(1, ""), input(2, "")],
    );
    assert_eq!(
        read_state(|s| s.receipt(2)),
        Err(ReceiptError::NotSealed { id: 2 })
    );
    crate::confirm::seal_now(&rt, rt.time());
    assert_eq!(
        read_state(|s| s.receipt(0)),
        Err(ReceiptError::NotConfirmed {
            height: 0,
            confirmations: 0,
            nodes: 4
        })
    );
}

#[test]
fn should_retry_failed_nodes_with_backoff_and_confirm_later() {
    let rt = install(small_batches(1));
    let failing = node(3); // BLS
    rt.queue(
        failing,
        SignOutcome::CallFailed {
            reject_code: Some(6),
            message: "Timeout expired".into(),
        },
    );
    rt.queue(
        failing,
        SignOutcome::Refused(SignError::InsufficientCycles {
            available: 1,
            required: 2,
        }),
    );
    submit(&rt, submitter(1), vec![input(0, "")]);
    block_on(run_tick(&rt));
    let b = read_state(|s| s.batch(0)).expect("sealed");
    assert!(!b.is_confirmed(), "one of each scheme needs the BLS node");
    assert_eq!(b.confirmations().len(), 3);
    let p = b.nodes.iter().find(|n| n.node == failing).expect("listed");
    assert_eq!(p.attempts, 1);
    assert_eq!(p.next_attempt_nanos, rt.time() + 5 * NANOS_PER_SECOND);
    assert_eq!(read_state(|s| s.next_wakeup()), Some(p.next_attempt_nanos));

    // Not due yet: no call.
    let calls = rt.calls.borrow().len();
    block_on(run_tick(&rt));
    assert_eq!(rt.calls.borrow().len(), calls);
    rt.advance(5);
    block_on(run_tick(&rt));
    let b = read_state(|s| s.batch(0)).expect("sealed");
    let p = b.nodes.iter().find(|n| n.node == failing).expect("listed");
    assert_eq!(p.attempts, 2);
    assert_eq!(
        p.next_attempt_nanos,
        rt.time() + 10 * NANOS_PER_SECOND,
        "doubled"
    );
    rt.advance(10);
    block_on(run_tick(&rt));
    let b = read_state(|s| s.batch(0)).expect("sealed");
    assert!(b.is_confirmed());
    assert_eq!(b.confirmations().len(), 4);
    assert_eq!(read_state(|s| s.next_wakeup()), None, "nothing left to do");
    check_receipt(&rt, 0);
}

#[test]
fn should_add_late_signatures_after_quorum_and_stop_asking_refusing_node() {
    let rt = install(small_batches(1));
    mutate_state(|s| s.set_quorum_rule(QuorumRule::KOfN { k: 2 })).expect("valid");
    rt.queue(
        node(0),
        SignOutcome::Refused(SignError::ChainMismatch {
            signed_height: 0,
            signed_header_hash: Hash32([1; 32]),
        }),
    );
    rt.queue(
        node(1),
        SignOutcome::CallFailed {
            reject_code: Some(2),
            message: "busy".into(),
        },
    );
    submit(&rt, submitter(1), vec![input(0, "")]);
    block_on(run_tick(&rt));
    let b = read_state(|s| s.batch(0)).expect("sealed");
    assert!(b.is_confirmed(), "2 of 4 signed");
    assert_eq!(b.confirmations().len(), 2);
    assert!(b.nodes[0].refused);
    rt.advance(60);
    block_on(run_tick(&rt));
    let b = read_state(|s| s.batch(0)).expect("sealed");
    assert_eq!(b.confirmations().len(), 3, "the late signature is added");
    assert_eq!(
        rt.calls
            .borrow()
            .iter()
            .filter(|(n, _)| *n == node(0))
            .count(),
        1,
        "a node that refused for good is not asked again"
    );
    assert_eq!(read_state(|s| s.status(hub(), 0).open_batches), 0);
}

#[test]
fn should_ask_again_when_an_answer_never_comes_even_across_an_upgrade() {
    let rt = install(small_batches(1));
    submit(&rt, submitter(1), vec![input(0, "")]);
    crate::confirm::seal_now(&rt, rt.time());
    let now = rt.time();
    // The calls start, and their answers are lost (the hub is upgraded meanwhile).
    assert_eq!(mutate_state(|s| s.due_requests(now)).len(), 4);
    assert!(
        mutate_state(|s| s.due_requests(now)).is_empty(),
        "leased: not asked twice"
    );
    reset_state();
    lifecycle::post_upgrade(&rt, None).expect("upgrades");
    let lease = now + (60 + crate::state::LEASE_MARGIN_SECONDS) * NANOS_PER_SECOND;
    assert_eq!(read_state(|s| s.next_wakeup()), Some(lease));
    rt.advance(60 + crate::state::LEASE_MARGIN_SECONDS);
    block_on(run_tick(&rt));
    assert!(read_state(|s| s.batch(0)).expect("sealed").is_confirmed());
    assert_eq!(read_state(|s| s.next_wakeup()), None);
}

#[test]
fn should_reject_malformed_confirmation_and_retry() {
    let rt = install(small_batches(1));
    submit(&rt, submitter(1), vec![input(0, "")]);
    let wrong = BatchHeader {
        hub: hub(),
        height: 7,
        prev_header_hash: Hash32::ZERO,
        merkle_root: Hash32([1; 32]),
        leaf_count: 1,
        first_record_id: 0,
        last_record_id: 0,
        start_time_nanos: 0,
        end_time_nanos: 0,
        quorum_policy_hash: Hash32::ZERO,
    };
    rt.queue(
        node(2),
        SignOutcome::Signed(signed_confirmation(node(2), Scheme::SchnorrEd25519, &wrong)),
    );
    block_on(run_tick(&rt));
    let b = read_state(|s| s.batch(0)).expect("sealed");
    assert!(b.nodes[2].confirmation.is_none());
    assert_eq!(b.nodes[2].attempts, 1);
}

#[test]
fn should_count_only_signatures_that_verify_under_the_management_canisters_key() {
    let rt = install(small_batches(1));
    submit(&rt, submitter(1), vec![input(0, "")]);
    block_on(run_tick(&rt));
    let b = read_state(|s| s.batch(0)).expect("sealed");
    assert_eq!(b.confirmations().len(), 4, "honest nodes count");

    submit(&rt, submitter(1), vec![input(1, "")]);
    // The next batch: ECDSA flips a byte of its signature; BIP340 signs with another node's
    // key (and says so); Ed25519 signs the right header but claims another key; BLS signs
    // another node's digest (its own key): none of them counts.
    crate::confirm::seal_now(&rt, rt.time());
    let header = read_state(|s| s.batch(1)).expect("sealed").header;
    let mut flipped = signed_confirmation(node(0), Scheme::EcdsaSecp256k1, &header);
    flipped.confirmation.signature.0[5] ^= 1;
    rt.queue(node(0), SignOutcome::Signed(flipped));
    let mut foreign = signed_confirmation(node(1), Scheme::SchnorrBip340, &header);
    let other = signed_confirmation(node(9), Scheme::SchnorrBip340, &header);
    foreign.confirmation.public_key = other.confirmation.public_key.clone();
    foreign.confirmation.signature = other.confirmation.signature;
    rt.queue(node(1), SignOutcome::Signed(foreign));
    let mut claimed = signed_confirmation(node(2), Scheme::SchnorrEd25519, &header);
    claimed.confirmation.public_key = Blob(node_public_key(node(9), Scheme::SchnorrEd25519));
    rt.queue(node(2), SignOutcome::Signed(claimed));
    let mut misdirected = signed_confirmation(node(3), Scheme::Bls12_381, &header);
    misdirected.confirmation.signature = Blob(node_signature(node(9), Scheme::Bls12_381, &header));
    rt.queue(node(3), SignOutcome::Signed(misdirected));
    block_on(run_tick(&rt));
    let b = read_state(|s| s.batch(1)).expect("sealed");
    assert!(b.confirmations().is_empty(), "{:?}", b.nodes);
    let errors: Vec<String> = b
        .nodes
        .iter()
        .map(|n| n.last_error.clone().unwrap_or_default())
        .collect();
    assert!(errors[0].contains("does not verify"), "{errors:?}");
    assert!(errors[1].contains("another public key"), "{errors:?}");
    assert!(errors[2].contains("another public key"), "{errors:?}");
    assert!(errors[3].contains("does not verify"), "{errors:?}");
    assert!(b.nodes.iter().all(|n| n.attempts == 1 && !n.refused));
    // Retried after the backoff, honestly: every node counts, and the keys were fetched
    // once per node, not per batch or attempt.
    rt.advance(3_600);
    block_on(run_tick(&rt));
    let b = read_state(|s| s.batch(1)).expect("sealed");
    assert_eq!(b.confirmations().len(), 4, "{:?}", b.nodes);
    let mut fetched = rt.key_fetches.borrow().clone();
    fetched.sort();
    assert_eq!(fetched, nodes().iter().map(|n| n.node).collect::<Vec<_>>());
}

#[test]
fn should_retry_a_node_whose_key_cannot_be_fetched_yet() {
    let rt = install(small_batches(1));
    rt.key_fetch_failures
        .borrow_mut()
        .push_back("the management canister is busy".into());
    submit(&rt, submitter(1), vec![input(0, "")]);
    block_on(run_tick(&rt));
    let b = read_state(|s| s.batch(0)).expect("sealed");
    // The first node asked got the failure: not asked to sign, retried later.
    let failed: Vec<_> = b
        .nodes
        .iter()
        .filter(|n| {
            n.last_error
                .as_deref()
                .is_some_and(|e| e.contains("fetching the node's public key"))
        })
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", b.nodes);
    assert!(failed[0].confirmation.is_none() && failed[0].attempts == 1);
    assert_eq!(b.confirmations().len(), 3);
    rt.advance(3_600);
    block_on(run_tick(&rt));
    assert_eq!(
        read_state(|s| s.batch(0))
            .expect("sealed")
            .confirmations()
            .len(),
        4
    );
}

#[test]
fn should_keep_everything_across_an_upgrade_mid_round() {
    let rt = install(small_batches(3));
    submit(
        &rt,
        submitter(1),
        (0..7).map(|i| input(i, &format!("r{i}"))).collect(),
    );
    rt.queue(
        node(1),
        SignOutcome::CallFailed {
            reject_code: Some(6),
            message: "timeout".into(),
        },
    );
    block_on(run_tick(&rt));
    block_on(run_tick(&rt));
    let before = read_state(|s| s.list_batches(0, 10));
    let root = rt.certified.get();
    assert_eq!(before.total, 2);
    assert!(
        before
            .batches
            .iter()
            .all(|b| !b.is_confirmed() || b.header.height == 1)
    );

    // Upgrade: heap gone, stable memory kept.
    reset_state();
    lifecycle::post_upgrade(
        &rt,
        Some(Arg::Upgrade(Some(UpgradeArgs {
            config: Some(ConfigUpdate {
                max_batch_age_seconds: Some(20),
                ..Default::default()
            }),
            ..Default::default()
        }))),
    )
    .expect("upgrades");
    assert_eq!(rt.certified.get(), root, "same certified data");
    assert_eq!(read_state(|s| s.list_batches(0, 10)), before);
    assert_eq!(read_state(|s| s.config().max_batch_age_seconds), 20);
    assert_eq!(read_state(|s| s.pending()), 1);
    // Idempotency survives.
    rt.caller.set(submitter(1));
    let again = mutate_state(|s| s.submit(submitter(1), vec![input(0, "r3")], T0)).expect("ok");
    assert_eq!((again[0].id, again[0].duplicate), (3, true));
    // The round continues.
    rt.advance(30);
    block_on(run_tick(&rt));
    block_on(run_tick(&rt));
    for h in 0..3 {
        assert!(read_state(|s| s.batch(h)).expect("exists").is_confirmed());
    }
    for id in 0..7 {
        check_receipt(&rt, id);
    }
    assert!(lifecycle::post_upgrade(&rt, Some(Arg::Init(InitArgs::default()))).is_err());
}

#[test]
fn should_refuse_bad_install_arguments() {
    reset_state();
    crate::storage::reset_memory();
    let rt = Stub::new();
    assert!(lifecycle::init(&rt, Arg::Upgrade(None)).is_err());
    assert!(
        lifecycle::init(
            &rt,
            Arg::Init(InitArgs {
                config: Some(ConfigUpdate {
                    max_batch_records: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            })
        )
        .is_err()
    );
    let mut dup = nodes();
    dup.push(dup[0].clone());
    assert!(
        lifecycle::init(
            &rt,
            Arg::Init(InitArgs {
                nodes: dup,
                ..Default::default()
            })
        )
        .is_err()
    );
}

#[test]
fn should_let_only_controllers_manage_and_wait_for_a_valid_policy() {
    reset_state();
    crate::storage::reset_memory();
    let rt = Stub::new();
    lifecycle::init(&rt, Arg::Init(InitArgs::default())).expect("installs with no node");
    rt.caller.set(submitter(1));
    assert_eq!(
        admin::add_submitter(&rt, submitter(1)),
        Err(AdminError::NotController {
            caller: submitter(1)
        })
    );
    rt.caller.set(controller());
    admin::add_submitter(&rt, submitter(1)).expect("controller");
    assert_eq!(admin::seal_now(&rt), Err(AdminError::NothingPending));
    submit(&rt, submitter(1), vec![input(0, "")]);
    rt.caller.set(controller());
    assert_eq!(admin::seal_now(&rt), Err(AdminError::NoValidPolicy));
    assert_eq!(
        read_state(|s| s.seal_deadline()),
        None,
        "no policy, no seal"
    );
    for n in nodes() {
        admin::register_node(&rt, n).expect("registers");
    }
    assert_eq!(
        admin::set_quorum_rule(&rt, QuorumRule::KOfN { k: 5 }),
        Err(AdminError::InvalidPolicy(
            stratros_confirmation::PolicyError::InvalidThreshold { k: 5, n: 4 }
        ))
    );
    assert_eq!(
        admin::remove_node(&rt, node(9)),
        Err(AdminError::UnknownNode(node(9)))
    );
    assert_eq!(admin::seal_now(&rt), Ok(0));
    admin::remove_submitter(&rt, submitter(1)).expect("controller");
    assert!(!read_state(|s| s.is_submitter(&submitter(1))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every record's receipt proof verifies against its header; changing any byte of the
    /// leaf, a proof hash or the root makes it fail.
    #[test]
    fn should_prove_every_leaf_and_fail_on_any_changed_byte(
        n in 1u32..70,
        batch in 1u64..40,
        flip in any::<(usize, u8)>(),
    ) {
        let rt = install(small_batches(batch));
        submit(&rt, submitter(1), (0..n).map(|i| input(i, "")).collect());
        while read_state(|s| s.pending()) > 0 {
            crate::confirm::seal_now(&rt, rt.time());
        }
        while read_state(|s| s.next_wakeup()).is_some() {
            block_on(run_tick(&rt));
        }
        for id in 0..u64::from(n) {
            let r = read_state(|s| s.receipt(id)).expect("receipt");
            let (root, leaf) = (r.header.merkle_root, r.leaf_hash);
            prop_assert!(verify_proof(&root, &leaf, r.leaf_index, r.header.leaf_count, &r.proof));
            let bit = 1u8 << (flip.1 % 8);
            let byte = flip.0 % 32;
            let mut bad_leaf = leaf;
            bad_leaf.0[byte] ^= bit;
            prop_assert!(!verify_proof(&root, &bad_leaf, r.leaf_index, r.header.leaf_count, &r.proof));
            let mut bad_root = root;
            bad_root.0[byte] ^= bit;
            prop_assert!(!verify_proof(&bad_root, &leaf, r.leaf_index, r.header.leaf_count, &r.proof));
            if !r.proof.is_empty() {
                let mut bad = r.proof.clone();
                let k = flip.0 % bad.len();
                bad[k].0[byte] ^= bit;
                prop_assert!(!verify_proof(&root, &leaf, r.leaf_index, r.header.leaf_count, &bad));
            }
        }
    }
}

#[test]
fn should_match_the_checked_in_candid_interface() {
    let generated = super::__export_service();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../candid/confirmation.did");
    if std::env::var_os("UPDATE_CANDID").is_some() {
        std::fs::write(&path, &generated).expect("cannot write candid/confirmation.did");
    }
    let checked_in = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    service_equal(
        CandidSource::Text(&generated),
        CandidSource::Text(&checked_in),
    )
    .unwrap_or_else(|e| {
        panic!(
            "candid/confirmation.did differs from the generated interface \
             (regenerate with UPDATE_CANDID=1 cargo test -p confirmation): {e}\n{generated}"
        )
    });
}

// ----- fees -------------------------------------------------------------------------------

fn fee_ledger() -> Principal {
    Principal::from_slice(&[0x1e, 1, 1])
}
fn restaking() -> Principal {
    Principal::from_slice(&[0x2e, 1, 1])
}

fn fee_config(fee: u128) -> crate::types::FeeConfig {
    crate::types::FeeConfig {
        ledger: fee_ledger(),
        fee_per_record: fee,
        restaking: Some(restaking()),
        avs: "confirmation".into(),
        min_forward: 1,
        forward_interval_seconds: 60,
    }
}

fn install_with_fees(fee: u128) -> Stub {
    let rt = install(ConfigUpdate::default());
    reset_state();
    lifecycle::post_upgrade(
        &rt,
        Some(Arg::Upgrade(Some(UpgradeArgs {
            fees: Some(fee_config(fee)),
            ..Default::default()
        }))),
    )
    .expect("upgrade with fees");
    rt
}

fn deposit(
    rt: &Stub,
    amount: u128,
    at: u64,
) -> Result<crate::types::FeeDeposit, crate::types::FeeError> {
    block_on(crate::payments::deposit_fees(
        rt,
        crate::types::DepositFeesArgs {
            amount,
            created_at_time: at,
        },
    ))
}

fn fee_inputs(refs: &[&str]) -> Vec<RecordInput> {
    refs.iter()
        .map(|r| RecordInput {
            content_hash: Hash32([7; 32]),
            kind: "k".into(),
            reference: r.to_string(),
            payload: None,
        })
        .collect()
}

#[test]
fn should_charge_new_records_only_and_refuse_without_credit() {
    let rt = install_with_fees(5);
    let err = mutate_state(|s| s.submit(submitter(1), fee_inputs(&["a", "b"]), T0));
    assert_eq!(
        err,
        Err(SubmitError::InsufficientCredit {
            needed: 10,
            available: 0
        })
    );
    assert_eq!(read_state(|s| s.pending()), 0, "nothing half-applied");
    assert_eq!(deposit(&rt, 12, 1).expect("deposit").credit, 12);
    // "a" twice in one call is one new record; "" is always new.
    let out =
        mutate_state(|s| s.submit(submitter(1), fee_inputs(&["a", "a", ""]), T0)).expect("paid");
    assert_eq!(out.iter().filter(|s| s.duplicate).count(), 1);
    assert_eq!(read_state(|s| s.fees().credit(&submitter(1))), 2);
    // Duplicates are free, even with no credit left for a new record.
    mutate_state(|s| s.submit(submitter(1), fee_inputs(&["a"]), T0)).expect("free duplicate");
    assert!(matches!(
        mutate_state(|s| s.submit(submitter(1), fee_inputs(&["c"]), T0)),
        Err(SubmitError::InsufficientCredit {
            needed: 5,
            available: 2
        })
    ));
}

#[test]
fn should_credit_a_ledger_block_once_when_a_deposit_is_retried() {
    let rt = install_with_fees(1);
    rt.ledger.borrow_mut().lose_transfer_answer.push_back(true);
    assert!(matches!(
        deposit(&rt, 100, 42),
        Err(crate::types::FeeError::LedgerUnreachable { .. })
    ));
    assert_eq!(read_state(|s| s.fees().credit(&submitter(1))), 0);
    // The retry with the same created_at_time is the same ledger transaction.
    let d = deposit(&rt, 100, 42).expect("retry");
    assert_eq!((d.credited, d.credit), (100, 100));
    let d = deposit(&rt, 100, 42).expect("again");
    assert_eq!((d.credited, d.credit), (0, 100));
    rt.caller.set(Principal::from_slice(&[0x99]));
    assert!(matches!(
        deposit(&rt, 1, 43),
        Err(crate::types::FeeError::Unauthorized { .. })
    ));
}

#[test]
fn should_forward_exactly_once_when_the_deposit_answer_is_lost_and_replay_after_upgrade() {
    let rt = install_with_fees(10);
    deposit(&rt, 1_000, 1).expect("deposit");
    let refs: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = refs.iter().map(|s| s.as_str()).collect();
    mutate_state(|s| s.submit(submitter(1), fee_inputs(&refs), T0)).expect("paid");
    assert_eq!(read_state(|s| s.fees().collected()), 500);
    // No stake allocated yet: nothing is deposited, the forward waits (approved).
    rt.ledger.borrow_mut().allocated = 0;
    block_on(crate::payments::forward_fees(&rt));
    assert_eq!(rt.ledger.borrow().deposited, 0);
    rt.ledger.borrow_mut().allocated = 1;
    // Restaking pulls but the answer is lost: reconciled through the allowance.
    rt.ledger.borrow_mut().lose_deposit_answer.push_back(true);
    let out = block_on(crate::payments::forward_fees(&rt));
    assert!(out.contains("reconciled"), "{out}");
    assert_eq!(
        rt.ledger.borrow().deposited,
        480,
        "500 minus two ledger fees"
    );
    // A lost answer without a pull: retried, delivered once.
    mutate_state(|s| s.submit(submitter(1), fee_inputs(&["v", "w", "x", "y", "z"]), T0))
        .expect("paid");
    rt.ledger.borrow_mut().lose_deposit_answer.push_back(false);
    let out = block_on(crate::payments::forward_fees(&rt));
    assert!(out.contains("retried"), "{out}");
    assert_eq!(rt.ledger.borrow().deposited, 480);
    block_on(crate::payments::forward_fees(&rt));
    assert_eq!(
        rt.ledger.borrow().deposited,
        480 + 30,
        "50 minus two ledger fees"
    );
    // Nothing left to forward: repeated runs send nothing.
    let out = block_on(crate::payments::forward_fees(&rt));
    assert!(out.contains("below"), "{out}");
    assert_eq!(rt.ledger.borrow().deposited, 510);
    assert_eq!(rt.ledger.borrow().approvals, 2);
    let status = read_state(|s| s.fee_status());
    assert_eq!(status.forwarded, 510);
    assert_eq!(
        status.credits
            + status.collected
            + status.forwarded
            + status.forward_ledger_fees
            + status.forward.as_ref().map_or(0, |f| f.amount + 20),
        1_000
    );
    // The books replay from the log after an upgrade.
    let before = read_state(|s| s.fee_status());
    reset_state();
    lifecycle::post_upgrade(&rt, None).expect("upgrade");
    let mut after = read_state(|s| s.fee_status());
    if let (Some(a), Some(b)) = (after.forward.as_mut(), before.forward.as_ref()) {
        // Attempts and errors are heap-only.
        a.attempts = b.attempts;
        a.last_error = b.last_error.clone();
    }
    assert_eq!(after, before);
}

#[test]
fn should_let_registrars_add_submitters() {
    let rt = install(ConfigUpdate::default());
    let registry = Principal::from_slice(&[0x77]);
    rt.caller.set(registry);
    assert!(matches!(
        admin::add_submitter(&rt, submitter(9)),
        Err(AdminError::NotController { .. })
    ));
    rt.caller.set(controller());
    admin::set_registrars(&rt, vec![registry]).expect("controller");
    rt.caller.set(registry);
    admin::add_submitter(&rt, submitter(9)).expect("registrar");
    assert!(read_state(|s| s.is_submitter(&submitter(9))));
    assert!(matches!(
        admin::set_registrars(&rt, vec![]),
        Err(AdminError::NotController { .. })
    ));
}

fn withdraw(
    rt: &Stub,
    amount: u128,
    at: u64,
    to: Option<Principal>,
    to_subaccount: Option<Vec<u8>>,
) -> Result<crate::types::CreditWithdrawal, crate::types::FeeError> {
    block_on(crate::payments::withdraw_credit(
        rt,
        crate::types::WithdrawCreditArgs {
            amount,
            to,
            to_subaccount: to_subaccount.map(Blob),
            created_at_time: at,
        },
    ))
}

fn received(rt: &Stub, who: Principal) -> u128 {
    rt.ledger.borrow().received.get(&who).copied().unwrap_or(0)
}

fn credit_of(who: Principal) -> u128 {
    read_state(|s| s.fees().credit(&who))
}

#[test]
fn should_withdraw_credit_once_per_request_and_refuse_bad_requests_unchanged() {
    use crate::types::{FeeError, WithdrawalState};
    let rt = install_with_fees(1);
    deposit(&rt, 1_000, 1).expect("deposit");
    let events = read_state(|s| s.fee_status().events);
    assert_eq!(withdraw(&rt, 0, 10, None, None), Err(FeeError::ZeroAmount));
    assert_eq!(
        withdraw(&rt, 1_001, 10, None, None),
        Err(FeeError::InsufficientCredit {
            needed: 1_001,
            available: 1_000
        })
    );
    assert_eq!(
        withdraw(&rt, 10, 10, None, None),
        Err(FeeError::AmountTooSmall { ledger_fee: 10 })
    );
    assert_eq!(
        withdraw(&rt, 100, 10, None, Some(vec![1; 31])),
        Err(FeeError::InvalidSubaccount)
    );
    assert_eq!(credit_of(submitter(1)), 1_000);
    assert_eq!(
        read_state(|s| s.fee_status().events),
        events,
        "nothing logged"
    );

    let to = Principal::from_slice(&[0x42]);
    let w = withdraw(&rt, 300, 10, Some(to), None).expect("withdrawn");
    assert!(matches!(w.state, WithdrawalState::Done { .. }), "{w:?}");
    assert_eq!((w.amount, w.ledger_fee, w.credit), (300, 10, 700));
    assert_eq!(received(&rt, to), 290, "the amount less the ledger fee");
    // The same request again is the same withdrawal: nothing more is debited or sent.
    let again = withdraw(&rt, 300, 10, Some(to), None).expect("the same");
    assert_eq!((again.id, again.credit), (w.id, 700));
    assert_eq!(received(&rt, to), 290);
    let account = read_state(|s| s.fee_account(submitter(1)));
    assert_eq!((account.credit, account.withdrawn), (700, 300));
    let status = read_state(|s| s.fee_status());
    assert_eq!((status.credits, status.withdrawn), (700, 300));
    assert_eq!(status.withdrawals_pending, 0);
}

#[test]
fn should_pay_a_withdrawal_whose_answer_was_lost_exactly_once_across_an_upgrade() {
    use crate::types::WithdrawalState;
    let rt = install_with_fees(1);
    deposit(&rt, 1_000, 1).expect("deposit");
    rt.ledger
        .borrow_mut()
        .transfer_faults
        .push_back(TransferFault::AnswerLost);
    let w = withdraw(&rt, 500, 20, None, None).expect("pending");
    assert!(matches!(w.state, WithdrawalState::Pending { .. }), "{w:?}");
    assert_eq!(w.credit, 500, "debited before the transfer");
    assert_eq!(received(&rt, submitter(1)), 490, "executed, answer lost");

    // The books come back from the fee log.
    reset_state();
    lifecycle::post_upgrade(&rt, None).expect("upgrade");
    assert_eq!(read_state(|s| s.fees().pending_withdrawals()), vec![w.id]);
    assert_eq!(credit_of(submitter(1)), 500);

    // After an unknown outcome a refusal proves nothing: no refund, still pending.
    rt.ledger
        .borrow_mut()
        .transfer_faults
        .push_back(TransferFault::Refuse(TransferError::BadFee {
            expected_fee: Nat::from(20u8),
        }));
    block_on(crate::payments::retry_withdrawals(&rt));
    let w = crate::payments::withdrawal(w.id).expect("known");
    assert!(matches!(w.state, WithdrawalState::Pending { .. }), "{w:?}");
    assert_eq!(w.credit, 500);
    // The timer's retry is the same ledger transaction: Duplicate, done, paid once.
    block_on(crate::payments::retry_withdrawals(&rt));
    let w = crate::payments::withdrawal(w.id).expect("known");
    assert!(matches!(w.state, WithdrawalState::Done { .. }), "{w:?}");
    assert_eq!(received(&rt, submitter(1)), 490);
    assert_eq!(read_state(|s| s.fee_status().withdrawals_pending), 0);
}

#[test]
fn should_give_the_credit_back_only_when_the_first_attempt_is_refused() {
    use crate::types::WithdrawalState;
    let rt = install_with_fees(1);
    deposit(&rt, 1_000, 1).expect("deposit");
    rt.ledger
        .borrow_mut()
        .transfer_faults
        .push_back(TransferFault::Refuse(TransferError::BadFee {
            expected_fee: Nat::from(20u8),
        }));
    let w = withdraw(&rt, 500, 30, None, None).expect("answered");
    assert!(matches!(w.state, WithdrawalState::Refused { .. }), "{w:?}");
    assert_eq!(w.credit, 1_000, "back in the credit");
    assert_eq!(read_state(|s| s.fee_account(submitter(1)).withdrawn), 0);
    // Not executed and no answer: pending, then done by the retry.
    rt.ledger
        .borrow_mut()
        .transfer_faults
        .push_back(TransferFault::Unreachable);
    let w = withdraw(&rt, 200, 31, None, None).expect("pending");
    assert!(matches!(w.state, WithdrawalState::Pending { .. }), "{w:?}");
    assert_eq!(received(&rt, submitter(1)), 0);
    let w = withdraw(&rt, 200, 31, None, None).expect("the same request, retried");
    assert!(matches!(w.state, WithdrawalState::Done { .. }), "{w:?}");
    assert_eq!((w.credit, received(&rt, submitter(1))), (800, 190));
}

/// Deposits 1,000 and withdraws 500 with `first` as the first attempt's fate; a day later,
/// the ledger answers the retry `TooOld`. Returns the withdrawal's id.
fn withdrawal_retried_too_old(rt: &Stub, first: TransferFault) -> u64 {
    deposit(rt, 1_000, 1).expect("deposit");
    rt.ledger.borrow_mut().transfer_faults.push_back(first);
    let w = withdraw(rt, 500, 20, None, None).expect("pending");
    rt.advance(25 * 3600);
    rt.ledger
        .borrow_mut()
        .transfer_faults
        .push_back(TransferFault::Refuse(TransferError::TooOld));
    block_on(crate::payments::retry_withdrawals(rt));
    w.id
}

#[test]
fn should_settle_a_too_old_withdrawal_from_the_ledger_history_and_pay_it_once() {
    use crate::types::WithdrawalState;
    let rt = install_with_fees(1);
    rt.ledger.borrow_mut().icrc3 = true;
    // Executed, answer lost; the TooOld retry finds its block in the history.
    let id = withdrawal_retried_too_old(&rt, TransferFault::AnswerLost);
    let w = crate::payments::withdrawal(id).expect("known");
    assert_eq!(w.state, WithdrawalState::Done { block_index: 1 }, "{w:?}");
    assert_eq!(received(&rt, submitter(1)), 490, "paid once");
    assert_eq!(
        (w.credit, read_state(|s| s.fee_status().withdrawals_pending)),
        (500, 0)
    );
}

#[test]
fn should_give_back_a_too_old_withdrawal_the_ledger_history_lacks_even_after_an_unknown_outcome() {
    use crate::types::WithdrawalState;
    let rt = install_with_fees(1);
    rt.ledger.borrow_mut().icrc3 = true;
    // Not executed, no answer: the outcome is unknown, so a refusal alone proves nothing; the
    // history does.
    let id = withdrawal_retried_too_old(&rt, TransferFault::Unreachable);
    let w = crate::payments::withdrawal(id).expect("known");
    assert!(matches!(w.state, WithdrawalState::Refused { .. }), "{w:?}");
    assert_eq!(
        w.credit, 1_000,
        "the history proves it never moved: back in the credit"
    );
    assert_eq!(received(&rt, submitter(1)), 0);
    // The books replay to the same state.
    let before = read_state(|s| s.fee_account(submitter(1)));
    reset_state();
    lifecycle::post_upgrade(&rt, None).expect("upgrade");
    assert_eq!(read_state(|s| s.fee_account(submitter(1))), before);
    assert_eq!(read_state(|s| s.fee_status().withdrawals_pending), 0);
}

#[test]
fn should_keep_a_too_old_withdrawal_pending_when_the_ledger_has_no_icrc3() {
    use crate::types::WithdrawalState;
    let rt = install_with_fees(1);
    let id = withdrawal_retried_too_old(&rt, TransferFault::Unreachable);
    let w = crate::payments::withdrawal(id).expect("known");
    assert!(matches!(w.state, WithdrawalState::Pending { .. }), "{w:?}");
    assert_eq!((w.credit, received(&rt, submitter(1))), (500, 0));
}

#[test]
fn should_credit_a_too_old_deposit_from_the_ledger_history_once() {
    use crate::types::FeeError;
    let rt = install_with_fees(1);
    rt.ledger.borrow_mut().icrc3 = true;
    // Pulled, answer lost; the submitter retries only after the ledger's window.
    rt.ledger.borrow_mut().lose_transfer_answer.push_back(true);
    assert!(matches!(
        deposit(&rt, 100, 42),
        Err(FeeError::LedgerUnreachable { .. })
    ));
    rt.advance(25 * 3600);
    for credited in [100, 0] {
        rt.ledger
            .borrow_mut()
            .transfer_from_faults
            .push_back(TransferFromError::TooOld);
        let d = deposit(&rt, 100, 42).expect("found in the history");
        assert_eq!((d.block_index, d.credited, d.credit), (0, credited, 100));
    }
    // A deposit that never executed keeps the ledger's TooOld.
    rt.ledger
        .borrow_mut()
        .transfer_from_faults
        .push_back(TransferFromError::TooOld);
    assert!(matches!(
        deposit(&rt, 100, 43),
        Err(FeeError::LedgerRefused { .. })
    ));
    assert_eq!(credit_of(submitter(1)), 100);
}
