//! Reading a canister's certified data out of a certificate, the way a client does: the
//! backend-neutral check that a canister certified what it says (neither backend exposes
//! certified data directly on PocketIC).

use candid::Principal;
use ic_cbor::CertificateToCbor;
use ic_certification::{Certificate, LookupResult};

/// The certified data of `canister` in the CBOR `certificate` (what `data_certificate()`
/// returns in a query), or `None` if the certificate does not decode or does not hold it.
/// The signature is not checked here (see `ic-certificate-verification`).
pub fn certified_data(certificate: &[u8], canister: Principal) -> Option<Vec<u8>> {
    let certificate = Certificate::from_cbor(certificate).ok()?;
    match certificate.tree.lookup_path([
        b"canister".as_slice(),
        canister.as_slice(),
        b"certified_data".as_slice(),
    ]) {
        LookupResult::Found(data) => Some(data.to_vec()),
        _ => None,
    }
}
