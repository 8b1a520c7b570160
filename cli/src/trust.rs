//! Where a verifier's trust anchors come from.
//!
//! - `--trust FILE`: a [`TrustAnchors`] JSON file (the demo writes one for the emulator).
//! - `--network ic`: the IC mainnet root key and the `key_1` / `test_key_1` master keys.
//! - `--network pocketic`: PocketIC's hard-coded master keys (`key_1`, `test_key_1`,
//!   `dfx_test_key`, as ic-secp256k1, ic-ed25519 and ic-vetkeys ship them) and the instance's
//!   root key, which differs per PocketIC instance and so must be given: `--root-key-hex HEX`
//!   (DER, or the raw 96-byte BLS key) or `--trust FILE` (its `root_key`; master keys listed in
//!   the file replace the hard-coded ones of the same scheme and name).

use anyhow::{Context, Result, bail};
use std::path::Path;
use stratros_verify::TrustAnchors;

/// The DER prefix of an IC BLS12-381 root key; the 96-byte G2 key follows.
pub const BLS_ROOT_KEY_DER_PREFIX: &str =
    "308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Network {
    /// The IC mainnet.
    Ic,
    /// A PocketIC instance (give its root key).
    Pocketic,
}

/// Resolves the command-line choices into trust anchors.
pub fn resolve(
    trust: Option<&Path>,
    network: Option<Network>,
    root_key_hex: Option<&str>,
) -> Result<TrustAnchors> {
    let from_file = |path: &Path| -> Result<TrustAnchors> {
        let json = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read trust file {}", path.display()))?;
        TrustAnchors::from_json(&json).with_context(|| format!("trust file {}", path.display()))
    };
    match (network, trust, root_key_hex) {
        (None, Some(path), None) => from_file(path),
        (None, None, None) => bail!("give --trust FILE or --network ic|pocketic"),
        (None, _, Some(_)) => bail!("--root-key-hex goes with --network pocketic"),
        (Some(Network::Ic), None, None) => Ok(TrustAnchors::mainnet()),
        (Some(Network::Ic), _, _) => {
            bail!("--network ic uses the mainnet root key: drop --trust and --root-key-hex")
        }
        (Some(Network::Pocketic), None, None) => bail!(
            "--network pocketic needs the instance's root key: --root-key-hex HEX or --trust FILE"
        ),
        (Some(Network::Pocketic), Some(_), Some(_)) => {
            bail!("give either --root-key-hex or --trust with --network pocketic, not both")
        }
        (Some(Network::Pocketic), None, Some(hex)) => Ok(pocketic(parse_root_key(hex)?)),
        (Some(Network::Pocketic), Some(path), None) => {
            let file = from_file(path)?;
            let mut anchors = pocketic(file.root_key.0);
            for key in file.master_keys {
                anchors
                    .master_keys
                    .retain(|k| !(k.scheme == key.scheme && k.key_name == key.key_name));
                anchors.master_keys.push(key);
            }
            Ok(anchors)
        }
    }
}

/// A root key given in hex: DER (as PocketIC's `root_key()` and `dfx ping` give it) or the raw
/// 96-byte BLS12-381 G2 key.
pub fn parse_root_key(text: &str) -> Result<Vec<u8>> {
    let bytes = hex::decode(text.trim()).context("--root-key-hex is not hex")?;
    let prefix = hex::decode(BLS_ROOT_KEY_DER_PREFIX).expect("BUG: constant is hex");
    match bytes.len() {
        96 => Ok([prefix, bytes].concat()),
        133 if bytes.starts_with(&prefix) => Ok(bytes),
        n => bail!(
            "--root-key-hex: expected a DER BLS12-381 root key (133 bytes) or a raw 96-byte key, \
             got {n} bytes"
        ),
    }
}

/// PocketIC's master keys with the given root key.
pub fn pocketic(root_key_der: Vec<u8>) -> TrustAnchors {
    TrustAnchors::pocketic(root_key_der)
}
