#!/usr/bin/env bash
# The peer comparison of issue 3 in one command: builds dropmax's driver (examples/peers.rs) twice,
# as a user gets it (no RUSTFLAGS: the kernels pick their instruction set at run time) and with
# RUSTFLAGS="-C target-cpu=native", runs the two builds alternately (--rounds times each, the
# best of the rounds kept per case), then the peers (peers.py: ONNX Runtime, JAX, numpy), each on
# one thread pinned to the same CPU; prints the markdown tables (table.py: the default build's
# figures, the native build's beside them and their ratio per case) and redraws chart.png
# (chart.py). Not part of CI.
#
#   bash benches/peers/run.sh
#
# Options: --rounds N (runs of each build, alternating; default 3), --reps N (at least N timed
# calls per function, and at least 0.2 s; default 20), --cpu N (pin to CPU N with taskset; default
# the last CPU), --no-pin, --no-peers (dropmax only; the peers' rows stay empty), --no-chart,
# --huge-pages (see below). The first run creates the Python environment benches/peers/.venv
# from requirements.txt (PyPI; needs python3 with venv).
#
# Pages: numpy asks the kernel for transparent huge pages (madvise) for its arrays of 4 MiB and
# more, which makes ONNX Runtime's out-of-cache figures better than on 4 KiB pages; dropmax's
# driver allocates plain Vecs, which get 4 KiB pages where THP is in madvise mode. So that both
# sides run on the same pages, the peers run with NUMPY_MADVISE_HUGEPAGE=0; --huge-pages leaves
# numpy's default (the peers as numpy users run them; the pages then differ between the sides).
# Each result records its process's AnonHugePages.
# Outputs: benches/peers/results/{small,huge}-pages/: dropmax-{default,native}-ROUND.json (each
# run), dropmax.json (both builds, best of the rounds), peers.json, meta.json, table.md; and, on
# 4 KiB pages with the peers, benches/peers/chart.png.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

rounds=3
reps=20
cpu=$(( $(nproc) - 1 ))
pin=1
peers=1
chart=1
pages=small
command="bash benches/peers/run.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift ;;
        --reps) reps="$2"; shift ;;
        --cpu) cpu="$2"; shift ;;
        --no-pin) pin=0 ;;
        --no-peers) peers=0 ;;
        --no-chart) chart=0 ;;
        --huge-pages) pages=huge ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
builds=(default native)
flags_of() { [ "$1" = native ] && echo "-C target-cpu=native" || true; }

say() { printf '== %s\n' "$*" >&2; }

# Python environment.
PY="$HERE/.venv/bin/python"
if [ ! -x "$PY" ]; then
    say "creating $HERE/.venv from requirements.txt"
    python3 -m venv "$HERE/.venv"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -r "$HERE/requirements.txt"
fi

# dropmax's driver, once per build, each in its own target directory so that the flags never mix
# with other builds.
for b in "${builds[@]}"; do
    say "building examples/peers.rs, $b build (RUSTFLAGS=\"$(flags_of "$b")\")"
    (cd "$ROOT" && RUSTFLAGS="$(flags_of "$b")" CARGO_TARGET_DIR="$ROOT/target/peers-$b" \
        cargo build --quiet --release --example peers)
done

out="$HERE/results/$pages-pages"
mkdir -p "$out"
rm -f "$out"/dropmax-*.json
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
say "dropmax, $rounds rounds of: ${builds[*]} (at least $reps calls and 0.2 s per function)"
for round in $(seq "$rounds"); do
    for b in "${builds[@]}"; do
        say "  round $round, $b build"
        "${runner[@]}" "$ROOT/target/peers-$b/release/examples/peers" "$reps" \
            > "$out/dropmax-$b-$round.json"
    done
done
"$PY" "$HERE/table.py" --merge "$out" "${builds[@]}" > "$out/dropmax.json"
if [ "$peers" = 1 ]; then
    say "peers (the same)"
    "${runner[@]}" "$PY" "$HERE/peers.py" --sweep --reps "$reps" --out "$out/peers.json"
else
    rm -f "$out/peers.json"
fi
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
RUSTC="$(rustc --version)" ROUNDS="$rounds" REPS="$reps" PAGES="$pages_note" \
"$PY" - "$out/meta.json" <<'EOF'
import json, os, sys
e = os.environ
meta = {"command": e["COMMAND"], "date": e["DATE"], "commit": e["COMMIT"], "cpu": e["CPU"],
        "load_before": e["LOAD_BEFORE"], "load_after": e["LOAD_AFTER"], "pin": e["PIN"],
        "rustc": e["RUSTC"],
        "builds": "default (no RUSTFLAGS: run-time dispatch) and native (-C target-cpu=native), "
                  f"alternating, {e['ROUNDS']} runs each, best of the runs per case",
        "reps": int(e["REPS"]), "pages": e["PAGES"]}
with open(sys.argv[1], "w") as f:
    json.dump(meta, f, indent=1)
    f.write("\n")
EOF

peers_json=()
[ -f "$out/peers.json" ] && peers_json=("$out/peers.json")
"$PY" "$HERE/table.py" "$out/dropmax.json" "${peers_json[@]}" --meta "$out/meta.json" \
    | tee "$out/table.md"
if [ "$chart" = 1 ] && [ "$peers" = 1 ] && [ "$pages" = small ]; then
    "$PY" "$HERE/chart.py" "$out/dropmax.json" "$out/peers.json" "$out/meta.json" \
        -o "$HERE/chart.png"
    say "wrote $HERE/chart.png"
fi
