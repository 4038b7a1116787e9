"""A webhook receiver for the tests: verifies every request with the `standardwebhooks` package
(a verifier Signet did not write) and appends one JSON line per request to a record file.

Usage: webhook_receiver.py SECRET RECORD_FILE [FAIL_FIRST]
SECRET is `whsec_…`, or `@PATH` for a file holding it (read at each request, so the receiver can
start before the server has generated its secret).
Prints the port it listens on (127.0.0.1, chosen by the system) as its first line of output.
The first FAIL_FIRST attempts of each message (by `webhook-id`) are answered 500, after being
verified and recorded; the rest are answered 204 when they verify and 400 when they do not.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

secret, record_path = sys.argv[1], sys.argv[2]
fail_first = int(sys.argv[3]) if len(sys.argv) > 3 else 0


def current_webhook():
    if secret.startswith("@"):
        with open(secret[1:], encoding="utf-8") as file:
            return Webhook(file.read().strip())
    return Webhook(secret)

lock = threading.Lock()
attempts = {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = {
            "path": self.path,
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "contentType": headers.get("content-type"),
        }
        try:
            entry["body"] = current_webhook().verify(body, headers)
            entry["verified"] = True
        except Exception as error:  # the verifier's refusal, recorded for the test to read
            entry["verified"] = False
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["raw"] = body.decode("utf-8", "replace")
        with lock:
            attempts[entry["id"]] = attempts.get(entry["id"], 0) + 1
            failing = attempts[entry["id"]] <= fail_first
            status = 500 if failing else (204 if entry["verified"] else 400)
            entry["answered"] = status
            with open(record_path, "a", encoding="utf-8") as record:
                record.write(json.dumps(entry) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
