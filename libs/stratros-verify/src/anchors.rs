//! Trust anchors: a network's root key and its threshold master public keys.

use crate::error::VerifyError;
use candid::Principal;
use serde::{Deserialize, Serialize};
use stratros_confirmation::{Blob, Scheme, VETKD_CONTEXT};

/// The DER-encoded root public key of the IC mainnet.
pub const MAINNET_ROOT_KEY_DER: &str = "308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100814c0e6ec71fab583b08bd81373c255c3c371b2e84863c98a4f1e08b74235d14fb5d9c0cd546d9685f913a0c0b2cc5341583bf4b4392e467db96d65b9bb4cb717112f8472e0d5a4d14505ffd7484b01291091c5f87b98883463f98091a0baaae";

/// One threshold master public key of a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterKey {
    pub scheme: Scheme,
    pub key_name: String,
    /// SEC1 (secp256k1), 32 raw bytes (Ed25519) or a 96-byte compressed G2 point (vetKD).
    pub public_key: Blob,
    /// Chain code for secp256k1/Ed25519 derivation; absent means 32 zero bytes (as on the IC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_code: Option<Blob>,
}

/// What a verifier trusts: the JSON form is
/// `{ "root_key": hex DER, "master_keys": [ { "scheme", "key_name", "public_key": hex, "chain_code"?: hex } ] }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustAnchors {
    /// DER-encoded BLS12-381 root key (the IC's, or a local replica's / emulator's).
    pub root_key: Blob,
    pub master_keys: Vec<MasterKey>,
}

impl TrustAnchors {
    pub fn from_json(json: &str) -> Result<Self, VerifyError> {
        serde_json::from_str(json).map_err(|e| VerifyError::TrustAnchors(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("BUG: trust anchors always serialize")
    }

    /// The IC mainnet: its root key and the `key_1` and `test_key_1` master keys of every scheme.
    pub fn mainnet() -> Self {
        use ic_secp256k1::{MasterPublicKeyId as Secp, PublicKey as SecpKey};
        let mut master_keys = Vec::new();
        let secp = |scheme, name: &str, id| MasterKey {
            scheme,
            key_name: name.into(),
            public_key: Blob(SecpKey::mainnet_key(id).serialize_sec1(true)),
            chain_code: None,
        };
        master_keys.push(secp(Scheme::EcdsaSecp256k1, "key_1", Secp::EcdsaKey1));
        master_keys.push(secp(
            Scheme::EcdsaSecp256k1,
            "test_key_1",
            Secp::EcdsaTestKey1,
        ));
        master_keys.push(secp(Scheme::SchnorrBip340, "key_1", Secp::SchnorrKey1));
        master_keys.push(secp(
            Scheme::SchnorrBip340,
            "test_key_1",
            Secp::SchnorrTestKey1,
        ));
        for (name, id) in [
            ("key_1", ic_ed25519::MasterPublicKeyId::Key1),
            ("test_key_1", ic_ed25519::MasterPublicKeyId::TestKey1),
        ] {
            master_keys.push(MasterKey {
                scheme: Scheme::SchnorrEd25519,
                key_name: name.into(),
                public_key: Blob(
                    ic_ed25519::PublicKey::mainnet_key(id)
                        .serialize_raw()
                        .to_vec(),
                ),
                chain_code: None,
            });
        }
        for name in ["key_1", "test_key_1"] {
            let id = vetkd_key_id::VetKDKeyId {
                curve: vetkd_key_id::VetKDCurve::Bls12_381_G2,
                name: name.into(),
            };
            let mk = ic_vetkeys::MasterPublicKey::for_mainnet_key(&id)
                .expect("BUG: ic-vetkeys knows the mainnet vetKD keys");
            master_keys.push(MasterKey {
                scheme: Scheme::Bls12_381,
                key_name: name.into(),
                public_key: Blob(mk.serialize()),
                chain_code: None,
            });
        }
        TrustAnchors {
            root_key: Blob(hex::decode(MAINNET_ROOT_KEY_DER).expect("BUG: constant is hex")),
            master_keys,
        }
    }

    /// PocketIC's hard-coded master keys (`key_1`, `test_key_1`, `dfx_test_key`, every
    /// scheme) with the instance's root key (DER).
    pub fn pocketic(root_key_der: Vec<u8>) -> TrustAnchors {
        use ic_secp256k1::{PocketIcMasterPublicKeyId as Secp, PublicKey as SecpKey};
        let mut master_keys = Vec::new();
        let key = |scheme, name: &str, public_key: Vec<u8>| MasterKey {
            scheme,
            key_name: name.into(),
            public_key: Blob(public_key),
            chain_code: None,
        };
        for (name, ecdsa, schnorr) in [
            ("key_1", Secp::EcdsaKey1, Secp::SchnorrKey1),
            ("test_key_1", Secp::EcdsaTestKey1, Secp::SchnorrTestKey1),
            (
                "dfx_test_key",
                Secp::EcdsaDfxTestKey,
                Secp::SchnorrDfxTestKey,
            ),
        ] {
            master_keys.push(key(
                Scheme::EcdsaSecp256k1,
                name,
                SecpKey::pocketic_key(ecdsa).serialize_sec1(true),
            ));
            master_keys.push(key(
                Scheme::SchnorrBip340,
                name,
                SecpKey::pocketic_key(schnorr).serialize_sec1(true),
            ));
        }
        for (name, id) in [
            ("key_1", ic_ed25519::PocketIcMasterPublicKeyId::Key1),
            (
                "test_key_1",
                ic_ed25519::PocketIcMasterPublicKeyId::TestKey1,
            ),
            (
                "dfx_test_key",
                ic_ed25519::PocketIcMasterPublicKeyId::DfxTestKey,
            ),
        ] {
            master_keys.push(key(
                Scheme::SchnorrEd25519,
                name,
                ic_ed25519::PublicKey::pocketic_key(id)
                    .serialize_raw()
                    .to_vec(),
            ));
        }
        for name in ["key_1", "test_key_1", "dfx_test_key"] {
            let id = vetkd_key_id::VetKDKeyId {
                curve: vetkd_key_id::VetKDCurve::Bls12_381_G2,
                name: name.into(),
            };
            let mk = ic_vetkeys::MasterPublicKey::for_pocketic_key(&id)
                .expect("BUG: ic-vetkeys knows PocketIC's vetKD keys");
            master_keys.push(key(Scheme::Bls12_381, name, mk.serialize()));
        }
        TrustAnchors {
            root_key: Blob(root_key_der),
            master_keys,
        }
    }

    /// The master key for `(scheme, key_name)`.
    pub fn master_key(&self, scheme: Scheme, key_name: &str) -> Option<&MasterKey> {
        self.master_keys
            .iter()
            .find(|k| k.scheme == scheme && k.key_name == key_name)
    }

    /// The public key the IC derives for `node` under `(scheme, key_name)`, in the form the node
    /// publishes (33-byte SEC1 compressed, 32-byte Ed25519, 96-byte G2).
    ///
    /// ECDSA and Schnorr: derivation path `[node canister id]` (no further path).
    /// vetKD: canister key for `node`, then the sub-key for context [`VETKD_CONTEXT`].
    pub fn derive_node_key(
        &self,
        scheme: Scheme,
        key_name: &str,
        node: &Principal,
    ) -> Result<Vec<u8>, String> {
        let mk = self.master_key(scheme, key_name).ok_or_else(|| {
            format!("no {scheme} master key named {key_name:?} in the trust anchors")
        })?;
        derive_from_master(mk, node)
    }
}

/// Derives `node`'s public key from one master key.
pub fn derive_from_master(mk: &MasterKey, node: &Principal) -> Result<Vec<u8>, String> {
    let chain_code: [u8; 32] = match &mk.chain_code {
        None => [0u8; 32],
        Some(c) => c
            .as_slice()
            .try_into()
            .map_err(|_| format!("chain code must be 32 bytes, got {}", c.len()))?,
    };
    let bad = |e: &dyn std::fmt::Debug| {
        format!("invalid {} master key {:?}: {e:?}", mk.scheme, mk.key_name)
    };
    match mk.scheme {
        Scheme::EcdsaSecp256k1 | Scheme::SchnorrBip340 => {
            let master = ic_secp256k1::PublicKey::deserialize_sec1(mk.public_key.as_slice())
                .map_err(|e| bad(&e))?;
            let path =
                ic_secp256k1::DerivationPath::from_canister_id_and_path(node.as_slice(), &[]);
            let (key, _) = master.derive_subkey_with_chain_code(&path, &chain_code);
            Ok(key.serialize_sec1(true))
        }
        Scheme::SchnorrEd25519 => {
            let master = ic_ed25519::PublicKey::deserialize_raw(mk.public_key.as_slice())
                .map_err(|e| bad(&e))?;
            let path = ic_ed25519::DerivationPath::from_canister_id_and_path(node.as_slice(), &[]);
            let (key, _) = master.derive_subkey_with_chain_code(&path, &chain_code);
            Ok(key.serialize_raw().to_vec())
        }
        Scheme::Bls12_381 => {
            let master = ic_vetkeys::MasterPublicKey::deserialize(mk.public_key.as_slice())
                .map_err(|e| bad(&e))?;
            Ok(master
                .derive_canister_key(node.as_slice())
                .derive_sub_key(VETKD_CONTEXT)
                .serialize())
        }
    }
}
