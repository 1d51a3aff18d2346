#!/usr/bin/env bash
# The peer comparison of issue 3 in one command: builds and runs dropmax's driver
# (examples/peers.rs) and the peers (peers.py: ONNX Runtime, JAX, numpy) one after the other,
# each on one thread pinned to the same CPU, then prints the markdown tables (table.py) and
# redraws chart.png (chart.py). Not part of CI.
#
#   bash benches/peers/run.sh              # dropmax built with RUSTFLAGS="-C target-cpu=native"
#   bash benches/peers/run.sh --baseline   # dropmax built without RUSTFLAGS (the default build: the
#                                          # kernels pick AVX2 at run time; SSE2 before 2026-12-07)
#
# Options: --reps N (at least N timed calls per function, and at least 0.2 s; default 20),
# --cpu N (pin to CPU N with taskset; default the last CPU), --no-pin, --no-chart,
# --huge-pages (see below). The first run creates the Python environment benches/peers/.venv
# from requirements.txt (PyPI; needs python3 with venv).
#
# Pages: numpy asks the kernel for transparent huge pages (madvise) for its arrays of 4 MiB and
# more, which makes ONNX Runtime's out-of-cache figures better than on 4 KiB pages; dropmax's
# driver allocates plain Vecs, which get 4 KiB pages where THP is in madvise mode. So that both
# sides run on the same pages, the peers run with NUMPY_MADVISE_HUGEPAGE=0; --huge-pages leaves
# numpy's default (the peers as numpy users run them; the pages then differ between the sides).
# Each result records its process's AnonHugePages.
# Outputs: benches/peers/results/{native,baseline}[-huge-pages]/ (dropmax.json, peers.json,
# meta.json, table.md) and, for the native build on 4 KiB pages, benches/peers/chart.png.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

build=native
reps=20
cpu=$(( $(nproc) - 1 ))
pin=1
chart=1
pages=small
command="bash benches/peers/run.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case "$1" in
        --baseline) build=baseline ;;
        --native) build=native ;;
        --reps) reps="$2"; shift ;;
        --cpu) cpu="$2"; shift ;;
        --no-pin) pin=0 ;;
        --no-chart) chart=0 ;;
        --huge-pages) pages=huge ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$build" in
    native) rustflags="-C target-cpu=native" ;;
    baseline) rustflags="" ;;
esac

say() { printf '== %s\n' "$*" >&2; }

# Python environment.
PY="$HERE/.venv/bin/python"
if [ ! -x "$PY" ]; then
    say "creating $HERE/.venv from requirements.txt"
    python3 -m venv "$HERE/.venv"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -r "$HERE/requirements.txt"
fi

# dropmax's driver, in its own target directory so that the flags never mix with other builds.
say "building examples/peers.rs (RUSTFLAGS=\"$rustflags\")"
(cd "$ROOT" && RUSTFLAGS="$rustflags" CARGO_TARGET_DIR="$ROOT/target/peers-$build" \
    cargo build --quiet --release --example peers)
driver="$ROOT/target/peers-$build/release/examples/peers"

out="$HERE/results/$build"
[ "$pages" = small ] || out="$out-huge-pages"
mkdir -p "$out"
runner=()
if [ "$pin" = 1 ] && command -v taskset >/dev/null; then
    runner=(taskset -c "$cpu")
else
    pin=0
fi

if [ "$pages" = huge ]; then
    unset NUMPY_MADVISE_HUGEPAGE
    pages_note="peers on numpy's huge pages (madvise), dropmax on plain Vec pages"
else
    export NUMPY_MADVISE_HUGEPAGE=0
    pages_note="4 KiB pages on both sides (NUMPY_MADVISE_HUGEPAGE=0 for the peers)"
fi
thp="$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
pages_note="$pages_note; THP mode: $thp"

load_before="$(uptime | sed 's/.*load average: //')"
say "load average before: $load_before"
say "dropmax (at least $reps calls and 0.2 s per function)"
"${runner[@]}" "$driver" "$reps" > "$out/dropmax.json"
say "peers (the same)"
"${runner[@]}" "$PY" "$HERE/peers.py" --sweep --reps "$reps" --out "$out/peers.json"
load_after="$(uptime | sed 's/.*load average: //')"
say "load average after: $load_after"

commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- src Cargo.toml \
    2>/dev/null)" ]; then
    commit="$commit (with uncommitted changes)"
fi
field() { lscpu | sed -n "s/^$1: *//p" | head -1; }
cpu_info="$(field 'Model name') (family $(field 'CPU family'), model $(field Model))"
cpu_info="$cpu_info, $(nproc) CPUs, L2 $(field 'L2 cache'), L3 $(field 'L3 cache')"
COMMAND="$command" DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" COMMIT="$commit" CPU="$cpu_info" \
LOAD_BEFORE="$load_before" LOAD_AFTER="$load_after" \
PIN="$([ "$pin" = 1 ] && echo "$cpu" || echo no)" \
RUSTC="$(rustc --version)" RUSTFLAGS_USED="$rustflags" REPS="$reps" PAGES="$pages_note" \
"$PY" - "$out/meta.json" <<'EOF'
import json, os, sys
e = os.environ
meta = {"command": e["COMMAND"], "date": e["DATE"], "commit": e["COMMIT"], "cpu": e["CPU"],
        "load_before": e["LOAD_BEFORE"], "load_after": e["LOAD_AFTER"], "pin": e["PIN"],
        "rustc": e["RUSTC"], "rustflags": e["RUSTFLAGS_USED"] or "(none: default build, run-time dispatch)",
        "reps": int(e["REPS"]), "pages": e["PAGES"]}
with open(sys.argv[1], "w") as f:
    json.dump(meta, f, indent=1)
    f.write("\n")
EOF

"$PY" "$HERE/table.py" "$out/dropmax.json" "$out/peers.json" "$out/meta.json" | tee "$out/table.md"
if [ "$chart" = 1 ] && [ "$build" = native ] && [ "$pages" = small ]; then
    "$PY" "$HERE/chart.py" "$out/dropmax.json" "$out/peers.json" "$out/meta.json" \
        -o "$HERE/chart.png"
    say "wrote $HERE/chart.png"
fi
