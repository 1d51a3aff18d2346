#!/usr/bin/env python3
"""The peers' side of dropmax's comparison: the same task on ONNX Runtime, JAX and numpy.

The task (issue 3): scores of shape rows x cols (float32), scale 1/8, causal mask, softmax over the
last axis, dropout p = 0.1 with the 1/(1-p) rescale. Measured, one thread each:

  ort     softmax       ONNX Runtime, a one-node Softmax graph (no scale, no mask, no dropout)
  ort     train_causal  ONNX Runtime, the whole task as a graph: Mul, Where, Softmax, Dropout
                        (ratio 0.1, training_mode = true)
  jax     train_causal  JAX, the whole task jitted (jax.random.bernoulli, threefry2x32 key)
  numpy   train_causal  numpy, the whole task (Generator.random for the dropout draws)
  numpy   copy          np.copyto of the same bytes (the memory floor)

The causal mask has an average visible fraction of 1/2, laid out as in benches/fused.rs and
examples/peers.rs: with R = min(rows, cols), the scores are viewed as (rows/R, R, cols) and row i
of each block sees columns j <= q0 + i, where q0 = 0 if rows >= cols, else cols/2 - rows/2. The
peers get the mask the way their users would: ONNX Runtime and numpy as an (R, cols) boolean
tensor broadcast over the blocks, JAX computed inside the jitted function from iota. None of them
skips the masked columns (dropmax does): their cost is that of the full task.

Shapes: 256 x 1024 (1 MiB of scores, in cache) and 8192 x 1024 (32 MiB); with --sweep, also
ONNX Runtime's softmax and the copy on 1 MiB matrices with rows of 64, 128, ..., 16384 columns.
Timing: each function runs --warmup times untimed, then at least --reps times (default 20) and for
at least 0.2 s, each call timed alone with perf_counter_ns; the JSON gives the number of timed
calls, their minimum and their median in ns per element, and
cpu_per_wall (process CPU time over wall time of the timed calls: about 1.0 when one thread did
the work, about 2 when two cores did).

Threads: set before any import, OMP/OPENBLAS/MKL_NUM_THREADS = 1 and
XLA_FLAGS = --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1; ONNX Runtime
sessions with intra_op_num_threads = inter_op_num_threads = 1. OPENBLAS_CORETYPE is left as found
and reported: the task uses no BLAS call (threadpoolctl's view of the loaded libraries is in the
output). run.sh also pins the process to one CPU with taskset.

Usage: peers.py [--sweep] [--reps N] [--out FILE]   (JSON on stdout without --out)
"""

import os

# Before numpy, onnxruntime or jax load their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

SCALE = 0.125
P = 0.1
SEED = 0x5EED
MIN_TIMED_NS = 200_000_000  # short functions: best of many calls over at least 0.2 s
MAX_CALLS = 10_000
IN_CACHE_ELEMENTS = 1 << 18  # 1 MiB of float32
TABLE_SHAPES = [(256, 1024), (8192, 1024)]
SWEEP_COLS = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]


def logits(rows, cols):
    """Deterministic uniform logits in [-4, 4)."""
    rng = np.random.default_rng(rows << 32 | cols)
    return rng.uniform(-4.0, 4.0, size=(rows, cols)).astype(np.float32)


def causal_layout(rows, cols):
    """(blocks, R, q0): the scores as (blocks, R, cols), row i of a block sees j <= q0 + i."""
    if rows >= cols:
        assert rows % cols == 0, "rows must be a multiple of cols"
        return rows // cols, cols, 0
    return 1, rows, cols // 2 - rows // 2


def causal_mask(rows, cols):
    """The (R, cols) boolean mask of causal_layout, True = visible."""
    _, r, q0 = causal_layout(rows, cols)
    return np.arange(cols)[None, :] <= (q0 + np.arange(r))[:, None]


def huge_pages_kib():
    """The process's transparent huge pages in KiB (Linux): numpy asks for them for arrays of
    4 MiB and more unless NUMPY_MADVISE_HUGEPAGE=0 (run.sh sets it, as dropmax's Vecs get 4 KiB
    pages)."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def timed(fn, elements, reps, warmup):
    """fn() warmup times, then timed calls until there have been at least reps of them and
    MIN_TIMED_NS has passed (at most MAX_CALLS): the number of calls, their min and median in ns
    per element, and cpu/wall over the timed calls."""
    for _ in range(warmup):
        fn()
    ns = []
    cpu0, wall0 = time.process_time_ns(), time.perf_counter_ns()
    while len(ns) < MAX_CALLS and (
        len(ns) < reps or time.perf_counter_ns() - wall0 < MIN_TIMED_NS
    ):
        t0 = time.perf_counter_ns()
        fn()
        ns.append((time.perf_counter_ns() - t0) / elements)
    cpu, wall = time.process_time_ns() - cpu0, time.perf_counter_ns() - wall0
    return {
        "calls": len(ns),
        "min_ns": round(min(ns), 4),
        "median_ns": round(float(np.median(ns)), 4),
        "cpu_per_wall": round(cpu / wall, 3),
    }


# ---------------------------------------------------------------------------------------------
# ONNX Runtime


def ort_session(model):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def ort_softmax_model(shape):
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Softmax", ["X"], ["Y"], axis=-1)],
        "softmax",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def ort_task_model(shape, mask_shape):
    from onnx import TensorProto, helper

    inits = [
        helper.make_tensor("scale", TensorProto.FLOAT, [], [SCALE]),
        helper.make_tensor("neg_inf", TensorProto.FLOAT, [], [-np.inf]),
        helper.make_tensor("ratio", TensorProto.FLOAT, [], [P]),
        helper.make_tensor("training", TensorProto.BOOL, [], [True]),
    ]
    nodes = [
        helper.make_node("Mul", ["X", "scale"], ["Z"]),
        helper.make_node("Where", ["M", "Z", "neg_inf"], ["ZM"]),
        helper.make_node("Softmax", ["ZM"], ["S"], axis=-1),
        helper.make_node("Dropout", ["S", "ratio", "training"], ["Y"]),
    ]
    g = helper.make_graph(
        nodes,
        "scale_mask_softmax_dropout",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("M", TensorProto.BOOL, mask_shape),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)],
        initializer=inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def ort_bound(sess, inputs, y):
    """A run function with inputs and the preallocated output y bound once (no per-call
    allocation or copy of the output)."""
    io = sess.io_binding()
    for name, arr in inputs.items():
        io.bind_cpu_input(name, arr)
    io.bind_output("Y", "cpu", 0, y.dtype, list(y.shape), y.ctypes.data)
    return lambda: sess.run_with_iobinding(io)


# ---------------------------------------------------------------------------------------------
# The whole task in JAX and numpy


def jax_task(rows, cols):
    import jax
    import jax.numpy as jnp

    blocks, r, q0 = causal_layout(rows, cols)

    @jax.jit
    def task(x, key):
        z = x.reshape(blocks, r, cols) * SCALE
        i = jax.lax.broadcasted_iota(jnp.int32, (r, cols), 0)
        j = jax.lax.broadcasted_iota(jnp.int32, (r, cols), 1)
        z = jnp.where(j <= q0 + i, z, -jnp.inf)
        probs = jax.nn.softmax(z, axis=-1)
        keep = jax.random.bernoulli(key, 1.0 - P, probs.shape)
        return jnp.where(keep, probs / (1.0 - P), 0.0).reshape(rows, cols)

    return task


def numpy_task(x, masked, rng, out):
    """The whole task as a numpy user would write it, in place where numpy allows; `masked` is
    the (R, cols) complement of the causal mask, precomputed like a user's cached mask."""
    rows, cols = x.shape
    blocks, r, _ = causal_layout(rows, cols)
    z = np.multiply(x.reshape(blocks, r, cols), np.float32(SCALE))
    np.copyto(z, np.float32(-np.inf), where=masked)
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    dropped = rng.random(z.shape, dtype=np.float32) < np.float32(P)
    y = out.reshape(z.shape)
    np.multiply(z, np.float32(1.0 / (1.0 - P)), out=y)
    np.copyto(y, np.float32(0.0), where=dropped)


# ---------------------------------------------------------------------------------------------


def measure_table(rows, cols, reps, warmup, results):
    import jax

    n = rows * cols
    x = logits(rows, cols)
    y = np.empty_like(x)
    blocks, r, _ = causal_layout(rows, cols)
    mask = causal_mask(rows, cols)

    def add(impl, task, fn, check=None):
        fn()
        if check is not None:
            check()
        res = {"impl": impl, "task": task, "rows": rows, "cols": cols}
        res.update(timed(fn, n, reps, warmup))
        res["huge_pages_kib"] = huge_pages_kib()
        results.append(res)
        print(
            f"  {impl:6} {task:13} {rows}x{cols}: {res['min_ns']:.3f} ns/el,"
            f" cpu/wall {res['cpu_per_wall']}",
            file=sys.stderr,
        )

    def check_task(out):
        # About 10 % zeros among the visible entries, none of the masked entries non-zero, and the
        # kept entries of a row summing to about 1 (within dropout's noise).
        o = out.reshape(blocks, r, cols)
        assert np.all(o[:, ~mask] == 0.0)
        dropped = float(np.mean(o[:, mask] == 0.0))
        assert abs(dropped - P) < 0.02, f"dropped fraction {dropped}"
        assert np.isfinite(o).all()

    sm = ort_session(ort_softmax_model([rows, cols]))
    add("ort", "softmax", ort_bound(sm, {"X": x}, y), check=lambda: np.testing.assert_allclose(
        y.sum(axis=-1), 1.0, rtol=1e-4))

    task = ort_session(ort_task_model([blocks, r, cols], [r, cols]))
    x3 = x.reshape(blocks, r, cols)
    y3 = y.reshape(blocks, r, cols)
    add("ort", "train_causal", ort_bound(task, {"X": x3, "M": mask}, y3),
        check=lambda: check_task(y))

    jt = jax_task(rows, cols)
    xj = jax.device_put(x)
    key = jax.random.key(SEED, impl="threefry2x32")
    holder = {}

    def run_jax():
        holder["y"] = jt(xj, key).block_until_ready()

    add("jax", "train_causal", run_jax, check=lambda: check_task(np.asarray(holder["y"])))

    rng = np.random.default_rng(SEED)
    add("numpy", "train_causal", lambda: numpy_task(x, ~mask, rng, y), check=lambda: check_task(y))

    add("numpy", "copy", lambda: np.copyto(y, x))


def measure_sweep(reps, warmup, results):
    for cols in SWEEP_COLS:
        rows = IN_CACHE_ELEMENTS // cols
        x = logits(rows, cols)
        y = np.empty_like(x)
        sm = ort_session(ort_softmax_model([rows, cols]))
        for impl, task, fn in [
            ("ort", "softmax", ort_bound(sm, {"X": x}, y)),
            ("numpy", "copy", lambda: np.copyto(y, x)),
        ]:
            res = {"impl": impl, "task": task, "rows": rows, "cols": cols}
            res.update(timed(fn, rows * cols, reps, warmup))
            results.append(res)


def versions():
    import jax
    import jaxlib
    import onnx
    import onnxruntime
    from threadpoolctl import threadpool_info

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
        "XLA_FLAGS": os.environ["XLA_FLAGS"],
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "numpy_madvise_hugepage": bool(np._core.multiarray._get_madvise_hugepage()),
        "threadpools": [
            {k: t.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for t in threadpool_info()
        ],
        "affinity": sorted(os.sched_getaffinity(0)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20,
                    help="at least this many timed calls per function (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    ap.add_argument("--sweep", action="store_true",
                    help="also ORT softmax and copy, rows of 64..16384")
    ap.add_argument("--out", help="write the JSON here instead of stdout")
    args = ap.parse_args()

    results = []
    for rows, cols in TABLE_SHAPES:
        measure_table(rows, cols, args.reps, args.warmup, results)
    if args.sweep:
        measure_sweep(args.reps, args.warmup, results)
    doc = {"impl": "peers", "versions": versions(), "results": results}
    text = json.dumps(doc, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
