#!/usr/bin/env bash
# Signer page benchmark against the release server on SQLite: `GET /sign/{token}` (the page a
# signer opens) with wrk, beside the Automation API's `GET /orders/{id}/state` on the same order.
# Prints wrk's summary for each. Needs: cargo, wrk, curl, python3.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
data="$(mktemp -d)"
[ -n "${SKIP_BUILD:-}" ] || cargo build -q --release -p signet --bin signet
target="${CARGO_TARGET_DIR:-$repo/target}/release"
"$target/signet" serve --data-dir "$data" --listen 127.0.0.1:18090 \
  --enable-automation-api --automation-listen 127.0.0.1:18091 \
  --directory-file "$repo/bench/people.json" 2>"$data/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18091/ && break; sleep 0.1; done
id=$(curl -s http://127.0.0.1:18091/orders \
  -F title=Contract -F description="Please sign" \
  -F "upload=@fuzz/corpus/pdf_check/classic-one-page.pdf" \
  -F 'solicitor={"source":"EXTERNAL","identifier":"200001011907"}' \
  -F 'signers={"source":"EXTERNAL","identifier":"198603052385"}' \
  -F 'signers={"source":"EXTERNAL","identifier":"200001011907","priorityGroup":2}')
link=$(curl -s "http://127.0.0.1:18091/orders/$id" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["signers"][0]["signingUrl"])')
curl -s -o /dev/null -w 'page: %{http_code}, %{size_download} bytes\n' "$link"
echo "== GET /sign/{token} (signer page)"
wrk -t2 -c32 -d"${DURATION:-10}s" --latency "$link" | sed -n '1,20p'
echo "== GET /orders/{id}/state (Automation API)"
wrk -t2 -c32 -d"${DURATION:-10}s" --latency "http://127.0.0.1:18091/orders/$id/state" | sed -n '1,20p'
