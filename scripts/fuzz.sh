#!/usr/bin/env bash
# Runs Signet's cargo-fuzz targets (fuzz/fuzz_targets) for a bounded time each, under a memory and a
# per-input time limit, so that a crash, an out-of-memory or a slow input fails the run.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 60 seconds, every target
#
# Each target starts from its committed seeds (fuzz/corpus/<target>) and replays every kept finding
# (fuzz/regressions/<target>); what it learns goes to the work corpus ($SIGNET_FUZZ_WORK/<target>,
# default fuzz/work, not committed). A finding is written to fuzz/artifacts/<target>/ and the run
# fails naming it and the command that reproduces it.
#
# cargo-fuzz is installed into $SIGNET_CI_CACHE/cargo-bin when missing, and builds into
# $SIGNET_CI_CACHE/fuzz-target or $SIGNET_FUZZ_TARGET_DIR (default cache: ~/.cache/signet-ci). Only
# the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets it take the nightly flags cargo-fuzz passes (-Zsanitizer=…,
# sanitizer-coverage passes). Targets run two at a time (SIGNET_FUZZ_JOBS).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"

seconds="${1:-60}"
[ "$#" -gt 0 ] && shift
cache="${SIGNET_CI_CACHE:-$HOME/.cache/signet-ci}"
work="${SIGNET_FUZZ_WORK:-$repo/fuzz/work}"
jobs="${SIGNET_FUZZ_JOBS:-2}"
cargo_fuzz_version="0.13.2"
# The limits that make a resource bug a finding: 256 MiB of RSS, 10 s for one input.
limits=(-rss_limit_mb=256 -timeout=10 -max_total_time="$seconds" -print_final_stats=1)

export PATH="$cache/cargo-bin/bin:$PATH"
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  echo "== installing cargo-fuzz $cargo_fuzz_version into $cache/cargo-bin"
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version" --root "$cache/cargo-bin"
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
# No AddressSanitizer: the code under test forbids `unsafe`, so ASan would find little beyond what
# Rust's own checks (debug assertions and overflow checks are on) catch, at twice the build and run
# time. libFuzzer's RSS limit and per-input timeout work without it. 16 codegen units (cargo-fuzz
# defaults to one) let both cores work on the large server crate.
build=(--sanitizer none --codegen-units 16 --target-dir "${SIGNET_FUZZ_TARGET_DIR:-$cache/fuzz-target}")

echo "== building the fuzz targets"
start=$SECONDS
cargo fuzz build "${build[@]}"
echo "built in $((SECONDS - start)) s"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

# Runs one target; its log goes to $logs/<target>.log, its exit status to $logs/<target>.status.
run_target() {
  local target="$1"
  local dirs=("$work/$target" "corpus/$target")
  [ -d "regressions/$target" ] && dirs+=("regressions/$target")
  local extra=()
  [[ "$target" == pdf_* ]] && extra+=(-dict=pdf.dict)
  mkdir -p "$work/$target" "artifacts/$target"
  local status=0
  cargo fuzz run "${build[@]}" "$target" "${dirs[@]}" -- "${limits[@]}" "${extra[@]}" \
    -artifact_prefix="artifacts/$target/" >"$logs/$target.log" 2>&1 || status=$?
  echo "$status" >"$logs/$target.status"
}

echo "== fuzzing ${targets[*]} for ${seconds} s each, $jobs at a time"
running=0
for target in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_target "$target" &
  running=$((running + 1))
done
wait || true

failed=()
for target in "${targets[@]}"; do
  log="$logs/$target.log"
  status="$(cat "$logs/$target.status" 2>/dev/null || echo 1)"
  # libFuzzer's closing statistics: runs, executions per second, peak RSS.
  stats="$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb|new_units_added)' "$log" |
    sed 's/^stat:://' | tr '\n' ' ')"
  if [ "$status" -eq 0 ]; then
    echo "ok   $target: $stats"
    continue
  fi
  failed+=("$target")
  echo "FAIL $target (exit $status): $stats"
  # The report: libFuzzer's error and the panic message or stack, lines cut short (cargo-fuzz
  # also prints the whole input), then where the input went.
  sed -n '/^memory allocation of\|^==[0-9]*== ERROR\|^thread .* panicked\|^ERROR: libFuzzer/,/^SUMMARY: libFuzzer/p' "$log" |
    cut -c1-300 | head -60
  for artifact in $(grep -oE 'Test unit written to [^ ]+' "$log" | awk '{print $5}'); do
    echo "reproducer: fuzz/$artifact ($(wc -c <"$artifact") bytes)"
    for kept in "corpus/$target"/* "regressions/$target"/*; do
      if [ -f "$kept" ] && cmp -s "$kept" "$artifact"; then echo "  the same bytes as fuzz/$kept"; fi
    done
    # CI's clone is thrown away: a small input is printed so the log alone reproduces it.
    if [ "$(wc -c <"$artifact")" -le 4096 ]; then
      echo "  base64:   $(base64 -w0 "$artifact")"
    fi
    echo "  replay:   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${build[*]} $target $artifact"
  done
  if ! grep -q 'Test unit written to' "$log"; then
    tail -40 "$log"
  fi
done

if ((${#failed[@]})); then
  echo "fuzzing found something in: ${failed[*]} (keep the input as fuzz/regressions/<target>/<name> once fixed)"
  exit 1
fi
echo "fuzzing: no findings"
