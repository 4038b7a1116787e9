"""Sends N small multipart messages to an SMTP server over C reused connections and prints the
rate: the ceiling of the receiver (and of this Python client) without Signet in the way.

Usage: smtp_blast.py PORT N C
"""

import smtplib
import sys
import threading
import time
from email.message import EmailMessage


def main():
    port, total, connections = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    per = total // connections

    def work(k):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for i in range(per):
                message = EmailMessage()
                message["From"] = "bench@example.org"
                message["To"] = "elsa@example.net"
                message["Subject"] = "Please sign: Bench"
                message["Message-ID"] = f"<blast-{k}-{i}@bench>"
                message.set_content("Hello,\n\n" + "x" * 600)
                message.add_alternative("<p>Hello,</p>" + "<p>" + "x" * 600 + "</p>", subtype="html")
                smtp.send_message(message)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(connections)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    sent = per * connections
    print(f"{sent} mails in {elapsed:.2f} s: {sent / elapsed:.0f} mails/s")


if __name__ == "__main__":
    main()
