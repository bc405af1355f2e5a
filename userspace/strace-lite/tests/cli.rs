//! The command line parses like strace's: everything that starts with `-` before the
//! program is an option of the tracer (an unknown one is an error, exit status 1),
//! `--` ends the options, and everything after the program's name is the program's.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_strace-lite");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_options_are_refused_not_run() {
    let o = run(&["--bogus"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = stderr(&o);
    assert!(
        e.starts_with("strace-lite: unrecognized option '--bogus'\n"),
        "{e}"
    );
    assert!(e.contains("Try 'strace-lite --help'"), "{e}");
    assert!(
        !e.contains("command not found"),
        "ran --bogus as a program: {e}"
    );

    // Before a program too, long or short.
    for bad in ["--bogus", "-j"] {
        let o = run(&[bad, "/bin/true"]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {o:?}");
        assert!(
            stderr(&o).contains(&format!("unrecognized option '{bad}'")),
            "{bad}: {}",
            stderr(&o)
        );
    }

    // A bad value is an error with status 1 as well, naming the option.
    let o = run(&["-s", "nope", "/bin/true"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = stderr(&o);
    assert!(e.starts_with("strace-lite: ") && e.contains("-s"), "{e}");
}

#[test]
fn double_dash_ends_the_options() {
    // `--bogus` after `--` is the program's name: not found, as a shell says.
    let o = run(&["--", "--bogus"]);
    assert_eq!(o.status.code(), Some(127), "{o:?}");
    assert!(stderr(&o).contains("command not found"), "{}", stderr(&o));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.txt");
    let o = run(&["-o", out.to_str().unwrap(), "--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("execve(\"/bin/true\""), "{text}");
}

#[test]
fn options_after_the_program_are_the_programs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.txt");
    // -c here belongs to sh, -n and --bogus to echo.
    let o = run(&[
        "-f",
        "-e",
        "trace=write",
        "-s",
        "64",
        "-o",
        out.to_str().unwrap(),
        "sh",
        "-c",
        "echo -n --bogus; echo x",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "--bogusx\n");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("write(1, \"--bogus\", 7)"), "{text}");
    assert!(
        !text.contains("openat("),
        "-e trace=write was applied: {text}"
    );

    // The program's options right after its name, with no shell between.
    let o = run(&[
        "-o",
        out.to_str().unwrap(),
        "/bin/echo",
        "-n",
        "--bogus",
        "-c",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "--bogus -c");

    // Every option of the tracer still parses, in short and long forms.
    let o = run(&[
        "-T",
        "-tt",
        "-c",
        "--json",
        "-o",
        out.to_str().unwrap(),
        "/bin/true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = run(&["--attach", "999999999"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("No such process"), "{}", stderr(&o));
}

#[test]
fn help_and_version_exit_zero() {
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("Examples:"));
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("strace-lite "));
}

/// `cargo run -p strace-lite -- ARGS` must pick the tracer, not ask which of the
/// package's two binaries (strace-lite and the threadburst workload) to run.
#[test]
fn cargo_run_picks_the_tracer() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(
        manifest
            .lines()
            .any(|l| l.trim() == "default-run = \"strace-lite\""),
        "{manifest}"
    );
}
