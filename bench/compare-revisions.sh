#!/usr/bin/env bash
# Two revisions of the server side by side in one sitting, so that "before" and "after" a change
# (a refactor that must not slow the embedded default) meet the same machine load: builds each
# revision's release `signet` in a git worktree under ~/.cache/signet-ci/ (removed at the end)
# with a target directory of its own there (kept, so a second comparison builds incrementally),
# then runs
# `bench/run-all.sh STEP` of this tree against each binary (SERVER_BIN), alternating
# A, B, A, B, … ROUNDS times, and prints each side's runs, their medians and B/A.
#
# Usage: bench/compare-revisions.sh REV_A REV_B [step]     (step: run-all's, default documents)
# Env:   ROUNDS (3: runs per side, alternated), PROFILE (release; dev builds faster, to try the
#        script, not to measure), LOADGEN_BIN (a prebuilt load generator; else
#        this tree's is built once), and run-all's own (RUNS=1 per round is the
#        default here; DOCUMENTS, CONCURRENCY, LEVELS …). The figure compared is the documents/s
#        of each load generator line ("-> N req/s"); with LEVELS unset only PADES_B_LT is run.
# Example (within the hour): bench/compare-revisions.sh main HEAD documents
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 REV_A REV_B [step]" >&2; exit 2; }
rev_a="$1" rev_b="$2" step="${3:-documents}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SIGNET_CI_CACHE:-$HOME/.cache/signet-ci}"
rounds="${ROUNDS:-3}"
# Cargo's profile for both servers: release to measure; dev only to try the script quickly.
profile="${PROFILE:-release}"
profile_dir="$([ "$profile" = dev ] && echo debug || echo "$profile")"
work="$(mktemp -d)"
worktrees=()
cleanup() {
  for tree in "${worktrees[@]}"; do git -C "$repo" worktree remove --force "$tree" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Builds `rev`'s server into $work/signet-SIDE. Not called in a subshell: it records the worktree
# for the clean-up.
build() {
  local side="$1" rev="$2" commit tree
  commit="$(git -C "$repo" rev-parse --verify "$rev^{commit}")"
  # A fixed path, so the kept target directory's fingerprints still match next time.
  tree="$cache/compare-tree-$side"
  git -C "$repo" worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
  git -C "$repo" worktree add --detach -q "$tree" "$commit"
  worktrees+=("$tree")
  echo "== building $side = $rev ($(git -C "$repo" log -1 --format='%h %s' "$commit"))" >&2
  (cd "$tree" && CARGO_TARGET_DIR="$cache/compare-target-$side" cargo build -q --profile "$profile" -p signet >&2)
  cp "$cache/compare-target-$side/$profile_dir/signet" "$work/signet-$side"
}
build A "$rev_a"
build B "$rev_b"
bin_a="$work/signet-A" bin_b="$work/signet-B"
# One load generator, this tree's, for both sides (built once, not in between the runs).
if [ -z "${LOADGEN_BIN:-}" ]; then
  (cd "$repo" && cargo build -q --release -p signet-loadgen)
  LOADGEN_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/signet-loadgen"
fi
export LOADGEN_BIN

# Runs run-all's step against one binary; prints its log, appends its rates to $work/rates-SIDE.
measure() {
  local side="$1" bin="$2"
  echo "== $side ($([ "$side" = A ] && echo "$rev_a" || echo "$rev_b")), round $round"
  SERVER_BIN="$bin" RUNS="${RUNS:-1}" LEVELS="${LEVELS:-PADES_B_LT}" \
    "$repo/bench/run-all.sh" "$step" | tee "$work/log-$side-$round"
  sed -n 's/.* -> \([0-9.]*\) req\/s.*/\1/p' "$work/log-$side-$round" >>"$work/rates-$side"
}
for round in $(seq "$rounds"); do
  measure A "$bin_a"
  measure B "$bin_b"
done

median() {
  sort -g "$1" | awk '{a[NR] = $1} END {
    if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
touch "$work/rates-A" "$work/rates-B"
a="$(median "$work/rates-A")" b="$(median "$work/rates-B")"
echo "== $step: requests/s per run"
echo "   A $rev_a: $(tr '\n' ' ' <"$work/rates-A")"
echo "   B $rev_b: $(tr '\n' ' ' <"$work/rates-B")"
echo "   median A $a, median B $b, B/A $(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0) printf "%.3f", b / a; else print "-" }')"
