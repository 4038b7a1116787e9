#!/usr/bin/env python3
"""An RFC 3161 timestamp authority that is not Signet: `openssl ts -reply` behind a small HTTP
server, for Signet's external-TSA client tests. Standard library only.

Usage: openssl_tsa.py DIR init | openssl_tsa.py DIR PORT WORK

On first use in DIR it makes, with the openssl CLI, a root CA (root.pem), a TSA certificate
issued by it with the critical extended key usage timeStamping (tsa.pem, tsa.key) and an unrelated
root (other-root.pem, for "untrusted TSA" tests); `init` stops there. Otherwise it listens on
127.0.0.1:PORT (0 = any free port) and prints `PORT <n>` on a line of its own once it accepts
connections. Each process keeps its own `openssl ts` configuration and serial file in WORK, so
several may serve the same DIR at once.

Paths (every one POST, application/timestamp-query in, application/timestamp-reply out):
  /tsr                a fresh token from `openssl ts -reply`
  /basic              the same, only with HTTP basic auth tsa-user / tsa-pass (else 401)
  /replay             the first token this path issued, for every later request (a replay)
  /status/500         HTTP 500
  /garbage            200 with bytes that are not DER
  /huge               200 with 1 MiB announced in Content-Length
  /huge-unannounced   200 with 1 MiB and no Content-Length (the body ends when the socket closes)
  /hang               reads the request and never answers
"""

import base64
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time

DIR = os.path.abspath(sys.argv[1])
MODE = sys.argv[2] if len(sys.argv) > 2 else "0"

TS_CNF = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = {work}/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/root.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 0
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""

TSA_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def openssl(*args):
    subprocess.run(["openssl", *args], cwd=DIR, check=True, capture_output=True)


def make_pki():
    if os.path.exists(os.path.join(DIR, "other-root.pem")):
        return
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "root.key", "-out", "root.pem", "-days", "3650",
            "-subj", "/CN=Test TSA Root (openssl)",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr",
            "-subj", "/CN=Test TSA (openssl)")
    with open(os.path.join(DIR, "tsa.ext"), "w") as f:
        f.write(TSA_EXT)
    openssl("x509", "-req", "-in", "tsa.csr", "-CA", "root.pem", "-CAkey", "root.key",
            "-CAcreateserial", "-out", "tsa.pem", "-days", "730", "-extfile", "tsa.ext")
    # Written last: its presence says the directory is complete.
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "other-root.key", "-out", "other-root.pem", "-days", "3650",
            "-subj", "/CN=Unrelated Root",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


WORK = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else None
CONFIG = os.path.join(WORK, "ts.cnf") if WORK else None


def write_config():
    with open(os.path.join(WORK, "serial"), "w") as f:
        f.write("01\n")
    with open(CONFIG, "w") as f:
        f.write(TS_CNF.format(dir=DIR, work=WORK))


# `openssl ts -reply` keeps its serial in a file: one reply at a time.
REPLY_LOCK = threading.Lock()
REPLAYED = {}


def reply(query):
    with REPLY_LOCK, tempfile.TemporaryDirectory() as work:
        query_path = os.path.join(work, "query.tsq")
        reply_path = os.path.join(work, "reply.tsr")
        with open(query_path, "wb") as f:
            f.write(query)
        subprocess.run(["openssl", "ts", "-reply", "-config", CONFIG,
                        "-queryfile", query_path, "-out", reply_path],
                       cwd=DIR, check=True, capture_output=True)
        with open(reply_path, "rb") as f:
            return f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="application/timestamp-reply", length=True):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        query = self.rfile.read(length)
        path = self.path
        if path == "/tsr":
            self.send(200, reply(query))
        elif path == "/basic":
            expected = "Basic " + base64.b64encode(b"tsa-user:tsa-pass").decode()
            if self.headers.get("Authorization") != expected:
                self.send(401, b"credentials required", "text/plain")
            else:
                self.send(200, reply(query))
        elif path == "/replay":
            if "token" not in REPLAYED:
                REPLAYED["token"] = reply(query)
            self.send(200, REPLAYED["token"])
        elif path == "/status/500":
            self.send(500, b"internal error", "text/plain")
        elif path == "/garbage":
            self.send(200, b"this is not a TimeStampResp at all")
        elif path == "/huge":
            self.send(200, b"\x30" * (1024 * 1024))
        elif path == "/huge-unannounced":
            self.close_connection = True
            self.send(200, b"\x30" * (1024 * 1024), length=False)
        elif path == "/hang":
            time.sleep(3600)
        else:
            self.send(404, b"no such path", "text/plain")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    os.makedirs(DIR, exist_ok=True)
    make_pki()
    if MODE == "init":
        return
    write_config()
    server = Server(("127.0.0.1", int(MODE)), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
