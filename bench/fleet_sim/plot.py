#!/usr/bin/env python3
"""Draws fleet_sim's CSV (bench/fleet_sim/fleet_sim --csv) as one PNG.

    plot.py RESULTS.csv [OUT.png]     (OUT: docs/fleet_sim.png)

Three panels: each policy's hit ratio and fraction of requests that waited
for a load over the run; its load imbalance (max / mean requests per server)
over the run and in its worst simulated hour; and the hit ratio of every
simulated hour, where the diurnal shift shows.
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[2] if len(sys.argv) == 3 else "docs/fleet_sim.png"
    total = {}
    hours = defaultdict(list)
    with open(sys.argv[1], newline="") as f:
        for row in csv.DictReader(f):
            if row["hour"] == "all":
                total[row["policy"]] = row
            else:
                hours[row["policy"]].append((int(row["hour"]), row))
    policies = list(total)
    if not policies:
        print(f"{sys.argv[1]}: no rows", file=sys.stderr)
        return 1

    fig, (ax_hit, ax_imb, ax_hour) = plt.subplots(
        1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1, 1, 1.5]})
    x = range(len(policies))
    width = 0.38

    hit = [float(total[p]["hit_ratio"]) for p in policies]
    waited = [float(total[p]["waited_fraction"]) for p in policies]
    bars = ax_hit.bar([i - width / 2 for i in x], hit, width, label="hit ratio")
    ax_hit.bar([i + width / 2 for i in x], waited, width, label="waited for a load")
    ax_hit.bar_label(bars, fmt="%.3f", fontsize=8)
    ax_hit.set_xticks(list(x), policies, rotation=15)
    ax_hit.set_ylim(0, 1.18)
    ax_hit.set_title("requests, whole run")
    ax_hit.legend(fontsize=8, loc="upper center", ncol=2)

    run = [float(total[p]["imbalance"]) for p in policies]
    worst = [max(float(r["imbalance"]) for _, r in hours[p]) for p in policies]
    for offset, values, label in ((-width / 2, run, "whole run"), (width / 2, worst, "worst hour")):
        bars = ax_imb.bar([i + offset for i in x], values, width, label=label)
        ax_imb.bar_label(bars, fmt="%.2f", fontsize=8)
    ax_imb.axhline(1.0, color="grey", linewidth=0.8)
    ax_imb.set_xticks(list(x), policies, rotation=15)
    ax_imb.set_title("load imbalance: max / mean requests per server")
    ax_imb.set_ylim(0, max(worst + run) * 1.15)
    ax_imb.legend(fontsize=8, loc="upper right")

    for p in policies:
        points = sorted(hours[p])
        ax_hour.plot([h for h, _ in points], [float(r["hit_ratio"]) for _, r in points],
                     marker=".", label=p)
    ax_hour.set_xlabel("simulated hour (the second hot set peaks at hour 12)")
    ax_hour.set_ylabel("hit ratio")
    ax_hour.set_ylim(0, 1)
    ax_hour.set_title("hit ratio per simulated hour")
    ax_hour.grid(alpha=0.3)
    ax_hour.legend(fontsize=8, loc="lower right")

    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
