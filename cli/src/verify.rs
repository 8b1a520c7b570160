//! `stratros verify`: one line per receipt file, `OK` or `FAIL` with the precise reason.

use std::io::Write;
use std::path::Path;
use stratros_confirmation::Receipt;
use stratros_verify::{TrustAnchors, VerifiedReceipt, verify_receipt};

/// When the certificate is checked for freshness.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// "Now", Unix epoch nanoseconds.
    pub now_nanos: u64,
    /// The certificate's `/time` must lie within this of `now_nanos`, either side.
    /// `u64::MAX`: no freshness check (headers are immutable and hash-chained, so an old
    /// certificate of a header still proves it).
    pub max_cert_age_nanos: u64,
}

impl Options {
    pub fn now(max_cert_age_nanos: u64) -> Self {
        let now_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            now_nanos,
            max_cert_age_nanos,
        }
    }
}

/// Reads and verifies one receipt file.
pub fn verify_file(
    path: &Path,
    anchors: &TrustAnchors,
    options: Options,
) -> Result<VerifiedReceipt, String> {
    let json = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let receipt = Receipt::from_json(&json).map_err(|e| format!("not a receipt: {e}"))?;
    verify_receipt(
        &receipt,
        anchors,
        options.now_nanos,
        options.max_cert_age_nanos,
    )
    .map_err(|e| e.to_string())
}

/// The line printed for one file.
pub fn line(path: &Path, outcome: &Result<VerifiedReceipt, String>) -> String {
    match outcome {
        Ok(v) => {
            let schemes: Vec<&str> = v.confirmed_by.iter().map(|(_, s)| s.name()).collect();
            format!(
                "OK {} (record {}, batch {}, hub {}, schemes {})",
                path.display(),
                v.record_id,
                v.height,
                v.hub,
                schemes.join(", ")
            )
        }
        Err(reason) => format!("FAIL {}: {reason}", path.display()),
    }
}

/// Verifies every file, prints one line each to `out`, and says whether all were valid.
pub fn run(
    files: &[impl AsRef<Path>],
    anchors: &TrustAnchors,
    options: Options,
    out: &mut impl Write,
) -> std::io::Result<bool> {
    let mut all_ok = true;
    for path in files {
        let path = path.as_ref();
        let outcome = verify_file(path, anchors, options);
        all_ok &= outcome.is_ok();
        writeln!(out, "{}", line(path, &outcome))?;
    }
    Ok(all_ok)
}
