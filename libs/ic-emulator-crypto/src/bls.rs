//! BLS12-381 building blocks shared by vetKD and state certification.
//!
//! Two ciphersuites are in use on the IC, both with signatures in G1 and
//! public keys in G2:
//! - state certificates use the basic scheme (`..._RO_NUL_`), as verified by
//!   `ic-verify-bls-signature` and `ic-certificate-verification`;
//! - vetKD uses message augmentation (`..._RO_AUG_`): the public key is
//!   prepended to the input, as verified by `ic_vetkeys::verify_bls_signature`.

use ic_bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve, HashToField};
use ic_bls12_381::{G1Affine, G1Projective, G2Affine, Scalar};
use sha2::{Digest, Sha512};

const DST_NUL: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_";
const DST_AUG: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_AUG_";

/// DER prefix of an IC BLS public key (the root key and subnet keys): a
/// SubjectPublicKeyInfo with the algorithm OIDs 1.3.6.1.4.1.44668.5.3.1.2.1
/// and 1.3.6.1.4.1.44668.5.3.2.1 and a 96-byte bit string.
const IC_BLS_DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05,
    0x03, 0x01, 0x02, 0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03,
    0x02, 0x01, 0x03, 0x61, 0x00,
];

/// A scalar drawn uniformly from a labelled hash of `input` (SHA-512, then
/// reduced: the bias is below 2^-256).
pub(crate) fn scalar_from_hash(label: &[u8], input: &[u8]) -> Scalar {
    let mut hasher = Sha512::new();
    hasher.update((label.len() as u64).to_be_bytes());
    hasher.update(label);
    hasher.update(input);
    let wide: [u8; 64] = hasher.finalize().into();
    Scalar::from_bytes_wide(&wide)
}

/// RFC 9380 hash to a scalar with expand_message_xmd(SHA-256).
pub(crate) fn hash_to_scalar(input: &[u8], dst: &str) -> Scalar {
    let mut out = [Scalar::zero()];
    <Scalar as HashToField>::hash_to_field::<ExpandMsgXmd<sha2::Sha256>>(
        input,
        dst.as_bytes(),
        &mut out,
    );
    out[0]
}

/// Hash of two inputs, each prefixed with its length as a u64 (big-endian),
/// as the IC's vetKD key derivation does.
pub(crate) fn hash_to_scalar_two_inputs(a: &[u8], b: &[u8], dst: &str) -> Scalar {
    let mut input = Vec::with_capacity(16 + a.len() + b.len());
    input.extend_from_slice(&(a.len() as u64).to_be_bytes());
    input.extend_from_slice(a);
    input.extend_from_slice(&(b.len() as u64).to_be_bytes());
    input.extend_from_slice(b);
    hash_to_scalar(&input, dst)
}

fn hash_to_g1(msg: &[u8], dst: &[u8]) -> G1Projective {
    <G1Projective as HashToCurve<ExpandMsgXmd<sha2::Sha256>>>::hash_to_curve(msg, dst)
}

/// Augmented BLS signature (vetKD): `sk · H(pk ‖ input)`.
pub(crate) fn sign_augmented(sk: &Scalar, pk: &G2Affine, input: &[u8]) -> G1Affine {
    let mut msg = Vec::with_capacity(96 + input.len());
    msg.extend_from_slice(&pk.to_compressed());
    msg.extend_from_slice(input);
    G1Affine::from(hash_to_g1(&msg, DST_AUG) * sk)
}

/// A BLS key pair of the IC's state certification (root key, subnet keys).
#[derive(Clone)]
pub(crate) struct CertificationKey {
    secret: Scalar,
    public: G2Affine,
}

impl std::fmt::Debug for CertificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificationKey")
            .field("public", &hex::encode(self.public.to_compressed()))
            .finish_non_exhaustive()
    }
}

impl CertificationKey {
    pub(crate) fn from_secret(secret: Scalar) -> Self {
        let public = G2Affine::from(G2Affine::generator() * secret);
        Self { secret, public }
    }

    /// Basic-scheme signature `sk · H(msg)`, 48 bytes compressed.
    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 48] {
        G1Affine::from(hash_to_g1(msg, DST_NUL) * self.secret).to_compressed()
    }

    /// The public key in the IC's DER encoding (133 bytes).
    pub(crate) fn public_key_der(&self) -> Vec<u8> {
        let mut der = Vec::with_capacity(IC_BLS_DER_PREFIX.len() + 96);
        der.extend_from_slice(&IC_BLS_DER_PREFIX);
        der.extend_from_slice(&self.public.to_compressed());
        der
    }
}
