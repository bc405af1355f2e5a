//! The site bundled in the binary (`servers/www/`, embedded by `build.rs`), served
//! when the configuration names no `root`.
//!
//! The one idea: the bytes travel inside the executable, so a copied or
//! `cargo install`ed binary still has its front page; at start (and on each reload
//! that needs it) they are unpacked once into a content-addressed directory of the
//! state directory, `site-HASH/`, and served from there like any root. Every file
//! path of the HTTP core (ETags, ranges, `sendfile`, the open-file cache) works on
//! them unchanged, and a different build unpacks beside, never over, a running one.

use super::state::{self, StateError};
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/bundled_site.rs"));

#[derive(Debug, thiserror::Error)]
pub enum BundledError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{call}({path}): {source}")]
    Io {
        call: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(call: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BundledError {
    let path = path.to_path_buf();
    move |source| BundledError::Io { call, path, source }
}

/// The name of this build's site: a hash of every file's path and bytes.
fn digest() -> u64 {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(FILES.len() * 2);
    for (name, bytes) in FILES {
        parts.push(name.as_bytes());
        parts.push(bytes);
    }
    state::fnv1a(&parts)
}

/// The directory holding the bundled site, unpacked if it is not there yet.
pub fn root() -> Result<PathBuf, BundledError> {
    unpack_into(&state::dir()?)
}

fn unpack_into(base: &Path) -> Result<PathBuf, BundledError> {
    let hash = digest();
    let site = base.join(format!("site-{hash:016x}"));
    if site.is_dir() {
        return Ok(site);
    }
    // Unpacked beside and renamed into place: a concurrent start sees the whole
    // site or none of it.
    let tmp = base.join(format!(".site-{hash:016x}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(io("mkdir", &tmp))?;
    for (name, bytes) in FILES {
        let path = tmp.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("mkdir", parent))?;
        }
        std::fs::write(&path, bytes).map_err(io("write", &path))?;
    }
    if let Err(e) = std::fs::rename(&tmp, &site) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process won the race: its copy is the same bytes.
        if !site.is_dir() {
            return Err(io("rename", &site)(e));
        }
    }
    Ok(site)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_page_is_embedded() {
        assert!(FILES
            .iter()
            .any(|(n, b)| *n == "index.html" && !b.is_empty()));
        assert!(FILES.iter().any(|(n, _)| *n == "style.css"));
    }

    #[test]
    fn unpacks_once_and_reuses() {
        let tmp = tempfile::tempdir().unwrap();
        let site = unpack_into(tmp.path()).unwrap();
        for (name, bytes) in FILES {
            assert_eq!(std::fs::read(site.join(name)).unwrap(), *bytes, "{name}");
        }
        assert_eq!(unpack_into(tmp.path()).unwrap(), site);
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "no temp dir left"
        );
    }
}
