//! The CLI's copies of the canisters' Candid types encode values that the checked-in `.did`
//! files accept (the replies are decoded by the demo and the tests on the real Wasm).

use candid::types::Type;
use candid::{CandidType, IDLArgs, Nat, Principal, TypeEnv};
use candid_parser::utils::CandidSource;
use icrc_ledger_types::icrc1::account::Account;
use std::path::Path;
use stratros::types::{
    Arg as HubArg, ConfigUpdate, InitArgs as HubInitArgs, LedgerArg, LedgerInitArgs,
    LedgerUpgradeArgs, ListBatchesArgs, NodeArg, NodeInitArgs, NodeUpgradeArgs, UpgradeArgs,
};
use stratros_confirmation::{PolicyNode, QuorumRule, Scheme};

fn did(name: &str) -> (TypeEnv, Type) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../candid/{name}.did"));
    let (env, actor) = CandidSource::File(&path).load().expect("loads");
    let actor = actor.expect("has a service");
    (env, actor)
}

fn accepts(did_name: &str, type_name: &str, value: &impl CandidType) {
    let (env, _) = did(did_name);
    let ty = env.find_type(type_name).expect("type exists").clone();
    let bytes = candid::encode_one(value).expect("encodes");
    IDLArgs::from_bytes_with_types(&bytes, &env, &[ty])
        .unwrap_or_else(|e| panic!("{did_name}.did {type_name} rejects the CLI's value: {e}"));
}

#[test]
fn node_arguments_match_the_did() {
    let hub = Principal::self_authenticating(b"hub");
    for scheme in Scheme::ALL {
        accepts(
            "confirmation_node",
            "Arg",
            &NodeArg::Init(NodeInitArgs {
                scheme,
                key_name: "dfx_test_key".into(),
                hub,
            }),
        );
    }
    accepts("confirmation_node", "Arg", &NodeArg::Upgrade(None));
    accepts(
        "confirmation_node",
        "Arg",
        &NodeArg::Upgrade(Some(NodeUpgradeArgs { hub: Some(hub) })),
    );
}

#[test]
fn ledger_arguments_match_the_did() {
    let owner = Principal::self_authenticating(b"owner");
    accepts(
        "icrc_ledger",
        "LedgerArg",
        &LedgerArg::Init(LedgerInitArgs {
            token_name: "ckBTC".into(),
            token_symbol: "ckBTC".into(),
            decimals: 8,
            transfer_fee: Nat::from(10u8),
            minting_account: Account::from(owner),
            initial_balances: vec![(Account::from(owner), Nat::from(5u8))],
            max_memo_length: Some(32),
        }),
    );
    accepts(
        "icrc_ledger",
        "LedgerArg",
        &LedgerArg::Upgrade(Some(LedgerUpgradeArgs::default())),
    );
}

#[test]
fn hub_arguments_match_the_did() {
    let node = Principal::self_authenticating(b"node");
    let config = ConfigUpdate {
        max_batch_records: Some(7),
        max_batch_age_seconds: Some(10),
        max_records_per_call: Some(1_000),
        max_payload_bytes: Some(1_024),
        max_kind_bytes: Some(64),
        max_reference_bytes: Some(256),
        call_timeout_seconds: Some(30),
        retry_base_seconds: Some(5),
        retry_max_seconds: Some(60),
    };
    accepts(
        "confirmation",
        "Arg",
        &HubArg::Init(HubInitArgs {
            submitters: vec![node],
            nodes: vec![PolicyNode {
                node,
                scheme: Scheme::SchnorrEd25519,
                key_name: "dfx_test_key".into(),
            }],
            quorum_rule: Some(QuorumRule::KOfN { k: 1 }),
            config: Some(config.clone()),
            ..Default::default()
        }),
    );
    accepts("confirmation", "Arg", &HubArg::Init(HubInitArgs::default()));
    accepts("confirmation", "Arg", &HubArg::Upgrade(None));
    accepts(
        "confirmation",
        "Arg",
        &HubArg::Upgrade(Some(UpgradeArgs {
            config: Some(config),
            ..Default::default()
        })),
    );
    accepts(
        "confirmation",
        "ListBatchesArgs",
        &ListBatchesArgs {
            start: 0,
            limit: 10,
        },
    );
}

#[test]
fn staking_arguments_match_the_did() {
    use stratros_staking_api::{Arg, AssetArg, InitArgs, UpgradeArgs};
    let ledger = Principal::self_authenticating(b"ledger");
    accepts(
        "staking",
        "Arg",
        &Arg::Init(InitArgs {
            restaking: None,
            unbonding_seconds: Some(3 * 24 * 3600),
            reward_period_seconds: Some(10 * 24 * 3600),
            slash_destination: None,
            assets: vec![AssetArg {
                ledger,
                min_stake: Nat::from(1_000u32),
            }],
            reconcile_interval_seconds: Some(60),
        }),
    );
    accepts(
        "staking",
        "Arg",
        &Arg::Upgrade(Some(UpgradeArgs::default())),
    );
}

#[test]
fn hub_replies_match_the_did() {
    use stratros::types::{
        AdminError, Batch, BatchError, BatchPage, Config, NodeProgress, ReceiptError, Status,
        SubmitError, Submitted,
    };
    use stratros_confirmation::hub::FeeStatus;
    use stratros_confirmation::{BatchHeader, Hash32, PolicyError, QuorumPolicy};
    let p = Principal::self_authenticating(b"p");
    accepts(
        "confirmation",
        "Submitted",
        &Submitted {
            id: 3,
            duplicate: true,
        },
    );
    for e in [
        SubmitError::Unauthorized { caller: p },
        SubmitError::EmptySubmission,
        SubmitError::TooManyRecords { max: 1, got: 2 },
        SubmitError::Malformed {
            message: "x".into(),
        },
        SubmitError::RecordTooLarge {
            index: 0,
            field: "payload".into(),
            max: 1,
            got: 2,
        },
    ] {
        accepts("confirmation", "SubmitError", &e);
    }
    for e in [
        ReceiptError::UnknownRecord { id: 1, next_id: 0 },
        ReceiptError::NotSealed { id: 1 },
        ReceiptError::NotConfirmed {
            height: 0,
            confirmations: 1,
            nodes: 4,
        },
        ReceiptError::CertificateUnavailable,
    ] {
        accepts("confirmation", "ReceiptError", &e);
    }
    for e in [
        AdminError::NotController { caller: p },
        AdminError::InvalidPolicy(PolicyError::NoNodes),
        AdminError::UnknownNode(p),
        AdminError::NothingPending,
        AdminError::NoValidPolicy,
    ] {
        accepts("confirmation", "AdminError", &e);
    }
    accepts(
        "confirmation",
        "BatchError",
        &BatchError::UnknownHeight {
            height: 1,
            next_height: 0,
        },
    );
    let header = BatchHeader {
        hub: p,
        height: 0,
        prev_header_hash: Hash32::ZERO,
        merkle_root: Hash32([1; 32]),
        leaf_count: 1,
        first_record_id: 0,
        last_record_id: 0,
        start_time_nanos: 1,
        end_time_nanos: 2,
        quorum_policy_hash: Hash32([3; 32]),
    };
    let batch = Batch {
        header,
        header_hash: Hash32([4; 32]),
        tree_offset: 0,
        sealed_at_nanos: 2,
        seal_instructions: 10,
        seal_hash_instructions: 5,
        confirmed_at_nanos: None,
        nodes: vec![NodeProgress {
            node: p,
            scheme: Scheme::Bls12_381,
            key_name: "dfx_test_key".into(),
            confirmation: None,
            attempts: 1,
            next_attempt_nanos: 3,
            last_error: Some("x".into()),
            refused: false,
        }],
    };
    accepts("confirmation", "Batch", &batch);
    accepts(
        "confirmation",
        "BatchPage",
        &BatchPage {
            batches: vec![batch],
            total: 1,
        },
    );
    accepts(
        "confirmation",
        "Status",
        &Status {
            hub: p,
            pending_records: 0,
            next_record_id: 0,
            batches: 0,
            open_batches: 0,
            last_header_hash: Hash32::ZERO,
            quorum: QuorumPolicy::one_of_each_scheme(Vec::new()),
            quorum_valid: false,
            submitters: 0,
            config: Config {
                max_batch_records: 1,
                max_batch_age_seconds: 1,
                max_records_per_call: 1,
                max_payload_bytes: 1,
                max_kind_bytes: 1,
                max_reference_bytes: 1,
                call_timeout_seconds: 1,
                retry_base_seconds: 1,
                retry_max_seconds: 1,
            },
            cycles: 1,
            registrars: vec![p],
            fees: FeeStatus {
                config: None,
                credits: 1,
                collected: 1,
                forwarded: 1,
                forward_ledger_fees: 1,
                forward: None,
                events: 1,
            },
        },
    );
}
