#!/usr/bin/env bash
# Outbox throughput: MAILS (10,000) queued INVITATION mails delivered by a release `signet serve`
# to a local SMTP receiver (aiosmtpd in its cheap mode: it only records each Message-ID), then
# the receiver alone, fed by a Python client, to show which side is the bottleneck.
#
# The mails are queued the way the outbox holds them (rows naming an order and `signer:0`),
# spread over ORDERS (100) real orders made through the Automation API while mail was off; each
# is rendered from its order and sent with the Message-ID of its row. Reports mails/s and checks
# that no Message-ID arrived twice and that every row is marked delivered with its SENDING_EMAIL
# event.
#
# Usage: bench/outbox.sh            Env: MAILS, ORDERS, SIGNET_ORACLE_VENV, CARGO_TARGET_DIR,
#        DATABASE_URL=postgres://…  (default: SQLite in the data directory; a fresh schema is made)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="${SIGNET_ORACLE_VENV:-$repo/.venv}"
mails="${MAILS:-10000}"
orders="${ORDERS:-100}"
data="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$data"
}
trap cleanup EXIT
cargo build -q --release -p signet
# The fixture PDF only: a debug build is fast enough.
cargo run -q -p signet-testkit --example write_fixtures -- "$data" >/dev/null
signet="${CARGO_TARGET_DIR:-$repo/target}/release/signet"

db_args=()
if [[ -n "${DATABASE_URL:-}" ]]; then
  schema="outbox_bench_$$"
  psql -q "$DATABASE_URL" -c "CREATE SCHEMA $schema"
  db_url="$DATABASE_URL?options=-c%20search_path%3D$schema"
  db_args=(--database-url "$db_url")
  sql() { PGOPTIONS="-c search_path=$schema" psql -qAt "$DATABASE_URL" -c "$1"; }
else
  sql() { sqlite3 "$data/signet.db" "$1"; }
fi

serve() {
  "$signet" serve --data-dir "$data" --listen 127.0.0.1:18480 "${db_args[@]}" \
    --enable-automation-api --automation-listen 127.0.0.1:18481 \
    --directory-file "$repo/bench/people.json" "$@" 2>>"$data/server.log" &
  server=$!
  pids+=("$server")
  for _ in $(seq 200); do curl -s -o /dev/null http://127.0.0.1:18481/ && return; sleep 0.05; done
  echo "the server did not start" >&2; exit 1
}

# 1. Orders, with mail off (nothing is queued).
serve
for _ in $(seq "$orders"); do
  curl -sf http://127.0.0.1:18481/orders -F title=Bench -F "upload=@$data/one-page.pdf" \
    -F 'solicitor={"source":"EXTERNAL","identifier":"200001011907"}' \
    -F 'signers={"source":"EXTERNAL","identifier":"198603052385"}' >/dev/null
done
kill "$server"; wait "$server" 2>/dev/null || true

# 2. MAILS invitation rows, spread over the orders.
now=$(date +%s)
if [[ -n "${DATABASE_URL:-}" ]]; then
  sql "INSERT INTO outbox (channel, kind, order_id, recipient, payload, created_at, next_attempt_at)
       SELECT 'MAIL', 'INVITATION', o.order_id, 'signer:0', '{}', $now, $now
       FROM generate_series(1, $mails) AS n(i)
       JOIN (SELECT order_id, (ROW_NUMBER() OVER ()) - 1 AS k FROM orders) o ON o.k = n.i % $orders"
else
  sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $mails)
       INSERT INTO outbox (channel, kind, order_id, recipient, payload, created_at, next_attempt_at)
       SELECT 'MAIL', 'INVITATION', o.order_id, 'signer:0', '{}', $now, $now
       FROM n JOIN (SELECT order_id, (ROW_NUMBER() OVER ()) - 1 AS k FROM orders) o ON o.k = n.i % $orders"
fi
echo "queued: $(sql "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL") mails over $orders orders"

# 3. The receiver, then Signet with SMTP: time from the first mail received to the last.
sink="$data/sink"
"$venv/bin/python" "$repo/crates/signet/tests/api/support/smtp_sink.py" 18425 "$sink" --ids-only >/dev/null &
pids+=($!)
for _ in $(seq 100); do [[ -f "$sink/ids.txt" ]] && break; sleep 0.05; done
serve --smtp-url smtp://127.0.0.1:18425 --mail-from "Signet <signet@example.org>"
count() { wc -l < "$sink/ids.txt"; }
until [[ $(count) -gt 0 ]]; do sleep 0.01; done
first=$(date +%s.%N); first_count=$(count)
until [[ $(count) -ge $mails ]]; do sleep 0.05; done
last=$(date +%s.%N)
sleep 1
received=$(count)
unique=$(sort -u "$sink/ids.txt" | wc -l)
delivered=$(sql "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NOT NULL")
events=$(sql "SELECT COUNT(*) FROM events WHERE event = 'SENDING_EMAIL'")
echo "== signet outbox -> aiosmtpd"
awk -v n="$((mails - first_count))" -v a="$first" -v b="$last" \
  'BEGIN { printf "%d mails in %.2f s: %.0f mails/s\n", n, b - a, n / (b - a) }'
echo "received $received, distinct Message-IDs $unique (duplicates: $((received - unique)))"
echo "rows delivered $delivered, SENDING_EMAIL events $events"
kill "$server"; wait "$server" 2>/dev/null || true

# 4. The receiver alone (a Python smtplib client, 16 connections): its own ceiling.
echo "== aiosmtpd alone (Python client)"
"$venv/bin/python" "$repo/bench/smtp_blast.py" 18425 "$mails" 16
