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
  --directory-file "$repo/bench/people.json" --signature-level "${LEVEL:-PADES_B_LT}" \
  2>"$data/server.log" &
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

# One signature through the page, as a browser does it: the order page (for its CSRF token), then
# the Sign form's POST, which answers once the signed PDF is stored (303 back to the page). Each
# order has one signer, so every press is a first signature on a fresh 1-page document, like the
# in-process `sign_order` bench. Level: the server's default (PADES_B_LT) unless LEVEL is set.
presses="${PRESSES:-50}"
echo "== press Sign -> signed PDF stored (${presses} orders, one signer each, curl, sequential)"
python3 - "$presses" <<'PY'
import json, re, statistics, subprocess, sys, time, urllib.request
n = int(sys.argv[1])
times = []
for _ in range(n):
    order = subprocess.run(
        ["curl", "-s", "http://127.0.0.1:18091/orders", "-F", "title=Press",
         "-F", "upload=@fuzz/corpus/pdf_check/classic-one-page.pdf",
         "-F", 'solicitor={"source":"EXTERNAL","identifier":"200001011907"}',
         "-F", 'signers={"source":"EXTERNAL","identifier":"198603052385"}'],
        capture_output=True, text=True, check=True).stdout.strip()
    with urllib.request.urlopen(f"http://127.0.0.1:18091/orders/{order}") as r:
        link = json.load(r)["signers"][0]["signingUrl"]
    with urllib.request.urlopen(link) as r:
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', r.read().decode()).group(1)
    start = time.perf_counter()
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          "--data", f"csrf={csrf}&lang=en", f"{link}/sign"],
                         capture_output=True, text=True, check=True).stdout
    times.append((time.perf_counter() - start) * 1000)
    assert out == "303", out
print(f"press -> stored: median {statistics.median(times):.1f} ms, "
      f"min {min(times):.1f} ms, max {max(times):.1f} ms over {n} (includes curl's start-up)")
PY
