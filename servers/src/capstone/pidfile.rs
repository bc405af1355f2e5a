//! The master's pid file, and `capstone -s SIGNAL`: control of a running master
//! without `pgrep`, as `nginx -s` does.
//!
//! The one idea: a pid is only trusted after checking what it names. A pid file
//! outlives a crashed master and its number is soon reused, so before signalling
//! (or refusing to start) the pid must be alive, run the capstone program
//! (`/proc/PID/exe` is this binary, or its `argv[0]` is named `capstone`), and be
//! a master, not a worker (its parent is not a capstone). Anything else is a stale
//! pid file, reported as such.

use super::state::{self, StateError};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{call}({path}): {source}")]
    Io {
        call: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a pid file (it holds {text:?})")]
    Garbled { path: PathBuf, text: String },
    #[error("stale pid file {path}: {why}")]
    Stale { path: PathBuf, why: String },
    #[error(
        "already running: pid {pid} (pid file {path}); stop it first, or set another `pid_file`"
    )]
    Running { path: PathBuf, pid: i32 },
    #[error("kill({pid}, {signal}): {source}")]
    Kill {
        pid: i32,
        signal: &'static str,
        source: nix::Error,
    },
}

/// What `capstone -s` asks of the master, mapped onto the signals it handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Command {
    /// Re-read the configuration (SIGHUP).
    Reload,
    /// Re-read it even if the new one keeps none of the current listeners (SIGHUP
    /// queued with a value that says so).
    ForceReload,
    /// Reopen the log files (SIGUSR1).
    Reopen,
    /// Stop now, cutting requests in flight (SIGQUIT: the capstone's fast stop).
    Stop,
    /// Finish requests in flight, then exit (SIGTERM: the capstone's graceful stop).
    Quit,
}

impl Command {
    pub fn signal(self) -> nix::sys::signal::Signal {
        use nix::sys::signal::Signal;
        match self {
            Command::Reload | Command::ForceReload => Signal::SIGHUP,
            Command::Reopen => Signal::SIGUSR1,
            Command::Stop => Signal::SIGQUIT,
            Command::Quit => Signal::SIGTERM,
        }
    }
}

/// The pid file a server uses when the configuration sets no `pid_file`:
/// `capstone.pid` in the state directory for the embedded default, and for a
/// configuration file one named after that file's absolute path, so servers
/// started from different files never claim the same pid file.
pub fn default_path(config_file: Option<&Path>) -> Result<PathBuf, PidFileError> {
    let dir = state::dir()?;
    Ok(match config_file {
        None => dir.join("capstone.pid"),
        Some(file) => {
            let abs = std::fs::canonicalize(file).map_err(|source| PidFileError::Io {
                call: "realpath",
                path: file.to_path_buf(),
                source,
            })?;
            let stem = abs
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let hash = state::fnv1a(&[abs.as_os_str().as_encoded_bytes()]);
            dir.join(format!("capstone-{stem}-{:08x}.pid", hash as u32))
        }
    })
}

/// Reads `path` and returns the pid of the live capstone master it names.
pub fn read_master(path: &Path) -> Result<i32, PidFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PidFileError::Io {
        call: "open",
        path: path.to_path_buf(),
        source,
    })?;
    let pid: i32 = match text.trim().parse() {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(PidFileError::Garbled {
                path: path.to_path_buf(),
                text: text.chars().take(40).collect(),
            })
        }
    };
    match check_master(pid) {
        Ok(()) => Ok(pid),
        Err(why) => Err(PidFileError::Stale {
            path: path.to_path_buf(),
            why,
        }),
    }
}

/// `capstone -s COMMAND`: signals the master named by the pid file.
pub fn send(path: &Path, command: Command) -> Result<i32, PidFileError> {
    let pid = read_master(path)?;
    let sig = command.signal();
    let sent = if command == Command::ForceReload {
        let value = libc::sigval {
            sival_ptr: super::master::FORCE_RELOAD as *mut libc::c_void,
        };
        // SAFETY: sigqueue takes a pid, a signal number and a plain union by value;
        // the pointer member only carries a number and is never dereferenced.
        let rc = unsafe { libc::sigqueue(pid, sig as libc::c_int, value) };
        if rc == 0 {
            Ok(())
        } else {
            Err(nix::errno::Errno::last())
        }
    } else {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
    };
    sent.map_err(|source| PidFileError::Kill {
        pid,
        signal: sig.as_str(),
        source,
    })?;
    Ok(pid)
}

/// Why `pid` is not a live capstone master (`Ok` if it is one).
fn check_master(pid: i32) -> Result<(), String> {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::Error::EPERM) => {}
        Err(nix::Error::ESRCH) => return Err(format!("no process {pid}")),
        Err(e) => return Err(format!("kill({pid}, 0): {e}")),
    }
    if !is_capstone(pid) {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        return Err(format!("process {pid} ({}) is not a capstone", name.trim()));
    }
    if parent_of(pid).is_some_and(is_capstone) {
        return Err(format!(
            "process {pid} is a capstone worker, not the master"
        ));
    }
    Ok(())
}

/// Whether `pid` runs the capstone program: this very binary, or one whose
/// `argv[0]` is named `capstone` (another build or an installed copy).
fn is_capstone(pid: i32) -> bool {
    let same_binary = match (
        std::fs::metadata(format!("/proc/{pid}/exe")),
        std::fs::metadata("/proc/self/exe"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if same_binary {
        return true;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    Path::new(std::ffi::OsStr::from_bytes(argv0))
        .file_name()
        .is_some_and(|n| n == "capstone")
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (comm) STATE PPID ...": comm may hold spaces and parentheses, so split
    // after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The master's own pid file: written at start, removed when the master exits.
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Claims `path` for this process. A live capstone master named there is an
    /// error; a stale file is replaced (and said so in the returned note).
    pub fn create(path: &Path) -> Result<(PidFile, Option<String>), PidFileError> {
        let mut note = None;
        if path.exists() {
            match read_master(path) {
                Ok(pid) if pid as u32 != std::process::id() => {
                    return Err(PidFileError::Running {
                        path: path.to_path_buf(),
                        pid,
                    })
                }
                Ok(_) => {}
                Err(e) => note = Some(e.to_string()),
            }
        }
        let pid = std::process::id();
        // Written beside and renamed: a reader never sees a half-written number.
        let tmp = path.with_extension(format!("pid.tmp{pid}"));
        std::fs::write(&tmp, format!("{pid}\n")).map_err(|source| PidFileError::Io {
            call: "write",
            path: tmp.clone(),
            source,
        })?;
        if let Err(source) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(PidFileError::Io {
                call: "rename",
                path: path.to_path_buf(),
                source,
            });
        }
        Ok((
            PidFile {
                path: path.to_path_buf(),
                pid,
            },
            note,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own number: never remove a file another master has since written.
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|t| t.trim().parse::<u32>().ok() == Some(self.pid));
        if ours && std::process::id() == self.pid {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_follow_the_capstones_own_meanings() {
        use nix::sys::signal::Signal;
        assert_eq!(Command::Reload.signal(), Signal::SIGHUP);
        assert_eq!(Command::Reopen.signal(), Signal::SIGUSR1);
        assert_eq!(Command::Stop.signal(), Signal::SIGQUIT);
        assert_eq!(Command::Quit.signal(), Signal::SIGTERM);
    }

    #[test]
    fn parent_is_read_past_a_comm_with_spaces() {
        let me = std::process::id() as i32;
        assert_eq!(parent_of(me), Some(nix::unistd::getppid().as_raw()));
    }

    #[test]
    fn stale_and_garbled_files_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.pid");
        std::fs::write(&p, "hello\n").unwrap();
        assert!(matches!(read_master(&p), Err(PidFileError::Garbled { .. })));
        // pid 1 is alive but is not a capstone.
        std::fs::write(&p, "1\n").unwrap();
        let e = read_master(&p).unwrap_err().to_string();
        assert!(
            e.contains("stale pid file") && e.contains("not a capstone"),
            "{e}"
        );
    }
}
