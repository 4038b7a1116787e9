#!/usr/bin/env bash
# Runs every Signet test. Installs what the tests need first, so it works on a fresh machine:
#   - Debian packages: openssl, poppler-utils (pdfsig), qpdf, ghostscript, librsvg2-bin and
#     libreoffice-writer-nogui (PDF corpus),
#     postgresql-client (pg_isready), slapd and ldap-utils (a real OpenLDAP for the directory tests;
#     the tests start their own slapd on a free port, never the system one), curl (the
#     reference's own order command is run verbatim), chromium and chromium-driver (a real browser
#     for the signer pages, driven over WebDriver; never a browser download);
#   - Garage (a real S3-compatible object store, AGPL, run only as a test server and never linked),
#     built with cargo into ${SIGNET_CI_CACHE:-~/.cache/signet-ci}/garage when missing (about 8
#     minutes cold on 2 cores); the tests start their own single-node Garage on free ports;
#   - a Python venv with the signature oracles (pyHanko), PDF producers (reportlab, pypdf), a real
#     SMTP server (aiosmtpd) and the Standard Webhooks verifier (standardwebhooks).
# PostgreSQL tests run against $SIGNET_TEST_POSTGRES_URL; outside CI they skip with a notice when it
# is unset. With CI set, an unreachable PostgreSQL fails the run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

apt_packages=(openssl poppler-utils qpdf ghostscript librsvg2-bin libreoffice-writer-nogui
  postgresql-client python3-venv slapd ldap-utils curl chromium chromium-driver)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "== installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv="${SIGNET_ORACLE_VENV:-$repo/.venv}"
requirements="$repo/scripts/oracle-requirements.txt"
stamp="$venv/.signet-requirements"
if [ ! -x "$venv/bin/pyhanko" ] || ! cmp -s "$requirements" "$stamp"; then
  echo "== preparing the oracle venv at $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi
export SIGNET_ORACLE_VENV="$venv"

ci_cache="${SIGNET_CI_CACHE:-$HOME/.cache/signet-ci}"
garage_version="2.5.0"
garage="$ci_cache/garage/bin/garage"
if [ ! -x "$garage" ] || ! "$garage" --version 2>/dev/null | grep -q "$garage_version"; then
  echo "== building Garage $garage_version into $ci_cache/garage (the object-store tests' S3 server)"
  cargo install garage --locked --version "$garage_version" --root "$ci_cache/garage" \
    --target-dir "$ci_cache/garage-build" -q
fi
export SIGNET_TEST_GARAGE="$garage"

if [ -n "${CI:-}" ]; then
  export SIGNET_TEST_POSTGRES_URL="${SIGNET_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
fi
if [ -n "${SIGNET_TEST_POSTGRES_URL:-}" ]; then
  if ! psql "$SIGNET_TEST_POSTGRES_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    echo "PostgreSQL at $SIGNET_TEST_POSTGRES_URL is unreachable; the PostgreSQL tests cannot run." >&2
    exit 1
  fi
  echo "== PostgreSQL tests run against $SIGNET_TEST_POSTGRES_URL"
else
  echo "== notice: SIGNET_TEST_POSTGRES_URL is not set; PostgreSQL variants will skip"
fi

echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# cargo prints one "test result" line per test binary, the last one usually a doc-test run with
# nothing in it; one closing line with the totals says what the whole suite did.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
