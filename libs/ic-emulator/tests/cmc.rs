//! The cycles minting canister model (`src/cmc.rs`): `create_canister` with cycles and a
//! subnet selection, as a canister calls it on mainnet. The caller is the probe canister
//! (`forward` makes any call with cycles attached); build it first with
//! `bash scripts/build.sh probe`.

use candid::{CandidType, Decode, Encode, Nat, Principal};
use ic_emulator::cmc::{
    BAD_REQUEST_CYCLES_PENALTY, CMC_ID, CanisterSettings, CreateCanisterArg, CreateCanisterError,
    SubnetFilter, SubnetSelection,
};
use ic_emulator::{Emulator, SubnetKind};
use serde::Deserialize;

const USER: Principal = Principal::from_slice(&[0xAA; 29]);
const CYCLES: u128 = 3_000_000_000_000;

/// The probe's `forward` argument and result (a mirror: the probe is a canister crate).
#[derive(CandidType)]
struct ForwardArgs {
    target: Principal,
    method: String,
    arg: Vec<u8>,
    cycles: u128,
    timeout_seconds: Option<u32>,
}

#[derive(CandidType, Deserialize, Debug)]
enum ForwardResult {
    Reply {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        refunded: u128,
    },
    Reject {
        code: u32,
        message: String,
        refunded: u128,
    },
    NotSent {
        reason: String,
    },
}

fn probe_wasm() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/probe.wasm");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): run `bash scripts/build.sh probe` first",
            path.display()
        )
    })
}

struct Setup {
    emu: Emulator,
    probe: Principal,
}

fn setup() -> Setup {
    let mut emu = Emulator::new();
    let probe = emu.create_canister();
    emu.install_canister(
        probe,
        &probe_wasm(),
        Encode!(&Some("init".to_string())).expect("encode"),
        None,
    )
    .expect("the probe installs");
    Setup { emu, probe }
}

impl Setup {
    /// The probe calls the CMC's `create_canister` with `cycles`.
    fn create(
        &mut self,
        arg: &CreateCanisterArg,
        cycles: u128,
    ) -> (Result<Principal, CreateCanisterError>, u128) {
        let forward = ForwardArgs {
            target: CMC_ID,
            method: "create_canister".into(),
            arg: Encode!(arg).expect("encode"),
            cycles,
            timeout_seconds: None,
        };
        let reply = self
            .emu
            .update_call(
                self.probe,
                USER,
                "forward",
                Encode!(&forward).expect("encode"),
            )
            .expect("forward replies");
        match Decode!(&reply, ForwardResult).expect("decode") {
            ForwardResult::Reply { bytes, refunded } => (
                Decode!(&bytes, Result<Principal, CreateCanisterError>).expect("CMC reply"),
                refunded,
            ),
            other => panic!("the CMC call did not reply: {other:?}"),
        }
    }
}

fn with_selection(selection: Option<SubnetSelection>) -> CreateCanisterArg {
    CreateCanisterArg {
        settings: None,
        subnet_type: None,
        subnet_selection: selection,
    }
}

#[test]
fn should_create_on_the_default_subnet_with_the_attached_cycles_minus_the_fee() {
    let mut s = setup();
    let before = s.emu.cycle_balance(s.probe);
    let (result, refunded) = s.create(&with_selection(None), CYCLES);
    let id = result.expect("created");
    assert_eq!(refunded, 0, "the CMC keeps every attached cycle");
    let app = s.emu.subnet_of_kind(SubnetKind::Application);
    assert_eq!(s.emu.get_subnet(id), Some(app));
    let status = s.emu.canister_status(id).expect("status");
    assert_eq!(
        status.cycles,
        CYCLES - ic_emulator::fees::CANISTER_CREATION_FEE
    );
    assert_eq!(
        status.controllers,
        vec![s.probe],
        "the caller controls it by default"
    );
    assert!(s.emu.cycle_balance(s.probe) < before - CYCLES + 1);
}

#[test]
fn should_place_the_canister_on_the_selected_subnet_or_subnet_type() {
    let mut s = setup();
    let fid = s.emu.subnet_of_kind(SubnetKind::Fiduciary);
    let app = s.emu.subnet_of_kind(SubnetKind::Application);
    let owner = Principal::self_authenticating(b"owner");
    let arg = CreateCanisterArg {
        settings: Some(CanisterSettings {
            controllers: Some(vec![s.probe, owner]),
            freezing_threshold: Some(Nat::from(1_000u32)),
            ..Default::default()
        }),
        subnet_type: None,
        subnet_selection: Some(SubnetSelection::Subnet { subnet: fid }),
    };
    let id = s.create(&arg, CYCLES).0.expect("created");
    assert_eq!(s.emu.get_subnet(id), Some(fid));
    let status = s.emu.canister_status(id).expect("status");
    assert_eq!(status.controllers, vec![s.probe, owner]);
    assert_eq!(status.freezing_threshold, 1_000);
    // The fiduciary subnet has 34 nodes: its creation fee is scaled up.
    let fid_fee = ic_emulator::fees::Fees { node_count: 34 }.create_canister();
    assert_eq!(status.cycles, CYCLES - fid_fee);

    let by_type = with_selection(Some(SubnetSelection::Filter(SubnetFilter {
        subnet_type: Some("fiduciary".into()),
    })));
    let id = s.create(&by_type, CYCLES).0.expect("created");
    assert_eq!(s.emu.get_subnet(id), Some(fid));
    let deprecated = CreateCanisterArg {
        subnet_type: Some("fiduciary".into()),
        ..with_selection(None)
    };
    let id = s.create(&deprecated, CYCLES).0.expect("created");
    assert_eq!(s.emu.get_subnet(id), Some(fid));
    let id = s
        .create(
            &with_selection(Some(SubnetSelection::Subnet { subnet: app })),
            CYCLES,
        )
        .0
        .expect("created");
    assert_eq!(s.emu.get_subnet(id), Some(app));
}

#[test]
fn should_refund_minus_the_penalty_when_creation_fails() {
    let mut s = setup();
    let nns = s.emu.subnet_of_kind(SubnetKind::Nns);
    let cases = [
        (
            with_selection(Some(SubnetSelection::Subnet { subnet: nns })),
            CYCLES,
            "not authorized",
        ),
        (
            with_selection(Some(SubnetSelection::Filter(SubnetFilter {
                subnet_type: Some("european".into()),
            }))),
            CYCLES,
            "does not exist",
        ),
        (
            CreateCanisterArg {
                subnet_type: Some("fiduciary".into()),
                ..with_selection(Some(SubnetSelection::Filter(SubnetFilter {
                    subnet_type: None,
                })))
            },
            CYCLES,
            "both",
        ),
        (with_selection(None), 1_000_000_000, "requires a fee"),
    ];
    for (arg, cycles, needle) in cases {
        let before = s.emu.cycle_balance(s.probe);
        let (result, refunded) = s.create(&arg, cycles);
        let Err(CreateCanisterError::Refunded {
            refund_amount,
            create_error,
        }) = result
        else {
            panic!("expected Refunded for {needle}, got {result:?}")
        };
        assert!(create_error.contains(needle), "{create_error}");
        let expected = cycles - BAD_REQUEST_CYCLES_PENALTY;
        assert_eq!(refund_amount, Nat::from(expected));
        assert_eq!(
            refunded, 0,
            "the refund comes as a deposit, not as unaccepted cycles"
        );
        // The probe paid the cycles and got the refund back (execution fees aside).
        let after = s.emu.cycle_balance(s.probe);
        assert!(
            before - after >= BAD_REQUEST_CYCLES_PENALTY && before - after < cycles,
            "{before} -> {after}"
        );
    }
}

#[test]
fn should_answer_the_subnet_queries_and_reject_unknown_methods() {
    let mut s = setup();
    let forward = |method: &str| ForwardArgs {
        target: CMC_ID,
        method: method.into(),
        arg: Encode!().expect("encode"),
        cycles: 0,
        timeout_seconds: None,
    };
    let reply = s
        .emu
        .update_call(
            s.probe,
            USER,
            "forward",
            Encode!(&forward("get_default_subnets")).expect("encode"),
        )
        .expect("replies");
    let ForwardResult::Reply { bytes, .. } = Decode!(&reply, ForwardResult).expect("decode") else {
        panic!("no reply")
    };
    let subnets = Decode!(&bytes, Vec<Principal>).expect("subnets");
    assert_eq!(subnets, vec![s.emu.subnet_of_kind(SubnetKind::Application)]);
    let reply = s
        .emu
        .update_call(
            s.probe,
            USER,
            "forward",
            Encode!(&forward("notify_top_up")).expect("encode"),
        )
        .expect("replies");
    assert!(matches!(
        Decode!(&reply, ForwardResult).expect("decode"),
        ForwardResult::Reject { code: 3, .. }
    ));
}
