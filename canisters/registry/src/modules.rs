//! Uploading service modules in chunks and publishing them as versions of a kind.

use sha2::{Digest, Sha256};

use crate::runtime::Runtime;
use crate::state::{mutate_state, read_state};
use crate::storage::Upload;
use crate::types::{
    EventKind, ModuleError, StartUploadArgs, UploadChunkArgs, UploadProgress, VersionInfo,
};

fn check_controller<R: Runtime>(rt: &R) -> Result<(), ModuleError> {
    let caller = rt.caller();
    if rt.is_controller(&caller) {
        Ok(())
    } else {
        Err(ModuleError::NotController { caller })
    }
}

/// Whether `bytes` starts as a Wasm module (magic and version 1) or a gzipped file, the two
/// forms `install_code` accepts.
pub fn looks_like_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm\x01\0\0\0") || bytes.starts_with(&[0x1f, 0x8b, 0x08])
}

/// Controllers: announces a module of `size` bytes with SHA-256 `sha256` for `kind`.
pub fn start_upload<R: Runtime>(rt: &R, args: StartUploadArgs) -> Result<u64, ModuleError> {
    check_controller(rt)?;
    if read_state(|s| s.kind(&args.kind)).is_none() {
        return Err(ModuleError::UnknownKind { kind: args.kind });
    }
    if args.size == 0 {
        return Err(ModuleError::EmptyModule);
    }
    let max = read_state(|s| s.config().max_module_bytes);
    if args.size > max {
        return Err(ModuleError::TooLarge {
            size: args.size,
            max,
        });
    }
    if args.sha256.len() != 32 {
        return Err(ModuleError::InvalidHash);
    }
    Ok(mutate_state(|s| {
        s.new_upload(Upload {
            kind: args.kind,
            sha256: args.sha256.into_vec(),
            size: args.size,
            received: 0,
            version: None,
        })
    }))
}

/// Controllers: appends a chunk. Chunks arrive in order; resending an accepted chunk (same
/// offset, same bytes) is answered with the progress and changes nothing.
pub fn upload_chunk<R: Runtime>(
    rt: &R,
    args: UploadChunkArgs,
) -> Result<UploadProgress, ModuleError> {
    check_controller(rt)?;
    let id = args.upload;
    let mut upload =
        read_state(|s| s.upload(id)).ok_or(ModuleError::UnknownUpload { upload: id })?;
    let progress = |u: &Upload| UploadProgress {
        upload: id,
        received: u.received,
        size: u.size,
    };
    if upload.version.is_some() {
        return Ok(progress(&upload));
    }
    if args.offset < upload.received {
        return match read_state(|s| s.chunk(id, args.offset)) {
            Some(stored) if stored == args.bytes.as_slice() => Ok(progress(&upload)),
            _ => Err(ModuleError::ChunkMismatch {
                offset: args.offset,
            }),
        };
    }
    if args.offset != upload.received {
        return Err(ModuleError::OutOfOrder {
            expected_offset: upload.received,
            got: args.offset,
        });
    }
    if args.bytes.is_empty() {
        return Err(ModuleError::EmptyModule);
    }
    let end = args.offset.saturating_add(args.bytes.len() as u64);
    if end > upload.size {
        return Err(ModuleError::BeyondSize {
            end,
            size: upload.size,
        });
    }
    upload.received = end;
    mutate_state(|s| {
        s.put_chunk(id, args.offset, args.bytes.into_vec());
        s.put_upload(id, upload.clone());
    });
    Ok(progress(&upload))
}

/// Controllers: checks a complete upload (size, SHA-256, Wasm) and publishes it as the next
/// version of its kind. The first version becomes the kind's current version; later ones
/// become current through `upgrade_services`. A module that fails a check is dropped.
pub fn publish_module<R: Runtime>(rt: &R, id: u64) -> Result<VersionInfo, ModuleError> {
    check_controller(rt)?;
    let mut upload =
        read_state(|s| s.upload(id)).ok_or(ModuleError::UnknownUpload { upload: id })?;
    if let Some(version) = upload.version {
        return Err(ModuleError::AlreadyPublished {
            kind: upload.kind,
            version,
        });
    }
    if upload.received != upload.size {
        return Err(ModuleError::Incomplete {
            received: upload.received,
            size: upload.size,
        });
    }
    let bytes = read_state(|s| s.module_bytes(id));
    let actual: [u8; 32] = Sha256::digest(&bytes).into();
    if actual.as_slice() != upload.sha256.as_slice() {
        mutate_state(|s| s.drop_upload(id));
        return Err(ModuleError::HashMismatch {
            expected: serde_bytes::ByteBuf::from(upload.sha256),
            actual: serde_bytes::ByteBuf::from(actual.to_vec()),
        });
    }
    if !looks_like_wasm(&bytes) {
        mutate_state(|s| s.drop_upload(id));
        return Err(ModuleError::NotWasm);
    }
    let mut kind =
        read_state(|s| s.kind(&upload.kind)).ok_or_else(|| ModuleError::UnknownKind {
            kind: upload.kind.clone(),
        })?;
    if let Some(v) = kind.versions.iter().find(|v| v.hash.as_slice() == actual) {
        let version = v.version;
        mutate_state(|s| s.drop_upload(id));
        return Err(ModuleError::AlreadyPublished {
            kind: upload.kind,
            version,
        });
    }
    let version = kind.versions.last().map_or(1, |v| v.version + 1);
    let now = rt.time();
    let info = VersionInfo {
        kind: upload.kind.clone(),
        version,
        hash: serde_bytes::ByteBuf::from(actual.to_vec()),
        size: upload.size,
        published_at_nanos: now,
    };
    kind.versions.push(info.clone());
    if kind.current_version.is_none() {
        kind.current_version = Some(version);
    }
    upload.version = Some(version);
    mutate_state(|s| {
        s.put_kind(kind);
        s.put_upload(id, upload);
        s.log(
            now,
            EventKind::Published {
                kind: info.kind.clone(),
                version,
                hash: info.hash.clone(),
            },
        );
    });
    Ok(info)
}
