#!/usr/bin/env bash
# The long-term-validation services under load, with wrk posting real, fixed queries:
#   1. POST /tsa with an `openssl ts -query` (SHA-256, nonce, certReq)         -> timestamps/s
#   2. POST /ca/ocsp with an `openssl ocsp -reqout` for an enrolled signer     -> responses/s
#   3. the same OCSP request against `openssl ocsp -index … -port` serving the same CA with the
#      same delegated responder key (`-multi 2`: one process per core), side by side
# wrk runs on the same machine (it takes part of the CPU): the figures are conservative.
#
# Usage: bench/ltv.sh          Env: DURATION (10s), CONNECTIONS (32), CARGO_TARGET_DIR
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
duration="${DURATION:-10s}"
connections="${CONNECTIONS:-32}"
work="$(mktemp -d)"
pids=()
cleanup() {
  # openssl ocsp -multi's children outlive a TERM to their parent: stop them by parent pid first.
  for pid in "${pids[@]}"; do pkill -KILL -P "$pid" 2>/dev/null || true; kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$repo"
cargo build -q --release -p signet
signet="$target/release/signet"

port=18480
"$signet" serve --data-dir "$work/data" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/data/initial-api-key" ] && break; sleep 0.1; done
url="http://127.0.0.1:$port"
key="$(cat "$work/data/initial-api-key")"
cd "$work"
curl -sf "$url/ca/ca.pem" -o ca.pem

# A signer to ask about.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out device.key 2>/dev/null
csr="$(openssl req -new -key device.key -subj /CN=bench-device)"
body="$(jq -n --arg csr "$csr" '{signerId: "bench-device", userId: "bench", csr: $csr}')"
curl -sf "$url/signers" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" >/dev/null
curl -sf "$url/signers/bench-device" -H "Authorization: Bearer $key" | jq -r .certificate.pem > signer.pem

# Fixed queries.
head -c 100000 /dev/urandom > data.bin
openssl ts -query -data data.bin -sha256 -cert -out query.tsq 2>/dev/null
openssl ocsp -issuer ca.pem -cert signer.pem -reqout ocsp.req >/dev/null 2>&1
cat > post.lua <<'LUA'
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = os.getenv("CTYPE")
LUA

# Sanity: both answers verify before they are measured.
curl -sf "$url/tsa" -H 'Content-Type: application/timestamp-query' --data-binary @query.tsq -o reply.tsr
curl -sf "$url/ca/tsa.pem" -o tsa.pem
openssl ts -verify -data data.bin -in reply.tsr -CAfile ca.pem -untrusted tsa.pem
openssl ocsp -issuer ca.pem -cert signer.pem -url "$url/ca/ocsp" -CAfile ca.pem

measure() { # name, url, body file, content type
  echo "== $1"
  BODY="$work/$3" CTYPE="$4" wrk -t2 -c"$connections" -d"$duration" -s post.lua "$2" | grep -E "Requests/sec|Non-2xx|Socket errors|Latency"
}
measure "Signet POST /tsa" "$url/tsa" query.tsq application/timestamp-query
measure "Signet POST /ca/ocsp" "$url/ca/ocsp" ocsp.req application/ocsp-request

# openssl's responder over the same CA, the same responder key and an index with the signer.
serial="$(openssl x509 -in signer.pem -noout -serial | cut -d= -f2)"
enddate="$(date -u -d "$(openssl x509 -in signer.pem -noout -enddate | cut -d= -f2)" +%y%m%d%H%M%SZ)"
printf 'V\t%s\t\t%s\tunknown\t/CN=bench-device\n' "$enddate" "$serial" > index.txt
oport=18481
openssl ocsp -index index.txt -port "$oport" -rsigner "$work/data/ca/ocsp.pem" -rkey "$work/data/ca/ocsp.key" \
  -CA ca.pem -multi 2 -nmin 60 >"$work/openssl-ocsp.log" 2>&1 &
pids+=($!)
sleep 2
openssl ocsp -issuer ca.pem -cert signer.pem -url "http://127.0.0.1:$oport" -CAfile ca.pem || { cat "$work/openssl-ocsp.log"; exit 1; }
measure "openssl ocsp -index -port -multi 2" "http://127.0.0.1:$oport/" ocsp.req application/ocsp-request

