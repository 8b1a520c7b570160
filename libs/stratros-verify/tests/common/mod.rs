//! A test network: threshold master keys with known secrets, derived exactly as the IC derives
//! them, a BLS root key that signs certificates, and a hub that seals and certifies batches.
#![allow(dead_code)]

use candid::Principal;
use ic_bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve, HashToField};
use ic_bls12_381::{G1Affine, G1Projective, G2Affine, Scalar};
use ic_certification::HashTree;
use ic_certification::hash_tree::{fork, label, leaf, pruned};
use serde::Serialize;
use sha2::Sha256;
use stratros_confirmation::encoding::{CERTIFIED_HEADERS_LABEL, VETKD_CONTEXT};
use stratros_confirmation::merkle::{levels_from_leaves, proof_from_levels};
use stratros_confirmation::*;
use stratros_verify::{MasterKey, TrustAnchors};

pub const KEY_NAME: &str = "test_key";
pub const NOW: u64 = 1_800_000_000_000_000_000;
pub const FIVE_MINUTES: u64 = 300_000_000_000;

const DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05,
    0x03, 0x01, 0x02, 0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03,
    0x02, 0x01, 0x03, 0x61, 0x00,
];

fn scalar(seed: u8) -> Scalar {
    Scalar::from_bytes_wide(&[seed; 64])
}

fn hash_to_scalar_two_inputs(a: &[u8], b: &[u8], dst: &str) -> Scalar {
    let mut input = Vec::new();
    input.extend_from_slice(&(a.len() as u64).to_be_bytes());
    input.extend_from_slice(a);
    input.extend_from_slice(&(b.len() as u64).to_be_bytes());
    input.extend_from_slice(b);
    let mut out = [Scalar::zero()];
    <Scalar as HashToField>::hash_to_field::<ExpandMsgXmd<Sha256>>(
        &input,
        dst.as_bytes(),
        &mut out,
    );
    out[0]
}

fn g2(s: &Scalar) -> [u8; 96] {
    G2Affine::from(G2Affine::generator() * s).to_compressed()
}

/// The vetKD secret the IC would hold for `(node, VETKD_CONTEXT)` under master secret `msk`.
fn vetkd_derived_secret(msk: &Scalar, node: &Principal) -> Scalar {
    let mpk = g2(msk);
    let canister_sk =
        msk + hash_to_scalar_two_inputs(&mpk, node.as_slice(), "ic-vetkd-bls12-381-g2-canister-id");
    let canister_pk = g2(&canister_sk);
    canister_sk
        + hash_to_scalar_two_inputs(&canister_pk, VETKD_CONTEXT, "ic-vetkd-bls12-381-g2-context")
}

pub struct Network {
    pub ecdsa: ic_secp256k1::PrivateKey,
    pub bip340: ic_secp256k1::PrivateKey,
    pub ed25519: ic_ed25519::PrivateKey,
    pub vetkd: Scalar,
    pub root: Scalar,
}

impl Network {
    pub fn new() -> Self {
        Network {
            ecdsa: ic_secp256k1::PrivateKey::generate_from_seed(b"ecdsa master"),
            bip340: ic_secp256k1::PrivateKey::generate_from_seed(b"bip340 master"),
            ed25519: ic_ed25519::PrivateKey::generate_from_seed(b"ed25519 master"),
            vetkd: scalar(7),
            root: scalar(9),
        }
    }

    pub fn root_key_der(&self) -> Vec<u8> {
        [DER_PREFIX.as_slice(), &g2(&self.root)].concat()
    }

    pub fn anchors(&self) -> TrustAnchors {
        let mk = |scheme, public_key: Vec<u8>| MasterKey {
            scheme,
            key_name: KEY_NAME.into(),
            public_key: Blob(public_key),
            chain_code: None,
        };
        TrustAnchors {
            root_key: Blob(self.root_key_der()),
            master_keys: vec![
                mk(
                    Scheme::EcdsaSecp256k1,
                    self.ecdsa.public_key().serialize_sec1(true),
                ),
                mk(
                    Scheme::SchnorrBip340,
                    self.bip340.public_key().serialize_sec1(true),
                ),
                mk(
                    Scheme::SchnorrEd25519,
                    self.ed25519.public_key().serialize_raw().to_vec(),
                ),
                mk(Scheme::Bls12_381, g2(&self.vetkd).to_vec()),
            ],
        }
    }

    /// (public key, signature) of `node` over `digest`, as the IC's threshold APIs produce them.
    pub fn sign(&self, scheme: Scheme, node: &Principal, digest: &Hash32) -> (Vec<u8>, Vec<u8>) {
        match scheme {
            Scheme::EcdsaSecp256k1 | Scheme::SchnorrBip340 => {
                let master = if scheme == Scheme::EcdsaSecp256k1 {
                    &self.ecdsa
                } else {
                    &self.bip340
                };
                let path =
                    ic_secp256k1::DerivationPath::from_canister_id_and_path(node.as_slice(), &[]);
                let (sk, _) = master.derive_subkey(&path);
                let sig = if scheme == Scheme::EcdsaSecp256k1 {
                    sk.sign_digest_with_ecdsa(&digest.0)
                } else {
                    sk.sign_message_with_bip340_no_rng(&digest.0)
                };
                (sk.public_key().serialize_sec1(true), sig.to_vec())
            }
            Scheme::SchnorrEd25519 => {
                let path =
                    ic_ed25519::DerivationPath::from_canister_id_and_path(node.as_slice(), &[]);
                let (sk, _) = self.ed25519.derive_subkey(&path);
                (
                    sk.public_key().serialize_raw().to_vec(),
                    sk.sign_message(&digest.0).to_vec(),
                )
            }
            Scheme::Bls12_381 => {
                let sk = vetkd_derived_secret(&self.vetkd, node);
                let pk = g2(&sk);
                let msg = [pk.as_slice(), &digest.0].concat();
                let h = <G1Projective as HashToCurve<ExpandMsgXmd<Sha256>>>::hash_to_curve(
                    msg,
                    b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_AUG_",
                );
                (pk.to_vec(), G1Affine::from(h * sk).to_compressed().to_vec())
            }
        }
    }

    pub fn confirm(&self, node: &PolicyNode, header: &BatchHeader) -> Confirmation {
        let digest = header_signing_digest(node.scheme, &node.node, header);
        let (pk, sig) = self.sign(node.scheme, &node.node, &digest);
        Confirmation {
            node: node.node,
            scheme: node.scheme,
            key_name: node.key_name.clone(),
            public_key: Blob(pk),
            signature: Blob(sig),
        }
    }

    /// A CBOR certificate whose tree holds `/canister/<hub>/certified_data` and `/time`.
    pub fn certificate(&self, hub: &Principal, certified_data: &[u8; 32], time: u64) -> Vec<u8> {
        self.certificate_signed_by(&self.root, None, hub, certified_data, time)
    }

    /// The same, signed by a subnet key that the root key delegates to for `range`.
    pub fn delegated_certificate(
        &self,
        hub: &Principal,
        certified_data: &[u8; 32],
        time: u64,
        range: (Principal, Principal),
    ) -> Vec<u8> {
        let subnet_sk = scalar(11);
        let subnet_id = Principal::from_slice(&[0x5u8; 29]);
        let ranges = vec![(
            serde_bytes::ByteBuf::from(range.0.as_slice().to_vec()),
            serde_bytes::ByteBuf::from(range.1.as_slice().to_vec()),
        )];
        let subnet_tree = label(
            "subnet",
            label(
                subnet_id.as_slice().to_vec(),
                fork(
                    label("canister_ranges", leaf(cbor(&ranges))),
                    label(
                        "public_key",
                        leaf([DER_PREFIX.as_slice(), &g2(&subnet_sk)].concat()),
                    ),
                ),
            ),
        );
        let subnet_tree = fork(subnet_tree, label("time", leaf(leb128(time))));
        let delegation_cert = self.sign_tree(&self.root, &subnet_tree, None);
        self.certificate_signed_by(
            &subnet_sk,
            Some(Delegation {
                subnet_id: serde_bytes::ByteBuf::from(subnet_id.as_slice().to_vec()),
                certificate: serde_bytes::ByteBuf::from(delegation_cert),
            }),
            hub,
            certified_data,
            time,
        )
    }

    fn certificate_signed_by(
        &self,
        sk: &Scalar,
        delegation: Option<Delegation>,
        hub: &Principal,
        certified_data: &[u8; 32],
        time: u64,
    ) -> Vec<u8> {
        let tree = fork(
            label(
                "canister",
                label(
                    hub.as_slice().to_vec(),
                    label("certified_data", leaf(certified_data.to_vec())),
                ),
            ),
            label("time", leaf(leb128(time))),
        );
        self.sign_tree(sk, &tree, delegation)
    }

    fn sign_tree(&self, sk: &Scalar, tree: &HashTree, delegation: Option<Delegation>) -> Vec<u8> {
        let msg = [b"\x0Dic-state-root".as_slice(), &tree.digest()].concat();
        let h = <G1Projective as HashToCurve<ExpandMsgXmd<Sha256>>>::hash_to_curve(
            msg,
            b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_",
        );
        let signature = G1Affine::from(h * sk).to_compressed().to_vec();
        #[derive(Serialize)]
        struct Cert<'a> {
            tree: &'a HashTree,
            #[serde(with = "serde_bytes")]
            signature: Vec<u8>,
            #[serde(skip_serializing_if = "Option::is_none")]
            delegation: Option<Delegation>,
        }
        cbor(&Cert {
            tree,
            signature,
            delegation,
        })
    }
}

#[derive(Serialize)]
struct Delegation {
    subnet_id: serde_bytes::ByteBuf,
    certificate: serde_bytes::ByteBuf,
}

pub fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn leb128(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The hub's certified tree after sealing `heights` (all header hashes of the chain), pruned to
/// a witness for `height`.
pub fn witness(chain: &[Hash32], height: u64) -> HashTree {
    let mut subtree: Option<HashTree> = None;
    for (h, hh) in chain.iter().enumerate() {
        let node = label((h as u64).to_be_bytes().to_vec(), leaf(hh.0.to_vec()));
        let node = if h as u64 == height {
            node
        } else {
            pruned(node.digest())
        };
        subtree = Some(match subtree {
            None => node,
            Some(left) => fork(left, node),
        });
    }
    label(
        CERTIFIED_HEADERS_LABEL.to_vec(),
        subtree.expect("non-empty chain"),
    )
}

pub fn principal(n: u64) -> Principal {
    Principal::from_slice(&[&n.to_be_bytes()[..], &[1, 1]].concat())
}

pub fn policy_nodes() -> Vec<PolicyNode> {
    Scheme::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| PolicyNode {
            node: principal(100 + i as u64),
            scheme: *s,
            key_name: KEY_NAME.into(),
        })
        .collect()
}

pub fn record(id: u64) -> Record {
    Record {
        id,
        submitter: principal(7 + id % 3),
        content_hash: Hash32([id as u8; 32]),
        kind: "inference".into(),
        reference: format!("req-{id}"),
        payload: id.is_multiple_of(2).then(|| Blob(vec![id as u8; 3])),
    }
}

/// A hub with a chain of sealed batches, one receipt per record.
pub struct Batch {
    pub records: Vec<Record>,
    pub levels: Vec<Vec<Hash32>>,
    pub header: BatchHeader,
    pub chain: Vec<Hash32>,
    pub confirmations: Vec<Confirmation>,
    pub policy: QuorumPolicy,
    pub certificate: Vec<u8>,
    pub witness: Vec<u8>,
}

pub fn hub() -> Principal {
    Principal::from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 1, 1, 1])
}

/// Seals `n` records as batch 1 of a chain (batch 0 holds one earlier record).
pub fn seal(net: &Network, n: u64, policy: QuorumPolicy) -> Batch {
    let hub = hub();
    let genesis = BatchHeader {
        hub,
        height: 0,
        prev_header_hash: Hash32::ZERO,
        merkle_root: leaf_hash(&record(0)),
        leaf_count: 1,
        first_record_id: 0,
        last_record_id: 0,
        start_time_nanos: NOW - 10,
        end_time_nanos: NOW - 9,
        quorum_policy_hash: quorum_policy_hash(&policy),
    };
    let records: Vec<Record> = (1..=n).map(record).collect();
    let leaves: Vec<Hash32> = records.iter().map(leaf_hash).collect();
    let levels = levels_from_leaves(&leaves);
    let header = BatchHeader {
        hub,
        height: 1,
        prev_header_hash: header_hash(&genesis),
        merkle_root: *levels.last().unwrap().first().unwrap(),
        leaf_count: n,
        first_record_id: 1,
        last_record_id: n,
        start_time_nanos: NOW - 5,
        end_time_nanos: NOW - 1,
        quorum_policy_hash: quorum_policy_hash(&policy),
    };
    let chain = vec![header_hash(&genesis), header_hash(&header)];
    let tree = witness(&chain, 1);
    let certificate = net.certificate(&hub, &tree.digest(), NOW - 1);
    let confirmations = policy
        .nodes
        .iter()
        .map(|p| net.confirm(p, &header))
        .collect();
    Batch {
        records,
        levels,
        header,
        chain,
        confirmations,
        policy,
        certificate,
        witness: cbor(&tree),
    }
}

impl Batch {
    pub fn receipt(&self, index: usize) -> Receipt {
        let levels = &self.levels;
        Receipt {
            record: self.records[index].clone(),
            leaf_index: index as u64,
            leaf_hash: leaf_hash(&self.records[index]),
            proof: proof_from_levels(
                |l, j| levels[l as usize][j as usize],
                self.header.leaf_count,
                index as u64,
            ),
            header: self.header.clone(),
            confirmations: self.confirmations.clone(),
            quorum_policy: self.policy.clone(),
            certificate: Blob(self.certificate.clone()),
            witness: Blob(self.witness.clone()),
        }
    }
}
