//! Registry scenarios that run on the emulator only:
//!
//! - placement through the cycles minting canister: PocketIC has no CMC unless the NNS
//!   canisters are installed, and their Wasm cannot be obtained here; the emulator models the
//!   CMC's `create_canister` at its mainnet id (`libs/ic-emulator/src/cmc.rs`);
//! - the measurements: instruction counts come from the emulator's execution log.
//!
//! Build first: `bash scripts/build.sh registry service confirmation confirmation_node`.
//! Figures: `cargo test -p registry --test emulator -- --nocapture`.

mod common;

use candid::Principal;
use common::*;
use ic_emulator::SubnetKind as EmuSubnet;
use ic_emulator::cmc::CMC_ID;
use ic_testkit::{EmulatorBackend, IcBackend, IcBackendExt};
use registry::{
    InstanceStatus, Placement, Rollout, RolloutError, RolloutState, ServiceFilter, ServicePage,
    ServiceState,
};

fn suite() -> Suite<EmulatorBackend> {
    Suite::new(Box::new(EmulatorBackend::new()), Some(CMC_ID))
}

/// Instructions `canister` executed since execution-log index `mark`.
fn instructions_since(s: &Suite<EmulatorBackend>, canister: Principal, mark: usize) -> u64 {
    s.ic.emulator().borrow().executions()[mark..]
        .iter()
        .filter(|e| e.canister == canister)
        .map(|e| e.instructions)
        .sum()
}

fn mark(s: &Suite<EmulatorBackend>) -> usize {
    s.ic.emulator().borrow().executions().len()
}

#[test]
fn should_create_services_on_two_subnets_through_the_cmc_and_confirm_their_records() {
    let s = suite();
    s.publish(KIND, &s.service_wasm).expect("v1");
    let app =
        s.ic.emulator()
            .borrow()
            .subnet_of_kind(EmuSubnet::Application);
    let fid =
        s.ic.emulator()
            .borrow()
            .subnet_of_kind(EmuSubnet::Fiduciary);

    let s1 = s
        .create(KIND, "Service 1", Placement::Subnet(app))
        .expect("Service 1");
    let s2 = s
        .create(KIND, "Service 2", Placement::SubnetType("fiduciary".into()))
        .expect("Service 2");
    let s3 = s
        .create(KIND, "Service 3", Placement::Subnet(fid))
        .expect("Service 3");
    let emu_subnet = |c: Principal| s.ic.emulator().borrow().get_subnet(c);
    assert_eq!(emu_subnet(s1.canister), Some(app));
    assert_eq!(emu_subnet(s2.canister), Some(fid));
    assert_eq!(emu_subnet(s3.canister), Some(fid));
    assert_eq!(s1.subnet, Some(app));
    assert_eq!(
        s2.subnet,
        Some(fid),
        "the CMC picks the subnet of a type; the service reports it"
    );
    assert_eq!(s3.subnet, Some(fid));
    for svc in [&s1, &s2, &s3] {
        assert_eq!(svc.state, ServiceState::Active);
        let status =
            s.ic.canister_status(svc.canister, Some(admin()))
                .expect("status");
        let mut controllers = status.controllers.clone();
        controllers.sort();
        let mut expected = vec![s.registry, admin()];
        expected.sort();
        assert_eq!(controllers, expected, "the registry and the owner");
    }

    // Both submit records and they confirm.
    assert_eq!(s.add_records(s1.canister, "s1", 5), 5);
    assert_eq!(s.add_records(s2.canister, "s2", 4), 4);
    assert!(
        s.run_until(120, |s| s.service_status(s1.canister).confirmed == 5
            && s.service_status(s2.canister).confirmed == 4),
        "{:?} {:?}",
        s.service_status(s1.canister),
        s.service_status(s2.canister)
    );
    let st = s.service_status(s2.canister);
    assert_eq!(
        (st.hub, st.owner, st.name.as_str()),
        (s.hub, admin(), "Service 2")
    );

    // Directory queries by kind, owner and subnet.
    let page = |filter: ServiceFilter| -> Vec<Principal> {
        let p: ServicePage = s.registry_query("list_services", filter);
        p.services.iter().map(|x| x.canister).collect()
    };
    assert_eq!(
        page(ServiceFilter {
            kind: Some(KIND.into()),
            ..Default::default()
        })
        .len(),
        3
    );
    assert_eq!(
        page(ServiceFilter {
            owner: Some(stranger()),
            ..Default::default()
        }),
        Vec::<Principal>::new()
    );
    assert_eq!(
        {
            let mut on_fid = page(ServiceFilter {
                subnet: Some(fid),
                ..Default::default()
            });
            on_fid.sort();
            on_fid
        },
        {
            let mut both = vec![s2.canister, s3.canister];
            both.sort();
            both
        }
    );
    let first = page(ServiceFilter {
        limit: 1,
        ..Default::default()
    });
    let second = page(ServiceFilter {
        limit: 1,
        after: first.first().copied(),
        ..Default::default()
    });
    assert_eq!(first.len() + second.len(), 2);
    assert_ne!(first, second);

    // Cycle balances, read on demand.
    let read: Result<u32, registry::AdminError> =
        s.registry_update("refresh_cycles", Some(s1.canister));
    assert_eq!(read, Ok(1));
    let info = s.service(s1.canister).expect("s1");
    let balance = s.ic.cycle_balance(s1.canister);
    assert!(
        info.cycles.is_some_and(|c| c >= balance),
        "{info:?} vs {balance}"
    );
}

#[test]
fn should_measure_creation_and_a_rolling_upgrade_of_20_instances() {
    let s = suite();
    s.publish(KIND, &s.service_wasm).expect("v1");
    // Creation of one service: the registry's own executions (update and callbacks).
    let m = mark(&s);
    let one = s
        .create(KIND, "measured", Placement::OwnSubnet)
        .expect("created");
    let create_registry = instructions_since(&s, s.registry, m);
    let create_service_init = instructions_since(&s, one.canister, m);
    let m = mark(&s);
    s.create(
        KIND,
        "measured-cmc",
        Placement::SubnetType("fiduciary".into()),
    )
    .expect("created");
    let create_cmc_registry = instructions_since(&s, s.registry, m);
    for i in 1..20 {
        s.create(KIND, &format!("instance {i}"), Placement::OwnSubnet)
            .expect("created");
    }
    // 21 instances of the kind: upgrade them all.
    let v2 = padded(&s.service_wasm, "stratros-v2", 16);
    s.publish(KIND, &v2).expect("v2");
    let m = mark(&s);
    let rollout: Rollout =
        s.ic.update_args::<_, (Result<Rollout, RolloutError>,)>(
            s.registry,
            Some(admin()),
            "upgrade_services",
            (KIND.to_string(), 2u32),
        )
        .expect("replies")
        .0
        .expect("started");
    let n = rollout.instances.len() as u64;
    let r = s.run_rollout(2_000);
    assert_eq!(r.state, RolloutState::Done);
    assert!(r.instances.iter().all(|i| i.status == InstanceStatus::Done));
    let rollout_registry = instructions_since(&s, s.registry, m);
    let services: Vec<Principal> = r.instances.iter().map(|i| i.canister).collect();
    let rollout_services: u64 = services.iter().map(|c| instructions_since(&s, *c, m)).sum();
    let per_instance_counter: u64 = r.instances.iter().map(|i| i.instructions).sum::<u64>() / n;

    // A chunked install (module over one message): one instance.
    let v3 = padded(&s.service_wasm, "stratros-v3", 600 * 1024);
    s.publish(KIND, &v3).expect("v3");
    let m = mark(&s);
    let _: Rollout =
        s.ic.update_args::<_, (Result<Rollout, RolloutError>,)>(
            s.registry,
            Some(admin()),
            "upgrade_services",
            (KIND.to_string(), 3u32),
        )
        .expect("replies")
        .0
        .expect("started");
    let r3 = s.run_rollout(4_000);
    assert_eq!(r3.state, RolloutState::Done);
    let chunked_registry = instructions_since(&s, s.registry, m) / n;

    println!("| what | registry | service(s) |");
    println!("|---|---|---|");
    println!(
        "| create one service (own subnet, management canister; 1.6 MB module, one install_code) | {create_registry} | {create_service_init} (canister_init) |"
    );
    println!("| create one service through the CMC (fiduciary) | {create_cmc_registry} | |");
    println!(
        "| rolling upgrade of {n} instances, total | {rollout_registry} | {rollout_services} |"
    );
    println!(
        "| per instance | {} (in-canister counter: {per_instance_counter}) | {} |",
        rollout_registry / n,
        rollout_services / n
    );
    println!("| per instance, 2.2 MB module in chunks | {chunked_registry} | |");
    assert!(n >= 20);
}
