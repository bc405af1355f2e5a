"""Rows of a wrk benchmark's results TSV (server, a case column, file, reqs, rps, p50_ms,
p99_ms, cpu_s, errors, round), reduced to one row per server and case: the median of
its rounds for each figure, errors summed. Shared by http_report.py and
capstone_report.py."""
import csv, statistics


def median_rows(path, case):
    runs = list(csv.DictReader(open(path), delimiter="\t"))
    for r in runs:
        reqs = float(r["reqs"] or 0)
        r["rps"] = float(r["rps"] or 0)
        r["cpu_us"] = 1e6 * float(r["cpu_s"]) / reqs if reqs else float("nan")
        r["cpu_pct"] = 100 * float(r["cpu_s"]) * r["rps"] / reqs if reqs else float("nan")
    groups = {}
    for r in runs:
        groups.setdefault((r["server"], r[case], r["file"]), []).append(r)
    rows = []
    for (server, c, f), rs in groups.items():
        med = lambda k: statistics.median(float(x[k]) for x in rs)
        rows.append({"server": server, case: c, "file": f, "rps": med("rps"),
                     "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"), "cpu_us": med("cpu_us"),
                     "cpu_pct": med("cpu_pct"), "errors": sum(int(x["errors"]) for x in rs)})
    rounds = max((len(rs) for rs in groups.values()), default=0)
    return rows, rounds
