use super::*;
use crate::KEY_NAMES;
use ic_vetkeys::{
    DerivedPublicKey, EncryptedVetKey, MasterPublicKey, TransportSecretKey, verify_bls_signature,
};

const SEED: [u8; 32] = [7; 32];
const CANISTER: &[u8] = &[0, 0, 0, 0, 0, 0x30, 0, 0x01, 0x01, 0x01];
const IDENTITY_TRANSPORT_KEY: [u8; 48] = {
    let mut k = [0u8; 48];
    k[0] = 0xc0;
    k
};

fn keys() -> Keys {
    Keys::from_seed(SEED)
}

fn path() -> Vec<Vec<u8>> {
    vec![b"stratros".to_vec(), vec![0, 0, 0, 1], vec![]]
}

fn master(keys: &Keys, scheme: &str, key_name: &str) -> Vec<u8> {
    let info = keys
        .master_public_keys()
        .into_iter()
        .find(|k| k.scheme == scheme && k.key_name == key_name)
        .expect("master key listed");
    hex::decode(info.public_key_hex).expect("hex")
}

#[test]
fn should_list_four_distinct_master_keys_per_key_name() {
    let infos = keys().master_public_keys();
    assert_eq!(infos.len(), 4 * KEY_NAMES.len());
    let mut pks: Vec<_> = infos.iter().map(|i| i.public_key_hex.clone()).collect();
    pks.sort();
    pks.dedup();
    assert_eq!(pks.len(), infos.len(), "every master key is distinct");
    for info in &infos {
        assert_eq!(
            info.chain_code_hex.is_some(),
            info.scheme != "vetkd_bls12_381"
        );
    }
    let json = serde_json::to_string(&infos).expect("serializable");
    assert!(json.contains("\"scheme\":\"schnorr_bip340\""));
}

#[test]
fn should_give_same_keys_for_same_seed_and_different_keys_for_other_seed() {
    assert_eq!(keys().master_public_keys(), keys().master_public_keys());
    assert_eq!(keys().root_public_key_der(), keys().root_public_key_der());
    let other = Keys::from_seed([8; 32]);
    assert_ne!(keys().master_public_keys(), other.master_public_keys());
    assert_ne!(keys().root_public_key_der(), other.root_public_key_der());
}

#[test]
fn should_know_exactly_the_three_key_names() {
    for name in KEY_NAMES {
        assert!(Keys::is_known_key_name(name));
    }
    assert!(!Keys::is_known_key_name("key_2"));
    assert!(!Keys::is_known_key_name(""));
}

#[test]
fn should_derive_ecdsa_public_key_like_ic_secp256k1_offline_derivation() {
    let keys = keys();
    for name in KEY_NAMES {
        let mpk =
            ic_secp256k1::PublicKey::deserialize_sec1(&master(&keys, "ecdsa_secp256k1", name))
                .expect("valid master key");
        let (expected, expected_cc) = mpk.derive_subkey(
            &ic_secp256k1::DerivationPath::from_canister_id_and_path(CANISTER, &path()),
        );
        let (pk, cc) = keys.ecdsa_public_key(name, CANISTER, &path()).expect("ok");
        assert_eq!(pk, expected.serialize_sec1(true));
        assert_eq!(pk.len(), 33);
        assert_eq!(cc, expected_cc.to_vec());
    }
}

#[test]
fn should_sign_with_ecdsa_verifiably_with_low_s() {
    let keys = keys();
    let digest: [u8; 32] = Sha256::digest(b"hello").into();
    let (pk, _) = keys
        .ecdsa_public_key("key_1", CANISTER, &path())
        .expect("ok");
    let pk = ic_secp256k1::PublicKey::deserialize_sec1(&pk).expect("valid");
    let sig = keys
        .sign_with_ecdsa("key_1", CANISTER, &path(), &digest)
        .expect("ok");
    assert_eq!(sig.len(), 64);
    assert!(pk.verify_ecdsa_signature_prehashed(&digest, &sig));
    // s ≤ n/2 (secp256k1 group order n), for many messages
    let half_order =
        hex::decode("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")
            .expect("hex");
    for i in 0..32u8 {
        let digest: [u8; 32] = Sha256::digest([i]).into();
        let sig = keys
            .sign_with_ecdsa("key_1", CANISTER, &path(), &digest)
            .expect("ok");
        assert!(sig[32..] <= half_order[..], "low s");
        assert!(pk.verify_ecdsa_signature_prehashed(&digest, &sig));
    }
    let other_path = vec![b"other".to_vec()];
    let other_sig = keys
        .sign_with_ecdsa("key_1", CANISTER, &other_path, &digest)
        .expect("ok");
    assert!(!pk.verify_ecdsa_signature_prehashed(&digest, &other_sig));
}

#[test]
fn should_reject_ecdsa_message_hash_that_is_not_32_bytes() {
    assert_eq!(
        keys().sign_with_ecdsa("key_1", CANISTER, &[], &[1; 31]),
        Err(KeyError::InvalidMessageHashLength { len: 31 })
    );
}

#[test]
fn should_derive_bip340_public_key_like_ic_secp256k1_offline_derivation() {
    let keys = keys();
    for name in KEY_NAMES {
        let mpk = ic_secp256k1::PublicKey::deserialize_sec1(&master(&keys, "schnorr_bip340", name))
            .expect("valid master key");
        let (expected, expected_cc) = mpk.derive_subkey(
            &ic_secp256k1::DerivationPath::from_canister_id_and_path(CANISTER, &path()),
        );
        let (pk, cc) = keys
            .schnorr_public_key(SchnorrAlgorithm::Bip340Secp256k1, name, CANISTER, &path())
            .expect("ok");
        assert_eq!(pk, expected.serialize_sec1(true));
        assert_eq!(cc, expected_cc.to_vec());
    }
}

#[test]
fn should_sign_with_bip340_verifiably() {
    let keys = keys();
    let alg = SchnorrAlgorithm::Bip340Secp256k1;
    let (pk, _) = keys
        .schnorr_public_key(alg, "test_key_1", CANISTER, &path())
        .expect("ok");
    let pk = ic_secp256k1::PublicKey::deserialize_sec1(&pk).expect("valid");
    for message in [&b"a message of any length"[..], &[9; 32], &[]] {
        let sig = keys
            .sign_with_schnorr(alg, "test_key_1", CANISTER, &path(), message, None, [3; 32])
            .expect("ok");
        assert_eq!(sig.len(), 64);
        assert!(pk.verify_bip340_signature(message, &sig));
    }
}

#[test]
fn should_sign_with_bip341_tweak_verifiably() {
    let keys = keys();
    let alg = SchnorrAlgorithm::Bip340Secp256k1;
    let (pk, _) = keys
        .schnorr_public_key(alg, "key_1", CANISTER, &path())
        .expect("ok");
    let pk = ic_secp256k1::PublicKey::deserialize_sec1(&pk).expect("valid");
    let message = [5u8; 32];
    for root in [&[][..], &[0xab; 32][..]] {
        let sig = keys
            .sign_with_schnorr(
                alg,
                "key_1",
                CANISTER,
                &path(),
                &message,
                Some(root),
                [1; 32],
            )
            .expect("ok");
        assert!(pk.verify_bip341_signature(&message, &sig, root));
        assert!(
            !pk.verify_bip340_signature(&message, &sig),
            "tweaked key signed"
        );
    }
}

#[test]
fn should_reject_bip341_merkle_root_of_bad_length_or_with_ed25519() {
    let keys = keys();
    assert_eq!(
        keys.sign_with_schnorr(
            SchnorrAlgorithm::Bip340Secp256k1,
            "key_1",
            CANISTER,
            &[],
            b"m",
            Some(&[0; 31]),
            [0; 32]
        ),
        Err(KeyError::InvalidMerkleRootLength { len: 31 })
    );
    assert_eq!(
        keys.sign_with_schnorr(
            SchnorrAlgorithm::Ed25519,
            "key_1",
            CANISTER,
            &[],
            b"m",
            Some(&[0; 32]),
            [0; 32]
        ),
        Err(KeyError::MerkleRootNotSupported)
    );
}

#[test]
fn should_derive_ed25519_public_key_like_ic_ed25519_offline_derivation() {
    let keys = keys();
    for name in KEY_NAMES {
        let mpk = ic_ed25519::PublicKey::deserialize_raw(&master(&keys, "schnorr_ed25519", name))
            .expect("valid master key");
        let (expected, expected_cc) = mpk.derive_subkey(
            &ic_ed25519::DerivationPath::from_canister_id_and_path(CANISTER, &path()),
        );
        let (pk, cc) = keys
            .schnorr_public_key(SchnorrAlgorithm::Ed25519, name, CANISTER, &path())
            .expect("ok");
        assert_eq!(pk, expected.serialize_raw().to_vec());
        assert_eq!(cc, expected_cc.to_vec());
    }
}

#[test]
fn should_sign_with_ed25519_verifiably() {
    let keys = keys();
    let alg = SchnorrAlgorithm::Ed25519;
    let (pk, _) = keys
        .schnorr_public_key(alg, "dfx_test_key", CANISTER, &path())
        .expect("ok");
    let pk = ic_ed25519::PublicKey::deserialize_raw(&pk).expect("valid");
    let sig = keys
        .sign_with_schnorr(
            alg,
            "dfx_test_key",
            CANISTER,
            &path(),
            b"msg",
            None,
            [0; 32],
        )
        .expect("ok");
    assert_eq!(pk.verify_signature(b"msg", &sig), Ok(()));
    assert!(pk.verify_signature(b"other", &sig).is_err());
}

#[test]
fn should_derive_vetkd_public_key_like_ic_vetkeys_offline_derivation() {
    let keys = keys();
    for name in KEY_NAMES {
        let mpk = MasterPublicKey::deserialize(&master(&keys, "vetkd_bls12_381", name))
            .expect("valid master key");
        for context in [&b""[..], b"stratros context"] {
            let expected = mpk.derive_canister_key(CANISTER).derive_sub_key(context);
            let pk = keys.vetkd_public_key(name, CANISTER, context).expect("ok");
            assert_eq!(pk, expected.serialize());
            assert_eq!(pk.len(), 96);
        }
    }
}

#[test]
fn should_return_bls_signature_as_e3_with_identity_transport_key() {
    let keys = keys();
    let pk = keys
        .vetkd_public_key("key_1", CANISTER, b"ctx")
        .expect("ok");
    let dpk = DerivedPublicKey::deserialize(&pk).expect("valid");
    let ek = keys
        .vetkd_derive_key(
            "key_1",
            CANISTER,
            b"ctx",
            b"input",
            &IDENTITY_TRANSPORT_KEY,
            [1; 32],
        )
        .expect("ok");
    assert_eq!(ek.len(), 192);
    let sig = &ek[144..192];
    assert!(verify_bls_signature(&dpk, b"input", sig));
    assert!(!verify_bls_signature(&dpk, b"other input", sig));
    let again = keys
        .vetkd_derive_key(
            "key_1",
            CANISTER,
            b"ctx",
            b"input",
            &IDENTITY_TRANSPORT_KEY,
            [2; 32],
        )
        .expect("ok");
    assert_eq!(&again[144..], sig, "the signature is deterministic");
}

#[test]
fn should_decrypt_vetkey_with_random_transport_key() {
    use rand::RngCore;
    let keys = keys();
    let mut tsk_seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut tsk_seed);
    let tsk = TransportSecretKey::from_seed(tsk_seed.to_vec()).expect("32 bytes");
    let pk = keys
        .vetkd_public_key("test_key_1", CANISTER, b"ctx")
        .expect("ok");
    let dpk = DerivedPublicKey::deserialize(&pk).expect("valid");
    let ek = keys
        .vetkd_derive_key(
            "test_key_1",
            CANISTER,
            b"ctx",
            b"id",
            &tsk.public_key(),
            [4; 32],
        )
        .expect("ok");
    let ek = EncryptedVetKey::deserialize(&ek).expect("valid encoding");
    let vetkey = ek.decrypt_and_verify(&tsk, &dpk, b"id").expect("decrypts");
    let plain = keys
        .vetkd_derive_key(
            "test_key_1",
            CANISTER,
            b"ctx",
            b"id",
            &IDENTITY_TRANSPORT_KEY,
            [0; 32],
        )
        .expect("ok");
    assert_eq!(&vetkey.signature_bytes()[..], &plain[144..]);
    assert!(ek.decrypt_and_verify(&tsk, &dpk, b"other id").is_err());
}

#[test]
fn should_reject_transport_key_that_is_not_a_g1_point() {
    let keys = keys();
    let mut not_on_curve = [0u8; 48];
    not_on_curve[0] = 0x80;
    not_on_curve[47] = 5;
    for bad in [&[0u8; 48][..], &not_on_curve, &[0xc0; 47], &[]] {
        assert_eq!(
            keys.vetkd_derive_key("key_1", CANISTER, b"", b"in", bad, [0; 32]),
            Err(KeyError::InvalidTransportPublicKey)
        );
    }
}

#[test]
fn should_reject_unknown_key_name_in_every_call() {
    let keys = keys();
    let unknown = Err(KeyError::UnknownKeyName {
        key_name: "nope".into(),
    });
    assert_eq!(keys.ecdsa_public_key("nope", CANISTER, &[]), unknown);
    assert_eq!(
        keys.sign_with_ecdsa("nope", CANISTER, &[], &[0; 32])
            .map(|_| ()),
        unknown.clone().map(|_: (Vec<u8>, Vec<u8>)| ())
    );
    for alg in [SchnorrAlgorithm::Bip340Secp256k1, SchnorrAlgorithm::Ed25519] {
        assert_eq!(keys.schnorr_public_key(alg, "nope", CANISTER, &[]), unknown);
        assert!(matches!(
            keys.sign_with_schnorr(alg, "nope", CANISTER, &[], b"m", None, [0; 32]),
            Err(KeyError::UnknownKeyName { .. })
        ));
    }
    assert!(matches!(
        keys.vetkd_public_key("nope", CANISTER, b""),
        Err(KeyError::UnknownKeyName { .. })
    ));
    assert!(matches!(
        keys.vetkd_derive_key("nope", CANISTER, b"", b"", &IDENTITY_TRANSPORT_KEY, [0; 32]),
        Err(KeyError::UnknownKeyName { .. })
    ));
}

#[test]
fn should_reject_too_long_derivation_path_and_canister_id() {
    let keys = keys();
    let long_path = vec![vec![]; 256];
    assert_eq!(
        keys.ecdsa_public_key("key_1", CANISTER, &long_path),
        Err(KeyError::DerivationPathTooLong { len: 256, max: 255 })
    );
    assert!(
        keys.ecdsa_public_key("key_1", CANISTER, &long_path[..255])
            .is_ok()
    );
    assert_eq!(
        keys.schnorr_public_key(SchnorrAlgorithm::Ed25519, "key_1", &[0; 30], &[]),
        Err(KeyError::InvalidPrincipal { len: 30, max: 29 })
    );
}

#[test]
fn should_derive_different_keys_for_different_canisters_and_paths() {
    let keys = keys();
    let a = keys.ecdsa_public_key("key_1", CANISTER, &[]).expect("ok");
    let b = keys.ecdsa_public_key("key_1", &[1, 2, 3], &[]).expect("ok");
    let c = keys
        .ecdsa_public_key("key_1", CANISTER, &[vec![1]])
        .expect("ok");
    assert_ne!(a, b);
    assert_ne!(a, c);
}

/// Prints the cost of one call of each kind: `cargo test -p ic-emulator-crypto
/// -- --ignored --nocapture should_report_timings`.
#[test]
#[ignore = "timing report, not a check"]
fn should_report_timings() {
    use std::time::Instant;
    let started = Instant::now();
    let keys = keys();
    println!("from_seed: {:?}", started.elapsed());
    let digest = [1u8; 32];
    let runs = 20u32;
    let time = |label: &str, f: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..runs {
            f();
        }
        println!("{label}: {:?} per call", t.elapsed() / runs);
    };
    time("ecdsa_public_key", &|| {
        keys.ecdsa_public_key("key_1", CANISTER, &path())
            .expect("ok");
    });
    time("sign_with_ecdsa", &|| {
        keys.sign_with_ecdsa("key_1", CANISTER, &path(), &digest)
            .expect("ok");
    });
    time("sign_with_schnorr bip340", &|| {
        keys.sign_with_schnorr(
            SchnorrAlgorithm::Bip340Secp256k1,
            "key_1",
            CANISTER,
            &path(),
            &digest,
            None,
            [0; 32],
        )
        .expect("ok");
    });
    time("sign_with_schnorr ed25519", &|| {
        keys.sign_with_schnorr(
            SchnorrAlgorithm::Ed25519,
            "key_1",
            CANISTER,
            &path(),
            &digest,
            None,
            [0; 32],
        )
        .expect("ok");
    });
    time("vetkd_public_key", &|| {
        keys.vetkd_public_key("key_1", CANISTER, b"ctx")
            .expect("ok");
    });
    let tsk = TransportSecretKey::from_seed(vec![9; 32]).expect("ok");
    time("vetkd_derive_key", &|| {
        keys.vetkd_derive_key("key_1", CANISTER, b"ctx", b"in", &tsk.public_key(), [0; 32])
            .expect("ok");
    });
    let root = keys.subnet_signer(&[0; 10], true, &[]).expect("ok");
    let app = keys
        .subnet_signer(&[1; 29], false, &[(CANISTER.to_vec(), CANISTER.to_vec())])
        .expect("ok");
    time("certificate (root subnet)", &|| {
        keys.certificate(&root, 1, CANISTER, &[0; 32]).expect("ok");
    });
    time("certificate (delegated subnet)", &|| {
        keys.certificate(&app, 1, CANISTER, &[0; 32]).expect("ok");
    });
}
