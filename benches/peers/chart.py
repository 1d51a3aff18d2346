#!/usr/bin/env python3
"""Draws benches/peers/chart.png: ns per element against row length (64..16384 columns, 1 MiB of
scores per point) for dropmax eval (its default build: no RUSTFLAGS), dropmax train (no mask and causal), ONNX Runtime's softmax
and the memory floor (the faster copy of the same bytes), from the JSON of examples/peers.rs and
peers.py --sweep (best-of-N times).

Usage: chart.py DROPMAX.json PEERS.json [META.json] [-o chart.png]
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

SWEEP_ELEMENTS = 1 << 18


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dropmax")
    ap.add_argument("peers")
    ap.add_argument("meta", nargs="?")
    ap.add_argument("-o", "--out", default="chart.png")
    args = ap.parse_args()

    pts = {}
    for path in (args.dropmax, args.peers):
        with open(path) as f:
            for r in json.load(f)["results"]:
                if r["rows"] * r["cols"] == SWEEP_ELEMENTS:
                    pts.setdefault((r["impl"], r["task"]), {})[r["cols"]] = r["min_ns"]
    meta = {}
    if args.meta:
        with open(args.meta) as f:
            meta = json.load(f)

    copy = {c: min(v for v in (pts.get(("dropmax", "copy"), {}).get(c),
                               pts.get(("numpy", "copy"), {}).get(c)) if v is not None)
            for c in set(pts.get(("dropmax", "copy"), {})) | set(pts.get(("numpy", "copy"), {}))}
    series = [
        ("dropmax train p=0.1", pts.get(("dropmax", "train_full")), "C3", "-", "o"),
        ("dropmax train p=0.1, causal", pts.get(("dropmax", "train_causal")), "C3", "--", "."),
        ("dropmax eval", pts.get(("dropmax", "eval_full")), "C0", "-", "o"),
        ("ONNX Runtime softmax alone", pts.get(("ort", "softmax")), "C2", "-", "s"),
        ("memory floor (copy)", copy, "0.5", ":", None),
    ]

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for label, data, color, style, marker in series:
        if not data:
            continue
        cols = sorted(data)
        ax.plot(cols, [data[c] for c in cols], style, color=color, marker=marker, ms=4,
                label=label)
    ax.set_xscale("log", base=2)
    ticks = sorted({c for _, d, *_ in series if d for c in d})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("row length (columns); rows x columns = 2^18 (1 MiB of f32 scores)")
    ax.set_ylabel("ns per element (best of N, lower is better)")
    title = "Scale-softmax-dropout, one thread"
    cpu = (meta.get("cpu") or "").split(" (")[0]
    sub = ", ".join(x for x in (cpu, "dropmax's default build (no RUSTFLAGS)",
                                meta.get("date")) if x)
    ax.set_title(title + (f"\n{sub}" if sub else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
