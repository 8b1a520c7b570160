//! Native unit tests of the service's logic, with a stub runtime whose hub answers from
//! in-memory tables (the real hub is exercised in tests/integration/tests/services.rs).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::runtime::{CallError, Runtime};
use crate::state::{read_state, reset_state};
use crate::types::*;
use crate::{lifecycle, records, storage};
use candid::{Nat, Principal};
use candid_parser::utils::{CandidSource, service_equal};
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use stratros_confirmation::hub::{
    Batch, BatchPage, DepositFeesArgs, FeeAccount, FeeDeposit, FeeError, ListBatchesArgs,
    ReceiptError, RecordProof, SubmitError, Submitted,
};
use stratros_confirmation::merkle::{levels_from_leaves, proof_from_levels};
use stratros_confirmation::{
    BatchHeader, Hash32, QuorumPolicy, QuorumRule, Record, RecordInput, header_hash, leaf_hash,
};

fn owner() -> Principal {
    Principal::from_slice(&[1; 10])
}
fn writer() -> Principal {
    Principal::from_slice(&[2; 10])
}
fn stranger() -> Principal {
    Principal::from_slice(&[3; 10])
}
fn hub() -> Principal {
    Principal::from_slice(&[4; 10])
}
fn other_service() -> Principal {
    Principal::from_slice(&[5; 10])
}

#[derive(Default)]
struct HubStub {
    reachable: bool,
    /// reference -> hub id
    refs: BTreeMap<String, u64>,
    inputs: Vec<RecordInput>,
    batches: Vec<Batch>,
    submit_calls: u32,
    /// Fees: per record, the service's credit, its ledger balance and allowance for the hub.
    fee: u128,
    credit: u128,
    balance: u128,
    allowance: u128,
    deposits: Vec<DepositFeesArgs>,
}

const LEDGER_FEE: u128 = 10;

fn fee_ledger() -> Principal {
    Principal::from_slice(&[6; 10])
}

impl HubStub {
    fn record(&self, id: u64) -> Record {
        let input = &self.inputs[id as usize];
        Record {
            id,
            // The read test serves this service's records as another service's.
            submitter: other_service(),
            content_hash: input.content_hash,
            kind: input.kind.clone(),
            reference: input.reference.clone(),
            payload: input.payload.clone(),
        }
    }
}

struct Stub {
    caller: Cell<Principal>,
    time: Cell<u64>,
    certified: Cell<[u8; 32]>,
    scheduled: Cell<Option<u64>>,
    hub: RefCell<HubStub>,
    remote: RefCell<BTreeMap<u64, RecordView>>,
}

impl Stub {
    fn new() -> Self {
        Stub {
            caller: Cell::new(owner()),
            time: Cell::new(1_000),
            certified: Cell::new([0; 32]),
            scheduled: Cell::new(None),
            hub: RefCell::new(HubStub {
                reachable: true,
                ..HubStub::default()
            }),
            remote: RefCell::new(BTreeMap::new()),
        }
    }

    /// Seals every hub record not in a batch yet into one batch, confirmed or not.
    fn seal(&self, confirmed: bool) {
        let mut hub = self.hub.borrow_mut();
        let first = hub
            .batches
            .last()
            .map_or(0, |b| b.header.last_record_id + 1);
        let count = hub.inputs.len() as u64;
        if first >= count {
            return;
        }
        let height = hub.batches.len() as u64;
        let leaves: Vec<Hash32> = (first..count)
            .map(|id| leaf_hash(&hub.record(id)))
            .collect();
        let levels = levels_from_leaves(&leaves);
        let header = BatchHeader {
            hub: hub_principal(),
            height,
            prev_header_hash: Hash32::ZERO,
            merkle_root: levels.last().expect("root")[0],
            leaf_count: count - first,
            first_record_id: first,
            last_record_id: count - 1,
            start_time_nanos: 0,
            end_time_nanos: 0,
            quorum_policy_hash: Hash32::ZERO,
        };
        hub.batches.push(Batch {
            header_hash: header_hash(&header),
            header,
            tree_offset: 0,
            sealed_at_nanos: 0,
            seal_instructions: 0,
            seal_hash_instructions: 0,
            confirmed_at_nanos: confirmed.then_some(5),
            nodes: vec![],
        });
    }

    fn confirm_all(&self) {
        for b in self.hub.borrow_mut().batches.iter_mut() {
            b.confirmed_at_nanos.get_or_insert(7);
        }
    }
}

fn hub_principal() -> Principal {
    hub()
}

fn unreachable() -> CallError {
    CallError {
        reject_code: Some(2),
        message: "held".into(),
    }
}

impl Runtime for Stub {
    fn caller(&self) -> Principal {
        self.caller.get()
    }
    fn time(&self) -> u64 {
        self.time.get()
    }
    fn is_controller(&self, _: &Principal) -> bool {
        false
    }
    fn set_certified_data(&self, data: &[u8; 32]) {
        self.certified.set(*data);
    }
    fn schedule_tick(&self, seconds: u64) {
        self.scheduled.set(Some(seconds));
    }
    async fn hub_submit(
        &self,
        _: Principal,
        records: Vec<RecordInput>,
    ) -> Result<Result<Vec<Submitted>, SubmitError>, CallError> {
        let mut hub = self.hub.borrow_mut();
        hub.submit_calls += 1;
        if !hub.reachable {
            return Err(unreachable());
        }
        let new = records
            .iter()
            .filter(|r| !hub.refs.contains_key(&r.reference))
            .count() as u128;
        if new * hub.fee > hub.credit {
            return Ok(Err(SubmitError::InsufficientCredit {
                needed: new * hub.fee,
                available: hub.credit,
            }));
        }
        hub.credit -= new * hub.fee;
        let mut out = Vec::new();
        for r in records {
            if let Some(id) = hub.refs.get(&r.reference) {
                out.push(Submitted {
                    id: *id,
                    duplicate: true,
                });
            } else {
                let id = hub.inputs.len() as u64;
                hub.refs.insert(r.reference.clone(), id);
                hub.inputs.push(r);
                out.push(Submitted {
                    id,
                    duplicate: false,
                });
            }
        }
        Ok(Ok(out))
    }
    async fn hub_list_batches(
        &self,
        _: Principal,
        args: ListBatchesArgs,
    ) -> Result<BatchPage, CallError> {
        let hub = self.hub.borrow();
        if !hub.reachable {
            return Err(unreachable());
        }
        Ok(BatchPage {
            total: hub.batches.len() as u64,
            batches: hub
                .batches
                .iter()
                .skip(args.start as usize)
                .take(args.limit as usize)
                .cloned()
                .collect(),
        })
    }
    async fn hub_record_proof(
        &self,
        _: Principal,
        id: u64,
    ) -> Result<Result<RecordProof, ReceiptError>, CallError> {
        let hub = self.hub.borrow();
        let Some(batch) = hub
            .batches
            .iter()
            .find(|b| b.header.first_record_id <= id && id <= b.header.last_record_id)
        else {
            return Ok(Err(ReceiptError::NotSealed { id }));
        };
        let h = &batch.header;
        let leaves: Vec<Hash32> = (h.first_record_id..=h.last_record_id)
            .map(|i| leaf_hash(&hub.record(i)))
            .collect();
        let levels = levels_from_leaves(&leaves);
        let index = id - h.first_record_id;
        Ok(Ok(RecordProof {
            record: hub.record(id),
            leaf_index: index,
            leaf_hash: leaves[index as usize],
            proof: proof_from_levels(
                |level, i| levels[level as usize][i as usize],
                h.leaf_count,
                index,
            ),
            header: h.clone(),
            header_hash: batch.header_hash,
            confirmations: vec![],
            quorum_policy: QuorumPolicy {
                nodes: vec![],
                rule: QuorumRule::OneOfEachScheme,
            },
        }))
    }
    async fn hub_fee_account(&self, _: Principal) -> Result<FeeAccount, CallError> {
        let hub = self.hub.borrow();
        Ok(FeeAccount {
            submitter: owner(),
            ledger: (hub.fee > 0).then(fee_ledger),
            fee_per_record: hub.fee,
            credit: hub.credit,
            deposited: 0,
            charged: 0,
            records_charged: 0,
            withdrawn: 0,
        })
    }
    async fn hub_deposit_fees(
        &self,
        _: Principal,
        args: DepositFeesArgs,
    ) -> Result<Result<FeeDeposit, FeeError>, CallError> {
        let mut hub = self.hub.borrow_mut();
        hub.deposits.push(args.clone());
        let cost = args.amount + LEDGER_FEE;
        if hub.allowance < cost || hub.balance < cost {
            return Ok(Err(FeeError::LedgerRefused {
                message: format!("InsufficientFunds {{ balance: {} }}", hub.balance),
            }));
        }
        hub.allowance -= cost;
        hub.balance -= cost;
        hub.credit += args.amount;
        Ok(Ok(FeeDeposit {
            block_index: hub.deposits.len() as u128,
            credited: args.amount,
            credit: hub.credit,
        }))
    }
    async fn ledger_fee(&self, _: Principal) -> Result<u128, CallError> {
        Ok(LEDGER_FEE)
    }
    async fn ledger_approve(
        &self,
        _: Principal,
        args: ApproveArgs,
    ) -> Result<Result<Nat, ApproveError>, CallError> {
        let mut hub = self.hub.borrow_mut();
        if hub.balance < LEDGER_FEE {
            return Ok(Err(ApproveError::InsufficientFunds {
                balance: Nat::from(hub.balance),
            }));
        }
        hub.balance -= LEDGER_FEE;
        hub.allowance = u128::try_from(&args.amount.0).expect("u128");
        Ok(Ok(Nat::from(0u8)))
    }
    async fn service_get_record(
        &self,
        _: Principal,
        id: u64,
    ) -> Result<Option<RecordView>, CallError> {
        Ok(self.remote.borrow().get(&id).cloned())
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the stub never leaves a call pending"),
    }
}

fn install() -> Stub {
    reset_state();
    storage::reset_memory();
    let rt = Stub::new();
    lifecycle::init(
        &rt,
        Arg::Init(InitArgs {
            owner: owner(),
            hub: hub(),
            writers: vec![writer()],
            kind: "ai-module".into(),
            name: "Service 1".into(),
            config: None,
        }),
    )
    .expect("init");
    rt
}

fn upgrade(rt: &Stub) {
    reset_state();
    lifecycle::post_upgrade(rt, Some(Arg::Upgrade(None))).expect("upgrade");
}

fn model(i: u8) -> RecordBody {
    RecordBody::ModelAttestation {
        model_id: format!("model-{i}"),
        version: "1.0".into(),
        weights_hash: Hash32([i; 32]),
        metadata: "{}".into(),
    }
}

fn inference(i: u8) -> RecordBody {
    RecordBody::Inference {
        model: "model-1".into(),
        input_hash: Hash32([i; 32]),
        output: Some(stratros_confirmation::Blob(vec![i; 8])),
        output_hash: Hash32([i ^ 0xff; 32]),
        executor: "gpu-7".into(),
    }
}

#[test]
fn should_forward_records_to_the_hub_in_one_call_with_idempotency_keys() {
    let rt = install();
    rt.caller.set(writer());
    let views = block_on(records::add_records(&rt, vec![model(1), inference(2)])).expect("add");
    assert_eq!(views.len(), 2);
    assert_eq!(rt.hub.borrow().submit_calls, 1);
    assert_eq!(views[0].hub_record_id, Some(0));
    assert_eq!(views[1].hub_record_id, Some(1));
    assert_eq!(views[0].status, RecordStatus::Submitted);
    let hub = rt.hub.borrow();
    assert_eq!(hub.inputs[0].reference, "rec-0");
    assert_eq!(hub.inputs[0].kind, "model_attestation");
    assert_eq!(hub.inputs[1].kind, "inference");
    assert_eq!(hub.inputs[0].content_hash, records::content_hash(&model(1)));
    // Unconfirmed records keep the timer armed.
    assert_eq!(rt.scheduled.get(), Some(Config::default().retry_seconds));
}

#[test]
fn should_keep_records_pending_when_the_hub_is_unreachable_and_retry_without_duplicates() {
    let rt = install();
    rt.hub.borrow_mut().reachable = false;
    let views = block_on(records::add_records(&rt, vec![model(1), model(2)])).expect("add");
    assert!(matches!(
        views[0].status,
        RecordStatus::Pending { attempts: 1, .. }
    ));
    assert_eq!(views[0].hub_record_id, None);
    assert_eq!(rt.scheduled.get(), Some(5));
    assert_eq!(read_state(|s| s.status().pending), 2);

    // A retry whose answer was lost: the hub stored the records, the service did not learn it.
    rt.hub.borrow_mut().reachable = true;
    block_on(rt.hub_submit(
        hub(),
        vec![RecordInput {
            content_hash: records::content_hash(&model(1)),
            kind: "model_attestation".into(),
            reference: "rec-0".into(),
            payload: None,
        }],
    ))
    .expect("call")
    .expect("submit");
    // The service survives an upgrade meanwhile and its timer retries.
    upgrade(&rt);
    let report = block_on(records::tick(&rt));
    assert_eq!(report.submitted, 2);
    assert_eq!(report.still_pending, 0);
    assert_eq!(rt.hub.borrow().inputs.len(), 2, "no record is duplicated");
    assert_eq!(read_state(|s| s.view(0)).expect("0").hub_record_id, Some(0));
    assert_eq!(read_state(|s| s.view(1)).expect("1").hub_record_id, Some(1));
}

#[test]
fn should_refuse_strangers_empty_oversized_and_too_many_records() {
    let rt = install();
    rt.caller.set(stranger());
    assert_eq!(
        block_on(records::add_records(&rt, vec![model(1)])),
        Err(AddError::NotWriter { caller: stranger() })
    );
    rt.caller.set(owner());
    assert_eq!(
        block_on(records::add_records(&rt, vec![])),
        Err(AddError::EmptyBatch)
    );
    let big = RecordBody::Transaction {
        kind: "t".into(),
        payload: stratros_confirmation::Blob(vec![0; 4097]),
    };
    assert_eq!(
        block_on(records::add_records(&rt, vec![model(1), big])),
        Err(AddError::FieldTooLarge {
            index: 1,
            field: "payload".into(),
            max: 4096,
            got: 4097
        })
    );
    assert!(matches!(
        block_on(records::add_records(&rt, (0..51).map(model).collect())),
        Err(AddError::TooManyRecords { max: 50, got: 51 })
    ));
    assert_eq!(read_state(|s| s.record_count()), 0, "nothing was stored");
    assert_eq!(rt.hub.borrow().submit_calls, 0);
}

#[test]
fn should_follow_records_to_sealed_and_confirmed() {
    let rt = install();
    block_on(records::add_records(&rt, vec![model(1)])).expect("add");
    rt.seal(false);
    block_on(records::add_records(&rt, vec![model(2), model(3)])).expect("add");
    let report = block_on(records::tick(&rt));
    assert_eq!(report.newly_confirmed, 0);
    assert_eq!(
        read_state(|s| s.view(0)).expect("0").status,
        RecordStatus::Sealed { height: 0 }
    );
    assert_eq!(
        read_state(|s| s.view(1)).expect("1").status,
        RecordStatus::Submitted
    );
    rt.seal(true);
    rt.confirm_all();
    let report = block_on(records::tick(&rt));
    assert_eq!(report.newly_confirmed, 3);
    assert_eq!(
        read_state(|s| s.view(2)).expect("2").status,
        RecordStatus::Confirmed {
            height: 1,
            header_hash: rt.hub.borrow().batches[1].header_hash,
            confirmed_at_nanos: 5
        }
    );
    let status = read_state(|s| s.status());
    assert_eq!((status.confirmed, status.scan_height), (3, 2));
    rt.scheduled.set(None);
    records::reschedule(&rt);
    assert_eq!(
        rt.scheduled.get(),
        None,
        "no timer once everything is confirmed"
    );
}

#[test]
fn should_keep_records_and_certified_pages_across_upgrades() {
    let rt = install();
    block_on(records::add_records(&rt, vec![model(1), inference(2)])).expect("add");
    rt.seal(true);
    block_on(records::tick(&rt));
    let before = (read_state(|s| s.views(0, 10)), rt.certified.get());
    upgrade(&rt);
    assert_eq!(read_state(|s| s.views(0, 10)), before.0);
    assert_eq!(
        rt.certified.get(),
        before.1,
        "the certified tree is rebuilt identically"
    );
    assert_eq!(read_state(|s| s.certified_root()), before.1);
}

#[test]
fn should_serve_certified_http_pages() {
    let rt = install();
    block_on(records::add_records(&rt, vec![model(1)])).expect("add");
    let cert = [7u8; 3];
    read_state(|s| {
        let ok = s.pages().serve("/records/0?x=1", Some(&cert));
        assert_eq!(ok.status_code().as_u16(), 200);
        let body: serde_json::Value = serde_json::from_slice(ok.body()).expect("json");
        assert_eq!(body["id"], 0);
        assert_eq!(body["status"], "submitted");
        assert_eq!(body["hub_record_id"], 0);
        assert!(
            ok.headers()
                .iter()
                .any(|(k, v)| k == "IC-Certificate" && v.contains("version=2"))
        );
        let html = s.pages().serve("/", Some(&cert));
        assert!(String::from_utf8_lossy(html.body()).contains("Service 1"));
        let missing = s.pages().serve("/records/99", None);
        assert_eq!(missing.status_code().as_u16(), 404);
        let status = s.pages().serve("/status", None);
        let body: serde_json::Value = serde_json::from_slice(status.body()).expect("json");
        assert_eq!(body["records"], 1);
    });
    assert_eq!(rt.certified.get(), read_state(|s| s.certified_root()));
}

#[test]
fn should_read_confirmed_records_of_another_service_only_when_the_hub_agrees() {
    let rt = install();
    block_on(records::add_records(&rt, vec![model(1)])).expect("add");
    rt.seal(true);
    block_on(records::tick(&rt));
    // The other service's record is this one's (same hub), served as the other would.
    let mut remote = read_state(|s| s.view(0)).expect("0");
    rt.remote.borrow_mut().insert(0, remote.clone());
    let ok = block_on(records::read_confirmed(&rt, other_service(), 0)).expect("confirmed");
    assert_eq!(ok.header_hash, rt.hub.borrow().batches[0].header_hash);

    assert_eq!(
        block_on(records::read_confirmed(&rt, other_service(), 1)),
        Err(ReadError::UnknownRecord {
            service: other_service(),
            id: 1
        })
    );
    // A lie about the header hash, the content or the status is caught.
    remote.status = RecordStatus::Confirmed {
        height: 0,
        header_hash: Hash32([8; 32]),
        confirmed_at_nanos: 5,
    };
    rt.remote.borrow_mut().insert(1, remote.clone());
    assert!(matches!(
        block_on(records::read_confirmed(&rt, other_service(), 1)),
        Err(ReadError::HubMismatch { .. })
    ));
    let mut tampered = read_state(|s| s.view(0)).expect("0");
    tampered.body = model(9);
    rt.remote.borrow_mut().insert(2, tampered);
    assert_eq!(
        block_on(records::read_confirmed(&rt, other_service(), 2)),
        Err(ReadError::ContentHashMismatch)
    );
    remote.status = RecordStatus::Submitted;
    rt.remote.borrow_mut().insert(3, remote);
    assert!(matches!(
        block_on(records::read_confirmed(&rt, other_service(), 3)),
        Err(ReadError::NotConfirmed { .. })
    ));
}

#[test]
fn should_reject_bad_lifecycle_arguments() {
    let rt = Stub::new();
    reset_state();
    storage::reset_memory();
    assert!(lifecycle::init(&rt, Arg::Upgrade(None)).is_err());
    let bad = InitArgs {
        owner: owner(),
        hub: Principal::anonymous(),
        writers: vec![],
        kind: "k".into(),
        name: "n".into(),
        config: None,
    };
    assert!(lifecycle::init(&rt, Arg::Init(bad.clone())).is_err());
    let bad_config = InitArgs {
        hub: hub(),
        config: Some(ConfigUpdate {
            max_records_per_call: Some(0),
            ..ConfigUpdate::default()
        }),
        ..bad
    };
    assert!(lifecycle::init(&rt, Arg::Init(bad_config)).is_err());
}

#[test]
fn should_let_only_the_owner_manage_writers() {
    let rt = install();
    rt.caller.set(writer());
    assert_eq!(
        lifecycle::add_writer(&rt, stranger()),
        Err(AdminError::NotOwner { caller: writer() })
    );
    rt.caller.set(owner());
    lifecycle::add_writer(&rt, stranger()).expect("add");
    rt.caller.set(stranger());
    block_on(records::add_records(&rt, vec![model(1)])).expect("a writer now");
    rt.caller.set(owner());
    lifecycle::remove_writer(&rt, stranger()).expect("remove");
    rt.caller.set(stranger());
    assert!(block_on(records::add_records(&rt, vec![model(1)])).is_err());
}

#[test]
fn should_match_the_checked_in_candid_interface() {
    let generated = super::__export_service();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../candid/service.did");
    if std::env::var_os("UPDATE_CANDID").is_some() {
        std::fs::write(&path, &generated).expect("cannot write candid/service.did");
    }
    let checked_in = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    service_equal(
        CandidSource::Text(&generated),
        CandidSource::Text(&checked_in),
    )
    .unwrap_or_else(|e| {
        panic!(
            "candid/service.did differs from the generated interface \
             (regenerate with UPDATE_CANDID=1 cargo test -p service): {e}\n{generated}"
        )
    });
}

#[test]
fn should_match_candid_for_the_hand_written_body_encoding() {
    let bodies = vec![
        model(1),
        inference(2),
        RecordBody::Inference {
            model: String::new(),
            input_hash: Hash32([0; 32]),
            output: None,
            output_hash: Hash32([1; 32]),
            executor: "x".repeat(300),
        },
        RecordBody::Dataset {
            hash: Hash32([3; 32]),
            licence: "MIT".into(),
            source: "é".repeat(100),
        },
        RecordBody::Transaction {
            kind: "pay".into(),
            payload: stratros_confirmation::Blob(vec![7; 200]),
        },
    ];
    for b in bodies {
        assert_eq!(
            crate::encoding::candid_body(&b),
            candid::encode_one(&b).expect("encode"),
            "{b:?}"
        );
    }
}

#[test]
fn should_keep_records_pending_without_fee_credit_and_submit_them_after_funding() {
    let rt = install();
    rt.hub.borrow_mut().fee = 3;
    // The service's ledger account is empty: the top-up fails, the records stay pending.
    let views = block_on(records::add_records(&rt, vec![model(1), model(2)])).expect("stored");
    assert!(views.iter().all(|v| matches!(
        &v.status,
        RecordStatus::Pending { last_error: Some(e), .. } if e.contains("fee credit")
    )));
    let fees = read_state(|s| s.status().fees);
    assert!(
        fees.last_error
            .as_deref()
            .is_some_and(|e| e.contains("fund")),
        "{fees:?}"
    );
    assert_eq!(rt.hub.borrow().inputs.len(), 0);
    // The owner funds the service's account; the next tick tops up and submits.
    rt.hub.borrow_mut().balance = 10_000;
    let report = block_on(records::tick(&rt));
    assert_eq!(report.still_pending, 0, "{report:?}");
    let hub = rt.hub.borrow();
    assert_eq!(hub.inputs.len(), 2);
    // Target 1,000 records x 3; 2 records charged; two ledger fees paid.
    assert_eq!(hub.credit, 3_000 - 6);
    assert_eq!(hub.balance, 10_000 - 3_000 - 2 * LEDGER_FEE);
    drop(hub);
    let fees = read_state(|s| s.status().fees);
    assert_eq!(
        (fees.topped_up, fees.hub_credit, fees.last_error),
        (3_000, 2_994, None)
    );
}

#[test]
fn should_certify_every_page_as_ic_http_certification_does() {
    use ic_http_certification::{
        CERTIFICATE_EXPRESSION_HEADER_NAME, DefaultCelBuilder, DefaultResponseCertification,
        HttpCertification, HttpCertificationPath, HttpCertificationTree,
        HttpCertificationTreeEntry,
    };
    let rt = install();
    block_on(records::add_records(&rt, vec![model(1), inference(2)])).expect("add");
    rt.seal(true);
    block_on(records::tick(&rt));
    block_on(records::add_records(&rt, vec![model(3)])).expect("add");
    // The pages' certifications (computed from cached header hashes) equal the library's
    // own, computed from each served response: the trees have the same root.
    let cel = DefaultCelBuilder::response_only_certification()
        .with_response_certification(DefaultResponseCertification::response_header_exclusions(
            vec![],
        ))
        .build();
    let mut tree = HttpCertificationTree::default();
    read_state(|s| {
        let mut paths: Vec<(HttpCertificationPath, String)> = ["/", "/status"]
            .iter()
            .map(|p| (HttpCertificationPath::exact(*p), p.to_string()))
            .collect();
        for id in 0..3 {
            let url = format!("/records/{id}");
            paths.push((HttpCertificationPath::exact(url.clone()), url));
        }
        paths.push((HttpCertificationPath::wildcard(""), "/no/such/page".into()));
        for (path, url) in paths {
            let response = s.pages().serve(&url, None);
            assert!(
                response
                    .headers()
                    .iter()
                    .any(|(k, v)| k == CERTIFICATE_EXPRESSION_HEADER_NAME && *v == cel.to_string())
            );
            let certification =
                HttpCertification::response_only(&cel, &response, None).expect("certify");
            tree.insert(&HttpCertificationTreeEntry::new(path, certification));
        }
        assert_eq!(tree.root_hash(), s.certified_root());
    });
    assert_eq!(rt.certified.get(), tree.root_hash());
}

#[test]
fn should_learn_the_fee_and_top_up_before_the_first_submission() {
    let rt = install();
    assert_eq!(
        rt.scheduled.get(),
        Some(0),
        "init reads the hub's fee at once"
    );
    {
        let mut hub = rt.hub.borrow_mut();
        hub.fee = 3;
        hub.balance = 10_000;
    }
    // The init's timer: the fee is learned and the credit topped up, no record yet.
    block_on(records::tick(&rt));
    let fees = read_state(|s| s.status().fees);
    assert_eq!(
        (fees.fee_per_record, fees.ledger, fees.topped_up),
        (3, Some(fee_ledger()), 3_000)
    );
    // The first submission goes through at once: never refused for lack of credit.
    let views = block_on(records::add_records(&rt, vec![model(1), model(2)])).expect("add");
    assert!(views.iter().all(|v| v.status == RecordStatus::Submitted));
    assert_eq!(rt.hub.borrow().submit_calls, 1);
    assert_eq!(rt.hub.borrow().credit, 3_000 - 6);
}

#[test]
fn should_top_up_before_submitting_when_the_fee_is_not_known_yet() {
    let rt = install();
    {
        let mut hub = rt.hub.borrow_mut();
        hub.fee = 3;
        hub.balance = 10_000;
    }
    // `add_records` before the init's timer ran: it reads the fee and tops up first.
    let views = block_on(records::add_records(&rt, vec![model(1)])).expect("add");
    assert_eq!(views[0].status, RecordStatus::Submitted);
    assert_eq!(rt.hub.borrow().submit_calls, 1);
    assert_eq!(read_state(|s| s.status().fees.topped_up), 3_000);
}
