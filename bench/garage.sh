#!/usr/bin/env bash
# A local S3-compatible object store for the benchmarks: a single-node Garage on 127.0.0.1 with
# its metadata and data in DIR, one access key and one bucket, laid out the way the tests' harness
# (crates/signet/tests/api/garage.rs) does it. Garage is the one scripts/test.sh builds into
# ${SIGNET_CI_CACHE:-~/.cache/signet-ci}/garage (or SIGNET_TEST_GARAGE).
#
# Usage: bench/garage.sh start DIR   starts it; writes DIR/env (export lines with the standard
#                                    AWS_* settings, GARAGE_BUCKET and GARAGE_PID) and prints its path
#        bench/garage.sh stop DIR    stops the one started in DIR
# Env:   GARAGE_S3_PORT (3900), GARAGE_RPC_PORT (3901)
set -euo pipefail
garage="${SIGNET_TEST_GARAGE:-${SIGNET_CI_CACHE:-$HOME/.cache/signet-ci}/garage/bin/garage}"
bucket=signet-bench

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
dir="$2"

case "$1" in
  start)
    [ -x "$garage" ] || { echo "no Garage at $garage (scripts/test.sh builds it)" >&2; exit 1; }
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    s3_port="${GARAGE_S3_PORT:-3900}" rpc_port="${GARAGE_RPC_PORT:-3901}"
    cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
api_bind_addr = "127.0.0.1:$s3_port"
s3_region = "garage"
EOF
    cli() { RUST_LOG=garage=warn "$garage" -c "$dir/garage.toml" "$@"; }
    RUST_LOG=garage=warn "$garage" -c "$dir/garage.toml" server </dev/null >"$dir/garage.log" 2>&1 &
    pid=$!
    fail() { echo "garage: $1" >&2; cat "$dir/garage.log" >&2; kill "$pid" 2>/dev/null; exit 1; }
    # The admin commands below need its RPC up: wait for the S3 port, as the tests' harness does,
    # then retry each command a little while the node settles.
    for _ in $(seq 600); do
      (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || fail "exited"
      sleep 0.1
    done
    retry() {
      local _
      for _ in $(seq 50); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
      "$@" >/dev/null || fail "$* failed"
    }
    node=""
    for _ in $(seq 100); do
      node="$(cli node id -q 2>/dev/null | cut -d@ -f1 || true)"
      [ -n "$node" ] && break
      sleep 0.2
    done
    [ -n "$node" ] || fail "no node id"
    retry cli layout assign -z dc1 -c 1G "$node"
    retry cli layout apply --version 1
    key="$(cli key create signet-bench)" || fail "key create failed"
    key_id="$(awk -F: '/Key ID:/{gsub(/ /, "", $2); print $2}' <<<"$key")"
    secret="$(awk -F: '/Secret key:/{gsub(/ /, "", $2); print $2}' <<<"$key")"
    retry cli bucket create "$bucket"
    retry cli bucket allow --read --write --owner "$bucket" --key signet-bench
    cat >"$dir/env" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=garage
export AWS_ALLOW_HTTP=true
export GARAGE_BUCKET=$bucket
export GARAGE_PID=$pid
EOF
    echo "$dir/env"
    ;;
  stop)
    if [ -f "$dir/env" ]; then
      pid="$(sed -n 's/^export GARAGE_PID=//p' "$dir/env")"
      kill "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    ;;
  *) usage ;;
esac
