//! `threadburst`: a small multi-threaded program with a known syscall pattern, used by
//! strace-lite's tests and benchmark.
//!
//! Each of N threads writes `thread K iter I\n` to /dev/null M times through its own
//! descriptor, then the main thread joins them all; the write count is exactly N*M.

use clap::Parser;
use std::io::Write;

#[derive(Parser)]
#[command(
    about = "Start N threads that each write M short lines to /dev/null",
    after_help = "Example:\n  strace-lite -f threadburst --threads 4 --iterations 1000"
)]
struct Cli {
    /// Number of threads.
    #[arg(long, default_value_t = 4)]
    threads: u32,
    /// Writes per thread.
    #[arg(long, default_value_t = 10)]
    iterations: u32,
    /// After the writes, exec PROGRAM from a thread that is not the main thread
    /// (the kernel then gives that thread the process id).
    #[arg(long, value_name = "PROGRAM")]
    exec_from_thread: Option<std::path::PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let handles: Vec<_> = (0..cli.threads)
        .map(|k| {
            let n = cli.iterations;
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut f = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
                for i in 0..n {
                    // One write(2) per line: the tests count them.
                    f.write_all(format!("thread {k} iter {i}\n").as_bytes())?;
                }
                Ok(())
            })
        })
        .collect();
    let mut failed = false;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("threadburst: write /dev/null: {e}");
                failed = true;
            }
            Err(_) => failed = true,
        }
    }
    if let Some(prog) = cli.exec_from_thread {
        let t = std::thread::spawn(move || {
            let err =
                std::os::unix::process::CommandExt::exec(&mut std::process::Command::new(&prog));
            eprintln!("threadburst: exec {}: {err}", prog.display());
            std::process::exit(127);
        });
        let _ = t.join();
    }
    std::process::exit(i32::from(failed));
}
