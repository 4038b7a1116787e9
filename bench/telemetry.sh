#!/usr/bin/env bash
# What metrics and the access log cost on the device flow (upload 100 KiB -> sign -> download):
# two release servers from the same build, run side by side in the same run —
#   on:  the defaults (metrics recorded, SIGNET_LOG=info: an access line per request to a file),
#        with /metrics scraped every second (Prometheus usually scrapes every 15-60 s)
#   off: SIGNET_METRICS=false SIGNET_LOG=warn (no recorder, no /metrics, no access line, no
#        request span)
# Measured runs alternate between the two (on/off, off/on, ...) so drift on a shared machine
# hits both. Each run prints the load generator's line and the server's CPU per document, which
# is the steadier figure when other work shares the machine.
#
# Usage: bench/telemetry.sh    Env: RUNS (3), DOCUMENTS (3000), CONCURRENCY (64), CARGO_TARGET_DIR
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
runs="${RUNS:-3}"
documents="${DOCUMENTS:-3000}"
concurrency="${CONCURRENCY:-64}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cd "$repo"
cargo build -q --release -p signet -p signet-loadgen
signet="$target/release/signet"
loadgen="$target/release/signet-loadgen"
echo "== machine: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A pid_of key_of
# start NAME PORT ENV...: a release server on a fresh data directory.
start() {
  local name="$1" port="$2"
  shift 2
  local data="$work/data-$name"
  env "$@" "$signet" serve --data-dir "$data" --listen "127.0.0.1:$port" \
    >"$work/server-$name.log" 2>&1 &
  pid_of[$name]=$!
  pids+=($!)
  for _ in $(seq 100); do [ -s "$data/initial-api-key" ] && break; sleep 0.1; done
  key_of[$name]="$(cat "$data/initial-api-key")"
  sleep 0.3
}

cpu_ms() { awk '{print ($14 + $15) * 10}' "/proc/$1/stat"; }

start on 18191 SIGNET_METRICS=true SIGNET_LOG=info
start off 18192 SIGNET_METRICS=false SIGNET_LOG=warn
(while sleep 1; do curl -s -o /dev/null http://127.0.0.1:18191/metrics; done) &
pids+=($!)
declare -A port_of=([on]=18191 [off]=18192)

for name in on off; do
  SIGNET_API_KEY="${key_of[$name]}" "$loadgen" --url "http://127.0.0.1:${port_of[$name]}" \
    --concurrency "$concurrency" documents --documents 2000 >/dev/null
done

for run in $(seq "$runs"); do
  if [ $((run % 2)) -eq 1 ]; then order=(on off); else order=(off on); fi
  for name in "${order[@]}"; do
    sync
    before=$(cpu_ms "${pid_of[$name]}")
    line=$(SIGNET_API_KEY="${key_of[$name]}" "$loadgen" --url "http://127.0.0.1:${port_of[$name]}" \
      --concurrency "$concurrency" documents --documents "$documents" | tail -1)
    after=$(cpu_ms "${pid_of[$name]}")
    printf '   run %d %-3s %s; server CPU %.3f ms/document; load %s\n' "$run" "$name" "$line" \
      "$(awk -v a="$after" -v b="$before" -v n="$documents" 'BEGIN {print (a - b) / n}')" \
      "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
echo "   access lines written by 'on': $(grep -c 'signet::access' "$work/server-on.log" || true);" \
  "by 'off': $(grep -c 'signet::access' "$work/server-off.log" || true)"
curl -s http://127.0.0.1:18191/metrics | grep -E '^signet_signatures_total|^signet_http_requests_total\{route="/documents/\{document_id\}/signature"' || true
