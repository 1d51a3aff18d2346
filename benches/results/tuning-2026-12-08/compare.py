"""Ratios of the peers driver's minima between builds, from the JSON files beside this script.

    python3 compare.py native v3 default

Each build's figure for a case is the minimum over its runs (peers-BUILD-RUN.json) of the
case's minimum ns per element; ratios are against the first build named.
"""
import glob
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
builds = sys.argv[1:]
best = {}
for b in builds:
    best[b] = {}
    for path in sorted(glob.glob(os.path.join(here, f"peers-{b}-*.json"))):
        for r in json.load(open(path))["results"]:
            k = (r["task"], r["rows"], r["cols"])
            best[b][k] = min(best[b].get(k, float("inf")), r["min_ns"])
print(f"{'case':34} " + " ".join(f"{b:>11}" for b in builds))
for k in best[builds[0]]:
    if k[0] == "copy":
        continue
    v = [best[b][k] for b in builds]
    ratios = " ".join(f"{x / v[0]:6.2f}" for x in v[1:])
    print(f"{str(k):34} " + " ".join(f"{x:11.3f}" for x in v) + "  " + ratios)
