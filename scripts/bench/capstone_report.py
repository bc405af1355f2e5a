#!/usr/bin/env python3
"""Table and chart for scripts/bench/capstone.sh: capstone_report.py RESULTS.tsv OUT.png"""
import sys
from bench_rows import median_rows
rows, rounds = median_rows(sys.argv[1], "conns")
print(f"(median of {rounds} rounds per server and case)")
def best_peer(conns, f):
    peers = [r for r in rows if r["server"] in ("nginx", "lighttpd") and (r["conns"], r["file"]) == (conns, f)]
    return max(peers, key=lambda r: r["rps"]) if peers else None
hdr = f"| {'conns':5} | {'file':11} | {'server':18} | {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | {'CPU %':>6} | {'CPU µs/req':>10} | {'req/s ÷ best peer':>17} | {'errors':>6} |"
print(hdr)
print("|" + "|".join("-" * len(c) for c in hdr.split("|")[1:-1]) + "|")
order = ["600b.html", "64k.bin", "1m.bin", "20k.html+gz"]
for r in sorted(rows, key=lambda r: (order.index(r["file"]) if r["file"] in order else len(order), int(r["conns"]))):
    b = best_peer(r["conns"], r["file"])
    ratio = r["rps"] / b["rps"] if b and b["rps"] else float("nan")
    print(f"| {r['conns']:5} | {r['file']:11} | {r['server']:18} | {r['rps']:9.0f} | {float(r['p50_ms']):7.2f} | {float(r['p99_ms']):7.2f} | {r['cpu_pct']:6.0f} | {r['cpu_us']:10.1f} | {ratio:17.2f} | {r['errors']:>6} |")
# The precompressed case: req/s and server CPU per request against the faster peer.
for r in sorted(rows, key=lambda r: (int(r["conns"]), r["server"])):
    b = best_peer(r["conns"], r["file"])
    if r["file"] == "20k.html+gz" and b and r["server"].startswith("capstone"):
        print(f"20k.html+gz c{r['conns']}: {r['server']} {r['rps']:.0f} req/s = {r['rps'] / b['rps']:.2f}x {b['server']}; "
              f"CPU/req {r['cpu_us']:.1f} µs = {r['cpu_us'] / b['cpu_us']:.2f}x {b['server']}'s {b['cpu_us']:.1f} µs")
# What the metrics cost: the capstone with metrics (request timing) on and off.
for r in sorted(rows, key=lambda r: int(r["conns"])):
    off = [o for o in rows if o["server"] == "capstone-nometrics" and (o["conns"], o["file"]) == (r["conns"], r["file"])]
    if r["server"] == "capstone-fill" and r["file"] == "600b.html" and off and off[0]["rps"] and off[0]["cpu_us"]:
        o = off[0]
        print(f"metrics on/off 600b.html c{r['conns']}: {r['rps']:.0f} / {o['rps']:.0f} req/s ({(r['rps'] / o['rps'] - 1) * 100:+.1f}%); "
              f"CPU/req {r['cpu_us']:.2f} / {o['cpu_us']:.2f} µs ({(r['cpu_us'] / o['cpu_us'] - 1) * 100:+.1f}%)")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib missing: no chart"); sys.exit(0)
servers = list(dict.fromkeys(r["server"] for r in rows))
cases = list(dict.fromkeys((r["conns"], r["file"]) for r in rows))
fig, axes = plt.subplots(1, 3, figsize=(20, 4.8))
width = 0.8 / len(servers)
for k, (metric, title) in enumerate([("rps", "requests per second (wrk -t1)"), ("cpu_us", "server CPU µs per request (lower is better)"), ("p99_ms", "p99 latency, ms, log scale (lower is better)")]):
    ax = axes[k]
    for j, s in enumerate(servers):
        vals = []
        for c in cases:
            m = [r for r in rows if r["server"] == s and (r["conns"], r["file"]) == c]
            vals.append(float(m[0][metric]) if m else 0)
        ax.bar([i + j * width for i in range(len(cases))], vals, width, label=s)
    ax.set_xticks([i + width * (len(servers) - 1) / 2 for i in range(len(cases))])
    ax.set_xticklabels([f"c{c}\n{f}" for c, f in cases], fontsize=8)
    ax.set_title(title)
    if metric == "p99_ms":
        ax.set_yscale("log")
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"chart: {sys.argv[2]}")
