//! End-to-end tests: trace real programs and compare with Debian's `strace`.
//!
//! Comparisons normalise what legitimately differs between two runs of the same
//! program: addresses (ASLR), process ids, the column padding, and `getrandom`'s
//! random bytes. Everything else — names, decoded arguments, return values — must match.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_strace-lite");
const THREADBURST: &str = env!("CARGO_BIN_EXE_threadburst");

fn have_strace() -> bool {
    let ok = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: strace is not installed (scripts/test.sh installs it)");
    }
    ok
}

/// Runs strace-lite with `-o FILE` and returns (exit code, trace text, output).
fn trace(args: &[&str]) -> (i32, String, Output) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace.txt");
    let mut full = vec!["-o", out.to_str().unwrap()];
    full.extend_from_slice(args);
    let o = Command::new(BIN)
        .args(&full)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    (o.status.code().unwrap_or(-1), text, o)
}

fn strace(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("strace.txt");
    let mut full = vec!["-o", out.to_str().unwrap()];
    full.extend_from_slice(args);
    let o = Command::new("strace")
        .args(&full)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.code().is_some(), "strace failed: {o:?}");
    std::fs::read_to_string(&out).unwrap()
}

/// Replaces addresses, pids and padding so two runs of one program compare equal.
fn normalize(line: &str) -> String {
    let mut s = String::with_capacity(line.len());
    let b = line.as_bytes();
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
        s.push(b[i] as char);
        i += 1;
    }
    // Return values that are pids (set_tid_address, getpid, wait4, clone).
    let mut s = collapse_result_padding(&s);
    if let Some(pos) = s.rfind(" = ") {
        let ret = &s[pos + 3..];
        if ret.len() >= 3
            && ret.chars().all(|c| c.is_ascii_digit())
            && ret.parse::<u64>().unwrap_or(0) > 300
        {
            s.truncate(pos);
            s.push_str(" = PID");
        }
    }
    s
}

fn collapse_result_padding(s: &str) -> String {
    match s.find(") ") {
        Some(_) => {
            let mut out = String::new();
            let mut rest = s;
            while let Some(p) = rest.find(")  ") {
                out.push_str(&rest[..p + 1]);
                rest = rest[p + 1..].trim_start_matches(' ');
                out.push(' ');
            }
            out.push_str(rest);
            out
        }
        None => s.to_string(),
    }
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            if l.starts_with("getrandom(") {
                // Random bytes differ on every run; the call and its result must not.
                let ret = l.rsplit(" = ").next().unwrap_or("");
                format!("getrandom(...) = {ret}")
            } else {
                normalize(l)
            }
        })
        .collect()
}

/// Whether some line, with its result padding collapsed, contains `needle`.
fn has(text: &str, needle: &str) -> bool {
    text.lines()
        .any(|l| collapse_result_padding(l).contains(needle))
}

fn sample_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sample.txt");
    std::fs::write(
        &p,
        "hello from the sample file\nsecond line with a \"quote\" and a tab\t.\n",
    )
    .unwrap();
    (dir, p)
}

#[test]
fn traces_bin_true() {
    let (code, text, _) = trace(&["/bin/true"]);
    assert_eq!(code, 0);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("execve(\"/bin/true\", [\"/bin/true\"], 0x"),
        "{first}"
    );
    assert!(first.ends_with(" vars */) = 0"), "{first}");
    assert!(text.contains("exit_group(0)"), "{text}");
    assert_eq!(text.lines().last(), Some("+++ exited with 0 +++"));
}

#[test]
fn cat_matches_strace_line_for_line() {
    if !have_strace() {
        return;
    }
    let (_d, file) = sample_file();
    let f = file.to_str().unwrap();
    let (code, ours, _) = trace(&["cat", f]);
    assert_eq!(code, 0);
    let theirs = strace(&["cat", f]);
    let (a, b) = (lines_of(&theirs), lines_of(&ours));
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        assert_eq!(
            x,
            y,
            "line {} differs\nstrace:      {x}\nstrace-lite: {y}",
            i + 1
        );
    }
    assert_eq!(a.len(), b.len(), "different number of lines");
    // The decoded data of the file itself must be there.
    assert!(
        has(
            &ours,
            "write(1, \"hello from the sample file\\nsecon\"..., 66) = 66"
        ),
        "{ours}"
    );
    assert!(
        has(&ours, &format!("openat(AT_FDCWD, \"{f}\", O_RDONLY) = 3")),
        "{ours}"
    );
}

#[test]
fn true_and_ls_match_strace() {
    if !have_strace() {
        return;
    }
    for args in [&["/bin/true"][..], &["ls", "/"][..]] {
        let (_, ours, _) = trace(args);
        let theirs = strace(args);
        // Names and results must agree on every line; arguments on the calls we decode.
        let key = |l: &String| {
            let name = l.split('(').next().unwrap_or("").to_string();
            let ret = l.rsplit(" = ").next().unwrap_or("").to_string();
            (name, ret)
        };
        let (a, b) = (lines_of(&theirs), lines_of(&ours));
        let ka: Vec<_> = a.iter().map(key).collect();
        let kb: Vec<_> = b.iter().map(key).collect();
        assert_eq!(ka, kb, "{args:?}: syscall sequence differs");
        for (x, y) in a.iter().zip(&b) {
            let name = key(x).0;
            if [
                "openat",
                "access",
                "newfstatat",
                "close",
                "read",
                "mmap",
                "execve",
                "write",
                "brk",
            ]
            .contains(&name.as_str())
            {
                assert_eq!(x, y, "{args:?}: decoded {name} differs");
            }
        }
    }
}

/// Parses `-c` output into name → (calls, errors).
fn counts(text: &str) -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 5
            || f[0].starts_with('%')
            || f[0].starts_with('-')
            || f.last() == Some(&"total")
        {
            continue;
        }
        let name = f.last().unwrap().to_string();
        let calls: u64 = f[3].parse().unwrap_or(0);
        let errors: u64 = if f.len() == 6 {
            f[4].parse().unwrap_or(0)
        } else {
            0
        };
        m.insert(name, (calls, errors));
    }
    m
}

#[test]
fn summary_counts_equal_strace() {
    if !have_strace() {
        return;
    }
    let (_d, file) = sample_file();
    let f = file.to_str().unwrap();
    for args in [&["cat", f][..], &["ls", "-l", "/"][..]] {
        let (code, ours, _) = trace(&[&["-c"][..], args].concat());
        assert_eq!(code, 0);
        let theirs = strace(&[&["-c"][..], args].concat());
        let (a, b) = (counts(&theirs), counts(&ours));
        assert!(!a.is_empty());
        assert_eq!(
            a, b,
            "{args:?}: -c counts differ\nstrace:\n{theirs}\nstrace-lite:\n{ours}"
        );
    }
}

#[test]
fn shell_that_forks_is_followed() {
    let (code, text, _) = trace(&[
        "-f",
        "sh",
        "-c",
        "/bin/true; /bin/echo hi >/dev/null; exit 3",
    ]);
    assert_eq!(code, 3);
    let execs: Vec<&str> = text.lines().filter(|l| l.contains("execve(")).collect();
    assert_eq!(execs.len(), 3, "{text}");
    assert!(text.contains("[pid "), "{text}");
    assert!(
        text.lines().any(|l| l.contains("] +++ exited with 0 +++")),
        "{text}"
    );
    assert!(
        text.contains("--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED"),
        "{text}"
    );
    assert!(has(&text, "write(1, \"hi\\n\", 3) = 3"), "{text}");
    assert_eq!(text.lines().last(), Some("+++ exited with 3 +++"));
}

#[test]
fn forks_match_strace_as_a_multiset() {
    if !have_strace() {
        return;
    }
    let args = ["-f", "sh", "-c", "/bin/true; /bin/true"];
    let (_, ours, _) = trace(&args);
    let theirs = strace(&args);
    // Interleaving differs run to run; the calls made, and their results, do not.
    let bag = |t: &str| {
        let mut m: BTreeMap<(String, String), u32> = BTreeMap::new();
        for l in t.lines() {
            let l = l.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
            let l = match l.find("] ") {
                Some(p) if l.starts_with("[pid") => &l[p + 2..],
                _ => l,
            };
            let l = normalize(l);
            let (name, ret) = if let Some(r) = l.strip_prefix("<... ") {
                (
                    r.split(' ').next().unwrap_or("").to_string(),
                    l.rsplit(" = ").next().unwrap_or("").to_string(),
                )
            } else if l.ends_with("<unfinished ...>") {
                continue;
            } else if l.starts_with("---") || l.starts_with("+++") {
                (l.clone(), String::new())
            } else {
                (
                    l.split('(').next().unwrap_or("").to_string(),
                    l.rsplit(" = ").next().unwrap_or("").to_string(),
                )
            };
            *m.entry((name, ret)).or_default() += 1;
        }
        m
    };
    let mut a = bag(&theirs);
    let mut b = bag(&ours);
    // strace -o -f prefixes pids with no brackets; the SIGCHLD si_pid also differs.
    a.retain(|k, _| !k.0.starts_with("--- SIGCHLD"));
    b.retain(|k, _| !k.0.starts_with("--- SIGCHLD"));
    assert_eq!(a, b);
}

/// The traced program inherits the signal dispositions its caller gave the tracer:
/// what was ignored stays ignored (a background job's SIGINT, `nohup`'s SIGHUP), and the
/// tracer's own handlers do not leak into it. Compared with the same program run
/// directly by the same shell.
#[test]
fn the_program_keeps_the_callers_ignored_signals() {
    let ignored = |prefix: &str, traced: bool| -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("trace.txt");
        let run = if traced {
            format!("exec {BIN} -o {} cat /proc/self/status", out.display())
        } else {
            "exec cat /proc/self/status".to_string()
        };
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("{prefix} {run}"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let text = String::from_utf8_lossy(&o.stdout);
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .unwrap_or_else(|| panic!("no SigIgn in {text}"));
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    // Bits are signal numbers minus one: SIGHUP 1, SIGINT 2, SIGQUIT 3, SIGTERM 15.
    let ours: u64 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14);
    let plain = ignored("", false);
    assert_eq!(ignored("", true) & ours, plain & ours);
    let trapped = ignored("trap '' HUP INT;", false);
    assert_eq!(trapped & 0b11, 0b11, "the shell ignores HUP and INT");
    assert_eq!(ignored("trap '' HUP INT;", true) & ours, trapped & ours);
}

#[test]
fn threads_are_followed_with_per_thread_state() {
    let (code, text, _) = trace(&["-f", THREADBURST, "--threads", "4", "--iterations", "25"]);
    assert_eq!(code, 0, "{text}");
    for k in 0..4 {
        for i in 0..25 {
            let needle = format!("write(3, \"thread {k} iter {i}\\n\"");
            let needle2 = format!("\"thread {k} iter {i}\\n\", ");
            assert!(
                text.lines()
                    .any(|l| l.contains(&needle2) && l.contains("write(")),
                "missing {needle}"
            );
        }
    }
    let tids: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("[pid "))
        .filter_map(|l| l.split(']').next())
        .map(str::trim)
        .collect();
    assert!(tids.len() >= 5, "expected 5 thread ids, saw {tids:?}");
    // Every unfinished call is resumed by the same thread.
    let unfinished = text
        .lines()
        .filter(|l| l.ends_with("<unfinished ...>"))
        .count();
    let resumed = text.lines().filter(|l| l.contains("<... ")).count();
    assert_eq!(unfinished, resumed, "{text}");
    assert_eq!(text.lines().last(), Some("+++ exited with 0 +++"));

    let (_, summary, _) = trace(&[
        "-f",
        "-c",
        THREADBURST,
        "--threads",
        "4",
        "--iterations",
        "25",
    ]);
    assert_eq!(counts(&summary).get("write"), Some(&(100, 0)), "{summary}");
}

#[test]
fn seccomp_filter_limits_stops_to_traced_calls() {
    let (_d, file) = sample_file();
    let f = file.to_str().unwrap();
    let (code, text, _) = trace(&["-f", "-e", "trace=openat", "cat", f]);
    assert_eq!(code, 0);
    // With -f and -o each line may carry its pid; this test is about which calls show.
    let unpid = |t: &str| -> String {
        t.lines()
            .map(|l| {
                l.trim_start_matches(|c: char| c.is_ascii_digit())
                    .trim_start()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let text = unpid(&text);
    assert!(
        text.lines()
            .all(|l| l.starts_with("openat(") || l.starts_with("+++")),
        "{text}"
    );
    assert!(
        has(&text, &format!("openat(AT_FDCWD, \"{f}\", O_RDONLY) = 3")),
        "{text}"
    );
    if have_strace() {
        let theirs = strace(&["-f", "--seccomp-bpf", "-e", "trace=openat", "cat", f]);
        assert_eq!(lines_of(&unpid(&theirs)), lines_of(&text));
    }
    // The filter is really in the tracee: the kernel reports seccomp mode 2.
    let (_, _, o) = trace(&[
        "-f",
        "-e",
        "trace=openat",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // Without -f there is no filter, as with strace: the untraced threads and children would
    // inherit it and see ENOSYS for every filtered call.
    let (_, _, o) = trace(&[
        "-e",
        "trace=openat",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Seccomp:\t0"), "{out}");
    // And classes work: %network on a program without sockets shows no calls at all.
    let (_, text, _) = trace(&["-f", "-e", "trace=%network", "cat", f]);
    assert_eq!(unpid(&text).trim(), "+++ exited with 0 +++");
}

#[test]
fn a_filtered_trace_without_f_leaves_the_other_threads_working() {
    // Only the first thread is traced; the others open their own /dev/null and must succeed.
    let (code, text, o) = trace(&[
        "-e",
        "trace=openat",
        THREADBURST,
        "--threads",
        "4",
        "--iterations",
        "50",
    ]);
    assert_eq!(code, 0, "{text}\n{}", String::from_utf8_lossy(&o.stdout));
    assert!(!text.contains("ENOSYS"), "{text}");
}

#[test]
fn signals_are_delivered_and_shown() {
    let (code, text, o) = trace(&[
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; kill -USR1 $$; echo done",
    ]);
    assert_eq!(code, 0);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("got-usr1") && stdout.contains("done"),
        "{stdout}"
    );
    assert!(
        text.contains("--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid="),
        "{text}"
    );
}

#[test]
fn killed_tracee_gives_128_plus_signal() {
    let (code, text, _) = trace(&["sh", "-c", "kill -KILL $$"]);
    assert_eq!(code, 128 + 9);
    assert_eq!(text.lines().last(), Some("+++ killed by SIGKILL +++"));
    let (code, text, _) = trace(&["sh", "-c", "kill -SEGV $$"]);
    assert_eq!(code, 128 + 11);
    assert!(
        text.contains("--- SIGSEGV {si_signo=SIGSEGV, si_code=SI_USER"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("+++ killed by SIGSEGV"),
        "{text}"
    );
}

fn error_line(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(e.lines().count(), 1, "expected one line: {e}");
    e
}

#[test]
fn error_cases_exit_like_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();

    let o = run(&["/no/such/program"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(error_line(&o).contains("No such file or directory"));

    let o = run(&["no-such-program-anywhere"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(error_line(&o).contains("command not found"));

    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, "not a program\n").unwrap();
    let o = run(&[plain.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(126));
    assert!(error_line(&o).contains("Permission denied"));

    use std::os::unix::fs::PermissionsExt;
    let exec =
        |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    exec(&plain);
    let o = run(&[plain.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(126));
    assert!(error_line(&o).contains("Exec format error"));

    let garbage = dir.path().join("garbage");
    std::fs::write(
        &garbage,
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0garbage, not a header",
    )
    .unwrap();
    exec(&garbage);
    let o = run(&[garbage.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(126));
    assert!(error_line(&o).contains("ELF"));

    let mut arm = std::fs::read("/bin/true").unwrap();
    arm[18] = 183; // e_machine = EM_AARCH64
    let armp = dir.path().join("arm");
    std::fs::write(&armp, &arm).unwrap();
    exec(&armp);
    let o = run(&[armp.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(126));
    assert!(error_line(&o).to_lowercase().contains("aarch64"));

    let o = run(&["-p", "999999999"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(error_line(&o).contains("No such process"));

    let o = run(&["-e", "trace=not_a_syscall", "/bin/true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(error_line(&o).contains("not_a_syscall"));
}

#[test]
fn attach_and_detach_leave_the_process_running() {
    let mut child = Command::new("sh")
        .args(["-c", "while :; do echo x >/dev/null; sleep 0.05; done"])
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    std::thread::sleep(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.txt");
    let mut tracer = Command::new(BIN)
        .args(["-p", &pid, "-o", out.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = tracer.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tracer did not detach");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        has(
            &text,
            "openat(AT_FDCWD, \"/dev/null\", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3"
        ),
        "{text}"
    );
    // Still alive, and no longer traced.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "tracee died after detach"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("TracerPid:\t0"), "{status}");
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn json_timestamps_durations_and_string_limit() {
    let (_d, file) = sample_file();
    let f = file.to_str().unwrap();
    let (code, text, _) = trace(&["--json", "cat", f]);
    assert_eq!(code, 0);
    let objs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    assert_eq!(objs[0]["name"], "execve");
    assert_eq!(objs[0]["ret"], 0);
    let open = objs
        .iter()
        .find(|o| o["name"] == "openat" && o["args"][1] == format!("\"{f}\""))
        .expect("openat");
    assert_eq!(open["args"][2], "O_RDONLY");
    assert_eq!(open["ret"], 3);
    let enoent = objs
        .iter()
        .find(|o| o["errno"] == "ENOENT")
        .expect("a failed call");
    assert_eq!(enoent["ret"], -2);
    assert_eq!(objs.last().unwrap()["type"], "exit");
    assert_eq!(objs.last().unwrap()["exit_code"], 0);

    let (_, text, _) = trace(&["-T", "-tt", "-s", "5", "cat", f]);
    for l in text
        .lines()
        .filter(|l| !l.ends_with("+++") && !l.ends_with("= ?"))
    {
        let (ts, rest) = l.split_at(15);
        assert!(
            ts.as_bytes()[2] == b':' && ts.as_bytes()[8] == b'.',
            "timestamp in {l}"
        );
        assert!(rest.starts_with(' '));
        assert!(l.ends_with('>') && l.contains(" <0."), "duration in {l}");
    }
    assert!(has(&text, "write(1, \"hello\"..., 66) = 66 <"), "{text}");
}

/// The project's servers, newest first: the capstone, then httpd, then echo.
fn server_binary() -> Option<(String, PathBuf)> {
    let dir = Path::new(BIN).parent()?;
    for name in ["capstone", "httpd", "echo"] {
        let p = dir.join(name);
        if p.is_file() {
            return Some((name.to_string(), p));
        }
    }
    None
}

/// Reads the server's stderr (through the tracer) until `listening addr=`.
fn wait_listening(stderr: std::process::ChildStderr) -> Option<std::net::SocketAddr> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.find("listening addr=") {
                let addr = line[i + 15..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                if let (Some(t), Ok(a)) = (tx.as_ref(), addr.parse()) {
                    let _ = t.send(a);
                    tx = None;
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30)).ok()
}

#[test]
fn project_server_shows_accept_epoll_and_sendfile() {
    use std::io::{Read, Write};
    let Some((name, exe)) = server_binary() else {
        eprintln!("SKIP: no server binary (capstone, httpd or echo) next to strace-lite; build the workspace first");
        return;
    };
    let site = tempfile::tempdir().unwrap();
    // 256 KiB: well above any "small file goes inline" threshold, so it leaves by sendfile.
    let page = "<h1>traced</h1>\n".repeat(16 * 1024);
    std::fs::write(site.path().join("index.html"), page).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("server.txt");
    let mut args: Vec<String> = vec![
        "-f".into(),
        "-o".into(),
        out.to_str().unwrap().into(),
        exe.to_str().unwrap().into(),
    ];
    let http = name != "echo";
    args.extend(["--listen".into(), "127.0.0.1:0".into()]);
    if http {
        args.extend(["--root".into(), site.path().to_str().unwrap().into()]);
    }
    if name != "capstone" {
        args.extend(["--io".into(), "epoll".into()]);
    }
    // Its own state directory: the capstone's default pid file must not meet that of a
    // capstone already running on this machine (the quick start's, say).
    let state = tempfile::tempdir().unwrap();
    let mut tracer = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "info")
        .env("XDG_RUNTIME_DIR", state.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let Some(addr) = wait_listening(tracer.stderr.take().unwrap()) else {
        let _ = tracer.kill();
        panic!("{name} under strace-lite never logged `listening addr=`");
    };
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = Vec::new();
    if http {
        s.write_all(b"GET /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let _ = s.read_to_end(&mut reply);
        assert!(String::from_utf8_lossy(&reply).contains("<h1>traced</h1>"));
    } else {
        s.write_all(b"ping\n").unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping\n");
    }
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
    // Stop the server itself (graceful SIGTERM); the tracer ends with it.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", tracer.id()))
        .unwrap_or_default();
    for pid in children
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        // SAFETY: signalling the server process we started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while tracer.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = tracer.kill();
            panic!("{name} did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("accept4("), "no accept4 in the {name} trace");
    assert!(
        text.contains("epoll_wait(") || text.contains("epoll_pwait("),
        "no epoll_wait in the {name} trace"
    );
    assert!(
        text.contains("{sa_family=AF_INET, sin_port=htons("),
        "no decoded sockaddr in the {name} trace"
    );
    if http {
        assert!(
            text.contains("sendfile("),
            "no sendfile in the {name} trace"
        );
    } else {
        assert!(
            text.contains("\"ping\\n\""),
            "the echoed bytes are not decoded"
        );
    }
    eprintln!("{name}: {} lines traced", text.lines().count());
}

#[test]
fn execve_from_a_thread_and_group_stop() {
    // A non-leader thread's execve takes over the process id: the tracer must move
    // that thread's state and carry on with the new program.
    let (code, text, _) = trace(&[
        "-f",
        THREADBURST,
        "--threads",
        "2",
        "--iterations",
        "2",
        "--exec-from-thread",
        "/bin/true",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("+++ superseded by execve in pid "), "{text}");
    assert!(
        has(&text, "execve(\"/bin/true\", [\"/bin/true\"]"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .ends_with("+++ exited with 0 +++"),
        "{text}"
    );

    // A tracee that stops itself stays stopped until SIGCONT, which it then receives.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.txt");
    let tracer = Command::new(BIN)
        .args([
            "-o",
            out.to_str().unwrap(),
            "sh",
            "-c",
            "kill -STOP $$; echo resumed",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let tpid = tracer.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let child: i32 = loop {
        let kids = std::fs::read_to_string(format!("/proc/{tpid}/task/{tpid}/children"))
            .unwrap_or_default();
        if let Some(c) = kids.split_whitespace().next().and_then(|c| c.parse().ok()) {
            let st = std::fs::read_to_string(format!("/proc/{c}/status")).unwrap_or_default();
            if st.contains("State:\tt") || st.contains("State:\tT") {
                break c;
            }
        }
        assert!(Instant::now() < deadline, "tracee never stopped");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: signalling the traced shell we started.
    unsafe { libc::kill(child, libc::SIGCONT) };
    let o = tracer.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "resumed\n");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("--- stopped by SIGSTOP ---"), "{text}");
    assert!(
        text.contains("--- SIGCONT {si_signo=SIGCONT, si_code=SI_USER"),
        "{text}"
    );
}

#[test]
fn attach_without_permission_is_a_clear_error() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("SKIP: needs root and setpriv to run the tracer as an unprivileged user");
        return;
    }
    // A copy the unprivileged user can reach, wherever the build tree lives.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("strace-lite");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Another test's fork may briefly hold the copy's write descriptor (ETXTBSY): retry.
    let mut tries = 0;
    let o = loop {
        let o = Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["-p", "1"])
            .output()
            .unwrap();
        tries += 1;
        if tries < 20 && String::from_utf8_lossy(&o.stderr).contains("Text file busy") {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        break o;
    };
    assert_ne!(o.status.code(), Some(0));
    let e = error_line(&o);
    assert!(
        e.contains("PTRACE_SEIZE, 1") && e.contains("Operation not permitted"),
        "{e}"
    );
}

#[test]
fn output_file_is_flushed_while_the_tracee_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.txt");
    let mut tracer = Command::new(BIN)
        .args(["-o", out.to_str().unwrap(), "sleep", "3"])
        .spawn()
        .unwrap();
    // The sleep's entry line must reach the file long before the call returns.
    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut seen = String::new();
    while Instant::now() < deadline {
        seen = std::fs::read_to_string(&out).unwrap_or_default();
        if seen.lines().last().is_some_and(|l| {
            l.starts_with("clock_nanosleep(CLOCK_REALTIME, 0, {tv_sec=3, tv_nsec=0}, ")
        }) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = tracer.kill();
    let _ = tracer.wait();
    assert!(
        seen.contains("clock_nanosleep(CLOCK_REALTIME, 0, {tv_sec=3, tv_nsec=0}, "),
        "{seen}"
    );
}

/// Compiles `tests/progs/NAME.c` with `cc` into `dir`; None (and a SKIP line) without a compiler.
fn compile(name: &str, dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/progs")
        .join(format!("{name}.c"));
    let exe = dir.join(name);
    match Command::new("cc")
        .args(["-O0", "-pthread"])
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
    {
        Ok(o) if o.status.success() => Some(exe),
        Ok(o) => panic!("cc {name}.c: {}", String::from_utf8_lossy(&o.stderr)),
        Err(_) => {
            eprintln!("SKIP: no C compiler (cc) to build {name}.c");
            None
        }
    }
}

/// The lines a test program traces after its `write(-1, "BEGIN", 5)` marker, up to its
/// exit, normalised; the time a call had left (`left {...}`) differs run to run.
fn after_marker(text: &str) -> Vec<String> {
    let text = pids_named(text);
    let lines = lines_of(&text);
    let start = lines
        .iter()
        .position(|l| l.starts_with("write(-1, \"BEGIN\", 5)"))
        .map_or(lines.len(), |p| p + 1);
    lines[start..]
        .iter()
        .take_while(|l| !l.starts_with("exit_group(") && !l.starts_with("+++"))
        .map(|l| match l.find("left {") {
            Some(p) => {
                let end = l[p..].find('}').map_or(l.len(), |e| p + e + 1);
                format!("{}left {{...}}{}", &l[..p], &l[end..])
            }
            None => l.clone(),
        })
        .collect()
}

/// Replaces every process id the trace shows as a result (getpid, clone, wait4) by
/// `PID` wherever it appears, so arguments and siginfo that name a pid compare equal.
fn pids_named(text: &str) -> String {
    let pids: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.rsplit(" = ").next())
        .filter(|r| r.len() >= 3 && r.chars().all(|c| c.is_ascii_digit()))
        .filter(|r| r.parse::<u64>().unwrap_or(0) > 300)
        .map(str::to_string)
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if pids.contains(word.as_str()) {
            out.push_str("PID");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    let mut prev_alnum = false;
    for c in text.chars() {
        if c.is_ascii_digit() && (!prev_alnum || !word.is_empty()) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
        prev_alnum = c.is_ascii_alphanumeric() || c == '_';
    }
    flush(&mut word, &mut out);
    out
}

/// Fails, showing every line, unless one of `lines` starts with `prefix`.
fn has_line(lines: &[String], prefix: &str) {
    assert!(
        lines.iter().any(|l| l.starts_with(prefix)),
        "no line starts with {prefix:?}:\n{}",
        lines.join("\n")
    );
}

/// Traces the test program NAME with strace and strace-lite and compares the lines
/// after its marker one by one. Returns strace-lite's lines for further checks.
fn program_matches_strace(name: &str, args: &[&str]) -> Option<Vec<String>> {
    program_matches_strace_with(name, args, |l| l)
}

/// As `program_matches_strace`, with `fix` applied to every line of both traces first
/// (for values that differ between two runs in ways the general normalising cannot know).
fn program_matches_strace_with(
    name: &str,
    args: &[&str],
    fix: impl Fn(String) -> String,
) -> Option<Vec<String>> {
    if !have_strace() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(name, dir.path())?;
    let exe = exe.to_str().unwrap();
    let mut full = vec![exe];
    full.extend_from_slice(args);
    let (_, ours, _) = trace(&full);
    let theirs = strace(&full);
    let fixed = |t: &str| after_marker(t).into_iter().map(&fix).collect::<Vec<_>>();
    let (a, b) = (fixed(&theirs), fixed(&ours));
    assert!(!a.is_empty(), "{name}: no lines after the marker\n{theirs}");
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        assert_eq!(
            x,
            y,
            "{name}: line {} after the marker differs\nstrace:      {x}\nstrace-lite: {y}",
            i + 1
        );
    }
    assert_eq!(
        a.len(),
        b.len(),
        "{name}: different number of lines\n{theirs}\n{ours}"
    );
    Some(b)
}

#[test]
fn memory_calls_match_strace() {
    let Some(lines) = program_matches_strace("memory", &[]) else {
        return;
    };
    assert!(lines.iter().any(|l| l.contains("21<<MAP_HUGE_SHIFT")));
    assert!(lines.iter().any(|l| l.contains("MADV_??? */")));
}

#[test]
fn stat_family_matches_strace() {
    if let Some(lines) = program_matches_strace("stat", &[]) {
        assert!(lines
            .iter()
            .any(|l| l.starts_with("statx(") && l.contains("stx_mode=S_IFCHR|0666")));
        assert!(lines.iter().any(|l| l.contains("f_type=PROC_SUPER_MAGIC")));
    }
    // A regular file, a directory and a symlink in a temporary directory.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("plain");
    std::fs::write(&f, "12345").unwrap();
    program_matches_strace("stat", &[f.to_str().unwrap()]);
    program_matches_strace("stat", &[dir.path().to_str().unwrap()]);
}

#[test]
fn poll_and_select_sets_match_strace() {
    let Some(lines) = program_matches_strace("poll", &[]) else {
        return;
    };
    assert!(lines.iter().any(|l| l.contains("([{fd=3, revents=POLLIN}")));
    assert!(lines.iter().any(|l| l.contains("(in [")));
}

#[test]
fn socket_addresses_and_options_match_strace() {
    let Some(lines) = program_matches_strace("sockets", &[]) else {
        return;
    };
    assert!(lines
        .iter()
        .any(|l| l.contains("sa_family=AF_NETLINK, nl_pid=0")));
    assert!(lines.iter().any(|l| l.contains("{l_onoff=1, l_linger=5}")));
}

#[test]
fn credentials_and_prctl_match_strace() {
    let Some(lines) = program_matches_strace("creds", &[]) else {
        return;
    };
    has_line(&lines, "capget({version=_LINUX_CAPABILITY_VERSION_3");
    has_line(&lines, "prctl(PR_GET_PDEATHSIG, [SIGKILL])");
}

#[test]
fn descriptor_objects_match_strace() {
    let Some(lines) = program_matches_strace("fds", &[]) else {
        return;
    };
    assert!(lines.iter().any(
        |l| l.starts_with("timerfd_settime(") && l.contains("it_value={tv_sec=5, tv_nsec=500}")
    ));
    assert!(lines
        .iter()
        .any(|l| l.contains("resolve=RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH")));
    has_line(&lines, "close_range(100, 4294967295, CLOSE_RANGE_CLOEXEC)");
}

#[test]
fn waits_signals_and_scheduling_match_strace() {
    // Resource usage differs from run to run: its times are replaced.
    let times = |l: String| {
        if !l.starts_with("wait4(") && !l.starts_with("getrusage(") {
            return l;
        }
        let mut out = String::new();
        let mut digits = false;
        for (i, c) in l.char_indices() {
            if c.is_ascii_digit()
                && (digits || l[..i].ends_with("tv_sec=") || l[..i].ends_with("tv_usec="))
            {
                if !digits {
                    out.push('T');
                }
                digits = true;
            } else {
                digits = false;
                out.push(c);
            }
        }
        out
    };
    let Some(lines) = program_matches_strace_with("procs", &[], times) else {
        return;
    };
    assert!(lines.iter().any(
        |l| l.starts_with("rt_sigtimedwait([USR2], {si_signo=SIGUSR2")
            && l.ends_with("= 12 (SIGUSR2)")
    ));
    has_line(
        &lines,
        "waitid(P_PID, PID, {si_signo=SIGCHLD, si_code=CLD_EXITED",
    );
    assert!(lines.iter().any(|l| l.ends_with("= 0 (SCHED_OTHER)")));
    has_line(
        &lines,
        "sched_getattr(0, {size=56, sched_policy=SCHED_OTHER, ",
    );
    assert!(lines.iter().any(
        |l| l.starts_with("membarrier(MEMBARRIER_CMD_QUERY, 0) = 0xX (MEMBARRIER_CMD_GLOBAL|")
    ));
    has_line(
        &lines,
        "getrusage(RUSAGE_SELF, {ru_utime={tv_sec=T, tv_usec=T}",
    );
    assert!(lines.iter().any(
        |l| l.starts_with("wait4(PID, [{WIFEXITED(s) && WEXITSTATUS(s) == 7}], 0, {ru_utime=")
    ));
}

/// System V IPC ids grow from run to run: the id a `*get` call returns, and the first
/// argument of the calls that use it, become `ID`.
fn ipc_ids_named(l: String) -> String {
    if !["shm", "sem", "msg"].iter().any(|p| l.starts_with(p)) {
        return l;
    }
    let mut l = l;
    if !["shmget(", "semget(", "msgget("]
        .iter()
        .any(|p| l.starts_with(p))
    {
        if let (Some(open), Some(comma)) = (l.find('('), l.find(',')) {
            l.replace_range(open + 1..comma, "ID");
        }
    } else if let Some(p) = l.rfind(" = ") {
        if !l[p + 3..].starts_with('-') {
            l.truncate(p);
            l.push_str(" = ID");
        }
    }
    l
}

#[test]
fn system_v_ipc_matches_strace() {
    let Some(lines) = program_matches_strace_with("ipc", &[], ipc_ids_named) else {
        return;
    };
    has_line(&lines, "shmget(IPC_PRIVATE, 4096, IPC_CREAT|IPC_EXCL|0600)");
    assert!(lines
        .iter()
        .any(|l| l.contains("{mtype=1, mtext=\"hello\\0\"}")));
}

#[test]
fn mounts_ioctls_and_kernel_interfaces_match_strace() {
    let Some(lines) = program_matches_strace("misc", &[]) else {
        return;
    };
    has_line(
        &lines,
        "epoll_pwait2(3, [], 2, {tv_sec=0, tv_nsec=0}, [USR1], 8)",
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("recvmmsg(5, [{msg_hdr={") && l.contains("msg_len=3}")));
    has_line(&lines, "ioctl(5, FIONREAD, [0])");
    has_line(
        &lines,
        "seccomp(SECCOMP_GET_ACTION_AVAIL, 0, [SECCOMP_RET_KILL_PROCESS])",
    );
    has_line(&lines, "bpf(BPF_PROG_LOAD, NULL, 0)");
}

#[test]
fn signal_frames_threads_and_flag_orders_match_strace() {
    let Some(lines) = program_matches_strace("frames", &[]) else {
        return;
    };
    has_line(&lines, "rt_sigreturn({mask=[TERM]})");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("clone3({flags=CLONE_VM|")
            && l.contains("} => {parent_tid=[PID]}, 88)")));
    assert!(lines
        .iter()
        .any(|l| l.contains("AT_SYMLINK_NOFOLLOW|AT_EACCESS")));
}

#[test]
fn everyday_file_time_and_process_calls_match_strace() {
    // getcpu reports whichever CPU the call ran on.
    let cpu = |l: String| match l.strip_prefix("getcpu([") {
        Some(rest) => format!("getcpu([CPU{}", &rest[rest.find(']').unwrap_or(0)..]),
        None => l,
    };
    let Some(lines) = program_matches_strace_with("files", &[], cpu) else {
        return;
    };
    has_line(&lines, "flock(3, LOCK_EX|LOCK_NB)");
    has_line(
        &lines,
        "mknodat(AT_FDCWD, \"/nonexistent/fifo\", S_IFIFO|0644)",
    );
    has_line(&lines, "personality(0xX) = 0 (PER_LINUX)");
}

/// `-e trace=%CLASS` selects what strace's syscall table says it does. (strace 6.1
/// installs its seccomp filter only with -f, so PR_GET_SECCOMP's answer is left out.)
#[test]
fn class_filters_select_what_strace_selects() {
    if !have_strace() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (prog, class) in [
        ("ipc", "%ipc"),
        ("creds", "%creds"),
        ("procs", "%pure"),
        ("stat", "%%stat"),
        ("stat", "%fstat"),
        ("stat", "%statfs"),
        ("stat", "%%statfs"),
        ("memory", "%memory"),
        ("stat", "%desc"),
        ("sockets", "%network"),
    ] {
        let Some(exe) = compile(prog, dir.path()) else {
            return;
        };
        let exe = exe.to_str().unwrap();
        let expr = format!("trace={class}");
        let (_, ours, _) = trace(&["-e", &expr, exe]);
        let theirs = strace(&["--seccomp-bpf", "-e", &expr, exe]);
        let norm = |t: &str| {
            lines_of(&pids_named(t))
                .into_iter()
                .map(ipc_ids_named)
                .filter(|l| !l.starts_with("prctl(PR_GET_SECCOMP)"))
                .collect::<Vec<_>>()
        };
        let (a, b) = (norm(&theirs), norm(&ours));
        assert!(a.len() > 1, "{prog} {class}: nothing traced\n{theirs}");
        assert_eq!(a, b, "{prog} -e {expr}");
    }
}

#[test]
fn posix_timers_and_queued_signals_match_strace() {
    let Some(lines) = program_matches_strace("timers", &[]) else {
        return;
    };
    assert!(lines.iter().any(|l| l.starts_with(
        "--- SIGALRM {si_signo=SIGALRM, si_code=SI_TIMER, si_timerid=0, si_overrun=0"
    )));
    assert!(lines.iter().any(|l| l
        .starts_with("rt_sigqueueinfo(PID, SIGUSR1, {si_signo=SIGUSR1, si_code=SI_QUEUE")
        && l.contains("si_int=42")));
    has_line(&lines, "timer_settime(0, TIMER_ABSTIME, ");
}

/// SIGTERM to the tracer reaches the program it launched, as with strace: the program
/// is not left running untraced with no parent to wait for it.
#[test]
fn a_stopped_tracer_takes_its_launched_program_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let mut tracer = Command::new(BIN)
        .args(["-o", "/dev/null", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid: i32 = loop {
        let text = std::fs::read_to_string(&pidfile).unwrap_or_default();
        // The sleep has replaced the shell once its comm says so.
        if let Ok(p) = text.trim().parse::<i32>() {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                break p;
            }
        }
        assert!(Instant::now() < deadline, "the traced sleep never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: kill(2) on the tracer we spawned.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGTERM) };
    let status = tracer.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
    // The sleep was the tracer's child, so it is reaped with it or already gone.
    let gone = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        if stat.is_empty() || state == Some('Z') {
            break;
        }
        assert!(
            Instant::now() < gone,
            "the launched sleep outlived its tracer: {stat}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
