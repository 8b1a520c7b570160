//! Registry scenarios on the real Wasm, written against `ic_testkit::IcBackend`: they run on
//! the emulator always and on PocketIC too when `POCKET_IC_BIN` is set. Services are
//! created on the registry's own subnet here (the management canister path); placement
//! through the cycles minting canister is in `tests/emulator.rs`.
//!
//! Build first: `bash scripts/build.sh registry service confirmation confirmation_node`.

mod common;

use std::time::Duration;

use candid::Principal;
use common::*;
use ic_testkit::{IcBackend, IcBackendExt, backends_for_test};
use registry::{
    AdminError, ConfigUpdate, CreateError, Incomplete, InstanceStatus, ModuleError, Placement,
    Rollout, RolloutError, RolloutState, ServiceFilter, ServicePage, ServiceState, Step,
};
use sha2::{Digest, Sha256};

fn incomplete<B: IcBackend + ?Sized>(s: &Suite<B>) -> Incomplete {
    s.registry_query("list_incomplete", ())
}

#[test]
fn should_refuse_unknown_kinds_and_bad_modules_with_typed_errors() {
    for ic in backends_for_test("should_refuse_unknown_kinds_and_bad_modules_with_typed_errors") {
        let s = Suite::new(ic, None);
        // Unknown kind: for uploads and for creation.
        assert_eq!(
            s.publish("no-such-kind", &s.service_wasm),
            Err(ModuleError::UnknownKind {
                kind: "no-such-kind".into()
            })
        );
        assert_eq!(
            s.create("no-such-kind", "x", Placement::OwnSubnet),
            Err(CreateError::UnknownKind {
                kind: "no-such-kind".into()
            })
        );
        // A known kind without a version.
        assert_eq!(
            s.create(KIND, "x", Placement::OwnSubnet),
            Err(CreateError::NoVersion { kind: KIND.into() })
        );
        // Not Wasm, hash mismatch, empty, oversized.
        assert_eq!(
            s.publish(KIND, b"#!/bin/sh\necho not a module\n"),
            Err(ModuleError::NotWasm)
        );
        assert!(matches!(
            s.publish_claiming(KIND, &s.service_wasm, &[7; 32]),
            Err(ModuleError::HashMismatch { .. })
        ));
        assert_eq!(s.publish(KIND, &[]), Err(ModuleError::EmptyModule));
        let max = 50 * 1024 * 1024;
        let r: Result<u64, ModuleError> = s.registry_update(
            "start_upload",
            registry::StartUploadArgs {
                kind: KIND.into(),
                sha256: serde_bytes::ByteBuf::from(vec![0; 32]),
                size: max + 1,
            },
        );
        assert_eq!(r, Err(ModuleError::TooLarge { size: max + 1, max }));
        // Only controllers upload and create.
        let r: Result<u64, ModuleError> =
            s.ic.update_as(
                s.registry,
                Some(stranger()),
                "start_upload",
                registry::StartUploadArgs {
                    kind: KIND.into(),
                    sha256: serde_bytes::ByteBuf::from(vec![0; 32]),
                    size: 10,
                },
            )
            .expect("replies");
        assert_eq!(r, Err(ModuleError::NotController { caller: stranger() }));
        let v1 = s
            .publish(KIND, &s.service_wasm)
            .expect("the service module publishes");
        assert_eq!(v1.version, 1);
        assert_eq!(
            v1.hash.as_slice(),
            Sha256::digest(&s.service_wasm).as_slice()
        );
        assert_eq!(
            s.publish(KIND, &s.service_wasm),
            Err(ModuleError::AlreadyPublished {
                kind: KIND.into(),
                version: 1
            })
        );
        let r: Result<Rollout, RolloutError> =
            s.ic.update_args::<_, (Result<Rollout, RolloutError>,)>(
                s.registry,
                Some(admin()),
                "upgrade_services",
                (KIND.to_string(), 9u32),
            )
            .expect("replies")
            .0;
        assert_eq!(
            r,
            Err(RolloutError::UnknownVersion {
                kind: KIND.into(),
                version: 9
            })
        );
        // Nothing was created by any of these.
        let page: ServicePage = s.registry_query("list_services", ServiceFilter::default());
        assert!(page.services.is_empty());
        assert_eq!(
            incomplete(&s),
            Incomplete {
                services: vec![],
                creations: vec![]
            }
        );
    }
}

#[test]
fn should_leave_no_orphan_when_cycles_run_out_install_traps_or_the_hub_is_unreachable() {
    for ic in backends_for_test(
        "should_leave_no_orphan_when_cycles_run_out_install_traps_or_the_hub_is_unreachable",
    ) {
        let s = Suite::new(ic, None);
        s.publish(KIND, &s.service_wasm).expect("v1");

        // Out of cycles: refused before anything is created.
        let r: Result<(), AdminError> = s.registry_update(
            "set_config",
            ConfigUpdate {
                service_cycles: Some(u128::MAX / 4),
                ..Default::default()
            },
        );
        r.expect("config");
        assert!(matches!(
            s.create(KIND, "broke", Placement::OwnSubnet),
            Err(CreateError::InsufficientCycles { .. })
        ));
        let r: Result<(), AdminError> = s.registry_update(
            "set_config",
            ConfigUpdate {
                service_cycles: Some(2_000_000_000_000),
                ..Default::default()
            },
        );
        r.expect("config");
        assert_eq!(
            incomplete(&s),
            Incomplete {
                services: vec![],
                creations: vec![]
            }
        );

        // Install trap: the canister exists, is recorded as Failed(Install), and is cleaned up.
        let r: Result<(), AdminError> = s.registry_update("add_kind", "trapper".to_string());
        r.expect("kind");
        s.publish("trapper", &trapping_module()).expect("published");
        let e = s
            .create("trapper", "doomed", Placement::OwnSubnet)
            .expect_err("init traps");
        let CreateError::StepFailed {
            canister: doomed,
            step: Step::Install,
            message,
        } = e
        else {
            panic!("unexpected {e:?}")
        };
        assert!(message.contains("init refuses"), "{message}");
        let listed = incomplete(&s);
        assert_eq!(listed.services.len(), 1);
        assert_eq!(listed.services[0].canister, doomed);
        assert!(matches!(
            listed.services[0].state,
            ServiceState::Failed {
                step: Step::Install,
                ..
            }
        ));
        let status =
            s.ic.canister_status(doomed, Some(admin()))
                .expect("the owner controls it too");
        assert!(status.controllers.contains(&s.registry));
        assert_eq!(status.module_hash, None, "a trapping init installs nothing");
        let r: Result<(), AdminError> = s.registry_update("delete_service", doomed);
        r.expect("deleted");
        assert_eq!(
            s.service(doomed).expect("kept").state,
            ServiceState::Deleted
        );
        assert!(s.ic.canister_status(doomed, Some(admin())).is_err(), "gone");
        assert!(incomplete(&s).services.is_empty());

        // Hub unreachable: recorded as Failed(Register), retried by the timer once the hub
        // is back.
        s.ic.stop_canister(s.hub, Some(admin()))
            .expect("hub stopped");
        let e = s
            .create(KIND, "patient", Placement::OwnSubnet)
            .expect_err("hub stopped");
        let CreateError::StepFailed {
            canister: patient,
            step: Step::Register,
            ..
        } = e
        else {
            panic!("unexpected {e:?}")
        };
        assert_eq!(incomplete(&s).services.len(), 1);
        s.ic.start_canister(s.hub, Some(admin()))
            .expect("hub started");
        assert!(
            s.run_until(120, |s| s.service(patient).expect("recorded").state
                == ServiceState::Active),
            "the timer registers the service once the hub is back: {:?}",
            s.service(patient)
        );
        assert_eq!(s.add_records(patient, "after-outage", 2), 2);
        assert!(
            s.run_until(120, |s| s.service_status(patient).confirmed == 2),
            "{:?}",
            s.service_status(patient)
        );
        assert_eq!(
            incomplete(&s),
            Incomplete {
                services: vec![],
                creations: vec![]
            }
        );
    }
}

#[test]
fn should_roll_out_a_new_version_while_records_flow_and_resume_after_a_registry_upgrade() {
    for ic in backends_for_test(
        "should_roll_out_a_new_version_while_records_flow_and_resume_after_a_registry_upgrade",
    ) {
        let s = Suite::new(ic, None);
        s.publish(KIND, &s.service_wasm).expect("v1");
        let services: Vec<Principal> = (0..4)
            .map(|i| {
                s.create(KIND, &format!("Service {}", i + 1), Placement::OwnSubnet)
                    .expect("created")
                    .canister
            })
            .collect();
        let mut sent = vec![0u64; services.len()];
        for (i, c) in services.iter().enumerate() {
            sent[i] += s.add_records(*c, "v1", 3) as u64;
        }
        // Version 2: over one message, so it is installed in chunks.
        let v2 = padded(&s.service_wasm, "stratros-v2", 600 * 1024);
        assert!(v2.len() > 2 * 1024 * 1024);
        let info = s.publish(KIND, &v2).expect("v2");
        assert_eq!(info.version, 2);
        let rollout: Rollout =
            s.ic.update_args::<_, (Result<Rollout, RolloutError>,)>(
                s.registry,
                Some(admin()),
                "upgrade_services",
                (KIND.to_string(), 2u32),
            )
            .expect("replies")
            .0
            .expect("rollout started");
        assert_eq!(rollout.instances.len(), services.len());
        // Records keep flowing while instances are upgraded one at a time; the registry is
        // upgraded in the middle.
        let mut upgraded_registry = false;
        // Each instance is stopped around its upgrade: records sent to it then are rejected
        // (and would be retried by a client), never half-applied.
        let mut refused_while_stopped = 0;
        for round in 0..400 {
            let r = s.rollout().expect("rollout");
            if r.state != RolloutState::Running {
                break;
            }
            let done = r
                .instances
                .iter()
                .filter(|i| i.status == InstanceStatus::Done)
                .count();
            let upgrading = r
                .instances
                .iter()
                .filter(|i| i.status == InstanceStatus::Upgrading)
                .count();
            assert!(upgrading <= 1, "one instance at a time: {r:?}");
            if done >= 1 && !upgraded_registry {
                s.upgrade_registry();
                upgraded_registry = true;
            }
            if round % 3 == 0 {
                for (i, c) in services.iter().enumerate() {
                    match s.add_records_unless_stopped(*c, &format!("during-{round}"), 1) {
                        Some(accepted) => sent[i] += accepted as u64,
                        None => refused_while_stopped += 1,
                    }
                }
            }
            s.ic.tick();
        }
        assert!(upgraded_registry, "the registry was upgraded mid-rollout");
        eprintln!("records rejected while their service was stopped: {refused_while_stopped}");
        let r = s.rollout().expect("rollout");
        assert_eq!(r.state, RolloutState::Done, "{r:?}");
        for i in &r.instances {
            assert_eq!(i.status, InstanceStatus::Done);
        }
        for (i, c) in services.iter().enumerate() {
            let info = s.service(*c).expect("recorded");
            assert_eq!(info.version, 2);
            assert_eq!(info.state, ServiceState::Active);
            let status = s.ic.canister_status(*c, Some(admin())).expect("status");
            assert_eq!(
                status.module_hash.as_deref(),
                Some(Sha256::digest(&v2).as_slice())
            );
            sent[i] += s.add_records(*c, "v2", 2) as u64;
        }
        // Every record survives the upgrades and is confirmed.
        assert!(
            s.run_until(300, |s| services
                .iter()
                .zip(&sent)
                .all(|(c, n)| s.service_status(*c).confirmed == *n)),
            "{:?} vs {sent:?}",
            services
                .iter()
                .map(|c| s.service_status(*c))
                .collect::<Vec<_>>()
        );
        // New services get the new current version.
        let fresh = s
            .create(KIND, "Service 5", Placement::OwnSubnet)
            .expect("created");
        assert_eq!(fresh.version, 2);
        s.ic.advance_time(Duration::from_secs(1));
    }
}
