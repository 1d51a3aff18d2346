#!/usr/bin/env bash
# In-process A/B: times eval, train (p = 0.1), eval causal and train causal of two versions of
# dropmax in one process, calls interleaved, best of N calls each (and the median), so that the
# machine's drift (a shared 2-core VM: criterion's run-to-run noise is 3-5 %) hits both sides
# alike.
#
#   bash benches/ab/run.sh [REV] [ROWS COLS CALLS] [RUNS]
#
# A = git revision REV (default HEAD), B = the working tree; rows x cols logits (default
# 64 x 1024), CALLS calls per function (default 3000), RUNS processes (default 3). Built with
# RUSTFLAGS="-C target-cpu=native". Runs under `setarch -R` (no address randomisation) where
# available: the training path's time moves by up to 7 % with the addresses the process gets
# (seen in session 2; eval does not), which otherwise swamps small changes. Each timed call
# follows an untimed one of the same kind and version. Run it once on an unchanged tree to see
# the tool's own bias (under 1 % on 2026-11-28). Both versions share one binary, so code layout
# can favour one side by up to 10 % (2026-11-29); confirm smaller gains with separate.sh. Not
# part of CI.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
rev=${1:-HEAD}
rows=${2:-64}; cols=${3:-1024}; calls=${4:-3000}; runs=${5:-3}
snap="$ROOT/target/ab/snapshot"
# The snapshot becomes crate `dropmax_a`.
source "$HERE/snapshot.sh"
snapshot "$ROOT" "$rev" "$snap" dropmax_a
cd "$HERE"
RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR="$ROOT/target/ab/build" cargo build --release -q
bin="$ROOT/target/ab/build/release/dropmax-ab"
norand=""
if setarch -R true 2>/dev/null; then norand="setarch -R"; fi
echo "A = $(git -C "$ROOT" rev-parse --short "$rev"), B = working tree; ${rows}x${cols}, best of $calls calls; ns/element" >&2
for _ in $(seq "$runs"); do $norand "$bin" "$rows" "$cols" "$calls"; done
