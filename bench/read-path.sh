#!/usr/bin/env bash
# The read path, side by side in one run: a release Signet on SQLite and nginx (Debian's package,
# an unprivileged configuration with its own prefix directory on a free port) serving the very
# same bytes of one signed document, both driven by wrk over 64 kept-alive connections:
#   GET /ca/ca.pem                 (Signet, unauthenticated: the floor of a request)
#   GET /signers/{id}              (Signet, API key: the authenticated read)
#   GET /documents/{id}/file       (Signet, API key: the signed PDF, whole)
#   the same with Range: bytes=0-99
#   GET /signed.pdf                (nginx, the same file; whole, then the same Range)
# Runs alternate Signet/nginx RUNS times so the machine's other load falls on both alike; each
# line is wrk's requests/s, and the summary the median of each with the ratios.
# Needs: cargo, curl, wrk and nginx (installed with apt-get when missing), python3.
# Env: RUNS (3), DURATION (seconds per wrk run, 10), CONNECTIONS (64), SIZE_KIB (115: the upload,
#      which signs at the default level to ~175 KB), SKIP_BUILD, CARGO_TARGET_DIR, SERVER_BIN (another
#      signet binary to measure, e.g. an older build for a before/after).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
runs="${RUNS:-3}"
duration="${DURATION:-10}"
connections="${CONNECTIONS:-64}"
cd "$repo"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)"
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_=sudo
  $sudo_ apt-get install -y "${missing[@]}" >/dev/null || {
    $sudo_ apt-get update >/dev/null
    $sudo_ apt-get install -y "${missing[@]}" >/dev/null
  }
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

[ -n "${SKIP_BUILD:-}" ] || cargo build -q --release -p signet -p signet-loadgen
signet="${SERVER_BIN:-$target/release/signet}"
loadgen="$target/release/signet-loadgen"

work="$(mktemp -d)"
server_pid=""
nginx_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "== machine: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Signet on a fresh data directory, with one signer and one signed document.
signet_port=$(free_port)
url="http://127.0.0.1:$signet_port"
"$signet" serve --data-dir "$work/data" --listen "127.0.0.1:$signet_port" >"$work/signet.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/data/initial-api-key" ] && break; sleep 0.1; done
for _ in $(seq 100); do curl -sf -o /dev/null "$url/healthz" && break; sleep 0.1; done
[ -s "$work/data/initial-api-key" ] || { echo "Signet did not start:" >&2; cat "$work/signet.log" >&2; exit 1; }
key="$(cat "$work/data/initial-api-key")"
read -r signer document < <(SIGNET_API_KEY=$key "$loadgen" --url "$url" sign-one --size-kib "${SIZE_KIB:-115}")

# nginx serves the bytes Signet serves, from its own prefix directory. Its workers may run as
# nobody (when this script runs as root), so the file and its directories are world-readable.
mkdir -p "$work/www" "$work/nginx/logs"
curl -sf -H "Authorization: Bearer $key" "$url/documents/$document/file" -o "$work/www/signed.pdf"
chmod 755 "$work" "$work/www"
chmod 644 "$work/www/signed.pdf"
nginx_port=$(free_port)
user_line=""
[ "$(id -u)" -ne 0 ] || user_line="user nobody nogroup;"
cat >"$work/nginx/nginx.conf" <<EOF
$user_line
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000000;
  default_type application/pdf;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
  }
}
EOF
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx/logs/start.log" &
nginx_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/signed.pdf" && break; sleep 0.1; done

size=$(stat -c %s "$work/www/signed.pdf")
nginx_copy="$work/nginx-copy.pdf"
curl -sf "http://127.0.0.1:$nginx_port/signed.pdf" -o "$nginx_copy"
cmp -s "$nginx_copy" "$work/www/signed.pdf" || { echo "nginx serves other bytes" >&2; exit 1; }
ranged=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -H "Authorization: Bearer $key" \
  -H 'Range: bytes=0-99' "$url/documents/$document/file")
[ "$ranged" = "206 100" ] || { echo "Signet's range answer: $ranged" >&2; exit 1; }
echo "== one signed document of $size bytes; Signet on $url, nginx $("$nginx_bin" -v 2>&1 | cut -d/ -f2) on port $nginx_port"

# wrk's requests/s for "$@" (URL and headers).
rate() {
  wrk -t2 -c"$connections" -d"${duration}s" "$@" | awk '/^Requests\/sec:/ {printf "%d", $2}'
}

# CPU time (ms, user + system) of the processes given.
cpu_ms() { for pid in "$@"; do awk '{print ($14 + $15) * 10}' "/proc/$pid/stat"; done | awk '{s += $1} END {print s}'; }

declare -A results
# measure NAME PIDS... -- wrk arguments: requests/s, and the CPU the serving processes spent
# per request (so a run disturbed by other work on the machine can be told apart).
measure() {
  local name="$1" pids=()
  shift
  while [ "$1" != "--" ]; do pids+=("$1"); shift; done
  shift
  local value before after
  before=$(cpu_ms "${pids[@]}")
  value=$(rate "$@")
  after=$(cpu_ms "${pids[@]}")
  results[$name]+="$value "
  printf '   %-34s %8s requests/s, %4s µs of server CPU per request\n' "$name" "$value" \
    "$(awk -v ms=$((after - before)) -v n="$value" -v d="$duration" 'BEGIN {printf "%d", ms * 1000 / (n * d)}')"
}

nginx_pids=("$nginx_pid" $(pgrep -P "$nginx_pid"))
auth=(-H "Authorization: Bearer $key")
range=(-H "Range: bytes=0-99")
for run in $(seq "$runs"); do
  echo "== run $run of $runs (load average $(cut -d' ' -f1 /proc/loadavg))"
  measure "signet GET /ca/ca.pem" "$server_pid" -- "$url/ca/ca.pem"
  measure "signet GET /signers/{id}" "$server_pid" -- "${auth[@]}" "$url/signers/$signer"
  measure "signet download (whole)" "$server_pid" -- "${auth[@]}" "$url/documents/$document/file"
  measure "nginx (whole)" "${nginx_pids[@]}" -- "http://127.0.0.1:$nginx_port/signed.pdf"
  measure "signet download (Range 100 B)" "$server_pid" -- "${auth[@]}" "${range[@]}" "$url/documents/$document/file"
  measure "nginx (Range 100 B)" "${nginx_pids[@]}" -- "${range[@]}" "http://127.0.0.1:$nginx_port/signed.pdf"
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "== medians of $runs runs ($size-byte file, $connections connections, ${duration} s each)"
for name in "signet GET /ca/ca.pem" "signet GET /signers/{id}" "signet download (whole)" \
  "nginx (whole)" "signet download (Range 100 B)" "nginx (Range 100 B)"; do
  printf '   %-34s %8s requests/s  (runs: %s)\n' "$name" "$(median "${results[$name]}")" "${results[$name]% }"
done
whole=$(median "${results[signet download (whole)]}")
nginx_whole=$(median "${results[nginx (whole)]}")
small=$(median "${results[signet download (Range 100 B)]}")
awk -v s="$whole" -v n="$nginx_whole" -v r="$small" 'BEGIN {
  printf "   download / nginx: %.2fx (goal >= 0.8x); Range 100 B / whole download: %.2fx (goal >= 1x)\n", s / n, r / s
}'
