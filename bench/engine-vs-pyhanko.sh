#!/usr/bin/env bash
# Signet's PDF engine beside pyHanko, on the same machine, in one run, on the same PDFs.
# Needs the oracle venv (scripts/test.sh makes it). Prints both sides' figures.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SIGNET_ORACLE_VENV:-$repo/.venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$repo"
cargo run -q --release -p signet-testkit --example write_fixtures -- "$work"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/key.pem"
openssl req -x509 -new -key "$work/key.pem" -subj /CN=bench -days 30 -out "$work/cert.pem"
echo "== pyHanko $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pyhanko"))')"
"$venv/bin/python" bench/pyhanko_sign.py "$work/key.pem" "$work/cert.pem" \
  "$work/one-page.pdf" "$work/twenty-mb.pdf" "${PYHANKO_ROUNDS:-200}"
echo "== Signet (criterion)"
cargo bench -q -p signet-pdf --bench engine -- --noplot 2>&1 | grep -E "^(prepare|20 MB)|time:"
