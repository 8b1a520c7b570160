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
                withdrawn: 1,
                withdrawals_pending: 1,
                events: 1,
            },
        },
    );
}

#[test]
fn registry_types_match_the_did() {
    use stratros::types::registry::{
        Arg, ConfigUpdate, CreateError, InitArgs, InstanceProgress, InstanceStatus, ModuleError,
        Placement, RegistryStatus, Rollout, RolloutError, RolloutState, ServiceFilter, ServiceInfo,
        ServicePage, ServiceState, StartUploadArgs, Step, UpgradeArgs, UploadChunkArgs,
        UploadProgress, VersionInfo,
    };
    let p = Principal::self_authenticating(b"p");
    let bytes = || serde_bytes::ByteBuf::from(vec![1u8; 32]);
    accepts(
        "registry",
        "Arg",
        &Arg::Init(InitArgs {
            hub: p,
            cmc: Some(p),
            kinds: vec!["ai-module".into()],
            config: Some(ConfigUpdate {
                service_cycles: Some(1),
                reserve_cycles: Some(2),
                max_module_bytes: Some(3),
                retry_seconds: Some(4),
                cycles_refresh_seconds: Some(5),
            }),
        }),
    );
    accepts(
        "registry",
        "Arg",
        &Arg::Upgrade(Some(UpgradeArgs::default())),
    );
    accepts("registry", "Arg", &Arg::Upgrade(None));
    for placement in [
        Placement::OwnSubnet,
        Placement::Subnet(p),
        Placement::SubnetType("fiduciary".into()),
    ] {
        accepts("registry", "Placement", &placement);
    }
    accepts(
        "registry",
        "StartUploadArgs",
        &StartUploadArgs {
            kind: "k".into(),
            sha256: bytes(),
            size: 3,
        },
    );
    accepts(
        "registry",
        "UploadChunkArgs",
        &UploadChunkArgs {
            upload: 1,
            offset: 0,
            bytes: bytes(),
        },
    );
    accepts(
        "registry",
        "UploadProgress",
        &UploadProgress {
            upload: 1,
            received: 2,
            size: 3,
        },
    );
    let version = VersionInfo {
        kind: "k".into(),
        version: 1,
        hash: bytes(),
        size: 3,
        published_at_nanos: 4,
    };
    accepts("registry", "VersionInfo", &version);
    accepts("registry", "ServiceFilter", &ServiceFilter::default());
    let states = [
        ServiceState::Installing,
        ServiceState::Registering,
        ServiceState::Active,
        ServiceState::Upgrading { to_version: 2 },
        ServiceState::Failed {
            step: Step::Register,
            error: "x".into(),
            attempts: 1,
        },
        ServiceState::Deleted,
    ];
    let info = |state: ServiceState| ServiceInfo {
        canister: p,
        kind: "k".into(),
        name: "n".into(),
        owner: p,
        version: 1,
        module_hash: bytes(),
        placement: Placement::OwnSubnet,
        subnet: Some(p),
        state,
        initial_cycles: 1,
        cycles: Some(2),
        cycles_checked_at_nanos: None,
        created_at_nanos: 3,
        updated_at_nanos: 4,
    };
    for s in states.clone() {
        accepts("registry", "ServiceInfo", &info(s));
    }
    accepts(
        "registry",
        "ServicePage",
        &ServicePage {
            services: vec![info(ServiceState::Active)],
            more: false,
        },
    );
    for e in [
        CreateError::NotAuthorized { caller: p },
        CreateError::UnknownKind { kind: "k".into() },
        CreateError::NoVersion { kind: "k".into() },
        CreateError::InvalidName { reason: "r".into() },
        CreateError::PlacementUnavailable { reason: "r".into() },
        CreateError::InsufficientCycles {
            balance: 1,
            required: 2,
        },
        CreateError::Busy,
        CreateError::UnknownService { canister: p },
        CreateError::CreateFailed {
            reject_code: Some(1),
            message: "m".into(),
        },
        CreateError::OutcomeUnknown {
            op: 1,
            message: "m".into(),
        },
        CreateError::StepFailed {
            canister: p,
            step: Step::Install,
            message: "m".into(),
        },
        CreateError::NothingToRetry {
            state: ServiceState::Active,
        },
    ] {
        accepts("registry", "CreateError", &e);
    }
    for e in [
        ModuleError::NotController { caller: p },
        ModuleError::UnknownKind { kind: "k".into() },
        ModuleError::UnknownUpload { upload: 1 },
        ModuleError::EmptyModule,
        ModuleError::TooLarge { size: 2, max: 1 },
        ModuleError::InvalidHash,
        ModuleError::OutOfOrder {
            expected_offset: 1,
            got: 2,
        },
        ModuleError::BeyondSize { end: 2, size: 1 },
        ModuleError::ChunkMismatch { offset: 1 },
        ModuleError::Incomplete {
            received: 1,
            size: 2,
        },
        ModuleError::HashMismatch {
            expected: bytes(),
            actual: bytes(),
        },
        ModuleError::NotWasm,
        ModuleError::AlreadyPublished {
            kind: "k".into(),
            version: 1,
        },
    ] {
        accepts("registry", "ModuleError", &e);
    }
    for state in [
        RolloutState::Running,
        RolloutState::Done,
        RolloutState::Failed {
            canister: p,
            error: "e".into(),
        },
    ] {
        accepts(
            "registry",
            "Rollout",
            &Rollout {
                id: 1,
                kind: "k".into(),
                version: 2,
                module_hash: bytes(),
                state,
                instances: [
                    InstanceStatus::Pending,
                    InstanceStatus::Upgrading,
                    InstanceStatus::Done,
                    InstanceStatus::Failed { error: "e".into() },
                    InstanceStatus::Skipped { reason: "r".into() },
                ]
                .into_iter()
                .map(|status| InstanceProgress {
                    canister: p,
                    from_version: 1,
                    status,
                    instructions: 5,
                })
                .collect(),
                started_at_nanos: 1,
                finished_at_nanos: Some(2),
            },
        );
    }
    for e in [
        RolloutError::NotController { caller: p },
        RolloutError::UnknownKind { kind: "k".into() },
        RolloutError::UnknownVersion {
            kind: "k".into(),
            version: 1,
        },
        RolloutError::InProgress {
            kind: "k".into(),
            version: 1,
        },
        RolloutError::NothingToResume,
    ] {
        accepts("registry", "RolloutError", &e);
    }
    accepts(
        "registry",
        "RegistryStatus",
        &RegistryStatus {
            hub: p,
            cmc: Some(p),
            config: stratros::types::registry::Config {
                service_cycles: 1,
                reserve_cycles: 1,
                max_module_bytes: 1,
                retry_seconds: 1,
                cycles_refresh_seconds: 1,
            },
            kinds: 1,
            services: 2,
            cycles: 3,
            events: 4,
        },
    );
}

#[test]
fn service_types_match_the_did() {
    use stratros::types::service::{
        AddError, Arg, Config, ConfigUpdate, FeeStatus, InitArgs, ReceiptRelayError, RecordBody,
        RecordStatus, RecordView, ServiceStatus, TickReport, UpgradeArgs,
    };
    use stratros_confirmation::{Blob, Hash32};
    let p = Principal::self_authenticating(b"p");
    accepts(
        "service",
        "Arg",
        &Arg::Init(InitArgs {
            owner: p,
            hub: p,
            writers: vec![p],
            kind: "ai-module".into(),
            name: "Service 1".into(),
            config: Some(ConfigUpdate {
                max_records_per_call: Some(1),
                max_field_bytes: Some(2),
                retry_seconds: Some(3),
                credit_records: Some(4),
            }),
        }),
    );
    accepts("service", "Arg", &Arg::Upgrade(None));
    accepts(
        "service",
        "Arg",
        &Arg::Upgrade(Some(UpgradeArgs::default())),
    );
    let bodies = [
        RecordBody::ModelAttestation {
            model_id: "m".into(),
            version: "1".into(),
            weights_hash: Hash32([1; 32]),
            metadata: "{}".into(),
        },
        RecordBody::Dataset {
            hash: Hash32([2; 32]),
            licence: "l".into(),
            source: "s".into(),
        },
        RecordBody::Inference {
            model: "m".into(),
            input_hash: Hash32([3; 32]),
            output: Some(Blob(vec![1])),
            output_hash: Hash32([4; 32]),
            executor: "e".into(),
        },
        RecordBody::Transaction {
            kind: "k".into(),
            payload: Blob(vec![2]),
        },
    ];
    let statuses = [
        RecordStatus::Pending {
            attempts: 1,
            last_error: Some("e".into()),
        },
        RecordStatus::Submitted,
        RecordStatus::Sealed { height: 1 },
        RecordStatus::Confirmed {
            height: 1,
            header_hash: Hash32([5; 32]),
            confirmed_at_nanos: 2,
        },
        RecordStatus::Refused { reason: "r".into() },
    ];
    for (body, status) in bodies.into_iter().zip(statuses.clone()) {
        accepts(
            "service",
            "RecordView",
            &RecordView {
                id: 1,
                author: p,
                created_at_nanos: 2,
                body,
                content_hash: Hash32([6; 32]),
                reference: "rec-1".into(),
                hub: p,
                hub_record_id: Some(3),
                status,
            },
        );
    }
    for e in [
        AddError::NotWriter { caller: p },
        AddError::EmptyBatch,
        AddError::TooManyRecords { max: 1, got: 2 },
        AddError::FieldTooLarge {
            index: 0,
            field: "f".into(),
            max: 1,
            got: 2,
        },
    ] {
        accepts("service", "AddError", &e);
    }
    for e in [
        ReceiptRelayError::UnknownRecord { id: 1 },
        ReceiptRelayError::NotConfirmed {
            status: RecordStatus::Submitted,
        },
        ReceiptRelayError::Hub {
            message: "m".into(),
        },
        ReceiptRelayError::CallFailed {
            reject_code: None,
            message: "m".into(),
        },
    ] {
        accepts("service", "ReceiptRelayError", &e);
    }
    accepts(
        "service",
        "ServiceStatus",
        &ServiceStatus {
            kind: "k".into(),
            name: "n".into(),
            owner: p,
            hub: p,
            writers: vec![p],
            config: Config {
                max_records_per_call: 1,
                max_field_bytes: 2,
                retry_seconds: 3,
            },
            records: 1,
            pending: 1,
            submitted: 1,
            sealed: 1,
            confirmed: 1,
            refused: 1,
            scan_height: 1,
            fees: FeeStatus {
                ledger: Some(p),
                fee_per_record: 1,
                hub_credit: 2,
                credit_records: 3,
                topped_up: 4,
                top_up_in_progress: Some(5),
                last_error: None,
            },
            subnet: Some(p),
        },
    );
    accepts(
        "service",
        "TickReport",
        &TickReport {
            submitted: 1,
            still_pending: 2,
            newly_confirmed: 3,
            errors: vec!["e".into()],
        },
    );
}
