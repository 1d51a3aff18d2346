#!/usr/bin/env bash
# A/B with one binary per version: `one.rs` built against git revision REV (A) and against the
# working tree (B), each in its own target directory, then run alternately ROUNDS times (A, B,
# A, B, ...), each run timing eval, train, eval causal and train causal for SECONDS in all; the
# medians over the rounds of each run's best call are compared.
#
#   bash benches/ab/separate.sh [REV] [ROWS COLS] [SECONDS] [ROUNDS]
#
# Defaults: HEAD, 256 x 1024, 2 s, 7 rounds. Built with RUSTFLAGS="-C target-cpu=native".
# Slower and noisier per run than run.sh (about +-3 % between runs on a quiet machine), but free
# of its bias: in run.sh both versions share a binary, and on 2026-11-29 a tree whose only change
# was a disabled branch timed training 10 % faster than its own base there, while this script
# showed no difference. Not part of CI.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
rev=${1:-HEAD}
rows=${2:-256}; cols=${3:-1024}; secs=${4:-2}; rounds=${5:-7}
work="$ROOT/target/ab/separate"
snap="$work/snapshot"
source "$HERE/snapshot.sh"
snapshot "$ROOT" "$rev" "$snap"
for side in a b; do
  dir="$work/$side"
  mkdir -p "$dir"
  src="$ROOT"; [ "$side" = a ] && src="$snap"
  cat > "$dir/Cargo.toml" <<TOML
[package]
name = "dropmax-one-$side"
version = "0.0.0"
edition = "2024"
publish = false

[[bin]]
name = "one"
path = "$HERE/one.rs"

[dependencies]
dropmax = { path = "$src" }

[profile.release]
debug = true

[workspace]
TOML
  (cd "$dir" && RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR="$dir/target" cargo build --release -q)
done
norand=""
if setarch -R true 2>/dev/null; then norand="setarch -R"; fi
echo "A = $(git -C "$ROOT" rev-parse --short "$rev"), B = working tree; ${rows}x${cols}, $rounds rounds of $secs s; ns/element" >&2
for _ in $(seq "$rounds"); do
  echo "A $($norand "$work/a/target/release/one" "$rows" "$cols" "$secs")"
  echo "B $($norand "$work/b/target/release/one" "$rows" "$cols" "$secs")"
done | python3 -c '
import sys, statistics
runs = {"A": [], "B": []}
for line in sys.stdin:
    side, *v = line.split()
    runs[side].append([float(t) for t in v])
names = ["eval", "train", "eval_causal", "train_causal"]
med = {s: [statistics.median(r[i] for r in runs[s]) for i in range(4)] for s in runs}
for s in "AB":
    print(s, "median:", " ".join(f"{n} {m:.4f}" for n, m in zip(names, med[s])))
print("B / A:  ", " ".join(f"{n} {b / a:.3f}" for n, a, b in zip(names, med["A"], med["B"])))
'
