use super::*;
use ic_cbor::CertificateToCbor;
use ic_certificate_verification::{CertificateVerificationError, VerifyCertificate};
use ic_certification::LookupResult;

const NOW: u64 = 1_764_000_000_000_000_000;
const MAX_OFFSET: u128 = 300_000_000_000;
const ROOT_SUBNET: [u8; 29] = [0x11; 29];
const APP_SUBNET: [u8; 29] = [0x22; 29];

fn canister(n: u8) -> Vec<u8> {
    vec![0, 0, 0, 0, 0, 0x30, 0, n, 0x01, 0x01]
}

fn keys() -> Keys {
    Keys::from_seed([42; 32])
}

fn root_subnet(keys: &Keys) -> SubnetSigner {
    keys.subnet_signer(&ROOT_SUBNET, true, &[(canister(0), canister(9))])
        .expect("valid")
}

fn app_subnet(keys: &Keys) -> SubnetSigner {
    keys.subnet_signer(
        &APP_SUBNET,
        false,
        &[(canister(10), canister(19)), (canister(30), canister(39))],
    )
    .expect("valid")
}

fn verify(cbor: &[u8], canister_id: &[u8], root_key: &[u8]) -> Result<Certificate, String> {
    let cert = Certificate::from_cbor(cbor).map_err(|e| e.to_string())?;
    cert.verify(canister_id, root_key, &u128::from(NOW), &MAX_OFFSET)
        .map_err(|e| e.to_string())?;
    Ok(cert)
}

fn certified_data(cert: &Certificate, canister_id: &[u8]) -> Option<Vec<u8>> {
    match cert
        .tree
        .lookup_path([b"canister".as_slice(), canister_id, b"certified_data"])
    {
        LookupResult::Found(data) => Some(data.to_vec()),
        _ => None,
    }
}

#[test]
fn should_produce_root_key_in_ic_der_format() {
    let der = keys().root_public_key_der();
    assert_eq!(der.len(), 133);
    assert_eq!(&der[..5], &[0x30, 0x81, 0x82, 0x30, 0x1d]);
}

#[test]
fn should_certify_data_on_root_subnet_without_delegation() {
    let keys = keys();
    let cbor = keys
        .certificate(&root_subnet(&keys), NOW, &canister(3), &[0xaa; 32])
        .expect("ok");
    assert_eq!(&cbor[..3], &[0xd9, 0xd9, 0xf7], "self-describing CBOR tag");
    let cert = verify(&cbor, &canister(3), &keys.root_public_key_der()).expect("verifies");
    assert!(cert.delegation.is_none());
    assert_eq!(certified_data(&cert, &canister(3)), Some(vec![0xaa; 32]));
}

#[test]
fn should_certify_data_on_other_subnet_with_root_signed_delegation() {
    let keys = keys();
    let subnet = app_subnet(&keys);
    for c in [canister(10), canister(15), canister(39)] {
        let cbor = keys.certificate(&subnet, NOW, &c, b"short").expect("ok");
        let cert = verify(&cbor, &c, &keys.root_public_key_der()).expect("verifies");
        let delegation = cert.delegation.clone().expect("delegated");
        assert_eq!(delegation.subnet_id, APP_SUBNET.to_vec());
        assert_eq!(certified_data(&cert, &c), Some(b"short".to_vec()));
        let inner = Certificate::from_cbor(&delegation.certificate).expect("cbor");
        assert_eq!(
            inner
                .tree
                .lookup_path([b"subnet".as_slice(), &APP_SUBNET, b"public_key"]),
            LookupResult::Found(&subnet.public_key_der()[..])
        );
        assert_ne!(subnet.public_key_der(), keys.root_public_key_der());
    }
}

#[test]
fn should_certify_empty_certified_data() {
    let keys = keys();
    let cbor = keys
        .certificate(&app_subnet(&keys), NOW, &canister(12), &[])
        .expect("ok");
    let cert = verify(&cbor, &canister(12), &keys.root_public_key_der()).expect("verifies");
    assert_eq!(certified_data(&cert, &canister(12)), Some(vec![]));
}

#[test]
fn should_fail_verification_of_tampered_certificate() {
    let keys = keys();
    for subnet in [root_subnet(&keys), app_subnet(&keys)] {
        let c = if subnet.is_root() {
            canister(1)
        } else {
            canister(11)
        };
        let cbor = keys.certificate(&subnet, NOW, &c, &[1; 32]).expect("ok");
        let needle = [1u8; 32];
        let at = cbor
            .windows(32)
            .position(|w| w == needle)
            .expect("certified data present");
        let mut tampered = cbor.clone();
        tampered[at] ^= 1;
        assert!(verify(&tampered, &c, &keys.root_public_key_der()).is_err());
    }
}

#[test]
fn should_fail_verification_with_another_root_key() {
    let keys = keys();
    let other_root = Keys::from_seed([43; 32]).root_public_key_der();
    let cbor = keys
        .certificate(&app_subnet(&keys), NOW, &canister(11), &[1; 32])
        .expect("ok");
    let cert = Certificate::from_cbor(&cbor).expect("cbor");
    assert!(matches!(
        cert.verify(&canister(11), &other_root, &u128::from(NOW), &MAX_OFFSET),
        Err(CertificateVerificationError::SignatureVerificationFailed)
    ));
}

#[test]
fn should_fail_verification_for_stale_certificate() {
    let keys = keys();
    let cbor = keys
        .certificate(
            &root_subnet(&keys),
            NOW - 600_000_000_000,
            &canister(1),
            &[],
        )
        .expect("ok");
    assert!(verify(&cbor, &canister(1), &keys.root_public_key_der()).is_err());
}

#[test]
fn should_refuse_certificate_for_canister_outside_subnet_ranges() {
    let keys = keys();
    assert!(matches!(
        keys.certificate(&app_subnet(&keys), NOW, &canister(20), &[]),
        Err(KeyError::CanisterNotOnSubnet { .. })
    ));
}

#[test]
fn should_fail_verification_when_delegation_does_not_cover_canister() {
    // A certificate of one subnet presented as another canister's.
    let keys = keys();
    let cbor = keys
        .certificate(&app_subnet(&keys), NOW, &canister(11), &[])
        .expect("ok");
    assert!(verify(&cbor, &canister(25), &keys.root_public_key_der()).is_err());
}

#[test]
fn should_reject_bad_certificate_inputs() {
    let keys = keys();
    let root = root_subnet(&keys);
    assert_eq!(
        keys.certificate(&root, NOW, &canister(1), &[0; 33]),
        Err(KeyError::CertifiedDataTooLong { len: 33 })
    );
    assert_eq!(
        keys.certificate(&root, NOW, &[0; 30], &[]),
        Err(KeyError::InvalidPrincipal { len: 30, max: 29 })
    );
    assert_eq!(
        keys.subnet_signer(&APP_SUBNET, false, &[(canister(9), canister(1))])
            .map(|_| ()),
        Err(KeyError::InvalidCanisterRange)
    );
    assert!(keys.subnet_signer(&[0; 30], false, &[]).is_err());
}

#[test]
fn should_give_each_subnet_its_own_deterministic_key() {
    let keys = keys();
    let a = keys.subnet_signer(&APP_SUBNET, false, &[]).expect("ok");
    let b = keys.subnet_signer(&[0x33; 29], false, &[]).expect("ok");
    assert_ne!(a.public_key_der(), b.public_key_der());
    assert_eq!(
        a.public_key_der(),
        Keys::from_seed([42; 32])
            .subnet_signer(&APP_SUBNET, false, &[])
            .expect("ok")
            .public_key_der()
    );
    assert_eq!(
        root_subnet(&keys).public_key_der(),
        keys.root_public_key_der()
    );
}

#[test]
fn should_encode_time_as_leb128() {
    assert_eq!(leb128_u64(0), vec![0]);
    assert_eq!(leb128_u64(624_485), vec![0xe5, 0x8e, 0x26]);
    assert_eq!(leb128_u64(u64::MAX).len(), 10);
}

#[test]
fn should_certify_subnet_ranges_in_both_new_and_old_paths_of_delegation() {
    let keys = keys();
    let cbor = keys
        .certificate(&app_subnet(&keys), NOW, &canister(10), &[])
        .expect("ok");
    let cert = Certificate::from_cbor(&cbor).expect("cbor");
    let inner =
        Certificate::from_cbor(&cert.delegation.expect("delegated").certificate).expect("cbor");
    let expected = vec![
        (
            candid::Principal::from_slice(&canister(10)),
            candid::Principal::from_slice(&canister(19)),
        ),
        (
            candid::Principal::from_slice(&canister(30)),
            candid::Principal::from_slice(&canister(39)),
        ),
    ];
    let new_path = [b"canister_ranges".as_slice(), &APP_SUBNET, &canister(10)];
    let old_path = [b"subnet".as_slice(), &APP_SUBNET, b"canister_ranges"];
    for path in [&new_path, &old_path] {
        let LookupResult::Found(ranges) = inner.tree.lookup_path(path.iter()) else {
            panic!("ranges at {path:?}");
        };
        assert_eq!(
            ic_cbor::parse_cbor_principals_array(ranges).expect("ranges"),
            expected
        );
    }
    assert!(matches!(
        inner.tree.lookup_path([b"time".as_slice()]),
        LookupResult::Found(_)
    ));
}
