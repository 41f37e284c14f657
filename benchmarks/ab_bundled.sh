#!/usr/bin/env bash
# Same-machine A/B of `covidlake run` on the bundled data: REV (default fe91ec3, before
# issue 13) against the working tree, alternating, N runs each (default 3), fresh lake and
# state each run, load average beside each. The machine's speed drifts between sessions, so
# compare the two columns of one invocation, never figures from different days.
#   bash benchmarks/ab_bundled.sh [REV] [N]     (after `make install`)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rev="${1:-fe91ec3}"; runs="${2:-3}"
work="$(mktemp -d /tmp/covidlake-ab.XXXXXX)"
trap 'git -C "$root" worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$root" worktree add -q --detach "$work/old" "$rev"
run() {  # $1 = label, $2 = source tree
  local dir="$work/$1-$i"; mkdir -p "$dir"
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  local start; start=$(date +%s.%N)
  (cd "$dir" && PYTHONPATH="$2" "$root/.venv/bin/python" -c \
    "import sys; sys.argv=['covidlake','run','--lake','$dir/lake']; from covidlake.cli import main; main()" \
    >"$dir/out.txt" 2>"$dir/err.txt")
  printf '%-4s run %d: %6.1f s  load %s  %s\n' "$1" "$i" "$(echo "$(date +%s.%N) - $start" | bc)" "$load" \
    "$(grep -A1 'time per stage' "$dir/out.txt" | tail -1 | xargs)"
}
for i in $(seq "$runs"); do run old "$work/old"; run new "$root"; done
