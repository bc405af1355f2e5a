#!/usr/bin/env bash
# strace-lite against strace, side by side in one run, tracer and tracee pinned to one
# CPU (taskset -c 0) so the cost measured is the tracers', not cross-CPU wakeups.
#
#   scripts/bench/strace.sh [RUNS]      (default 5; short workloads run 2-5x that; median reported)
#
# Workloads: dd with 1-byte blocks, find over /usr/share, a shell forking /bin/true
# eight times, threadburst (4 threads writing). Modes: plain, `strace -f -o /dev/null`,
# `strace-lite -f -o /dev/null`; then `-e trace=openat` with strace's --seccomp-bpf
# against strace-lite (which always uses seccomp-bpf when filtering); then `-f -yy`
# (every descriptor resolved through /proc, sockets to their endpoints) in both; then
# `-f -k` (a stack per call) on two smaller workloads of its own.
# Prints a table of overhead factors (traced / plain) and the ratio strace-lite/strace,
# and draws target/bench/strace.png.
#
# Robustness on a shared machine: modes run interleaved, in a fresh random order each
# round, so drift hits all alike; each cell is a median over rounds. The lite/strace
# columns are medians of the ratios paired within a round (both tracers ran moments
# apart), once for wall-clock time and once for CPU time (user + system of tracer and
# tracee together, from wait4's rusage): CPU time does not count the time other
# processes held the CPU, which wall-clock time on a busy machine does.
#
# A reference row under the all-syscalls table: strace-floor.c, the least a tracer of
# every call can do (waitpid, PTRACE_GET_SYSCALL_INFO and PTRACE_SYSCALL per stop, one
# process_vm_readv per read/write buffer, no output), as floor/strace in CPU time.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"
RUNS=${1:-5}

need_pkgs strace coreutils findutils util-linux python3 python3-matplotlib gcc

step "build (release)"
cargo build --release --locked -p strace-lite >/dev/null
LITE=$SYSNET_ROOT/target/release/strace-lite
BURST=$SYSNET_ROOT/target/release/threadburst
mkdir -p target/bench
FLOOR=$SYSNET_ROOT/target/bench/strace-floor
cc -O2 -o "$FLOOR" scripts/bench/strace-floor.c

step "measure ($RUNS runs per cell, median)"
# Debian's interpreter: python3-matplotlib is installed for it, not for any other python3 on PATH.
LITE=$LITE BURST=$BURST FLOOR=$FLOOR RUNS=$RUNS OUT=target/bench /usr/bin/python3 - <<'PY'
import os, random, statistics, subprocess, threading, time, math
rng = random.Random(5)
lite, burst, runs, out = os.environ["LITE"], os.environ["BURST"], int(os.environ["RUNS"]), os.environ["OUT"]
floor = os.environ["FLOOR"]
# (name, command, repetitions as a multiple of RUNS: short workloads need more samples
# to see through the noise of a shared machine)
workloads = [
    ("dd bs=1 count=20000", ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=20000"], 1),
    ("find /usr/share -maxdepth 3", ["find", "/usr/share", "-maxdepth", "3"], 2),
    ("sh: 8 x /bin/true", ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do /bin/true; done"], 5),
    ("threadburst 4 threads", [burst, "--threads", "4", "--iterations", "2000"], 2),
]
modes = {
    "plain": [],
    "strace": ["strace", "-f", "-o", "/dev/null"],
    "strace-lite": [lite, "-f", "-o", "/dev/null"],
    "floor": ["env", "READMEM=1", floor],
    "strace seccomp openat": ["strace", "-f", "--seccomp-bpf", "-e", "trace=openat", "-o", "/dev/null"],
    "strace-lite openat": [lite, "-f", "-e", "trace=openat", "-o", "/dev/null"],
    "strace -yy": ["strace", "-f", "-yy", "-o", "/dev/null"],
    "strace-lite -yy": [lite, "-f", "-yy", "-o", "/dev/null"],
}

def once(cmd):
    """(wall seconds, CPU seconds of the whole process tree) of one run."""
    t = time.perf_counter()
    p = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # A blocking wait4 (its rusage covers the tracer and the tracees it reaped); a timer
    # kills a run that hangs.
    watchdog = threading.Timer(120, p.kill)
    watchdog.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    watchdog.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return wall, ru.ru_utime + ru.ru_stime

def measure(workloads, modes, pairs):
    """Median wall time per mode, and per (a, b) pair the medians of the round-paired
    ratios b/a in wall and in CPU time, keyed (a, b, "wall") and (a, b, "cpu")."""
    res = {}
    for wname, cmd, mult in workloads:
        for m, pre in modes.items():
            once(pre + cmd)  # warm the page cache and the binaries
        # Interleave modes run by run, in a shuffled order each round, so drift and
        # cache effects on a shared machine hit all modes alike.
        samples = {m: [] for m in modes}
        order = list(modes)
        for _ in range(runs * mult):
            rng.shuffle(order)
            for m in order:
                samples[m].append(once(modes[m] + cmd))
        r = {m: statistics.median(w for w, _ in v) for m, v in samples.items()}
        for a, b in pairs:
            for k, name in ((0, "wall"), (1, "cpu")):
                r[(a, b, name)] = statistics.median(
                    y[k] / x[k] for x, y in zip(samples[a], samples[b]))
        res[wname] = r
    return res

CASES = [("all syscalls (-f)", "strace", "strace-lite"),
         ("-e trace=openat (seccomp-bpf)", "strace seccomp openat", "strace-lite openat"),
         ("-yy (descriptor paths, socket endpoints, device numbers)", "strace -yy", "strace-lite -yy")]
res = measure(workloads, modes, [(a, b) for _, a, b in CASES] + [("strace", "floor")])
# -k unwinds every call's stack: strace's takes seconds even on small workloads, so
# this case has workloads of its own, smaller ones.
k_res = measure([
    ("dd bs=1 count=2000", ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=2000"], 1),
    ("sh: 8 x /bin/true", ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do /bin/true; done"], 1),
], {
    "plain": [],
    "strace -k": ["strace", "-f", "-k", "-o", "/dev/null"],
    "strace-lite -k": [lite, "-f", "-k", "-o", "/dev/null"],
}, [("strace -k", "strace-lite -k")])

def gmean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))

lines = []
hdr = (f"{'workload':30} {'plain ms':>9} {'strace':>9} {'lite':>9} {'strace x':>9} {'lite x':>8}"
       f" {'lite/strace':>11} {'cpu l/s':>8}")
for title, a, b, table in [c + (res,) for c in CASES] + [("-k (a stack trace per call)", "strace -k", "strace-lite -k", k_res)]:
    lines.append(f"\n{title}")
    lines.append(hdr)
    oa, ob, rr, rc = [], [], [], []
    for w, r in table.items():
        p = r["plain"]
        xa, xb = r[a] / p, r[b] / p
        oa.append(xa); ob.append(xb)
        rr.append(r[(a, b, "wall")]); rc.append(r[(a, b, "cpu")])
        lines.append(f"{w:30} {p*1e3:9.1f} {r[a]*1e3:9.1f} {r[b]*1e3:9.1f} {xa:9.2f} {xb:8.2f}"
                     f" {rr[-1]:11.2f} {rc[-1]:8.2f}")
    lines.append(f"{'geometric mean':30} {'':9} {'':9} {'':9} {gmean(oa):9.2f} {gmean(ob):8.2f}"
                 f" {gmean(rr):11.2f} {gmean(rc):8.2f}")
    if a == "strace" and b == "strace-lite":
        fl = [r[("strace", "floor", "cpu")] for r in table.values()]
        lines.append(f"{'floor/strace, cpu (no output)':30} " + " ".join(f"{x:.2f}" for x in fl)
                     + f"   geometric mean {gmean(fl):.2f}")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "strace.txt"), "w").write(text + "\n")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.5))
    names = list(res)
    for ax, (title, a, b) in zip(axes, CASES):
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [res[n][a] / res[n]["plain"] for n in names], 0.4, label="strace")
        ax.bar([x + 0.2 for x in xs], [res[n][b] / res[n]["plain"] for n in names], 0.4, label="strace-lite")
        ax.set_xticks(list(xs)); ax.set_xticklabels(names, rotation=15, fontsize=8)
        ax.set_ylabel("time / untraced time (lower is better)"); ax.set_title(title); ax.legend()
        ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "strace.png"), dpi=110)
    print(f"\nchart: {out}/strace.png")
except ImportError:
    print("\n(matplotlib missing: no chart)")
PY
