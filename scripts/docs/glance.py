"""Draws docs/img/glance.png from the README's "Benchmarks at a glance" table.

Each row becomes one bar: how far the result stands past its target, as a factor (1 =
exactly on target, right of 1 = better). A "higher is better" row (≥) scores
ratio ÷ target, a "lower is better" one (≤, <) target ÷ ratio; a row with two figures
(c64 / c256) counts its worse one; a row without a ratio compares its own figure with the
target's. Run it after changing the table:  /usr/bin/python3 scripts/docs/glance.py
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM = re.compile(r"\d+(?:\.\d+)?")


def numbers(text):
    return [float(n.replace(",", "")) for n in NUM.findall(text.replace(",", ""))]


def rows(readme):
    text = open(readme, encoding="utf-8").read()
    section = text.split("## Benchmarks at a glance", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| what"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        out.append(cells)
    return out


def score(cells, previous_target):
    what, _script, sysnet, _peer, ratio, target, met = cells
    if target.startswith("same"):
        target = previous_target
    lower_better = target.lstrip().startswith(("≤", "<"))
    bound = re.sub(r"±\s*\d+%", "", target.split(",")[0])
    t = 1.0 if "peer" in bound else (numbers(bound) or [1.0])[0]
    values = numbers(ratio.split("(")[0]) if ratio != "–" else numbers(sysnet)[:1]
    if not values:
        return None, target
    s = (t / max(values)) if lower_better else (min(values) / t)
    return s, target


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels, scores, colours = [], [], []
    previous = "≥ 1.0"
    for cells in rows(os.path.join(ROOT, "README.md")):
        s, previous = score(cells, previous)
        if s is None:
            continue
        label = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", cells[0]).replace("`", "")
        labels.append(label)
        scores.append(s)
        colours.append("#2e7d32" if cells[6].startswith("yes") else "#e65100")
    fig, ax = plt.subplots(figsize=(9, 0.34 * len(labels) + 1.2))
    y = range(len(labels))[::-1]
    ax.barh(list(y), scores, color=colours)
    ax.set_yticks(list(y), labels, fontsize=8.5)
    ax.set_xscale("log")
    ticks = [t for t in (0.25, 0.5, 1, 2, 5, 10, 20) if min(scores) * 0.7 <= t <= max(scores) * 2.2]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axvspan(0.85, 1.0, color="#dddddd", zorder=0)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.text(1.0, len(labels) - 0.4, " target", fontsize=8, va="bottom")
    for yy, s in zip(y, scores):
        ax.text(s, yy, f" {s:.2f}", va="center", fontsize=7.5)
    ax.set_xlabel("factor past the target (right of 1 = better than the target), log scale")
    ax.set_title("sysnet against its targets (green: met, orange: not met; grey: the ±15% "
                 "a repeated run differs by)", fontsize=9.5)
    ax.set_xlim(min(scores) * 0.7, max(scores) * 2.2)
    fig.tight_layout()
    out = os.path.join(ROOT, "docs", "img", "glance.png")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"chart: {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
