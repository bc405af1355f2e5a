//! strace's options, each compared with Debian's `strace` given the same options on the
//! same program: clustered short options, `-e` qualifiers (`status=`, `signal=`,
//! `read=`, `write=`, `inject=`), `-z`/`-Z`, `-y`/`-yy`, `-P`, `-v`, `-r`, `-ttt`, `-i`,
//! `--seccomp-bpf`.
//!
//! Two runs differ legitimately in addresses, inode and port numbers, pids and times:
//! those are normalised (any `0x...` and any run of four or more digits), and the
//! result column's padding is collapsed. Everything else must be equal line for line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_strace-lite");

fn have(prog: &str) -> bool {
    let ok = Command::new(prog)
        .arg(if prog == "strace" { "-V" } else { "--version" })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: {prog} is not installed (scripts/test.sh installs it)");
    }
    ok
}

/// Runs `tracer ARGS` with `-o FILE`, the program's output discarded; returns the trace.
fn run(tracer: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace.txt");
    let mut full = vec!["-o", out.to_str().unwrap()];
    full.extend_from_slice(args);
    let o = Command::new(tracer)
        .args(&full)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    // A tracee killed by a signal: strace kills itself with it too; no exit code then.
    std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{tracer} {args:?}: {e} {o:?}"))
}

fn normalize(line: &str) -> String {
    // Pid prefixes (`[pid  123] `, or strace's `123   ` with -f -o) and pids as arguments.
    let line = match line.strip_prefix("[pid ") {
        Some(rest) => rest.split_once("] ").map_or(line, |(_, l)| l),
        None => {
            let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits > 0 && line[digits..].starts_with(' ') {
                line[digits..].trim_start()
            } else {
                line
            }
        }
    };
    let mut line = line.to_string();
    for key in ["kill(", "si_pid="] {
        if let Some(p) = line.find(key) {
            let at = p + key.len();
            let end = line[at..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(line.len(), |e| at + e);
            line.replace_range(at..end, "N");
        }
    }
    let line = line.as_str();
    let b = line.as_bytes();
    let mut s = String::with_capacity(line.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'0' && b.get(i + 1) == Some(&b'x') {
            s.push_str("0xX");
            i += 2;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
            continue;
        }
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i - start >= 4 {
                s.push('N');
            } else {
                s.push_str(&line[start..i]);
            }
            continue;
        }
        s.push(b[i] as char);
        i += 1;
    }
    // The result column: strace pads `) = ` to column 40, so longer numbers shift it.
    let mut out = String::with_capacity(s.len());
    let mut spaces = 0;
    for c in s.chars() {
        if c == ' ' {
            spaces += 1;
            continue;
        }
        if spaces > 0 {
            out.push(' ');
            spaces = 0;
        }
        out.push(c);
    }
    out
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("getrandom("))
        .map(normalize)
        .collect()
}

/// Traces `args` with both tracers and asserts the traces are equal line for line.
/// Returns strace-lite's normalised lines.
fn same_as_strace(args: &[&str]) -> Option<Vec<String>> {
    if !have("strace") {
        return None;
    }
    let theirs = lines(&run("strace", args));
    let ours = lines(&run(BIN, args));
    for (i, (a, b)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(
            a,
            b,
            "{args:?}: line {} differs\nstrace:\n{}\nstrace-lite:\n{}",
            i + 1,
            theirs.join("\n"),
            ours.join("\n")
        );
    }
    assert_eq!(
        theirs.len(),
        ours.len(),
        "{args:?}: line counts differ\nstrace:\n{}\nstrace-lite:\n{}",
        theirs.join("\n"),
        ours.join("\n")
    );
    assert!(!ours.is_empty(), "{args:?}: empty trace");
    Some(ours)
}

fn sample() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sample.bin");
    let mut data = b"hello, dump\n\x00\x01\x02\xff tab\there <>\n".to_vec();
    data.extend((0u8..40).map(|i| b'a' + i % 26));
    std::fs::write(&p, data).unwrap();
    (dir, p)
}

#[test]
fn clustered_options_status_and_fd_paths() {
    let (_d, f) = sample();
    let f = f.to_str().unwrap();
    // -fyz: three flags in one word; a later -e trace= replaces an earlier one.
    let Some(l) = same_as_strace(&[
        "-fyz",
        "-e",
        "trace=read",
        "-e",
        "trace=openat,close",
        "cat",
        f,
    ]) else {
        return;
    };
    assert!(l.iter().any(|l| l.starts_with("openat(AT_FDCWD<")), "{l:?}");
    assert!(
        !l.iter().any(|l| l.contains("ENOENT")),
        "-z shows a failure: {l:?}"
    );
    // -Z: failures only; status= as a qualifier.
    let l = same_as_strace(&["-Z", "cat", "/nonexistent/file"]).unwrap();
    assert!(
        l.iter()
            .all(|l| l.contains("= -1 ") || l.starts_with("+++")),
        "{l:?}"
    );
    same_as_strace(&[
        "-e",
        "status=failed,successful",
        "-e",
        "trace=%file",
        "cat",
        f,
    ]);
    same_as_strace(&[
        "-e",
        "status=!successful",
        "-e",
        "trace=%file",
        "cat",
        "/nonexistent",
    ]);
}

#[test]
fn yy_shows_devices_and_socket_endpoints() {
    let (_d, f) = sample();
    let Some(l) = same_as_strace(&[
        "-yy",
        "-e",
        "trace=openat,read,close",
        "cat",
        f.to_str().unwrap(),
    ]) else {
        return;
    };
    assert!(
        l.iter().any(|l| l.contains("</dev/null<char 1:3>>")),
        "{l:?}"
    );
    let py = "/usr/bin/python3";
    if !Path::new(py).exists() {
        eprintln!("SKIP: no {py} for the socket part");
        return;
    }
    // With -f and no filter every call is seen, and descriptor texts are kept between
    // calls: a number reused, a dup2 over it, a rename must all show afresh.
    let d = tempfile::tempdir().unwrap();
    let script = format!(
        "import os\n\
         a=os.open('{p}/one', os.O_RDWR|os.O_CREAT); os.write(a, b'1'); os.close(a)\n\
         b=os.open('{p}/two', os.O_RDWR|os.O_CREAT); os.write(b, b'2')\n\
         os.rename('{p}/two', '{p}/three'); os.write(b, b'3')\n\
         c=os.open('{p}/one', os.O_RDONLY); os.dup2(c, b); os.read(b, 1); os.close(c); os.close(b)\n",
        p = d.path().display()
    );
    // -P, not a trace= filter: a filter would stop only some calls (seccomp).
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    let (one, two, three) = (p("one"), p("two"), p("three"));
    let l = same_as_strace(&[
        "-f", "-yy", "-P", &one, "-P", &two, "-P", &three, py, "-c", &script,
    ])
    .unwrap();
    assert!(
        l.iter()
            .any(|l| l.starts_with("write(3</") && l.contains("/three>, \"3\"")),
        "{l:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let unix_path = dir.path().join("s.sock");
    let script = format!(
        "import socket\n\
         s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n\
         c=socket.create_connection(s.getsockname()); a,_=s.accept()\n\
         u=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); u.bind(('::1',0))\n\
         x=socket.socket(socket.AF_UNIX); x.bind('\\0sysnet-yy-{pid}'); x.listen()\n\
         y=socket.socket(socket.AF_UNIX); y.bind('{path}')\n\
         p,q=socket.socketpair()\n\
         t=socket.socket()\n\
         for k in (a,c,s,u,x,y,p,q,t): k.close()\n",
        pid = std::process::id(),
        path = unix_path.display()
    );
    let mut lines = Vec::new();
    for tracer in ["strace", BIN] {
        let _ = std::fs::remove_file(&unix_path);
        lines.push(self::lines(&run(
            tracer,
            &["-yy", "-e", "trace=close", py, "-c", &script],
        )));
    }
    let tail = |v: &Vec<String>| v[v.len().saturating_sub(10)..].to_vec();
    let (a, b) = (tail(&lines[0]), tail(&lines[1]));
    assert_eq!(
        a,
        b,
        "strace:\n{}\nstrace-lite:\n{}",
        a.join("\n"),
        b.join("\n")
    );
    for want in [
        "<TCP:[127.0.0.1:N->127.0.0.1:N]>",
        "<TCP:[127.0.0.1:N]>",
        "<UDPv6:[[::1]:N]>",
        "<UNIX-STREAM:[N->N]>",
        "<UNIX-STREAM:[N,@\"sysnet-yy-",
    ] {
        assert!(b.iter().any(|l| l.contains(want)), "{want}: {b:?}");
    }
}

/// `-yy` on a netlink socket (`<NETLINK:[ROUTE:PORTID]>` once bound, `<NETLINK:[INODE]>`
/// before) and on a pidfd (`<pid:N>`), as strace prints them.
#[test]
fn yy_names_netlink_sockets_and_pidfds() {
    let py = "/usr/bin/python3";
    if !have("strace") || !Path::new(py).exists() {
        return;
    }
    let script = "import socket, os\n\
         r=socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE); r.bind((0,0))\n\
         r.getsockname()\n\
         d=socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)  # NETLINK_SOCK_DIAG\n\
         d.getsockname()\n\
         p=os.pidfd_open(os.getpid()); os.close(p); r.close(); d.close()\n";
    // Port ids and pids are small numbers that differ between runs: `N` after the colon.
    let norm = |l: &String| {
        let mut out = String::new();
        let mut rest = l.as_str();
        while let Some(at) = rest.find(':') {
            out.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits > 0 && (out.ends_with("ROUTE:") || out.ends_with("<pid:")) {
                out.push('N');
                rest = &rest[digits..];
            }
        }
        out.push_str(rest);
        out
    };
    let args = [
        "-yy",
        "-e",
        "trace=getsockname,pidfd_open,close",
        py,
        "-c",
        script,
    ];
    let theirs: Vec<String> = lines(&run("strace", &args)).iter().map(norm).collect();
    let ours: Vec<String> = lines(&run(BIN, &args)).iter().map(norm).collect();
    let tail = |v: &Vec<String>| v[v.len().saturating_sub(7)..].to_vec();
    let (a, b) = (tail(&theirs), tail(&ours));
    assert_eq!(
        a,
        b,
        "strace:\n{}\nstrace-lite:\n{}",
        a.join("\n"),
        b.join("\n")
    );
    for want in [
        "getsockname(3<NETLINK:[ROUTE:N]>, {sa_family=AF_NETLINK, nl_pid=",
        "close(3<NETLINK:[ROUTE:N]>) = 0",
        "<NETLINK:[N]>, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=N}",
        "= 5<pid:N>",
        "close(5<pid:N>) = 0",
    ] {
        assert!(b.iter().any(|l| l.contains(want)), "{want}: {b:?}");
    }
}

#[test]
fn read_and_write_dumps() {
    let (_d, f) = sample();
    let Some(l) = same_as_strace(&[
        "-e",
        "trace=read,write",
        "-e",
        "read=3",
        "-e",
        "write=1",
        "cat",
        f.to_str().unwrap(),
    ]) else {
        return;
    };
    assert!(
        l.iter().any(|l| l
            .starts_with(" | N 68 65 6c 6c 6f 2c 20 64 75 6d 70 0a 00 01 02 ff hello, dump.....")),
        "{l:?}"
    );
    // readv/writev: one dump per buffer.
    if Path::new("/usr/bin/python3").exists() {
        same_as_strace(&[
            "-e", "trace=writev", "-e", "write=1", "/usr/bin/python3", "-c",
            "import os; os.writev(1, [b'first buffer\\n', b'', b'second one, longer than sixteen\\n'])",
        ]);
    }
}

#[test]
fn path_filter_follows_descriptors() {
    let (_d, f) = sample();
    let f = f.to_str().unwrap();
    let Some(l) = same_as_strace(&["-P", f, "cat", f]) else {
        return;
    };
    // The read and close name only the descriptor.
    assert!(l.iter().any(|l| l.starts_with("close(3)")), "{l:?}");
    assert!(!l.iter().any(|l| l.contains("ld.so.cache")), "{l:?}");
    same_as_strace(&["-y", "-P", f, "cat", f]);
}

#[test]
fn signal_qualifier_and_seccomp_bpf() {
    let py = "/usr/bin/python3";
    if !Path::new(py).exists() {
        eprintln!("SKIP: no {py}");
        return;
    }
    let script = "import os, signal\n\
                  for s in (signal.SIGUSR1, signal.SIGUSR2): signal.signal(s, lambda *a: None)\n\
                  os.kill(os.getpid(), signal.SIGUSR1); os.kill(os.getpid(), signal.SIGUSR2)\n";
    let Some(l) = same_as_strace(&["-e", "trace=kill", "-e", "signal=SIGUSR2", py, "-c", script])
    else {
        return;
    };
    assert!(l.iter().any(|l| l.starts_with("--- SIGUSR2 ")), "{l:?}");
    assert!(!l.iter().any(|l| l.starts_with("--- SIGUSR1 ")), "{l:?}");
    same_as_strace(&["-e", "trace=kill", "-e", "signal=!USR2", py, "-c", script]);
    same_as_strace(&[
        "-f",
        "--seccomp-bpf",
        "-e",
        "trace=openat",
        "sh",
        "-c",
        "cat /dev/null",
    ]);
}

#[test]
fn verbose_prints_whole_stat_structures() {
    let (_d, f) = sample();
    // Read once first: relatime would otherwise move its atime between the two runs.
    std::fs::read(&f).unwrap();
    let Some(l) = same_as_strace(&["-v", "-e", "trace=%stat,%fstat", "cat", f.to_str().unwrap()])
    else {
        return;
    };
    assert!(
        l.iter()
            .any(|l| l.contains("st_nlink=") && l.contains("st_mtime_nsec=")),
        "{l:?}"
    );
    let l = same_as_strace(&[
        "-v",
        "-e",
        "trace=statx",
        "ls",
        "-l",
        "/dev/null",
        f.to_str().unwrap(),
    ])
    .unwrap();
    assert!(
        l.iter()
            .any(|l| l.contains("stx_rdev_major=1, stx_rdev_minor=3")),
        "{l:?}"
    );
}

#[test]
fn verbose_prints_directory_entries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one"), "").unwrap();
    same_as_strace(&[
        "-v",
        "-e",
        "trace=getdents64",
        "ls",
        "-a",
        dir.path().to_str().unwrap(),
    ]);
}

#[test]
fn fault_injection_matches_strace() {
    let (_d, f) = sample();
    let f = f.to_str().unwrap();
    let Some(l) = same_as_strace(&[
        "-e",
        "trace=read",
        "-e",
        "inject=read:error=EIO:when=2",
        "cat",
        f,
    ]) else {
        return;
    };
    assert!(
        l.iter()
            .any(|l| l.ends_with("= -1 EIO (Input/output error) (INJECTED)")),
        "{l:?}"
    );
    // Every invocation from the third on, with a step; a value instead of an error.
    same_as_strace(&[
        "-e",
        "trace=openat",
        "-e",
        "inject=openat:error=ENOENT:when=3+2",
        "cat",
        f,
    ]);
    let l = same_as_strace(&[
        "-e",
        "trace=close",
        "-e",
        "inject=close:retval=42",
        "cat",
        f,
    ])
    .unwrap();
    assert!(l.iter().any(|l| l.ends_with("= 42 (INJECTED)")), "{l:?}");
    // The injected failure is what the program sees.
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    let o = Command::new(BIN)
        .args([
            "-o",
            "/dev/null",
            "-e",
            "inject=mkdir:error=EACCES",
            "mkdir",
        ])
        .arg(&sub)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{o:?}"
    );
    assert!(!sub.exists(), "the injected mkdir ran");
    // A signal on entry, as strace delivers it (si_code=SI_KERNEL).
    same_as_strace(&[
        "-e",
        "trace=getppid",
        "-e",
        "inject=getppid:signal=SIGTERM",
        "sh",
        "-c",
        "echo $PPID",
    ]);
    // fault= is inject with ENOSYS.
    same_as_strace(&["-e", "trace=close", "-e", "fault=close:when=2", "cat", f]);
}

/// `when=FIRST..LAST[+STEP]`, counted per syscall (a set of two calls has two counts), and
/// `delay_exit`, as strace does them.
#[test]
fn inject_ranges_and_delay_exit_match_strace() {
    let (_d, f) = sample();
    let f = f.to_str().unwrap();
    let Some(l) = same_as_strace(&[
        "-e",
        "trace=openat,close",
        "-e",
        "inject=openat,close:error=EBADF:when=2..3",
        "cat",
        f,
    ]) else {
        return;
    };
    let injected = |name: &str| {
        l.iter()
            .filter(|l| l.starts_with(name) && l.ends_with("(INJECTED)"))
            .count()
    };
    assert_eq!((injected("openat("), injected("close(")), (2, 2), "{l:?}");
    same_as_strace(&[
        "-e",
        "trace=openat",
        "-e",
        "inject=openat:error=ENOENT:when=2..6+2",
        "cat",
        f,
    ]);
    let start = Instant::now();
    same_as_strace(&[
        "-e",
        "trace=getppid",
        "-e",
        "inject=getppid:delay_exit=300ms",
        "sh",
        "-c",
        "echo $PPID",
    ]);
    // Both tracers held the call's exit.
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
}

/// `-ff -o FILE`: one file per process, `FILE.PID`, no `[pid N]` prefixes, FILE itself
/// not created; the same files with the same lines as strace's.
#[test]
fn ff_writes_one_file_per_process() {
    if !have("strace") {
        return;
    }
    let mut traces = Vec::new();
    for tracer in ["strace", BIN] {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("t");
        let o = Command::new(tracer)
            .args(["-ff", "-o", base.to_str().unwrap()])
            .args(["-e", "trace=execve,wait4,exit_group,write", "sh", "-c"])
            .arg("echo hi; /bin/true & wait; /bin/true")
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{tracer}: {o:?}");
        assert!(!base.exists(), "{tracer} wrote {base:?} itself");
        // The files by pid: the shell first, then its children in the order they started.
        let mut files: Vec<(u32, Vec<String>)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                let pid = name.strip_prefix("t.").unwrap().parse().unwrap();
                (pid, lines(&std::fs::read_to_string(e.path()).unwrap()))
            })
            .collect();
        files.sort();
        traces.push(files.into_iter().map(|(_, l)| l).collect::<Vec<_>>());
    }
    assert_eq!(traces[0], traces[1], "strace vs strace-lite");
    assert_eq!(traces[1].len(), 3, "{:?}", traces[1]);
    assert!(traces[1].iter().flatten().all(|l| !l.starts_with("[pid")));
    assert!(
        traces[1][1][0].starts_with("execve(\"/bin/true\""),
        "{:?}",
        traces[1]
    );
}

/// `-e trace=/REGEX`: the calls whose names the expression matches, as strace selects them.
#[test]
fn trace_regex_selects_like_strace() {
    let (_d, f) = sample();
    let Some(l) = same_as_strace(&["-e", "trace=/stat|^close$", "cat", f.to_str().unwrap()]) else {
        return;
    };
    assert!(l.iter().any(|l| l.starts_with("close(")), "{l:?}");
    assert!(l.iter().any(|l| l.starts_with("newfstatat(")), "{l:?}");
    assert!(
        l.iter()
            .all(|l| !l.starts_with("openat(") && !l.starts_with("read(")),
        "{l:?}"
    );
    let o = Command::new(BIN)
        .args(["-e", "trace=/(", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

#[test]
fn delay_enter_holds_the_call() {
    // The line ends ` (DELAYED)`, as strace's.
    same_as_strace(&[
        "-e",
        "trace=getppid",
        "-e",
        "inject=getppid:delay_enter=10ms",
        "sh",
        "-c",
        "echo $PPID",
    ]);
    let start = Instant::now();
    let o = Command::new(BIN)
        .args([
            "-o",
            "/dev/null",
            "-e",
            "inject=getppid:delay_enter=400ms",
            "sh",
            "-c",
            "echo $PPID",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn timestamps_relative_and_instruction_pointer() {
    let (_d, f) = sample();
    let f = f.to_str().unwrap();
    let text = run(BIN, &["-ttt", "-r", "-i", "-e", "trace=read", "cat", f]);
    let shape = |l: &str| {
        // 1796659948.785970 (+     0.001630) [00007facce5de2ad] read(...
        let (t, rest) = l.split_once(" (+").unwrap_or_else(|| panic!("{l}"));
        let (secs, us) = t.split_once('.').unwrap();
        assert!(secs.len() >= 10 && us.len() == 6, "{l}");
        let (rel, rest) = rest.split_once(") ").unwrap();
        assert_eq!(rel.len(), 13, "{l}");
        assert!(rest.starts_with('[') && rest.as_bytes()[17] == b']', "{l}");
        rest[19..].to_string()
    };
    let tail: Vec<String> = text.lines().map(shape).collect();
    assert!(tail.iter().any(|l| l.starts_with("read(3, ")), "{text}");
    assert!(tail.last().unwrap().starts_with("+++ exited"), "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap()
            .contains("[????????????????] +++"),
        "{text}"
    );
    // The same shape as strace's, digits aside.
    if have("strace") {
        let digits = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| {
                    l.chars()
                        .map(|c| if c.is_ascii_hexdigit() { '0' } else { c })
                        .collect()
                })
                .collect()
        };
        let theirs = run("strace", &["-r", "-i", "-e", "trace=read", "cat", f]);
        let ours = run(BIN, &["-r", "-i", "-e", "trace=read", "cat", f]);
        assert_eq!(digits(&theirs), digits(&ours));
    }
}

#[test]
fn summary_sort_keys_and_columns() {
    let (_d, f) = sample();
    let f = f.to_str().unwrap();
    // No time columns: the tables must be equal byte for byte.
    for sort in ["calls", "name", "errors"] {
        same_as_strace(&[
            "-c",
            "-w",
            "-S",
            sort,
            "-U",
            "name,calls,errors",
            "cat",
            f,
            "/nonexistent",
        ]);
    }
    // Times differ run to run; the layout, the order and the counts must not.
    if !have("strace") {
        return;
    }
    let args = [
        "-c",
        "-S",
        "name",
        "-U",
        "calls,name,min-time,max-time,avg-time,total-time,time-percent",
        "cat",
        f,
    ];
    let layout = |t: String| -> Vec<String> {
        t.lines()
            .enumerate()
            .map(|(i, l)| {
                if i < 2 {
                    l.to_string()
                } else {
                    l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
                }
            })
            .collect()
    };
    let (theirs, ours) = (layout(run("strace", &args)), layout(run(BIN, &args)));
    assert_eq!(theirs, ours);
    assert_eq!(
        ours[0],
        "    calls syscall          shortest  longest  usecs/call     seconds % time"
    );
    let o = Command::new(BIN)
        .args(["-c", "-S", "bogus", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

#[test]
fn constants_raw_and_verbose() {
    let (_d, f) = sample();
    let f = f.to_str().unwrap();
    for style in ["raw", "verbose", "abbrev"] {
        same_as_strace(&["-X", style, "-e", "trace=!prlimit64,getrandom", "cat", f]);
    }
    if Path::new("/usr/bin/python3").exists() {
        same_as_strace(&[
            "-X",
            "verbose",
            "-e",
            "trace=socket,setsockopt,kill",
            "/usr/bin/python3",
            "-c",
            "import socket,os; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); \
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); os.kill(os.getpid(), 0)",
        ]);
    }
}

#[test]
fn daemonized_tracer_leaves_the_program_its_pid_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut traces = Vec::new();
    let tracers: &[&str] = if have("strace") {
        &["strace", BIN]
    } else {
        &[BIN]
    };
    for (i, tracer) in tracers.iter().enumerate() {
        let out = dir.path().join(format!("t{i}.txt"));
        let child = Command::new(tracer)
            .args(["-D", "-o", out.to_str().unwrap(), "-e", "trace=exit_group"])
            .args(["sh", "-c", "echo $$; exit 3"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let o = child.wait_with_output().unwrap();
        // The program is the process we started: its pid, its exit status.
        assert_eq!(o.status.code(), Some(3), "{tracer}: {o:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            pid.to_string(),
            "{tracer}"
        );
        // The tracer, no one's child now, finishes the trace on its own.
        let end = Instant::now() + Duration::from_secs(10);
        let mut text = String::new();
        while Instant::now() < end {
            text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.contains("+++ exited") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        traces.push(lines(&text));
    }
    let ours = traces.last().unwrap();
    assert_eq!(ours, &["exit_group(3) = ?", "+++ exited with 3 +++"]);
    assert_eq!(&traces[0], ours);
}

#[test]
fn stack_traces_match_strace() {
    let (_d, f) = sample();
    let Some(l) = same_as_strace(&["-k", "-e", "trace=read,write", "cat", f.to_str().unwrap()])
    else {
        return;
    };
    // Through libc into the program, symbolised from .dynsym: `__write+0x...`.
    assert!(
        l.iter()
            .any(|l| l.starts_with(" > /") && l.contains("libc.so.6(")),
        "{l:?}"
    );
    // exit_group's stack follows its `+++ exited` line, as in strace.
    let text = run(BIN, &["-k", "-e", "trace=exit_group", "cat", "/dev/null"]);
    let l: Vec<&str> = text.lines().collect();
    assert!(
        l[1].starts_with("+++ exited") && l[2].contains("libc.so.6(_exit+"),
        "{text}"
    );
    // A Rust program with a .symtab: names demangled, every frame from the call to the
    // thread's start (unwound by CFI alone: this build keeps no frame pointers).
    let burst = env!("CARGO_BIN_EXE_threadburst");
    let text = run(
        BIN,
        &[
            "-f",
            "-k",
            "-e",
            "trace=write",
            burst,
            "--threads",
            "1",
            "--iterations",
            "1",
        ],
    );
    let frames: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("write(3, \"thread 0 iter 0\\n\""))
        .skip(1)
        .take_while(|l| l.starts_with(" > "))
        .collect();
    let order = [
        "libc.so.6(__write+",
        "(<std::fs::File as std::io::Write>::write+",
        "(std::io::Write::write_all+",
        "(threadburst::main::{{closure}}",
        "::thread_start+",
    ];
    let mut at = 0;
    for want in order {
        match frames[at..].iter().position(|f| f.contains(want)) {
            Some(p) => at += p + 1,
            None => panic!("no frame {want:?} after frame {at}:\n{}", frames.join("\n")),
        }
    }
}

/// `-f -k` with no filter keeps each thread's maps between stacks and forgets them at
/// every mapping change; with a filter (seccomp: not every call is seen) it reads them
/// at each stack. Both must give the same stacks, libraries mapped after the start
/// (ld.so's mmaps, then those of the program exec'd in its place) included. One process,
/// so the two traces' lines come in one order.
#[test]
fn stack_traces_with_kept_maps_are_the_same() {
    let (_d, f) = sample();
    let script = format!("exec cat {}", f.display());
    let kept = lines(&run(BIN, &["-f", "-k", "sh", "-c", &script]));
    // Every call but one that never happens: a seccomp filter, so no kept maps.
    let fresh = lines(&run(
        BIN,
        &["-f", "-k", "-e", "trace=!kexec_load", "sh", "-c", &script],
    ));
    assert_eq!(kept, fresh);
    assert!(
        kept.iter()
            .any(|l| l.starts_with(" > /") && l.contains("libc.so.6(")),
        "{kept:?}"
    );
}

#[test]
fn quiet_and_alignment() {
    for args in [
        &["-qq", "-e", "trace=close", "cat", "/dev/null"][..],
        &["-a", "10", "-e", "trace=close", "cat", "/dev/null"],
        &["-a0", "-q", "-e", "trace=close", "cat", "/dev/null"],
    ] {
        let Some(l) = same_as_strace(args) else {
            return;
        };
        assert!(!l.is_empty());
    }
    // Alignment is what the normalising hides: compare it raw.
    let text = run(BIN, &["-a", "10", "-e", "trace=close", "cat", "/dev/null"]);
    assert!(text.lines().any(|l| l == "close(2)  = 0"), "{text}");
    let text = run(BIN, &["-qq", "-e", "trace=close", "cat", "/dev/null"]);
    assert!(!text.contains("+++"), "{text}");
}
