#!/usr/bin/env bash
# Every performance figure in README.md's Benchmarks section, in one run, on this machine:
#   1. POST /signers with fresh P-256 CSRs (release server, SQLite)          -> enrollments/s, p99
#   2. the device flow per 100 KiB document: upload -> sign -> download,
#      at the default level (PADES_B_LT) beside PADES_B_B                       -> documents/s, p99
#   3. a 50 MB upload + sign: the server's peak RSS growth (VmHWM), with the documents in files
#      and in a local S3 bucket (Garage, bench/garage.sh; skipped with a notice without it) -> MiB
#   4. the engine beside pyHanko (1-page PDF) and beside one SHA-256 pass (20 MB PDF)
#   5. the hostile PDFs of the hardening issue through both APIs: answer, time, peak RSS growth
#   6. one signature end to end at PADES_B_B beside PADES_B_LTA (built-in TSA)  -> ms, ratio
#   7. TLS beside plain HTTP, two servers side by side: the device flow over kept-alive
#      connections, and new connections/s (full TLS 1.3 handshakes, ECDSA P-256 server key)
#   8. replicas: the device flow on SQLite + files (one server) beside PostgreSQL with 1, 2 and 3
#      replicas, first on one shared data directory, then with the documents in a local Garage
#      bucket (bench/garage.sh), the load generator spreading every request over the replicas
#      round robin (as a load balancer would); one table at the end -> documents/s, p99 (medians)
#   9. the read path beside nginx serving the same signed file (bench/read-path.sh): ca.pem,
#      GET /signers/{id}, the download whole and with a 100-byte Range   -> requests/s, ratios
# Each server gets a fresh data directory; each load figure is printed per run (report the
# median). The CPU split after each run says how much the server, the generator and everything
# else on the machine took, so a run disturbed by other work can be told apart.
#
# Two revisions side by side (before/after a refactor, same hour, runs alternated):
#   bench/compare-revisions.sh REV_A REV_B [step]   (builds both into temporary worktrees and
#   runs this script's step, default documents, with SERVER_BIN pointing at each in turn)
#
# Usage: bench/run-all.sh [enroll|documents|rss|engine|bombs|levels|tls|replicas|reads]...
#        (default: all nine)
# Env:   RUNS (3), ENROLLMENTS (20000), DOCUMENTS (5000), CONCURRENCY (64), LEVELS, SIGNATURES (500),
#        CONNECTIONS (20000), BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/test: the
#        replicas step makes a schema of its own there per run and drops it after),
#        REPLICA_SETUPS (the replicas step's rows: "sqlite pg-files:1 pg-files:2 pg-files:3
#        pg-s3:1 pg-s3:2 pg-s3:3"), WARMUP (documents before measuring: 3000 in the documents
#        step, 1000 before each replicas row),
#        SERVER_BIN (a prebuilt signet server to measure instead of building this tree's),
#        LOADGEN_BIN (a prebuilt signet-loadgen; with both set nothing is built), SIGNET_TEST_GARAGE (the garage binary, default
#        ~/.cache/signet-ci/garage/bin/garage), GARAGE_S3_PORT/GARAGE_RPC_PORT (3900/3901),
#        CARGO_TARGET_DIR (release builds go there; keep it apart from the debug build's)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
runs="${RUNS:-3}"
concurrency="${CONCURRENCY:-64}"
work="$(mktemp -d)"
server_pid=""
other_pid=""
replica_pids=()
garage_dir=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  if [ -n "$garage_dir" ]; then "$repo/bench/garage.sh" stop "$garage_dir" || true; fi
  if [ ${#replica_pids[@]} -gt 0 ]; then kill "${replica_pids[@]}" 2>/dev/null || true; fi
  if [ -n "$other_pid" ]; then kill "$other_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cd "$repo"
# What to build: the server unless SERVER_BIN names one, the load generator unless LOADGEN_BIN does.
packages=()
[ -n "${SERVER_BIN:-}" ] || packages+=(-p signet)
[ -n "${LOADGEN_BIN:-}" ] || packages+=(-p signet-loadgen)
if [ ${#packages[@]} -gt 0 ]; then cargo build -q --release "${packages[@]}"; fi
signet="$(realpath "${SERVER_BIN:-$target/release/signet}")"
loadgen="$(realpath "${LOADGEN_BIN:-$target/release/signet-loadgen}")"

echo "== machine: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== server: $signet"

# Starts the local Garage (bench/garage.sh) once and exports its AWS_* settings; returns 1, with
# a notice, when there is no Garage binary.
start_garage() {
  if [ -n "$garage_dir" ]; then return 0; fi
  local env
  if ! env="$("$repo/bench/garage.sh" start "$work/garage")"; then
    echo "   (no Garage: the object-storage rows are skipped)"
    return 1
  fi
  garage_dir="$work/garage"
  # shellcheck disable=SC1090
  source "$env"
}

# The median of the numbers given as arguments.
median() {
  if [ $# -eq 0 ]; then echo "-"; return; fi
  printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
    if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# The documents/s and p99 (ms) of a load generator line.
rate_of() { sed -n 's/.* -> \([0-9.]*\) req\/s.*/\1/p' <<<"$1"; }
p99_of() { sed -n 's/.* p99 \([0-9.]*\) ms.*/\1/p' <<<"$1"; }

# Starts a release server on a fresh data directory (further arguments go to `serve`); sets
# server_pid, url and SIGNET_API_KEY.
start_server() {
  local name="$1" data="$work/data-$1" port="$2"
  shift 2
  "$signet" serve --data-dir "$data" --listen "127.0.0.1:$port" "$@" >"$work/server-$name.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do [ -s "$data/initial-api-key" ] && break; sleep 0.1; done
  url="http://127.0.0.1:$port"
  export SIGNET_API_KEY="$(cat "$data/initial-api-key")"
  sleep 0.3
}

stop_server() {
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# CPU time (ms) of a process, user + system.
cpu_ms() { awk '{print ($14 + $15) * 10}' "/proc/$1/stat"; }
# Busy and idle CPU time (ms) of the whole machine.
machine_ms() { awk '/^cpu /{print ($2 + $3 + $4 + $7 + $8) * 10, ($5 + $6) * 10}' /proc/stat; }

# Runs the load generator with "$@" once and prints its line and the CPU split.
measured_run() {
  local s0 s1 m0 m1
  sync
  s0=$(cpu_ms "$server_pid")
  m0=$(machine_ms)
  /usr/bin/time -f "%U %S" -o "$work/loadgen.time" "$loadgen" --url "$url" "$@" | tail -1
  s1=$(cpu_ms "$server_pid")
  m1=$(machine_ms)
  read -r busy0 idle0 <<<"$m0"
  read -r busy1 idle1 <<<"$m1"
  read -r user sys <"$work/loadgen.time"
  local generator
  generator=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%d", (u + s) * 1000}')
  echo "   cpu ms: server $((s1 - s0)), generator $generator," \
    "everything else $((busy1 - busy0 - (s1 - s0) - generator)), idle $((idle1 - idle0))"
}

enroll() {
  echo "== 1. POST /signers, fresh P-256 CSRs (generated before the clock starts)," \
    "$concurrency connections"
  start_server enroll 18180
  "$loadgen" --url "$url" --concurrency "$concurrency" enroll --requests 1000 >/dev/null 2>&1
  for _ in $(seq "$runs"); do
    measured_run --concurrency "$concurrency" enroll --requests "${ENROLLMENTS:-20000}" 2>/dev/null
  done
  stop_server
}

documents() {
  echo "== 2. device flow per document: upload 100 KiB -> sign (P-256) -> download," \
    "$concurrency connections"
  start_server documents 18181
  # The first thousands of documents run slower (thread pools, caches, the new data directory).
  "$loadgen" --url "$url" --concurrency "$concurrency" documents --documents "${WARMUP:-3000}" >/dev/null
  # Each run at the server's default level (PADES_B_LT: signature timestamp and /DSS from the
  # built-in TSA and OCSP responder) and at PADES_B_B beside it, alternating on one server, so
  # the machine's other load falls on both alike. LEVELS overrides the pair.
  for _ in $(seq "$runs"); do
    for level in ${LEVELS:-PADES_B_LT PADES_B_B}; do
      measured_run --concurrency "$concurrency" documents --documents "${DOCUMENTS:-5000}" \
        --signature-level "$level"
    done
  done
  stop_server
}

# One signature end to end (upload -> sign -> download, one connection) at PADES_B_B and at
# PADES_B_LTA (signature timestamp, /DSS, document timestamp, its /DSS) with the built-in TSA,
# alternating on one server: the cost of the long-term levels per signature (goal B-LTA <= 3x B-B).
levels() {
  echo "== 6. one signature end to end, one connection: PADES_B_B beside PADES_B_LTA" \
    "(built-in TSA), 100 KiB"
  start_server levels 18184
  "$loadgen" --url "$url" --concurrency 1 documents --documents 200 --signature-level PADES_B_LTA >/dev/null
  for _ in $(seq "$runs"); do
    for level in PADES_B_B PADES_B_LTA; do
      measured_run --concurrency 1 documents --documents "${SIGNATURES:-500}" --signature-level "$level"
    done
  done
  stop_server
}

rss() {
  echo "== 3. 50 MB upload + sign (+ download), one at a time: server peak RSS growth," \
    "documents in files and in a local S3 bucket (Garage)"
  local backend args
  for backend in files s3; do
    args=()
    if [ "$backend" = s3 ]; then
      start_garage || continue
      args=(--blob-url "s3://$GARAGE_BUCKET/rss")
    fi
    echo "   $backend:"
    start_server "rss-$backend" 18182 "${args[@]}"
    "$loadgen" --url "$url" --concurrency 1 documents --documents 2 --size-kib 100 >/dev/null
    for _ in $(seq "$runs"); do
      # Writing 5 to clear_refs resets VmHWM (the peak) to the current RSS.
      echo 5 >"/proc/$server_pid/clear_refs"
      local before peak
      before=$(awk '/^VmRSS/{print $2}' "/proc/$server_pid/status")
      "$loadgen" --url "$url" --concurrency 1 documents --documents 1 --size-kib 48828 | tail -1
      peak=$(awk '/^VmHWM/{print $2}' "/proc/$server_pid/status")
      echo "   $backend: RSS before ${before} kB, peak ${peak} kB: growth $(((peak - before) / 1024)) MiB"
    done
    stop_server
  done
}

reads() {
  echo "== 8. the read path beside nginx (wrk, $concurrency connections)"
  SKIP_BUILD=1 CONNECTIONS="$concurrency" "$repo/bench/read-path.sh"
}

engine() {
  echo "== 4. engine: 1-page PDF beside pyHanko in-process; 20 MB PDF beside one SHA-256 pass"
  "$repo/bench/engine-vs-pyhanko.sh"
}

bombs() {
  echo "== 5. hostile PDFs (signet_testkit::bombs) through POST /documents and POST /orders," \
    "one at a time: answer, wall time, server peak RSS growth"
  cargo build -q --release -p signet-pdf --example bomb
  "$target/release/examples/bomb" write "$work/bombs" >/dev/null
  local data="$work/data-bombs"
  "$signet" serve --data-dir "$data" --listen 127.0.0.1:18183 \
    --enable-automation-api --automation-listen 127.0.0.1:18184 \
    --directory-file "$repo/bench/people.json" >"$work/server-bombs.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do [ -s "$data/initial-api-key" ] && break; sleep 0.1; done
  sleep 0.3
  local key
  key="$(cat "$data/initial-api-key")"
  openssl ecparam -name prime256v1 -genkey -noout -out "$work/device.key"
  openssl req -new -key "$work/device.key" -subj "/CN=Bench" -out "$work/device.csr"
  curl -s -o /dev/null http://127.0.0.1:18183/signers -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' \
    -d "{\"signerId\": \"bench\", \"userId\": \"bench\", \"csr\": $(jq -Rs . "$work/device.csr")}"
  local file name api answer before peak
  for file in "$work"/bombs/*.pdf; do
    name=$(basename "$file" .pdf)
    for api in documents orders; do
      echo 5 >"/proc/$server_pid/clear_refs"
      before=$(awk '/^VmRSS/{print $2}' "/proc/$server_pid/status")
      if [ "$api" = documents ]; then
        answer=$(curl -s -o "$work/answer.json" -w '%{http_code} %{time_total}' \
          http://127.0.0.1:18183/documents -H "Authorization: Bearer $key" \
          -F signerId=bench -F "file=@$file;type=application/pdf")
      else
        answer=$(curl -s -o "$work/answer.json" -w '%{http_code} %{time_total}' \
          http://127.0.0.1:18184/orders -F title=Bomb -F "upload=@$file;type=application/pdf" \
          -F 'solicitor={"source":"EXTERNAL","identifier":"200001011907"}' \
          -F 'signers={"source":"EXTERNAL","identifier":"198603052385"}')
      fi
      peak=$(awk '/^VmHWM/{print $2}' "/proc/$server_pid/status")
      printf '   %-28s %-9s HTTP %s s  %-22s RSS growth %d MiB\n' "$name" "$api" "$answer" \
        "$(case "$answer" in 2*) echo accepted ;; *) jq -r '.responseObject.code' "$work/answer.json" ;; esac)" \
        $(((peak - before) / 1024))
    done
  done
  stop_server
}

# A P-256 CA and a P-256 server certificate for 127.0.0.1, made by openssl, in $work/tls.
make_tls_certs() {
  local dir="$work/tls"
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ca.key" \
    -out "$dir/ca.pem" -days 2 -subj "/CN=Bench CA" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/server.key" \
    -out "$dir/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
}

tls() {
  echo "== 6. TLS beside plain HTTP (two release servers side by side, runs alternated):" \
    "the device flow over $concurrency kept-alive connections; new connections/s"
  make_tls_certs
  local plain_data="$work/data-plain" tls_data="$work/data-tls"
  "$signet" serve --data-dir "$plain_data" --listen 127.0.0.1:18185 >"$work/server-plain.log" 2>&1 &
  local plain_pid=$!
  other_pid=$plain_pid
  "$signet" serve --data-dir "$tls_data" --listen 127.0.0.1:18186 \
    --tls-cert "$work/tls/server.pem" --tls-key "$work/tls/server.key" >"$work/server-tls.log" 2>&1 &
  local tls_pid=$!
  server_pid=$tls_pid
  for _ in $(seq 100); do
    [ -s "$plain_data/initial-api-key" ] && [ -s "$tls_data/initial-api-key" ] && break
    sleep 0.1
  done
  sleep 0.3
  local plain_key tls_key
  plain_key="$(cat "$plain_data/initial-api-key")"
  tls_key="$(cat "$tls_data/initial-api-key")"
  local plain=(--url http://127.0.0.1:18185) secure=(--url https://127.0.0.1:18186 --ca "$work/tls/ca.pem")
  SIGNET_API_KEY=$plain_key "$loadgen" "${plain[@]}" --concurrency "$concurrency" documents --documents 3000 >/dev/null
  SIGNET_API_KEY=$tls_key "$loadgen" "${secure[@]}" --concurrency "$concurrency" documents --documents 3000 >/dev/null
  for _ in $(seq "$runs"); do
    echo "   plain:"
    server_pid=$plain_pid url=http://127.0.0.1:18185 SIGNET_API_KEY=$plain_key \
      measured_run --concurrency "$concurrency" documents --documents "${DOCUMENTS:-5000}"
    echo "   TLS:"
    server_pid=$tls_pid url=https://127.0.0.1:18186 SIGNET_API_KEY=$tls_key \
      measured_run --ca "$work/tls/ca.pem" --concurrency "$concurrency" documents --documents "${DOCUMENTS:-5000}"
  done
  for _ in $(seq "$runs"); do
    echo "   plain:"
    server_pid=$plain_pid url=http://127.0.0.1:18185 \
      measured_run --concurrency 16 connections --connections "${CONNECTIONS:-20000}"
    echo "   TLS (full handshakes, no resumption):"
    server_pid=$tls_pid url=https://127.0.0.1:18186 \
      measured_run --ca "$work/tls/ca.pem" --concurrency 16 connections --connections "${CONNECTIONS:-20000}"
  done
  echo "   load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
  kill "$plain_pid" "$tls_pid"
  wait "$plain_pid" "$tls_pid" 2>/dev/null || true
  server_pid=""
  other_pid=""
}

# Several replicas on one PostgreSQL schema, sharing one data directory (the key files, and the
# documents unless they are in the bucket), beside SQLite + files; one table of medians at the end.
replicas() {
  local setups="${REPLICA_SETUPS:-sqlite pg-files:1 pg-files:2 pg-files:3 pg-s3:1 pg-s3:2 pg-s3:3}"
  echo "== 8. replicas: device flow per 100 KiB document at the default level, $concurrency" \
    "connections spread round robin over the replicas: $setups"
  local pg="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
  local setup kind count run=0 schema data urls port database sep line label i
  local -a blob_args
  local -A rates=() p99s=()
  case " $setups " in *" pg-s3:"*) start_garage || setups="$(tr ' ' '\n' <<<"$setups" | grep -v '^pg-s3:' | tr '\n' ' ')" ;; esac
  for _ in $(seq "$runs"); do
    for setup in $setups; do
      run=$((run + 1))
      kind="${setup%%:*}"
      count="${setup#*:}"
      [ "$kind" = sqlite ] && count=1
      schema="signet_bench_$$_$run"
      data="$work/data-replicas-$run"
      replica_pids=()
      urls=""
      blob_args=()
      if [ "$kind" = sqlite ]; then
        database="sqlite:$data/signet.db"
      else
        psql -q "$pg" -c "CREATE SCHEMA $schema"
        case "$pg" in *\?*) sep='&' ;; *) sep='?' ;; esac
        database="$pg${sep}options=-c%20search_path%3D$schema"
      fi
      # A fresh prefix per row: every row starts on an empty bucket as on an empty directory.
      if [ "$kind" = pg-s3 ]; then blob_args=(--blob-url "s3://$GARAGE_BUCKET/replicas-$$-$run"); fi
      # The first replica alone makes the schema, the CA and the first API key.
      for i in $(seq "$count"); do
        port=$((18190 + i))
        SIGNET_DATABASE_URL="$database" "$signet" serve --data-dir "$data" \
          --listen "127.0.0.1:$port" "${blob_args[@]}" >"$work/server-replicas-$run-$i.log" 2>&1 &
        replica_pids+=($!)
        for _ in $(seq 300); do
          grep -q "signet is listening" "$work/server-replicas-$run-$i.log" && break
          kill -0 "${replica_pids[-1]}" 2>/dev/null || { cat "$work/server-replicas-$run-$i.log" >&2; return 1; }
          sleep 0.1
        done
        urls="${urls:+$urls,}http://127.0.0.1:$port"
      done
      export SIGNET_API_KEY="$(cat "$data/initial-api-key")"
      "$loadgen" --url "$urls" --concurrency "$concurrency" documents --documents "${WARMUP:-1000}" >/dev/null
      case "$kind" in
        sqlite) label="SQLite + files" ;;
        pg-files) label="PostgreSQL + shared dir x$count" ;;
        pg-s3) label="PostgreSQL + Garage x$count" ;;
      esac
      line="$("$loadgen" --url "$urls" --concurrency "$concurrency" documents \
        --documents "${DOCUMENTS:-5000}" | tail -1)"
      printf '   %-32s %s\n' "$label" "$line"
      rates[$setup]="${rates[$setup]:-} $(rate_of "$line")"
      p99s[$setup]="${p99s[$setup]:-} $(p99_of "$line")"
      kill "${replica_pids[@]}"
      wait "${replica_pids[@]}" 2>/dev/null || true
      replica_pids=()
      if [ "$kind" != sqlite ]; then PGOPTIONS=--client-min-messages=warning psql -q "$pg" -c "DROP SCHEMA $schema CASCADE"; fi
    done
  done
  echo "   load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "   medians of $runs run(s), ${DOCUMENTS:-5000} documents each:"
  printf '   %-22s %-9s %12s %10s\n' "database + documents" replicas "documents/s" "p99 ms"
  for setup in $setups; do
    kind="${setup%%:*}"
    count="${setup#*:}"
    case "$kind" in
      sqlite) label="SQLite + files" count=1 ;;
      pg-files) label="PostgreSQL + dir" ;;
      pg-s3) label="PostgreSQL + Garage" ;;
    esac
    # shellcheck disable=SC2086
    printf '   %-22s %-9s %12s %10s\n' "$label" "$count" "$(median ${rates[$setup]})" "$(median ${p99s[$setup]})"
  done
}

steps=("$@")
if [ ${#steps[@]} -eq 0 ]; then steps=(enroll documents rss engine bombs levels tls replicas reads); fi
for step in "${steps[@]}"; do
  case "$step" in
    enroll | documents | rss | engine | bombs | levels | tls | replicas | reads) "$step" ;;
    *) echo "unknown step: $step (enroll, documents, rss, engine, bombs, levels, tls, replicas, reads)" >&2; exit 2 ;;
  esac
done
