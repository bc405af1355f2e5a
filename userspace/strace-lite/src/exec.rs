//! Starting the program to trace: find it, check it can run here, fork it traced.
//!
//! The checks happen before the fork, the way a shell reports them (127: not found;
//! 126: found but cannot run), so a typo never turns into a traced `execve` failing.
//! The child waits on a pipe until the tracer has seized it, so not one of its
//! syscalls after that point is missed; it then installs the seccomp filter (if any)
//! and calls `execve`. Everything the child needs is prepared before `fork`, because
//! the child may only make raw syscalls.

use crate::error::Error;
use goblin::elf::header::{EM_386, EM_X86_64, ET_DYN, ET_EXEC};
use goblin::elf::Elf;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Finds `cmd` like `execvp` does: as given when it has a `/`, else on `$PATH`.
pub fn resolve(cmd: &OsStr) -> Result<PathBuf, Error> {
    if cmd.as_bytes().contains(&b'/') {
        let p = PathBuf::from(cmd);
        if !p.exists() {
            return Err(Error::NotFound {
                path: p.display().to_string(),
                reason: "No such file or directory",
            });
        }
        return Ok(p);
    }
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    let mut first_found = None;
    for dir in std::env::split_paths(&path) {
        let cand = dir.join(cmd);
        if let Ok(md) = cand.metadata() {
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Ok(cand);
            }
            first_found.get_or_insert(cand);
        }
    }
    // Found but never runnable: the shell says "Permission denied" (126) for it.
    first_found.ok_or_else(|| Error::NotFound {
        path: cmd.to_string_lossy().into_owned(),
        reason: "command not found",
    })
}

/// Checks with goblin that `path` is something this machine can execute and this
/// tracer can decode: a script with `#!`, or an x86_64 ELF executable.
pub fn precheck(path: &Path) -> Result<(), Error> {
    let shown = path.display().to_string();
    let not_exec = |reason: &str| Error::NotExecutable {
        path: shown.clone(),
        reason: reason.to_string(),
    };
    let md = path.metadata().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            path: shown.clone(),
            reason: "No such file or directory",
        },
        _ => not_exec(&e.to_string()),
    })?;
    if md.is_dir() {
        return Err(not_exec("Is a directory"));
    }
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| not_exec("path contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
        return Err(not_exec("Permission denied"));
    }
    let mut head = Vec::with_capacity(64 * 1024);
    File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| not_exec(&format!("cannot read: {e}")))?;
    if head.starts_with(b"#!") {
        return Ok(());
    }
    if !head.starts_with(b"\x7fELF") {
        let kind = if head.starts_with(b"MZ") {
            "PE executable"
        } else if [
            &[0xfe, 0xed, 0xfa, 0xce][..],
            &[0xce, 0xfa, 0xed, 0xfe],
            &[0xcf, 0xfa, 0xed, 0xfe],
            &[0xca, 0xfe, 0xba, 0xbe],
        ]
        .iter()
        .any(|m| head.starts_with(m))
        {
            "Mach-O executable"
        } else {
            "not ELF and no #! line"
        };
        return Err(not_exec(&format!(
            "cannot execute binary file: {kind} (Exec format error)"
        )));
    }
    let hdr =
        Elf::parse_header(&head).map_err(|e| not_exec(&format!("malformed ELF header: {e}")))?;
    match hdr.e_machine {
        EM_X86_64 => {}
        EM_386 => return Err(not_exec("32-bit x86 ELF: this tracer decodes x86_64 only")),
        m => {
            return Err(not_exec(&format!(
            "cannot execute binary file: ELF for {} (Exec format error), this machine is x86_64",
            goblin::elf::header::machine_to_str(m)
        )))
        }
    }
    if hdr.e_type != ET_EXEC && hdr.e_type != ET_DYN {
        return Err(not_exec(&format!(
            "ELF {} is not an executable (Exec format error)",
            goblin::elf::header::et_to_str(hdr.e_type)
        )));
    }
    let ph_end = hdr
        .e_phoff
        .saturating_add(u64::from(hdr.e_phnum) * u64::from(hdr.e_phentsize));
    if hdr.e_phentsize != 56 || hdr.e_phnum == 0 || ph_end > md.len() {
        return Err(not_exec(
            "malformed ELF: program headers out of bounds (Exec format error)",
        ));
    }
    Ok(())
}

/// Everything the child needs, built before `fork`.
pub struct Launch {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    filter: Option<Vec<libc::sock_filter>>,
    /// The dispositions the tracer's own handlers replace, as it found them: the
    /// program gets them back (`nohup strace-lite CMD` keeps SIGHUP ignored, a
    /// background job keeps SIGINT and SIGQUIT ignored), as it would without us.
    restore: [(libc::c_int, libc::sighandler_t); 4],
}

/// The signals the tracer handles or ignores itself (see `tracer.rs`).
pub(crate) const TRACER_SIGNALS: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// `SIG_IGN` if `sig` is ignored now, else `SIG_DFL` (a handler does not survive exec).
fn inherited(sig: libc::c_int) -> libc::sighandler_t {
    // SAFETY: a query only (null new action) into a zeroed sigaction on our stack.
    let old = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
            return libc::SIG_DFL;
        }
        old
    };
    if old.sa_sigaction == libc::SIG_IGN {
        libc::SIG_IGN
    } else {
        libc::SIG_DFL
    }
}

impl Launch {
    pub fn new(
        path: &Path,
        args: &[OsString],
        filter: Option<Vec<libc::sock_filter>>,
    ) -> Result<Launch, Error> {
        let nul = |what: &str| Error::Usage(format!("{what} contains a NUL byte"));
        let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| nul("program path"))?;
        let argv: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.clone().into_vec()).map_err(|_| nul("an argument")))
            .collect::<Result<_, _>>()?;
        let envp: Vec<CString> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                CString::new(kv).ok()
            })
            .collect();
        let mut argv_ptrs: Vec<_> = argv.iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<_> = envp.iter().map(|c| c.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        Ok(Launch {
            path: cpath,
            _argv: argv,
            argv_ptrs,
            _envp: envp,
            envp_ptrs,
            filter,
            restore: TRACER_SIGNALS.map(|sig| (sig, inherited(sig))),
        })
    }

    /// Forks the child, seizes it with `options` and lets it run to `execve`.
    /// Returns its pid; the child is left in a ptrace stop for the tracer's loop.
    pub fn spawn(&self, options: libc::c_int) -> Result<i32, Error> {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a writable array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Error::sys("pipe2"));
        }
        let (rd, wr) = (fds[0], fds[1]);
        // SAFETY: the tracer is single-threaded; the child below only makes raw
        // syscalls on memory prepared before the fork, then execs or _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::sys("fork"));
        }
        if pid == 0 {
            // SAFETY: child side of fork; see above. Every call is async-signal-safe.
            unsafe { self.child(rd, wr) }
        }
        // SAFETY: closing our copy of the read end, a descriptor we own.
        unsafe { libc::close(rd) };
        let seized = crate::ptrace::seize(pid, options).and_then(|_| crate::ptrace::interrupt(pid));
        // Closing the write end lets the child's read return: after the seize above,
        // or, if the seize failed, so the child is not left waiting forever.
        // SAFETY: a descriptor we own.
        unsafe { libc::close(wr) };
        if let Err(source) = seized {
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(Error::Attach { pid, source });
        }
        Ok(pid)
    }

    /// `-D`: this process becomes the program and a grandchild traces it, so the
    /// program keeps the pid, the parent and the exit status the caller gave it and
    /// the tracer is no one's child. Returns the program's pid, in the tracer (the
    /// grandchild); in this process it only returns with an error, else it execs.
    ///
    /// The order: the middle child forks the tracer, hands its pid over a pipe and
    /// exits; this process lets that pid trace it (`PR_SET_PTRACER`, for Yama) and
    /// says so over a second pipe; the tracer seizes it and writes one byte on a
    /// third; only then does this process exec.
    pub fn spawn_detached(&self, options: libc::c_int) -> Result<i32, Error> {
        let pipe = || -> Result<(i32, i32), Error> {
            let mut fds = [0i32; 2];
            // SAFETY: `fds` is a writable array of two ints.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                return Err(Error::sys("pipe2"));
            }
            Ok((fds[0], fds[1]))
        };
        let (ready_rd, ready_wr) = pipe()?;
        let (pid_rd, pid_wr) = pipe()?;
        let (go_rd, go_wr) = pipe()?;
        // SAFETY: plain getpid.
        let program = unsafe { libc::getpid() };
        // SAFETY: the tracer is single-threaded; the middle child only forks, writes
        // and _exits; the grandchild carries on as this single-threaded program would.
        let middle = unsafe { libc::fork() };
        if middle < 0 {
            return Err(Error::sys("fork"));
        }
        if middle == 0 {
            // SAFETY: as above.
            let tracer = unsafe { libc::fork() };
            if tracer != 0 {
                let bytes = tracer.to_ne_bytes();
                // SAFETY: writing a live buffer to our pipe, then leaving at once.
                unsafe {
                    libc::write(pid_wr, bytes.as_ptr().cast(), bytes.len());
                    libc::_exit(0);
                }
            }
            // The tracer.
            // SAFETY: closing descriptors this process owns and does not use.
            unsafe {
                for fd in [ready_rd, pid_rd, pid_wr, go_wr] {
                    libc::close(fd);
                }
            }
            let mut b = 0u8;
            // SAFETY: reading into a live byte; EOF or a byte both mean go on.
            unsafe {
                while libc::read(go_rd, (&mut b as *mut u8).cast(), 1) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
                libc::close(go_rd);
            }
            let seized = crate::ptrace::seize(program, options)
                .and_then(|_| crate::ptrace::interrupt(program));
            if seized.is_ok() {
                // SAFETY: one byte from a live buffer to our pipe.
                unsafe { libc::write(ready_wr, b"1".as_ptr().cast(), 1) };
            }
            // SAFETY: our descriptor; closing it lets the program's read return.
            unsafe { libc::close(ready_wr) };
            return seized.map(|_| program).map_err(|source| Error::Attach {
                pid: program,
                source,
            });
        }
        // The program-to-be.
        // SAFETY: closing descriptors this process owns and does not use, then reaping
        // the middle child, which exits at once.
        unsafe {
            for fd in [ready_wr, pid_wr, go_rd] {
                libc::close(fd);
            }
            libc::waitpid(middle, std::ptr::null_mut(), 0);
        }
        let mut pid = [0u8; 4];
        // SAFETY: reading into a live buffer of the length given.
        let n = unsafe { libc::read(pid_rd, pid.as_mut_ptr().cast(), pid.len()) };
        // SAFETY: our descriptor.
        unsafe { libc::close(pid_rd) };
        if n == 4 {
            // EINVAL without Yama: then nothing needs allowing.
            // SAFETY: prctl with integer arguments.
            unsafe {
                libc::prctl(
                    libc::PR_SET_PTRACER,
                    i32::from_ne_bytes(pid) as libc::c_ulong,
                )
            };
        }
        // SAFETY: our descriptor; closing it lets the tracer seize us.
        unsafe { libc::close(go_wr) };
        let mut b = 0u8;
        // SAFETY: reading one byte into a live local.
        let n = unsafe {
            loop {
                let n = libc::read(ready_rd, (&mut b as *mut u8).cast(), 1);
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break n;
                }
            }
        };
        if n != 1 {
            return Err(Error::Usage(
                "-D: the tracer could not attach to the program".into(),
            ));
        }
        // SAFETY: our descriptor; then the same path to execve as a forked child.
        unsafe {
            libc::close(ready_rd);
            self.exec_prepared()
        }
    }

    unsafe fn child(&self, rd: i32, wr: i32) -> ! {
        libc::close(wr);
        let mut b = 0u8;
        while libc::read(rd, (&mut b as *mut u8).cast(), 1) < 0
            && *libc::__errno_location() == libc::EINTR
        {}
        libc::close(rd);
        self.exec_prepared()
    }

    /// Restores the program's signal dispositions, installs the filter, execs.
    unsafe fn exec_prepared(&self) -> ! {
        // The tracer ignores SIGPIPE (Rust's runtime does); the program must not inherit it.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        for &(sig, disposition) in &self.restore {
            libc::signal(sig, disposition);
        }
        if let Some(prog) = &self.filter {
            if crate::seccomp::install(prog).is_err() {
                libc::_exit(126);
            }
        }
        libc::execve(
            self.path.as_ptr(),
            self.argv_ptrs.as_ptr(),
            self.envp_ptrs.as_ptr(),
        );
        let e = *libc::__errno_location();
        libc::_exit(if e == libc::ENOENT { 127 } else { 126 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn shell_like_errors() {
        assert_eq!(
            resolve(OsStr::new("no-such-program-xyz"))
                .unwrap_err()
                .exit_code(),
            127
        );
        assert!(precheck(Path::new("/bin/true")).is_ok());
        assert_eq!(
            precheck(Path::new("/nonexistent/x"))
                .unwrap_err()
                .exit_code(),
            127
        );
        assert_eq!(precheck(Path::new("/etc")).unwrap_err().exit_code(), 126);

        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage");
        let mut f = File::create(&garbage).unwrap();
        f.write_all(b"\x7fELF\x02\x01\x01\0garbagegarbagegarbage")
            .unwrap();
        drop(f);
        std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(precheck(&garbage).unwrap_err().exit_code(), 126);

        // An aarch64 ELF header: right magic, wrong machine.
        let mut hdr = std::fs::read("/bin/true").unwrap();
        hdr[18] = 183; // EM_AARCH64
        hdr[19] = 0;
        let arm = dir.path().join("arm");
        std::fs::write(&arm, &hdr).unwrap();
        std::fs::set_permissions(&arm, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = precheck(&arm).unwrap_err();
        assert_eq!(e.exit_code(), 126);
        assert!(
            e.to_string().contains("AARCH64") || e.to_string().contains("aarch64"),
            "{e}"
        );
    }
}
