#!/usr/bin/env bash
# Automation API benchmarks against the release server on SQLite (issue: signing workflow):
#   1. POST /orders with a 100 KiB PDF and two EXTERNAL signers from the directory file;
#   2. GET /orders/{id}/state with wrk (Debian package `wrk`);
#   3. one sign_order_as on a 1-page order (criterion, in-process).
# Prints each figure. Needs: cargo, wrk.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
data="$(mktemp -d)"
cargo build -q --release -p signet -p signet-loadgen
cargo run -q --release -p signet-testkit --example write_fixtures -- "$data" >/dev/null
target="${CARGO_TARGET_DIR:-$repo/target}/release"
"$target/signet" serve --data-dir "$data" --listen 127.0.0.1:18080 \
  --enable-automation-api --automation-listen 127.0.0.1:18081 \
  --directory-file "$repo/bench/people.json" 2>"$data/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18081/ && break; sleep 0.1; done
echo "== POST /orders"
"$target/signet-loadgen" --concurrency "${CONCURRENCY:-32}" orders \
  --orders "${ORDERS:-5000}" --automation-url http://127.0.0.1:18081
echo "== GET /orders/{id}/state"
id=$(curl -s http://127.0.0.1:18081/orders \
  -F title=State -F "upload=@$data/one-page.pdf" \
  -F 'solicitor={"source":"EXTERNAL","identifier":"200001011907"}' \
  -F 'signers={"source":"EXTERNAL","identifier":"198603052385"}')
wrk -t2 -c64 -d"${DURATION:-10}s" --latency "http://127.0.0.1:18081/orders/$id/state" | sed -n '1,20p'
echo "== sign_order_as (criterion)"
cargo bench -q -p signet --bench sign_order -- --noplot 2>&1 | grep -E "^sign_order_as|time:"
