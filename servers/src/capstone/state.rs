//! The capstone's state directory: where the master's pid file and the unpacked
//! bundled site live unless the configuration says otherwise.
//!
//! The one idea: a per-machine runtime directory, as systemd and nginx use, picked
//! from the environment so an unprivileged user and root never share it:
//! `$XDG_RUNTIME_DIR/sysnet`, else `/run/sysnet` as root, else `$TMPDIR/sysnet-UID`.
//! A directory we did not create ourselves (another owner) is refused, so nobody
//! else can plant a pid file or a site in it.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("mkdir({path}): {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state directory {path} is not a directory owned by uid {uid}")]
    NotOurs { path: PathBuf, uid: u32 },
}

/// The state directory, created (mode 0755) if missing.
pub fn dir() -> Result<PathBuf, StateError> {
    let uid = nix::unistd::geteuid();
    let path = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x).join("sysnet"),
        None if uid.is_root() => PathBuf::from("/run/sysnet"),
        None => std::env::temp_dir().join(format!("sysnet-{uid}")),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&path)
        .map_err(|source| StateError::Create {
            path: path.clone(),
            source,
        })?;
    // lstat: a symlink planted in a shared /tmp is not followed.
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() && m.uid() == uid.as_raw() => Ok(path),
        _ => Err(StateError::NotOurs {
            path,
            uid: uid.as_raw(),
        }),
    }
}

/// FNV-1a, 64 bits: a stable name for content or a path (not a defence against
/// anyone choosing collisions, which the owner check above is for).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
