//! State certificates, as a canister gets them from `data_certificate()`.
//!
//! The certificate is the CBOR map `{tree, signature, delegation?}` of the IC
//! interface specification, behind the self-describing tag 55799. Its tree
//! holds `/time` and `/canister/<id>/certified_data`; its signature is the
//! BLS signature (basic scheme) of `"\x0Dic-state-root" ‖ root_hash` by the
//! subnet's key.
//!
//! As on mainnet, the root (NNS) subnet signs with the root key and needs no
//! delegation; every other subnet has its own key and its certificates carry
//! a delegation whose inner certificate, signed with the root key, holds
//! `/subnet/<subnet_id>/public_key`, the subnet's canister ranges (both at
//! `/canister_ranges/<subnet_id>/<lower bound>` and at the older
//! `/subnet/<subnet_id>/canister_ranges`) and `/time`.

use crate::bls::{CertificationKey, scalar_from_hash};
use crate::error::KeyError;
use crate::keys::{Keys, seed_for};
use crate::{MAX_CERTIFIED_DATA_LEN, MAX_PRINCIPAL_LEN};
use ciborium::Value;
use ic_certification::{Certificate, Delegation};
use ic_certification::{HashTree, fork, labeled, leaf};

#[cfg(test)]
mod tests;

const IC_STATE_ROOT_DOMAIN_SEPARATOR: &[u8] = b"\x0Dic-state-root";
const SELF_DESCRIBING_CBOR_TAG: u64 = 55799;

/// A subnet able to certify its canisters' data: its id, its BLS key (the
/// root key for the root subnet) and the canister id ranges it hosts.
/// Build one with [`Keys::subnet_signer`].
#[derive(Clone, Debug)]
pub struct SubnetSigner {
    subnet_id: Vec<u8>,
    is_root: bool,
    canister_ranges: Vec<(Vec<u8>, Vec<u8>)>,
    key: CertificationKey,
}

/// Principal order (as `candid::Principal`'s `Ord`): length first, then bytes.
fn principal_le(a: &[u8], b: &[u8]) -> bool {
    (a.len(), a) <= (b.len(), b)
}

fn check_principal(id: &[u8]) -> Result<(), KeyError> {
    if id.len() > MAX_PRINCIPAL_LEN {
        return Err(KeyError::InvalidPrincipal {
            len: id.len(),
            max: MAX_PRINCIPAL_LEN,
        });
    }
    Ok(())
}

fn leb128_u64(mut value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn to_cbor(value: &Value) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| KeyError::Encoding(e.to_string()))?;
    Ok(out)
}

impl SubnetSigner {
    /// The subnet id (principal bytes).
    pub fn subnet_id(&self) -> &[u8] {
        &self.subnet_id
    }

    /// Whether this is the root (NNS) subnet, which signs with the root key.
    pub fn is_root(&self) -> bool {
        self.is_root
    }

    /// The subnet's BLS public key in DER (133 bytes).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.public_key_der()
    }

    /// Whether `canister_id` lies in one of the subnet's ranges (inclusive).
    pub fn hosts(&self, canister_id: &[u8]) -> bool {
        self.canister_ranges
            .iter()
            .any(|(lo, hi)| principal_le(lo, canister_id) && principal_le(canister_id, hi))
    }

    /// The canister ranges as the IC certifies them: a CBOR array of
    /// `[lower, upper]` byte-string pairs.
    fn ranges_cbor(&self) -> Result<Vec<u8>, KeyError> {
        let ranges = self
            .canister_ranges
            .iter()
            .map(|(lo, hi)| Value::Array(vec![Value::Bytes(lo.clone()), Value::Bytes(hi.clone())]))
            .collect();
        to_cbor(&Value::Array(ranges))
    }

    /// The tree of the delegation certificate (labels in sorted order).
    fn delegation_tree(&self, time_nanos: u64) -> Result<HashTree, KeyError> {
        let ranges = self.ranges_cbor()?;
        let subnet = labeled(
            *b"subnet",
            labeled(
                self.subnet_id.clone(),
                fork(
                    labeled(*b"canister_ranges", leaf(ranges.clone())),
                    labeled(*b"public_key", leaf(self.key.public_key_der())),
                ),
            ),
        );
        let time = labeled(*b"time", leaf(leb128_u64(time_nanos)));
        let tree = match self.canister_ranges.first() {
            Some((first_lower_bound, _)) => fork(
                labeled(
                    *b"canister_ranges",
                    labeled(
                        self.subnet_id.clone(),
                        labeled(first_lower_bound.clone(), leaf(ranges)),
                    ),
                ),
                fork(subnet, time),
            ),
            None => fork(subnet, time),
        };
        Ok(tree)
    }
}

/// Sign `tree` with `key` and encode `{tree, signature, delegation?}` as
/// tagged CBOR.
fn encode_certificate(
    tree: HashTree,
    key: &CertificationKey,
    delegation: Option<Delegation>,
) -> Result<Vec<u8>, KeyError> {
    let mut msg = Vec::with_capacity(IC_STATE_ROOT_DOMAIN_SEPARATOR.len() + 32);
    msg.extend_from_slice(IC_STATE_ROOT_DOMAIN_SEPARATOR);
    msg.extend_from_slice(&tree.digest());
    let certificate = Certificate {
        tree,
        signature: key.sign(&msg).to_vec(),
        delegation,
    };
    let value = Value::serialized(&certificate).map_err(|e| KeyError::Encoding(e.to_string()))?;
    to_cbor(&Value::Tag(SELF_DESCRIBING_CBOR_TAG, Box::new(value)))
}

impl Keys {
    /// A subnet of this IC. The root subnet signs with the root key; any
    /// other subnet gets a key derived from the seed and its id. Ranges are
    /// inclusive `(lower, upper)` canister ids.
    pub fn subnet_signer(
        &self,
        subnet_id: &[u8],
        is_root: bool,
        canister_ranges: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<SubnetSigner, KeyError> {
        check_principal(subnet_id)?;
        for (lo, hi) in canister_ranges {
            check_principal(lo)?;
            check_principal(hi)?;
            if !principal_le(lo, hi) {
                return Err(KeyError::InvalidCanisterRange);
            }
        }
        let key = if is_root {
            self.root.clone()
        } else {
            CertificationKey::from_secret(scalar_from_hash(
                b"subnet",
                &seed_for(self.seed(), "certification", subnet_id),
            ))
        };
        Ok(SubnetSigner {
            subnet_id: subnet_id.to_vec(),
            is_root,
            canister_ranges: canister_ranges.to_vec(),
            key,
        })
    }

    /// The certificate that `data_certificate()` returns to `canister_id` on
    /// `subnet` at `time_nanos`, certifying `certified_data` (≤ 32 bytes).
    /// A non-root subnet's certificate carries a delegation, made afresh
    /// with the same time.
    pub fn certificate(
        &self,
        subnet: &SubnetSigner,
        time_nanos: u64,
        canister_id: &[u8],
        certified_data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        check_principal(canister_id)?;
        if certified_data.len() > MAX_CERTIFIED_DATA_LEN {
            return Err(KeyError::CertifiedDataTooLong {
                len: certified_data.len(),
            });
        }
        if !subnet.canister_ranges.is_empty() && !subnet.hosts(canister_id) {
            return Err(KeyError::CanisterNotOnSubnet {
                canister_id: hex::encode(canister_id),
                subnet_id: hex::encode(&subnet.subnet_id),
            });
        }
        let tree = fork(
            labeled(
                *b"canister",
                labeled(
                    canister_id.to_vec(),
                    labeled(*b"certified_data", leaf(certified_data.to_vec())),
                ),
            ),
            labeled(*b"time", leaf(leb128_u64(time_nanos))),
        );
        let delegation = if subnet.is_root {
            None
        } else {
            let inner = encode_certificate(subnet.delegation_tree(time_nanos)?, &self.root, None)?;
            Some(Delegation {
                subnet_id: subnet.subnet_id.clone(),
                certificate: inner,
            })
        };
        encode_certificate(tree, &subnet.key, delegation)
    }
}
