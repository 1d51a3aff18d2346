# Sourced by run.sh and separate.sh. `snapshot ROOT REV DIR [NAME]`: git revision REV of the
# repository at ROOT extracted into DIR (emptied first) as a crate outside any workspace,
# its package renamed NAME when given.
snapshot() {
  local root=$1 rev=$2 dir=$3 name=${4:-}
  rm -rf "$dir" && mkdir -p "$dir"
  git -C "$root" archive "$rev" | tar -x -C "$dir"
  # `git archive` dates the files at the commit; cargo would then take an older revision's
  # sources for unchanged since the last build and keep that build (it did, until 2026-11-28).
  find "$dir" -type f -exec touch {} +
  python3 - "$dir/Cargo.toml" "$name" <<'PY'
import re, sys
p, name = sys.argv[1], sys.argv[2]
s = open(p).read()
if name:
    s = s.replace('name = "dropmax"', f'name = "{name}"', 1)
s = re.sub(r'\n\[workspace\]\n(?:[^\[]*\n)', '\n', s, count=1)
open(p, 'w').write(s)
PY
}
