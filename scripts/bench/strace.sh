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
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"
RUNS=${1:-5}

need_pkgs strace coreutils findutils util-linux python3 python3-matplotlib

step "build (release)"
cargo build --release --locked -p strace-lite >/dev/null
LITE=$SYSNET_ROOT/target/release/strace-lite
BURST=$SYSNET_ROOT/target/release/threadburst
mkdir -p target/bench

step "measure ($RUNS runs per cell, median)"
# Debian's interpreter: python3-matplotlib is installed for it, not for any other python3 on PATH.
LITE=$LITE BURST=$BURST RUNS=$RUNS OUT=target/bench /usr/bin/python3 - <<'PY'
import os, random, statistics, subprocess, time, math
rng = random.Random(5)
lite, burst, runs, out = os.environ["LITE"], os.environ["BURST"], int(os.environ["RUNS"]), os.environ["OUT"]
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
    "strace seccomp openat": ["strace", "-f", "--seccomp-bpf", "-e", "trace=openat", "-o", "/dev/null"],
    "strace-lite openat": [lite, "-f", "-e", "trace=openat", "-o", "/dev/null"],
    "strace -yy": ["strace", "-f", "-yy", "-o", "/dev/null"],
    "strace-lite -yy": [lite, "-f", "-yy", "-o", "/dev/null"],
}

def once(cmd):
    t = time.perf_counter()
    r = subprocess.run(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}")
    return time.perf_counter() - t

def measure(workloads, modes):
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
        res[wname] = {m: statistics.median(v) for m, v in samples.items()}
    return res

res = measure(workloads, modes)
# -k unwinds every call's stack: strace's takes seconds even on small workloads, so
# this case has workloads of its own, smaller ones.
k_res = measure([
    ("dd bs=1 count=2000", ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=2000"], 1),
    ("sh: 8 x /bin/true", ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do /bin/true; done"], 1),
], {
    "plain": [],
    "strace -k": ["strace", "-f", "-k", "-o", "/dev/null"],
    "strace-lite -k": [lite, "-f", "-k", "-o", "/dev/null"],
})

def gmean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))

lines = []
hdr = f"{'workload':30} {'plain ms':>9} {'strace':>9} {'lite':>9} {'strace x':>9} {'lite x':>8} {'lite/strace':>11}"
CASES = [("all syscalls (-f)", "strace", "strace-lite"),
         ("-e trace=openat (seccomp-bpf)", "strace seccomp openat", "strace-lite openat"),
         ("-yy (descriptor paths, socket endpoints, device numbers)", "strace -yy", "strace-lite -yy")]
for title, a, b, table in [c + (res,) for c in CASES] + [("-k (a stack trace per call)", "strace -k", "strace-lite -k", k_res)]:
    lines.append(f"\n{title}")
    lines.append(hdr)
    oa, ob, rr = [], [], []
    for w, r in table.items():
        p = r["plain"]
        xa, xb = r[a] / p, r[b] / p
        oa.append(xa); ob.append(xb); rr.append(r[b] / r[a])
        lines.append(f"{w:30} {p*1e3:9.1f} {r[a]*1e3:9.1f} {r[b]*1e3:9.1f} {xa:9.2f} {xb:8.2f} {r[b]/r[a]:11.2f}")
    lines.append(f"{'geometric mean':30} {'':9} {'':9} {'':9} {gmean(oa):9.2f} {gmean(ob):8.2f} {gmean(rr):11.2f}")
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
