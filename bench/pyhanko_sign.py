#!/usr/bin/env python3
"""pyHanko's side of the engine benchmark: sign PDFs in-process with a P-256 key.

Usage: pyhanko_sign.py KEY.pem CERT.pem ONE_PAGE.pdf TWENTY_MB.pdf [ROUNDS]

Signs the one-page PDF ROUNDS times (default 200) and the 20 MB PDF 3 times, each from the
bytes in memory to a new in-memory output, and prints documents per second and seconds per
20 MB signature. The same inputs go through Signet's criterion benchmark.
"""

import io
import sys
import time

from pyhanko.sign import signers
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter


def sign_once(signer, data):
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    meta = signers.PdfSignatureMetadata(field_name="Signature1")
    out = signers.sign_pdf(writer, meta, signer=signer)
    return out.getbuffer().nbytes


def main(key, cert, one_page, twenty_mb, rounds=200):
    signer = signers.SimpleSigner.load(key, cert)
    small = open(one_page, "rb").read()
    large = open(twenty_mb, "rb").read()
    sign_once(signer, small)  # warm-up
    start = time.perf_counter()
    for _ in range(rounds):
        sign_once(signer, small)
    elapsed = time.perf_counter() - start
    print(f"pyHanko 1-page: {rounds / elapsed:.1f} documents/s ({elapsed / rounds * 1e3:.2f} ms each)")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        sign_once(signer, large)
        times.append(time.perf_counter() - start)
    print(f"pyHanko 20 MB: {min(times) * 1e3:.0f} ms (best of 3)")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*args[:4], *(int(a) for a in args[4:5]))
