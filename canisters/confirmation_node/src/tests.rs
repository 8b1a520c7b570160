//! Native unit tests of the node's logic, with a stub runtime.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use candid::Principal;
use candid_parser::utils::{CandidSource, service_equal};
use stratros_confirmation::{BatchHeader, Hash32, Scheme, header_hash, header_signing_digest};

use crate::lifecycle;
use crate::log::{COUNT_LABEL, LOG_LABEL, entry_hash};
use crate::runtime::{Runtime, ThresholdError};
use crate::signer::sign_header;
use crate::state::{read_state, reset_state};
use crate::types::{Arg, InitArgs, SignError, UpgradeArgs};

const FEE: u128 = 10_000_000_000;

fn hub() -> Principal {
    Principal::from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 1, 1])
}

fn node() -> Principal {
    Principal::from_slice(&[9, 9, 9, 9, 9, 9, 9, 9, 1, 1])
}

/// A stub IC. `sign` answers at once unless `gate` is closed, then it stays pending until the
/// gate opens; `sign_results` (if any) are answered first, in order.
struct Stub {
    scheme: Scheme,
    caller: Cell<Principal>,
    liquid: Cell<u128>,
    sign_calls: Cell<u32>,
    key_calls: Cell<u32>,
    gate_open: Rc<Cell<bool>>,
    sign_results: RefCell<Vec<Result<Vec<u8>, ThresholdError>>>,
    certified: Cell<[u8; 32]>,
}

impl Stub {
    fn new(scheme: Scheme) -> Self {
        Stub {
            scheme,
            caller: Cell::new(hub()),
            liquid: Cell::new(1_000 * FEE),
            sign_calls: Cell::new(0),
            key_calls: Cell::new(0),
            gate_open: Rc::new(Cell::new(true)),
            sign_results: RefCell::new(Vec::new()),
            certified: Cell::new([0; 32]),
        }
    }

    fn fake_signature(&self, digest: &Hash32) -> Vec<u8> {
        let n = self.scheme.signature_len();
        digest.0.iter().cycle().take(n).copied().collect()
    }
}

struct Gate(Rc<Cell<bool>>);

impl Future for Gate {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0.get() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Runtime for Stub {
    fn caller(&self) -> Principal {
        self.caller.get()
    }
    fn canister_id(&self) -> Principal {
        node()
    }
    fn time(&self) -> u64 {
        1_000
    }
    fn liquid_cycles(&self) -> u128 {
        self.liquid.get()
    }
    fn threshold_fee(&self, _: Scheme, key_name: &str) -> Result<u128, ThresholdError> {
        match key_name {
            "key_1" | "test_key_1" | "dfx_test_key" => Ok(FEE),
            _ => Err(ThresholdError::UnknownKey(key_name.to_string())),
        }
    }
    fn set_certified_data(&self, data: &[u8; 32]) {
        self.certified.set(*data);
    }
    async fn sign(&self, _: Scheme, _: &str, digest: &Hash32) -> Result<Vec<u8>, ThresholdError> {
        self.sign_calls.set(self.sign_calls.get() + 1);
        Gate(self.gate_open.clone()).await;
        let next = {
            let mut results = self.sign_results.borrow_mut();
            (!results.is_empty()).then(|| results.remove(0))
        };
        next.unwrap_or_else(|| Ok(self.fake_signature(digest)))
    }
    async fn public_key(&self, scheme: Scheme, _: &str) -> Result<Vec<u8>, ThresholdError> {
        self.key_calls.set(self.key_calls.get() + 1);
        Ok(vec![2; scheme.public_key_len()])
    }
}

fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match poll_once(f.as_mut()) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the future is waiting on a closed gate"),
    }
}

fn install(scheme: Scheme) -> Stub {
    let rt = Stub::new(scheme);
    lifecycle::init(
        &rt,
        Arg::Init(InitArgs {
            scheme,
            key_name: "test_key_1".into(),
            hub: hub(),
        }),
    )
    .expect("valid init argument");
    rt
}

fn header(height: u64, prev: Hash32, root: u8) -> BatchHeader {
    BatchHeader {
        hub: hub(),
        height,
        prev_header_hash: prev,
        merkle_root: Hash32([root; 32]),
        leaf_count: 1,
        first_record_id: height,
        last_record_id: height,
        start_time_nanos: 10,
        end_time_nanos: 20,
        quorum_policy_hash: Hash32([7; 32]),
    }
}

#[test]
fn should_sign_the_domain_separated_digest_of_the_header() {
    for scheme in Scheme::ALL {
        let rt = install(scheme);
        let h = header(0, Hash32::ZERO, 1);
        let r = block_on(sign_header(&rt, h.clone())).expect("signs");
        let digest = header_signing_digest(scheme, &node(), &h);
        assert_eq!(r.confirmation.signature.0, rt.fake_signature(&digest));
        assert_eq!(r.confirmation.scheme, scheme);
        assert_eq!(r.confirmation.node, node());
        assert_eq!(r.confirmation.key_name, "test_key_1");
        assert_eq!(r.confirmation.public_key.len(), scheme.public_key_len());
        assert_eq!(r.header_hash, header_hash(&h));
        assert_eq!((r.log_index, r.newly_signed), (0, true));
        reset_state();
        crate::storage::reset_memory();
    }
}

#[test]
fn should_refuse_caller_that_is_not_the_hub() {
    let rt = install(Scheme::EcdsaSecp256k1);
    let stranger = Principal::from_slice(&[42; 10]);
    rt.caller.set(stranger);
    let err = block_on(sign_header(&rt, header(0, Hash32::ZERO, 1))).unwrap_err();
    assert_eq!(
        err,
        SignError::NotHub {
            caller: stranger,
            hub: hub()
        }
    );
    assert_eq!(rt.sign_calls.get(), 0);
}

#[test]
fn should_refuse_header_of_another_hub() {
    let rt = install(Scheme::EcdsaSecp256k1);
    let mut h = header(0, Hash32::ZERO, 1);
    h.hub = node();
    let err = block_on(sign_header(&rt, h)).unwrap_err();
    assert_eq!(
        err,
        SignError::WrongHub {
            header_hub: node(),
            hub: hub()
        }
    );
}

#[test]
fn should_refuse_second_header_for_same_height() {
    let rt = install(Scheme::SchnorrBip340);
    let first = header(3, Hash32::ZERO, 1);
    let signed = block_on(sign_header(&rt, first.clone())).expect("signs");
    let err = block_on(sign_header(&rt, header(3, Hash32::ZERO, 2))).unwrap_err();
    match err {
        SignError::AlreadySignedOtherHeader {
            log_index,
            signed: evidence,
        } => {
            assert_eq!(log_index, 0);
            assert_eq!(evidence.header, first);
            assert_eq!(evidence.signature, signed.confirmation.signature);
        }
        other => panic!("expected AlreadySignedOtherHeader, got {other:?}"),
    }
    assert_eq!(rt.sign_calls.get(), 1);
    assert_eq!(read_state(|s| s.log_len()), 1);
}

#[test]
fn should_return_stored_signature_for_same_header_without_threshold_call() {
    let rt = install(Scheme::SchnorrEd25519);
    let h = header(0, Hash32::ZERO, 1);
    let first = block_on(sign_header(&rt, h.clone())).expect("signs");
    // Even without cycles: nothing is paid for a repeat.
    rt.liquid.set(0);
    let again = block_on(sign_header(&rt, h)).expect("idempotent");
    assert_eq!(again.confirmation, first.confirmation);
    assert_eq!(again.log_index, first.log_index);
    assert!(!again.newly_signed);
    assert_eq!(rt.sign_calls.get(), 1);
    assert_eq!(rt.key_calls.get(), 1);
}

#[test]
fn should_refuse_concurrent_request_for_height_being_signed() {
    let rt = install(Scheme::Bls12_381);
    rt.gate_open.set(false);
    let h = header(0, Hash32::ZERO, 1);
    let mut first = pin!(sign_header(&rt, h.clone()));
    assert!(poll_once(first.as_mut()).is_pending());
    assert_eq!(rt.sign_calls.get(), 1);
    // Same header and another header: both refused while the first is in flight.
    for other in [h.clone(), header(0, Hash32::ZERO, 2)] {
        let err = block_on(sign_header(&rt, other)).unwrap_err();
        assert_eq!(
            err,
            SignError::SigningInProgress {
                height: 0,
                header_hash: header_hash(&h)
            }
        );
    }
    assert_eq!(rt.sign_calls.get(), 1);
    rt.gate_open.set(true);
    let Poll::Ready(result) = poll_once(first.as_mut()) else {
        panic!("the gate is open")
    };
    assert!(result.expect("signs").newly_signed);
}

#[test]
fn should_release_reservation_and_allow_retry_when_threshold_call_fails() {
    let rt = install(Scheme::EcdsaSecp256k1);
    rt.sign_results
        .borrow_mut()
        .push(Err(ThresholdError::Rejected {
            code: 6,
            message: "outcome unknown".into(),
        }));
    let h = header(0, Hash32::ZERO, 1);
    let err = block_on(sign_header(&rt, h.clone())).unwrap_err();
    assert_eq!(
        err,
        SignError::ThresholdCallFailed {
            reject_code: Some(6),
            message: "outcome unknown".into()
        }
    );
    assert_eq!(read_state(|s| s.log_len()), 0);
    let retried = block_on(sign_header(&rt, h)).expect("a retry signs");
    assert_eq!(retried.log_index, 0);
    assert_eq!(rt.sign_calls.get(), 2);
}

#[test]
fn should_release_reservation_when_signing_future_is_dropped() {
    let rt = install(Scheme::EcdsaSecp256k1);
    rt.gate_open.set(false);
    let h = header(0, Hash32::ZERO, 1);
    {
        let mut f = Box::pin(sign_header(&rt, h.clone()));
        assert!(poll_once(f.as_mut()).is_pending());
    }
    rt.gate_open.set(true);
    assert!(block_on(sign_header(&rt, h)).is_ok());
}

#[test]
fn should_refuse_with_insufficient_cycles_before_calling() {
    let rt = install(Scheme::SchnorrBip340);
    rt.liquid.set(FEE - 1);
    let h = header(0, Hash32::ZERO, 1);
    let err = block_on(sign_header(&rt, h.clone())).unwrap_err();
    assert_eq!(
        err,
        SignError::InsufficientCycles {
            available: FEE - 1,
            required: FEE
        }
    );
    assert_eq!(rt.sign_calls.get(), 0);
    // The slot was not kept.
    rt.liquid.set(FEE);
    assert!(block_on(sign_header(&rt, h)).is_ok());
}

#[test]
fn should_refuse_header_that_forks_the_signed_chain() {
    let rt = install(Scheme::EcdsaSecp256k1);
    let h0 = header(0, Hash32::ZERO, 1);
    block_on(sign_header(&rt, h0.clone())).expect("signs");
    let fork = header(1, Hash32([5; 32]), 2);
    let err = block_on(sign_header(&rt, fork)).unwrap_err();
    assert_eq!(
        err,
        SignError::ChainMismatch {
            signed_height: 0,
            signed_header_hash: header_hash(&h0)
        }
    );
    let h1 = header(1, header_hash(&h0), 2);
    block_on(sign_header(&rt, h1.clone())).expect("extends");
    // Below a signed header: must be the one it links.
    let h3 = header(3, Hash32([8; 32]), 3);
    block_on(sign_header(&rt, h3)).expect("a gap is fine");
    let h2 = header(2, header_hash(&h1), 4);
    let err = block_on(sign_header(&rt, h2)).unwrap_err();
    assert!(matches!(
        err,
        SignError::ChainMismatch {
            signed_height: 3,
            ..
        }
    ));
}

#[test]
fn should_reject_unknown_key_and_wrong_lifecycle_arguments() {
    let rt = Stub::new(Scheme::EcdsaSecp256k1);
    let args = |key_name: &str, hub| InitArgs {
        scheme: Scheme::EcdsaSecp256k1,
        key_name: key_name.into(),
        hub,
    };
    assert!(lifecycle::init(&rt, Arg::Init(args("nope", hub()))).is_err());
    assert!(lifecycle::init(&rt, Arg::Init(args("key_1", Principal::anonymous()))).is_err());
    assert!(lifecycle::init(&rt, Arg::Upgrade(None)).is_err());
    lifecycle::init(&rt, Arg::Init(args("key_1", hub()))).expect("valid");
    reset_state();
    assert!(lifecycle::post_upgrade(&rt, Some(Arg::Init(args("key_1", hub())))).is_err());
}

#[test]
fn should_keep_log_and_certified_root_across_upgrade() {
    let rt = install(Scheme::SchnorrEd25519);
    let h0 = header(0, Hash32::ZERO, 1);
    let first = block_on(sign_header(&rt, h0.clone())).expect("signs");
    let h1 = header(1, header_hash(&h0), 2);
    block_on(sign_header(&rt, h1)).expect("signs");
    let root = rt.certified.get();
    assert_eq!(root, read_state(|s| s.certified_root()));

    reset_state();
    rt.certified.set([0; 32]);
    lifecycle::post_upgrade(&rt, None).expect("upgrades");
    assert_eq!(rt.certified.get(), root);
    assert_eq!(read_state(|s| s.log_len()), 2);
    // Same header: stored signature, no new call; other header: refused.
    let again = block_on(sign_header(&rt, h0)).expect("idempotent");
    assert_eq!(again.confirmation.signature, first.confirmation.signature);
    assert!(matches!(
        block_on(sign_header(&rt, header(0, Hash32::ZERO, 9))),
        Err(SignError::AlreadySignedOtherHeader { .. })
    ));
    assert_eq!(rt.sign_calls.get(), 2);
    assert_eq!(rt.key_calls.get(), 1, "the public key survives the upgrade");
}

#[test]
fn should_move_to_new_hub_on_upgrade() {
    let rt = install(Scheme::EcdsaSecp256k1);
    let new_hub = Principal::from_slice(&[77; 10]);
    reset_state();
    lifecycle::post_upgrade(
        &rt,
        Some(Arg::Upgrade(Some(UpgradeArgs { hub: Some(new_hub) }))),
    )
    .expect("upgrades");
    assert_eq!(read_state(|s| s.hub()), new_hub);
    assert!(matches!(
        block_on(sign_header(&rt, header(0, Hash32::ZERO, 1))),
        Err(SignError::NotHub { .. })
    ));
}

#[test]
fn should_certify_every_entry_and_the_count() {
    let rt = install(Scheme::EcdsaSecp256k1);
    let mut prev = Hash32::ZERO;
    for height in 0..5 {
        let h = header(height, prev, height as u8);
        prev = header_hash(&h);
        block_on(sign_header(&rt, h)).expect("signs");
    }
    read_state(|s| {
        let tree = s.certified_log().witness(1, 4);
        assert_eq!(tree.digest(), rt.certified.get());
        assert_eq!(
            tree.lookup_path([COUNT_LABEL]),
            ic_certification::LookupResult::Found(&5u64.to_be_bytes()[..])
        );
        for entry in s.entries(1, 4) {
            let hash = entry_hash(&entry);
            assert_eq!(
                tree.lookup_path([LOG_LABEL, &entry.index.to_be_bytes()[..]]),
                ic_certification::LookupResult::Found(&hash[..])
            );
        }
        let empty = s.certified_log().witness(5, 5);
        assert_eq!(empty.digest(), rt.certified.get());
    });
}

#[test]
fn should_match_the_checked_in_candid_interface() {
    let generated = super::__export_service();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../candid/confirmation_node.did");
    if std::env::var_os("UPDATE_CANDID").is_some() {
        std::fs::write(&path, &generated).expect("cannot write candid/confirmation_node.did");
    }
    let checked_in = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    service_equal(
        CandidSource::Text(&generated),
        CandidSource::Text(&checked_in),
    )
    .unwrap_or_else(|e| {
        panic!(
            "candid/confirmation_node.did differs from the generated interface \
             (regenerate with UPDATE_CANDID=1 cargo test -p confirmation_node): {e}\n{generated}"
        )
    });
}
