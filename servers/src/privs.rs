//! Giving up privileges after the privileged work (binding ports, opening logs) is done.
//!
//! The one idea is the order, the one nginx and darkhttpd use: look the user up while
//! `/etc/passwd` is still reachable, `chroot` (after `tzset`, so the time zone is
//! loaded from outside the jail, and followed by `chdir("/")`, so no directory handle
//! points outside it), then `setgroups`, `setgid`, `setuid`: groups first because
//! changing them needs the privilege that `setuid` gives away. Finally prove it: a
//! `setuid(0)` that succeeds means the drop did not happen, and that is fatal.

use nix::unistd::{Gid, Uid};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    #[error("getpwnam({user}): {source}")]
    Lookup { user: String, source: nix::Error },
    #[error("getpwnam({0}): no such user")]
    NoUser(String),
    #[error("chroot({path}): {source}")]
    Chroot { path: PathBuf, source: nix::Error },
    #[error("chdir(/) after chroot: {0}")]
    Chdir(nix::Error),
    #[error("setgroups([{gid}]): {source}")]
    Setgroups { gid: Gid, source: nix::Error },
    #[error("setgid({gid}): {source}")]
    Setgid { gid: Gid, source: nix::Error },
    #[error("setuid({uid}): {source}")]
    Setuid { uid: Uid, source: nix::Error },
    #[error("setuid(0) succeeded after dropping to uid {0}: privileges were not dropped")]
    StillRoot(Uid),
}

/// The identity to drop to.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// Looks `name` up in the user database (before any `chroot`).
pub fn lookup(name: &str) -> Result<Account, PrivError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(Account {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
        }),
        Ok(None) => Err(PrivError::NoUser(name.to_string())),
        Err(source) => Err(PrivError::Lookup {
            user: name.to_string(),
            source,
        }),
    }
}

extern "C" {
    fn tzset();
}

/// Jails the process in `dir`. Needs root (or `CAP_SYS_CHROOT`).
pub fn chroot(dir: &Path) -> Result<(), PrivError> {
    // SAFETY: tzset only reads TZ and /etc/localtime into libc's own state; it is
    // called before any thread of ours formats local time.
    unsafe { tzset() };
    nix::unistd::chroot(dir).map_err(|source| PrivError::Chroot {
        path: dir.to_path_buf(),
        source,
    })?;
    nix::unistd::chdir("/").map_err(PrivError::Chdir)
}

/// Drops to `account` for good: supplementary groups, group, user, then checks that
/// root cannot be regained.
pub fn drop_to(account: &Account) -> Result<(), PrivError> {
    let gid = account.gid;
    nix::unistd::setgroups(&[gid]).map_err(|source| PrivError::Setgroups { gid, source })?;
    nix::unistd::setgid(gid).map_err(|source| PrivError::Setgid { gid, source })?;
    let uid = account.uid;
    nix::unistd::setuid(uid).map_err(|source| PrivError::Setuid { uid, source })?;
    if !uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivError::StillRoot(uid));
    }
    tracing::info!(user = %account.name, uid = %uid, gid = %gid, "privileges dropped");
    Ok(())
}

/// Warns loudly when the process runs as root with no user to drop to.
pub fn warn_if_root(user: Option<&str>) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if root && user.is_none() {
        tracing::warn!(
            "RUNNING AS ROOT without --user: a compromise of this server is a compromise \
             of the machine; pass --user nobody (and --chroot) to drop privileges"
        );
        eprintln!("WARNING: running as root without --user; pass --user USER to drop privileges");
    }
    root && user.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_known_and_unknown() {
        let root = lookup("root").unwrap();
        assert!(root.uid.is_root());
        assert!(matches!(
            lookup("no-such-user-sysnet"),
            Err(PrivError::NoUser(_))
        ));
    }

    #[test]
    fn errors_name_the_call() {
        let e = PrivError::Setuid {
            uid: Uid::from_raw(65534),
            source: nix::Error::EPERM,
        };
        assert!(e.to_string().starts_with("setuid(65534): "));
    }
}
