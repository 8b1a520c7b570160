//! The registry and the services it creates: the registry is deployed with the cycles minting
//! canister (the emulator models it at its mainnet id) and named as the hub's registrar; the
//! hub starts charging a fee per record in ckBTC and forwarding it to restaking; the service
//! module is uploaded in chunks and published; the registry creates Service 1 on its own
//! subnet (management canister) and Service 2 on the fiduciary subnet (through the CMC) and
//! authorizes both at the hub. The owner funds each service's ckBTC account; each service
//! attests its model or dataset, and pays the hub from the credit it buys itself
//! (`deposit_fees`).

use super::ledgers::{Ledger, minter, short};
use super::services::{self, owner};
use super::{Check, Demo, Deployed};
use crate::emu;
use crate::types::registry::{
    Arg, InitArgs, ModuleError, Placement, RegistryStatus, ServiceFilter, ServiceInfo, ServicePage,
    ServiceState, StartUploadArgs, UploadChunkArgs, UploadProgress, VersionInfo,
};
use crate::types::service::{RecordBody, RecordStatus};
use crate::types::{AdminError, FeeConfig, SubmitError};
use anyhow::{Context, Result, anyhow, bail};
use candid::{Encode, Nat, Principal};
use ic_emulator::SubnetKind;
use ic_emulator::cmc::CMC_ID;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use sha2::Digest;
use std::time::Duration;

/// The service kind the registry publishes.
pub const KIND: &str = "ai-module";
/// The hub's fee per record, in ckBTC's smallest unit (0.00001 ckBTC).
pub const FEE_PER_RECORD: u128 = 1_000;
/// The hub forwards what it collected once it is at least this much ...
pub const MIN_FORWARD: u128 = 10 * FEE_PER_RECORD;
/// ... every this many seconds.
pub const FORWARD_INTERVAL_SECONDS: u64 = 60;
/// What the owner moves to each service's ckBTC account (0.02 ckBTC: 2,000 records' worth).
pub const SERVICE_FUNDING: u128 = 2_000_000;
/// What a service keeps as credit at the hub by default, in records (the service's config).
pub const CREDIT_RECORDS: u64 = 1_000;
/// Bytes per `upload_chunk` message (under the 2 MiB ingress limit).
const UPLOAD_CHUNK: usize = 1024 * 1024;

/// The names of the demo's services, in creation order.
pub const SERVICE_NAMES: [&str; 2] = ["Service 1", "Service 2"];

fn btc(demo: &Demo) -> Result<Ledger> {
    demo.ledgers
        .iter()
        .find(|l| l.name == "ckbtc_ledger")
        .cloned()
        .context("no ckBTC ledger deployed")
}

pub fn registry(demo: &Demo) -> Result<Principal> {
    demo.registry.context("no registry deployed")
}

/// A registry update call as the owner (a registry controller), its reply decoded.
fn call<T: candid::CandidType + for<'de> serde::Deserialize<'de>>(
    demo: &mut Demo,
    method: &str,
    arg: impl candid::utils::ArgumentEncoder,
) -> Result<T> {
    let id = registry(demo)?;
    let r = emu::update(&mut demo.emu, id, owner(), method, arg)?;
    demo.emu.run_until_idle();
    Ok(r)
}

pub fn registry_status(demo: &mut Demo) -> Result<RegistryStatus> {
    let id = registry(demo)?;
    let (s,): (RegistryStatus,) = emu::query(&mut demo.emu, id, "get_status", ())?;
    Ok(s)
}

pub fn list_services(demo: &mut Demo) -> Result<Vec<ServiceInfo>> {
    let id = registry(demo)?;
    let filter = ServiceFilter {
        kind: Some(KIND.into()),
        ..Default::default()
    };
    let (page,): (ServicePage,) = emu::query(&mut demo.emu, id, "list_services", (filter,))?;
    Ok(page.services)
}

/// Uploads `module` in chunks and publishes it as the kind's next version.
pub fn publish(demo: &mut Demo, module: &[u8]) -> Result<VersionInfo> {
    let upload: Result<u64, ModuleError> = call(
        demo,
        "start_upload",
        (StartUploadArgs {
            kind: KIND.into(),
            sha256: serde_bytes::ByteBuf::from(sha2::Sha256::digest(module).to_vec()),
            size: module.len() as u64,
        },),
    )?;
    let upload = upload.map_err(|e| anyhow!("start_upload: {e:?}"))?;
    for (i, chunk) in module.chunks(UPLOAD_CHUNK).enumerate() {
        let r: Result<UploadProgress, ModuleError> = call(
            demo,
            "upload_chunk",
            (UploadChunkArgs {
                upload,
                offset: (i * UPLOAD_CHUNK) as u64,
                bytes: serde_bytes::ByteBuf::from(chunk.to_vec()),
            },),
        )?;
        r.map_err(|e| anyhow!("upload_chunk {i}: {e:?}"))?;
    }
    let r: Result<VersionInfo, ModuleError> = call(demo, "publish_module", (upload,))?;
    r.map_err(|e| anyhow!("publish_module: {e:?}"))
}

/// The hub's fee configuration: ckBTC per record, forwarded to restaking's confirmation AVS.
pub fn fee_config(demo: &Demo) -> Result<FeeConfig> {
    Ok(FeeConfig {
        ledger: btc(demo)?.id,
        fee_per_record: FEE_PER_RECORD,
        restaking: Some(demo.restaking.context("no restaking deployed")?),
        avs: super::restaking::CONFIRMATION_AVS.into(),
        min_forward: MIN_FORWARD,
        forward_interval_seconds: FORWARD_INTERVAL_SECONDS,
    })
}

pub fn run(demo: &mut Demo) -> Result<Vec<Check>> {
    let hub = demo.hub.context("no hub deployed")?;
    let btc = btc(demo)?;
    let mut checks = Vec::new();
    let app = demo.emu.subnet_of_kind(SubnetKind::Application);
    let fid = demo.emu.subnet_of_kind(SubnetKind::Fiduciary);

    // The registry, on the application subnet, with the CMC for placement on other subnets;
    // the owner (who creates and owns the services) is one of its controllers.
    let arg = Arg::Init(InitArgs {
        hub,
        cmc: Some(CMC_ID),
        kinds: vec![KIND.into()],
        config: None,
    });
    let id = demo.deploy("registry", "registry", app, Encode!(&arg)?)?;
    demo.registry = Some(id);
    demo.emu
        .set_controllers(id, None, vec![emu::controller(), owner()])
        .map_err(|e| anyhow!("make the owner a registry controller: {e:?}"))?;

    // The hub: the registry becomes its registrar (it may add submitters), and from now on
    // every record costs a fee, forwarded to restaking as confirmation-AVS rewards.
    let wasm = demo.wasm.read("confirmation")?;
    let upgrade = crate::types::Arg::Upgrade(Some(crate::types::UpgradeArgs {
        fees: Some(fee_config(demo)?),
        registrars: Some(vec![id]),
        ..Default::default()
    }));
    demo.emu
        .upgrade_canister(hub, &wasm, Encode!(&upgrade)?, None)
        .map_err(|e| anyhow!("upgrade the hub with fees and the registrar: {e:?}"))?;
    demo.emu.run_until_idle();
    let status = emu::hub_status(&mut demo.emu, hub)?;
    checks.push(Check::eq(
        "the hub's registrar is the registry",
        texts(&status.registrars),
        texts(&[id]),
    ));
    checks.push(Check::eq(
        "the hub charges 0.00001 ckBTC per record, forwarded to restaking",
        status.fees.config.as_ref().map(|c| {
            (
                c.ledger.to_text(),
                c.fee_per_record,
                c.restaking.map(|r| r.to_text()),
                c.avs.clone(),
            )
        }),
        Some((
            btc.id.to_text(),
            FEE_PER_RECORD,
            demo.restaking.map(|r| r.to_text()),
            super::restaking::CONFIRMATION_AVS.to_string(),
        )),
    ));
    let denied: Result<(), AdminError> =
        emu::update(&mut demo.emu, hub, owner(), "add_submitter", (owner(),))?;
    checks.push(Check::new(
        "only controllers and registrars authorize submitters at the hub",
        denied.is_err(),
        format!("{denied:?}"),
    ));

    // The service module, uploaded in 1 MiB chunks and published as version 1.
    let module = demo.wasm.read("service")?;
    let v1 = publish(demo, &module)?;
    checks.push(Check::eq(
        "service module published as version 1 of ai-module (SHA-256, size)",
        (v1.version, hex::encode(&v1.hash), v1.size),
        (
            1,
            hex::encode(sha2::Sha256::digest(&module)),
            module.len() as u64,
        ),
    ));

    // Service 1 on the registry's subnet (management canister), Service 2 on the fiduciary
    // subnet (through the cycles minting canister's subnet selection).
    let placements = [Placement::OwnSubnet, Placement::Subnet(fid)];
    let mut created = Vec::new();
    for (name, placement) in SERVICE_NAMES.iter().zip(placements) {
        let r: Result<ServiceInfo, crate::types::registry::CreateError> = call(
            demo,
            "create_service",
            (KIND.to_string(), name.to_string(), placement),
        )?;
        let info = r.map_err(|e| anyhow!("create_service {name}: {e:?}"))?;
        let subnet = demo
            .emu
            .get_subnet(info.canister)
            .with_context(|| format!("{name} ({}) has no subnet", info.canister))?;
        demo.canisters.push(Deployed {
            name: name.to_lowercase().replace(' ', "_"),
            wasm: "service".into(),
            id: info.canister,
            subnet,
        });
        created.push((info, subnet));
    }
    demo.services = created.iter().map(|(i, _)| i.canister).collect();
    let [(s1, sub1), (s2, sub2)] = [created[0].clone(), created[1].clone()];
    checks.push(Check::new(
        "Service 1 and Service 2 active, on two subnets",
        s1.state == ServiceState::Active
            && s2.state == ServiceState::Active
            && sub1 != sub2
            && (sub1, sub2) == (app, fid)
            && s2.subnet == Some(fid),
        format!(
            "{} on {} ({:?}), {} on {} ({:?})",
            short(&s1.canister),
            short(&sub1),
            s1.state,
            short(&s2.canister),
            short(&sub2),
            s2.state
        ),
    ));
    for (info, _) in &created {
        let status = demo
            .emu
            .canister_status(info.canister)
            .map_err(|e| anyhow!("canister_status {}: {e:?}", info.canister))?;
        let mut controllers = texts(&status.controllers);
        controllers.sort();
        let mut expected = texts(&[id, owner()]);
        expected.sort();
        checks.push(Check::eq(
            format!("{}: controlled by the registry and its owner", info.name),
            controllers,
            expected,
        ));
    }
    let listed: Vec<Principal> = list_services(demo)?.iter().map(|s| s.canister).collect();
    checks.push(Check::eq(
        "the registry's directory lists both",
        listed.len(),
        2,
    ));
    let status = emu::hub_status(&mut demo.emu, hub)?;
    checks.push(Check::eq(
        "the registry authorized both services at the hub (its only submitters)",
        status.submitters,
        2,
    ));
    let stranger = services::stranger();
    let refused = emu::submit(
        &mut demo.emu,
        hub,
        stranger,
        &[emu::record_input("model", "x", "x")],
    )?;
    checks.push(Check::new(
        "anyone else submitting to the hub is refused",
        matches!(refused, Err(SubmitError::Unauthorized { .. })),
        match &refused {
            Err(SubmitError::Unauthorized { caller }) => {
                format!("Unauthorized {{ caller: {} }}", short(caller))
            }
            other => format!("{other:?}"),
        },
    ));

    // The owner buys ckBTC (minted here) and funds each service's own ledger account.
    transfer(
        demo,
        btc.id,
        minter(),
        owner(),
        2 * SERVICE_FUNDING + 2 * 10,
    )?;
    for s in demo.services.clone() {
        transfer(demo, btc.id, owner(), s, SERVICE_FUNDING)?;
    }

    // Each service attests what it runs on: its first record makes it buy hub credit with
    // its ckBTC (approve, then the hub's `deposit_fees`), and pays for the record from it.
    let first = [
        RecordBody::ModelAttestation {
            model_id: "stratros-demo-llm".into(),
            version: "1.0".into(),
            weights_hash: emu::content_hash("stratros demo model weights"),
            metadata: r#"{"params":"7B","quantization":"q4"}"#.into(),
        },
        RecordBody::Dataset {
            hash: emu::content_hash("stratros demo dataset"),
            licence: "CC-BY-4.0".into(),
            source: "https://example.org/datasets/demo".into(),
        },
    ];
    for (s, body) in demo.services.clone().into_iter().zip(first) {
        let views = services::add_records(demo, s, owner(), vec![body])?;
        let status = views.first().map(|v| v.status.clone());
        checks.push(Check::new(
            format!(
                "{}: its first record is accepted by the hub",
                services::name(demo, s)
            ),
            matches!(status, Some(RecordStatus::Submitted)),
            format!("{status:?}"),
        ));
    }
    demo.emu.run_until_idle();
    for s in demo.services.clone() {
        let account = services::fee_account(demo, s)?;
        let status = services::status(demo, s)?;
        let target = FEE_PER_RECORD * u128::from(CREDIT_RECORDS);
        checks.push(Check::eq(
            format!(
                "{}: bought {} records of hub credit, 1 record charged",
                status.name, CREDIT_RECORDS
            ),
            (
                account.deposited,
                account.credit,
                account.records_charged,
                status.fees.hub_credit,
            ),
            (target, target - FEE_PER_RECORD, 1, target - FEE_PER_RECORD),
        ));
    }

    // The two records are sealed by age and confirmed before the services' main work.
    demo.emu
        .advance_time(Duration::from_secs(super::receipts::BATCH_AGE_SECONDS + 1));
    emu::wait_confirmed(&mut demo.emu, hub, 0)?;
    let batch =
        emu::get_batch(&mut demo.emu, hub, 0)?.map_err(|e| anyhow!("get_batch 0: {e:?}"))?;
    checks.push(Check::eq(
        "the attestations: batch 0 sealed by age, confirmed by the four nodes",
        (batch.header.leaf_count, batch.confirmations().len()),
        (2, 4),
    ));
    let rs = registry_status(demo)?;
    checks.push(Check::eq(
        "registry status: 1 kind, 2 services, its cycles minting canister",
        (rs.kinds, rs.services, rs.cmc.map(|c| c.to_text())),
        (1, 2, Some(CMC_ID.to_text())),
    ));
    Ok(checks)
}

fn texts(ps: &[Principal]) -> Vec<String> {
    ps.iter().map(Principal::to_text).collect()
}

/// An ICRC-1 transfer of `amount` from `from` to `to`.
pub fn transfer(
    demo: &mut Demo,
    ledger: Principal,
    from: Principal,
    to: Principal,
    amount: u128,
) -> Result<()> {
    let arg = TransferArg {
        from_subaccount: None,
        to: to.into(),
        fee: None,
        created_at_time: None,
        memo: None,
        amount: Nat::from(amount),
    };
    let r: Result<Nat, TransferError> =
        emu::update(&mut demo.emu, ledger, from, "icrc1_transfer", (arg,))?;
    match r {
        Ok(_) => Ok(()),
        Err(e) => bail!("transfer of {amount} from {from} to {to}: {e:?}"),
    }
}
