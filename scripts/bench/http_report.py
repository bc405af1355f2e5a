#!/usr/bin/env python3
"""Table and chart for scripts/bench/http.sh: http_report.py RESULTS.tsv OUT.png

Ratios are peer / httpd for req/s and for server CPU per request, per client and file.
"""
import sys
from bench_rows import median_rows
rows, rounds = median_rows(sys.argv[1], "client")
print(f"(median of {rounds} rounds per server and case)")
base = {(r["client"], r["file"]): r for r in rows if r["server"] == "httpd"}
ORDER = ["600b.html", "64k.bin", "1m.bin", "20k.html+gz"]
hdr = f"| {'client':6} | {'file':11} | {'server':9} | {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | {'CPU %':>6} | {'CPU µs/req':>10} | {'req/s ÷ httpd':>13} | {'CPU/req ÷ httpd':>15} | {'errors':>6} |"
print(hdr)
print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
for r in sorted(rows, key=lambda r: (r["client"], ORDER.index(r["file"]) if r["file"] in ORDER else len(ORDER))):
    b = base.get((r["client"], r["file"]))
    rps = r["rps"]
    ratio = rps / b["rps"] if b and b["rps"] else float("nan")
    cratio = r["cpu_us"] / b["cpu_us"] if b and b["cpu_us"] else float("nan")
    cpu_pct = r["cpu_pct"]
    print(f"| {r['client']:6} | {r['file']:11} | {r['server']:9} | {rps:9.0f} | {float(r['p50_ms']):7.2f} | {float(r['p99_ms']):7.2f} | {cpu_pct:6.0f} | {r['cpu_us']:10.1f} | {ratio:13.2f} | {cratio:15.2f} | {r['errors']:>6} |")
# The precompressed case against the faster peer: req/s (higher is better) and server
# CPU per request (lower is better), as the targets are stated.
for client in dict.fromkeys(r["client"] for r in rows):
    case = [r for r in rows if (r["client"], r["file"]) == (client, "20k.html+gz")]
    peers = [r for r in case if r["server"] in ("nginx", "lighttpd")]
    if not peers:
        continue
    best = max(peers, key=lambda r: r["rps"])
    for r in case:
        if r["server"] in ("httpd", "capstone"):
            print(f"20k.html+gz {client}: {r['server']} {r['rps']:.0f} req/s = {r['rps'] / best['rps']:.2f}x {best['server']}; "
                  f"CPU/req {r['cpu_us']:.1f} µs = {r['cpu_us'] / best['cpu_us']:.2f}x {best['server']}'s {best['cpu_us']:.1f} µs")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib missing: no chart"); sys.exit(0)
servers = list(dict.fromkeys(r["server"] for r in rows))
cases = list(dict.fromkeys((r["client"], r["file"]) for r in rows))
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
width = 0.8 / len(servers)
for k, (metric, title) in enumerate([("rps", "requests per second"), ("cpu_us", "server CPU µs per request (lower is better)")]):
    ax = axes[k]
    for j, s in enumerate(servers):
        vals = []
        for c in cases:
            m = [r for r in rows if r["server"] == s and (r["client"], r["file"]) == c]
            vals.append(float(m[0][metric]) if m else 0)
        ax.bar([i + j * width for i in range(len(cases))], vals, width, label=s)
    ax.set_xticks([i + width * (len(servers) - 1) / 2 for i in range(len(cases))])
    ax.set_xticklabels([f"{c}\n{f}" for c, f in cases], fontsize=8)
    ax.set_title(title)
    ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"chart: {sys.argv[2]}")
