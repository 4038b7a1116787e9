"""A real SMTP receiver for Signet's tests and the outbox benchmark (aiosmtpd).

Usage: smtp_sink.py PORT DIR [--ids-only]

Each message received is parsed (Python's email package, so encoded words and transfer encodings
are undone by a parser we did not write) and written to DIR/<n>.json as {"to", "messageId",
"subject", "text", "html", "from"}: first as .tmp, then renamed, so a reader never sees half a
message. With --ids-only only
the Message-ID header is appended to DIR/ids.txt (the benchmark's cheap mode). Prints "ready"
once it listens.
"""

import email
import email.policy
import itertools
import json
import os
import sys
import time

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, directory, ids_only):
        self.directory = directory
        self.ids_only = ids_only
        self.counter = itertools.count()
        self.ids = open(os.path.join(directory, "ids.txt"), "a", buffering=1) if ids_only else None

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or envelope.content
        if self.ids_only:
            message_id = b""
            for line in content.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    message_id = line.split(b":", 1)[1].strip()
                    break
                if not line:
                    break
            self.ids.write(message_id.decode("ascii", "replace") + "\n")
            return "250 OK"
        message = email.message_from_bytes(content, policy=email.policy.default)
        plain = message.get_body(("plain",))
        html = message.get_body(("html",))
        record = {
            "to": envelope.rcpt_tos,
            "from": str(message["from"]),
            "messageId": str(message["message-id"]),
            "subject": str(message["subject"]),
            "text": plain.get_content() if plain else None,
            "html": html.get_content() if html else None,
        }
        n = next(self.counter)
        tmp = os.path.join(self.directory, f"{os.getpid()}-{n}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, f"{os.getpid()}-{n}.json"))
        return "250 OK"


def main():
    port = int(sys.argv[1])
    directory = sys.argv[2]
    ids_only = "--ids-only" in sys.argv[3:]
    os.makedirs(directory, exist_ok=True)
    controller = Controller(Handler(directory, ids_only), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
