#!/usr/bin/env python3
"""Prints the markdown tables of the peer comparison (issue 3's targets 1-5, issue 16's default
build against the native one) from the JSON of examples/peers.rs (dropmax, both builds) and
peers.py (the peers), plus the run's machine info.

Usage: table.py DROPMAX.json [PEERS.json] [--meta META.json]
       table.py --merge DIR default native   (prints DROPMAX.json from DIR/dropmax-BUILD-N.json)

In DROPMAX.json the default build's results have impl "dropmax" (the build a user gets: it is
the one compared with the peers) and the native build's "dropmax-native". Merging keeps, per
case, the minimum over the runs of the minimum time, and the median of the runs' medians.
All ratios use the minimum (best-of-N) times; medians are shown in the measurement table.
"""

import glob
import json
import os
import statistics
import sys

# Issue 16: the default build within 5 % of the native one on every case.
DEFAULT_OVER_NATIVE = 1.05

TABLE_SHAPES = [(256, 1024), (8192, 1024)]
CLIFF_COLS = [64, 128, 4096, 16384]  # target 5, against 1024


def load(path):
    with open(path) as f:
        return json.load(f)


class Results:
    def __init__(self, *docs):
        self.by_key = {}
        for doc in docs:
            for r in doc["results"]:
                self.by_key[(r["impl"], r["task"], r["rows"], r["cols"])] = r

    def get(self, impl, task, rows, cols, stat="min_ns"):
        r = self.by_key.get((impl, task, rows, cols))
        return None if r is None else r.get(stat)

    def copy(self, rows, cols):
        """The memory floor: the faster of the two copies of the same bytes."""
        vals = [v for v in (self.get("dropmax", "copy", rows, cols),
                            self.get("numpy", "copy", rows, cols)) if v is not None]
        return min(vals) if vals else None

    def sweep_cols(self, impl, task):
        return sorted(c for (i, t, r, c) in self.by_key
                      if i == impl and t == task and r * c == 1 << 18)

    def sweep(self, impl, task, cols):
        return self.get(impl, task, (1 << 18) // cols, cols)


def huge_note(res):
    """The processes' transparent huge pages while the 32 MiB buffers were alive."""
    r, c = TABLE_SHAPES[-1]
    parts = []
    for impl, task in (("dropmax", "train_full"), ("ort", "softmax")):
        kib = res.get(impl, task, r, c, "huge_pages_kib")
        if kib is not None:
            parts.append(f"{'dropmax' if impl == 'dropmax' else 'peers'} {kib // 1024} MiB")
    return ", ".join(parts) or None


def calls_range(*docs):
    calls = [r["calls"] for d in docs for r in d["results"] if "calls" in r]
    return f"{min(calls)} to {max(calls)}" if calls else "?"


def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def verdict(v, limit, at_most=True):
    if v is None:
        return "-"
    ok = v <= limit if at_most else v >= limit
    return "yes" if ok else "**no**"


def merge(folder, builds):
    """One DROPMAX.json from the runs of each build in `folder`."""
    out = {"impl": "dropmax", "builds": {}, "results": []}
    for b in builds:
        paths = sorted(glob.glob(os.path.join(folder, f"dropmax-{b}-*.json")))
        if not paths:
            sys.exit(f"no runs of the {b} build in {folder}")
        docs = [load(p) for p in paths]
        out["builds"][b] = {"runs": len(docs), "version": docs[0].get("version"),
                            "target_features": docs[0].get("target_features", [])}
        cases = {}
        for d in docs:
            for r in d["results"]:
                cases.setdefault((r["task"], r["rows"], r["cols"]), []).append(r)
        for (task, rows, cols), rs in cases.items():
            out["results"].append({
                "impl": "dropmax" if b == "default" else f"dropmax-{b}",
                "task": task, "rows": rows, "cols": cols,
                "calls": min(r["calls"] for r in rs),
                "min_ns": min(r["min_ns"] for r in rs),
                "median_ns": statistics.median(r["median_ns"] for r in rs),
                "huge_pages_kib": max(r.get("huge_pages_kib", 0) for r in rs),
                "runs": len(rs)})
    json.dump(out, sys.stdout, indent=1)
    print()


def default_vs_native(res, w):
    """Issue 16's table: every dropmax case, default build against native."""
    keys = sorted(((t, r, c) for (i, t, r, c) in res.by_key
                   if i == "dropmax" and t != "copy" and ("dropmax-native", t, r, c) in res.by_key),
                  key=lambda k: (k[0], k[2], k[1]))
    if not keys:
        return
    w("\n### Default build against `-C target-cpu=native` (ns per element, best of the runs)\n")
    w(f"Target (issue 16): default / native <= {DEFAULT_OVER_NATIVE} on every case.\n")
    w("| task | rows x cols | default | native | default / native | met |")
    w("|---|---|---:|---:|---:|---|")
    worst, misses = 0.0, 0
    for t, r, c in keys:
        d, n = res.get("dropmax", t, r, c), res.get("dropmax-native", t, r, c)
        q = ratio(d, n)
        if q is not None:
            worst = max(worst, q)
            misses += q > DEFAULT_OVER_NATIVE
        w(f"| {t} | {r} x {c} | {fmt(d)} | {fmt(n)} | {fmt(q, 3)} "
          f"| {verdict(q, DEFAULT_OVER_NATIVE)} |")
    ratios = [ratio(res.get("dropmax", *k), res.get("dropmax-native", *k)) for k in keys]
    ratios = [q for q in ratios if q is not None]
    w(f"\n{len(keys)} cases: median ratio {statistics.median(ratios):.3f}, worst {worst:.3f}, "
      f"{misses} above {DEFAULT_OVER_NATIVE}.")


def main():
    args = sys.argv[1:]
    if args[:1] == ["--merge"] and len(args) >= 3:
        merge(args[1], args[2:])
        return
    meta = {}
    if "--meta" in args:
        i = args.index("--meta")
        meta = load(args[i + 1])
        del args[i:i + 2]
    if len(args) not in (1, 2):
        sys.exit(__doc__)
    dm = load(args[0])
    peers = load(args[1]) if len(args) == 2 else {"results": []}
    res = Results(dm, peers)
    shapes = " | ".join(f"{r} x {c}" for r, c in TABLE_SHAPES)
    out = []
    w = out.append

    w("### Measured (ns per element, best of N; median in parentheses)\n")
    w(f"| | {shapes} |")
    w("|---|" + "---|" * len(TABLE_SHAPES))
    rows = [
        ("dropmax eval, no mask", "dropmax", "eval_full"),
        ("dropmax train p=0.1, no mask", "dropmax", "train_full"),
        ("dropmax eval, causal", "dropmax", "eval_causal"),
        ("dropmax train p=0.1, causal", "dropmax", "train_causal"),
        ("the same four, `-C target-cpu=native` build:", None, None),
        ("dropmax eval, no mask (native)", "dropmax-native", "eval_full"),
        ("dropmax train p=0.1, no mask (native)", "dropmax-native", "train_full"),
        ("dropmax eval, causal (native)", "dropmax-native", "eval_causal"),
        ("dropmax train p=0.1, causal (native)", "dropmax-native", "train_causal"),
        ("ONNX Runtime softmax alone (no mask, no dropout)", "ort", "softmax"),
        ("ONNX Runtime whole task (Mul, Where, Softmax, Dropout)", "ort", "train_causal"),
        ("JAX whole task, jitted (threefry)", "jax", "train_causal"),
        ("numpy whole task", "numpy", "train_causal"),
        ("copy, Rust `copy_from_slice`", "dropmax", "copy"),
        ("copy, numpy `np.copyto`", "numpy", "copy"),
    ]
    for label, impl, task in rows:
        if impl is None:
            w(f"| *{label}* |" + " |" * len(TABLE_SHAPES))
            continue
        cells = []
        for r, c in TABLE_SHAPES:
            lo, med = res.get(impl, task, r, c), res.get(impl, task, r, c, "median_ns")
            cells.append(f"{fmt(lo)} ({fmt(med)})")
        w(f"| {label} | " + " | ".join(cells) + " |")

    def both(f):
        return [f(r, c) for r, c in TABLE_SHAPES]

    def dm_(task):
        return lambda r, c: res.get("dropmax", task, r, c)

    def over(num, den):
        return lambda r, c: ratio(num(r, c), den(r, c))

    ort_sm = lambda r, c: res.get("ort", "softmax", r, c)  # noqa: E731
    ort_task = lambda r, c: res.get("ort", "train_causal", r, c)  # noqa: E731
    jax_task = lambda r, c: res.get("jax", "train_causal", r, c)  # noqa: E731
    floor = res.copy

    w("\n### Targets of issue 3 (ratios of best-of-N times)\n")
    w(f"| # | ratio | {shapes} | target | met |")
    w("|---|---|" + "---|" * len(TABLE_SHAPES) + "---|---|")
    targets = [
        ("1", "dropmax eval, no mask / ORT softmax", over(dm_("eval_full"), ort_sm), "<= 1.0",
         1.0, True, TABLE_SHAPES),
        ("2", "dropmax train, no mask / ORT softmax", over(dm_("train_full"), ort_sm), "<= 1.2",
         1.2, True, TABLE_SHAPES),
        ("2", "ORT whole task / dropmax train, no mask", over(ort_task, dm_("train_full")),
         ">= 10", 10.0, False, TABLE_SHAPES),
        ("2", "JAX whole task / dropmax train, no mask", over(jax_task, dm_("train_full")),
         ">= 10", 10.0, False, TABLE_SHAPES),
        ("3", "dropmax train, causal / ORT softmax", over(dm_("train_causal"), ort_sm), "<= 0.8",
         0.8, True, TABLE_SHAPES),
        ("4", "dropmax train, no mask / copy", over(dm_("train_full"), floor), "<= 1.25 (32 MiB)",
         1.25, True, TABLE_SHAPES[1:]),
        ("4", "dropmax train, causal / copy", over(dm_("train_causal"), floor), "<= 1.25 (32 MiB)",
         1.25, True, TABLE_SHAPES[1:]),
        ("", "dropmax eval, no mask / copy", over(dm_("eval_full"), floor), "(for reference)",
         None, True, []),
    ]
    for num, label, f, target, limit, at_most, judged in targets:
        vals = both(f)
        cells = " | ".join(fmt(v, 2) for v in vals)
        verdicts = [verdict(v, limit, at_most) for v, s in zip(vals, TABLE_SHAPES) if s in judged]
        met = ("-" if all(v == "-" for v in verdicts)
               else "yes" if all(v == "yes" for v in verdicts) else "**no**")
        w(f"| {num} | {label} | {cells} | {target} | {met} |")

    # Target 5 and the sweep.
    cols_all = res.sweep_cols("dropmax", "eval_full")
    if cols_all:
        w("\n### Row lengths (1 MiB of scores each: rows x cols = 2^18; ns per element, "
          "best of N)\n")
        w("| cols | dropmax eval | dropmax train | dropmax train causal | ORT softmax | copy "
          "| eval / ORT | train / ORT |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in cols_all:
            e = res.sweep("dropmax", "eval_full", c)
            t = res.sweep("dropmax", "train_full", c)
            tc = res.sweep("dropmax", "train_causal", c)
            o = res.sweep("ort", "softmax", c)
            cp = res.copy((1 << 18) // c, c)
            w(f"| {c} | {fmt(e)} | {fmt(t)} | {fmt(tc)} | {fmt(o)} | {fmt(cp)} "
              f"| {fmt(ratio(e, o), 2)} | {fmt(ratio(t, o), 2)} |")
        w("\nTarget 5 (no cliffs: within 2x of the 1024-column figure):\n")
        w("| | " + " | ".join(f"{c} / 1024" for c in CLIFF_COLS) + " | worst | met |")
        w("|---|" + "---:|" * len(CLIFF_COLS) + "---:|---|")
        for label, task in [("dropmax eval, no mask", "eval_full"),
                            ("dropmax train, no mask", "train_full"),
                            ("dropmax train, causal", "train_causal")]:
            base = res.sweep("dropmax", task, 1024)
            vals = [ratio(res.sweep("dropmax", task, c), base) for c in CLIFF_COLS]
            worst = max((v for v in vals if v is not None), default=None)
            w(f"| {label} | " + " | ".join(fmt(v, 2) for v in vals)
              + f" | {fmt(worst, 2)} | {verdict(worst, 2.0)} |")

    default_vs_native(res, w)

    # Machine and flags.
    v = peers.get("versions", {})
    w("\n### Run\n")
    info = [
        ("command", meta.get("command")),
        ("date", meta.get("date")),
        ("commit", meta.get("commit")),
        ("CPU", meta.get("cpu")),
        ("load (uptime) before / after", f"{meta.get('load_before')} / {meta.get('load_after')}"
         if meta.get("load_before") else None),
        ("pinned to CPU", meta.get("pin")),
        ("rustc", meta.get("rustc")),
        ("RUSTFLAGS", f"`{meta.get('rustflags')}`" if "rustflags" in meta else None),
        ("dropmax builds", meta.get("builds")),
        ("dropmax build target features", "; ".join(
            f"{b}: {', '.join(v.get('target_features', []))}"
            for b, v in dm.get("builds", {}).items()) or ", ".join(dm.get("target_features", []))),
        ("timing", f"3 warm-up calls, then at least {meta.get('reps', '?')} timed calls and 0.2 s "
         f"per function, each call timed alone ({calls_range(dm, peers)} calls)"),
        ("pages", meta.get("pages")),
        ("AnonHugePages at 8192 x 1024", huge_note(res)),
        ("Python", v.get("python")),
        ("peers", ", ".join(f"{k} {v[k]}" for k in ("onnxruntime", "onnx", "jax", "jaxlib",
                                                        "numpy") if k in v)),
        ("threads", "one: ORT intra/inter op 1; XLA_FLAGS "
         f"`{v.get('XLA_FLAGS')}`; OMP/OPENBLAS/MKL_NUM_THREADS=1"),
        ("OPENBLAS_CORETYPE", v.get("OPENBLAS_CORETYPE") or "unset"),
    ]
    for k, val in info:
        if val:
            w(f"- {k}: {val}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
