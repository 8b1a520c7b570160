//! The four confirmation nodes, one per scheme, and the trust file.

use super::{Check, Demo};
use crate::emu::{self, LOCAL_KEY_NAME};
use anyhow::{Context, Result};
use candid::{Encode, Principal};
use ic_emulator::SubnetKind;
use stratros_confirmation::{PolicyNode, Scheme};

/// The dfx.json name of the node of `scheme`.
pub fn node_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::EcdsaSecp256k1 => "confirmation_node_ecdsa",
        Scheme::SchnorrBip340 => "confirmation_node_bip340",
        Scheme::SchnorrEd25519 => "confirmation_node_ed25519",
        Scheme::Bls12_381 => "confirmation_node_vetkd",
    }
}

pub fn run(demo: &mut Demo) -> Result<Vec<Check>> {
    let hub: Principal = demo.hub.context("no hub deployed")?;
    let anchors = emu::anchors(&demo.emu)?;
    let mut checks = Vec::new();
    let mut nodes = Vec::new();
    for scheme in Scheme::ALL {
        // The secp256k1 nodes on the fiduciary subnet (where `key_1` lives on mainnet), the
        // others on the application subnet: two subnets, as on mainnet.
        let kind = match scheme {
            Scheme::EcdsaSecp256k1 | Scheme::SchnorrBip340 => SubnetKind::Fiduciary,
            Scheme::SchnorrEd25519 | Scheme::Bls12_381 => SubnetKind::Application,
        };
        let subnet = demo.emu.subnet_of_kind(kind);
        let arg = Encode!(&crate::types::NodeArg::Init(crate::types::NodeInitArgs {
            scheme,
            key_name: LOCAL_KEY_NAME.into(),
            hub,
        }))?;
        let id = demo.deploy(node_name(scheme), "confirmation_node", subnet, arg)?;
        let info = emu::node_info(&mut demo.emu, id)?;
        let derived = anchors
            .derive_node_key(scheme, LOCAL_KEY_NAME, &id)
            .map_err(anyhow::Error::msg)?;
        checks.push(Check::eq(
            format!("{} scheme, key, hub", node_name(scheme)),
            (info.scheme, info.key_name.clone(), info.hub.to_text()),
            (scheme, LOCAL_KEY_NAME.to_string(), hub.to_text()),
        ));
        checks.push(Check::new(
            format!(
                "{} public key derived from the master key",
                node_name(scheme)
            ),
            info.public_key.as_ref().map(|k| k.as_slice()) == Some(derived.as_slice()),
            format!("{} bytes", derived.len()),
        ));
        let node = PolicyNode {
            node: id,
            scheme,
            key_name: LOCAL_KEY_NAME.into(),
        };
        emu::register_node(&mut demo.emu, hub, node.clone())?;
        nodes.push(node);
    }
    let subnets: std::collections::BTreeSet<Principal> = nodes
        .iter()
        .filter_map(|n| demo.emu.get_subnet(n.node))
        .collect();
    checks.push(Check::eq("nodes on two subnets", subnets.len(), 2));
    let status = emu::hub_status(&mut demo.emu, hub)?;
    checks.push(Check::eq(
        "the hub's quorum: the four nodes, valid",
        (status.quorum.nodes.len(), status.quorum_valid),
        (4, true),
    ));
    demo.nodes = nodes;
    Ok(checks)
}

pub fn write_trust(demo: &mut Demo) -> Result<Vec<Check>> {
    let anchors = emu::anchors(&demo.emu)?;
    let path = demo.out.join("trust.json");
    std::fs::write(&path, anchors.to_json())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let back = stratros_verify::TrustAnchors::from_json(&std::fs::read_to_string(&path)?)?;
    let checks = vec![
        Check::eq("trust.json reads back", back == anchors, true),
        Check::new(
            "master keys",
            anchors.master_keys.len() >= 4,
            format!("{} keys", anchors.master_keys.len()),
        ),
    ];
    demo.anchors = Some(anchors);
    Ok(checks)
}
