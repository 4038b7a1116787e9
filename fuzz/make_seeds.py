#!/usr/bin/env python3
"""Writes the fuzz seed corpus: small PDFs of every shape the reader handles, the three "PDF
bombs" of issue 10, CSRs and personal numbers.

Usage: fuzz/make_seeds.py [--full-bombs DIR]

Writes fuzz/corpus/<target>/… (committed; re-running rewrites the same bytes). Standard library
only, plus `openssl` for the CSR seeds; those hold fresh keys, so they are written only when
fuzz/corpus/csr_parse is empty (or with --csr).

The bombs, as the issue measured them on the release server:
  (a) a cross-reference stream `/W [1 4 0] /Index [0 5 1000 12582912]`, Flate: a 61 KB file whose
      12.6 million rows the reader turns into map entries; and the same with `/W [1 0 0]`, one
      byte a row, filling the 64 MiB decode cap. Both are small as files, so the seeds are the
      real thing.
  (b) 8 object streams that decode to 64 MiB each, holding the AcroForm's fields: a 0.5 MB file.
      The seed has the same shape with 256 KiB streams (`--full-bombs` writes the real one).
  (c) 2,000 field objects that open `<</T (f` and never close, then 4 MiB of filler: a 4.3 MB
      file. The seed has 64 fields and 32 KiB of filler (`--full-bombs` writes the real one).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
PDF_TARGETS = ("pdf_check", "pdf_prepare")
HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
ID = b"/ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>]"

# ---------------------------------------------------------------- PDF writing


def stream(dict_body, data, flate=True):
    """A stream object's text; `dict_body` is the dictionary without `<<`/`>>` and /Length."""
    if flate:
        data = zlib.compress(data, 9)
        dict_body += b" /Filter /FlateDecode"
    return b"<< " + dict_body + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def lay_out(objects, start=HEADER):
    """Writes `objects` ([(number, text)]) after `start`; returns the bytes and their offsets."""
    out = bytearray(start)
    offsets = {}
    for number, text in objects:
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + text + b"\nendobj\n"
    return out, offsets


def table(offsets, size, trailer, first=0, declared=None):
    """A classic section covering objects `first`..`size` (free where `offsets` has none), with
    `/Size declared` (default `size`)."""
    out = b"xref\n%d %d\n" % (first, size - first)
    for number in range(first, size):
        if number in offsets:
            out += b"%010d 00000 n\r\n" % offsets[number]
        else:
            out += b"0000000000 65535 f\r\n"
    return out + b"trailer\n<< /Size %d " % (declared or size) + trailer + b" >>\n"


def classic(objects, trailer=b"/Root 1 0 R " + ID):
    out, offsets = lay_out(objects)
    size = max(offsets) + 1
    xref = len(out)
    out += table(offsets, size, trailer)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def xref_stream_file(objects, compressed=None, extra=b"", start=HEADER):
    """A file whose cross-reference data is a stream (object `size`); `compressed` maps object
    numbers to (object stream number, index) for objects stored in object streams."""
    compressed = compressed or {}
    out, offsets = lay_out(objects, start)
    xref_number = max(list(offsets) + list(compressed)) + 1
    offsets[xref_number] = len(out)
    rows = bytearray()
    for number in range(xref_number + 1):
        if number in compressed:
            container, index = compressed[number]
            rows += bytes([2]) + container.to_bytes(4, "big") + index.to_bytes(2, "big")
        elif number in offsets:
            rows += bytes([1]) + offsets[number].to_bytes(4, "big") + (0).to_bytes(2, "big")
        else:
            rows += bytes([0]) + (0).to_bytes(4, "big") + (65535).to_bytes(2, "big")
    body = b"/Type /XRef /Size %d /W [1 4 2] /Root 1 0 R " % (xref_number + 1) + ID + extra
    out += b"%d 0 obj\n" % xref_number + stream(body, bytes(rows)) + b"\nendobj\n"
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[xref_number]
    return bytes(out)


def object_stream(members, pad=0):
    """An object stream holding `members` ([(number, text)]), its content padded with `pad`
    blanks after the last member."""
    head = bytearray()
    body = bytearray()
    for number, text in members:
        head += b"%d %d " % (number, len(body))
        body += text + b"\n"
    body += b" " * pad
    return stream(b"/Type /ObjStm /N %d /First %d" % (len(members), len(head)), bytes(head + body))


def page_objects(pages=1, annots=b""):
    """Catalog 1, pages 2, font 3, then page/content pairs from 4."""
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(pages))
    objects = [
        (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
        (2, b"<< /Type /Pages /Kids [" + kids + b"] /Count %d /MediaBox [0 0 595 842] >>" % pages),
        (3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"),
    ]
    for i in range(pages):
        text = b"BT /F1 24 Tf 72 720 Td (Page %d) Tj ET" % (i + 1)
        objects.append((4 + 2 * i, b"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R" % (5 + 2 * i) + (annots if i == 0 else b"") + b" >>"))
        objects.append((5 + 2 * i, stream(b"", text, flate=False)))
    return objects


def with_catalog(objects, catalog):
    return [(1, catalog)] + [o for o in objects if o[0] != 1]


# ---------------------------------------------------------------- honest shapes


def honest_pdfs():
    seeds = {}
    seeds["classic-one-page.pdf"] = classic(page_objects(1))
    seeds["classic-three-pages.pdf"] = classic(page_objects(3))
    seeds["xref-stream.pdf"] = xref_stream_file(page_objects(1))

    # An AcroForm with a text field and an earlier (empty) signature field, classic table.
    form = with_catalog(page_objects(1, annots=b" /Annots [10 0 R 11 0 R]"),
                        b"<< /Type /Catalog /Pages 2 0 R /AcroForm 9 0 R >>")
    form += [
        (9, b"<< /Fields [10 0 R 11 0 R] /SigFlags 3 >>"),
        (10, b"<< /FT /Tx /T (name) /V (Jane) /Subtype /Widget /Rect [72 600 300 620] /P 4 0 R >>"),
        (11, b"<< /FT /Sig /T (Signature1) /Subtype /Widget /Rect [0 0 0 0] /F 132 /P 4 0 R >>"),
    ]
    seeds["form-fields.pdf"] = classic(form)

    # The same form with the AcroForm and its fields inside an object stream.
    direct = [o for o in form if o[0] not in (9, 10, 11)]
    members = [o for o in form if o[0] in (9, 10, 11)]
    direct.append((12, object_stream(members)))
    seeds["form-in-object-stream.pdf"] = xref_stream_file(
        direct, compressed={9: (12, 0), 10: (12, 1), 11: (12, 2)})

    # Nested fields (/Kids), indirect /Annots and /Fields arrays, a direct AcroForm.
    nested = with_catalog(page_objects(1, annots=b" /Annots 13 0 R"),
                          b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields 12 0 R >> >>")
    nested += [
        (10, b"<< /T (parent) /Kids [11 0 R] >>"),
        (11, b"<< /FT /Tx /T (child) /Parent 10 0 R /Subtype /Widget /Rect [1 1 2 2] /P 4 0 R >>"),
        (12, b"[10 0 R]"),
        (13, b"[11 0 R]"),
    ]
    seeds["form-nested-indirect.pdf"] = classic(nested)

    # An incremental update: a second section with /Prev that replaces the catalog.
    base = classic(page_objects(1))
    prev = base.rindex(b"startxref")
    prev_offset = int(base[prev:].split()[1])
    update, offsets = lay_out([(1, b"<< /Type /Catalog /Pages 2 0 R /Lang (sv) >>")], start=base)
    xref = len(update)
    update += b"xref\n0 1\n0000000000 65535 f\r\n1 1\n%010d 00000 n\r\n" % offsets[1]
    update += b"trailer\n<< /Size 6 /Root 1 0 R /Prev %d " % prev_offset + ID + b" >>\n"
    update += b"startxref\n%d\n%%%%EOF\n" % xref
    seeds["incremental-update.pdf"] = bytes(update)

    # A hybrid file: a classic table whose trailer points (/XRefStm) at a stream listing object 6.
    objects = page_objects(1) + [(6, b"<< /Producer (hybrid) >>")]
    out, offsets = lay_out(objects)
    stream_at = len(out)
    rows = b"".join(bytes([1]) + offsets[n].to_bytes(4, "big") + b"\0\0" for n in (6,))
    out += b"7 0 obj\n" + stream(b"/Type /XRef /Size 8 /W [1 4 2] /Index [6 1]", rows) + b"\nendobj\n"
    xref = len(out)
    out += table({n: o for n, o in offsets.items() if n != 6}, 6,
                 b"/Root 1 0 R /Info 6 0 R /XRefStm %d " % stream_at + ID, declared=8)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    seeds["hybrid.pdf"] = bytes(out)

    # Refusals: encrypted, certified with no changes allowed, not a PDF at all.
    seeds["encrypted.pdf"] = classic(page_objects(1) + [(6, b"<< /Filter /Standard /V 2 /R 3 /O <00> /U <00> /P -4 >>")],
                                     trailer=b"/Root 1 0 R /Encrypt 6 0 R " + ID)
    certified = with_catalog(page_objects(1), b"<< /Type /Catalog /Pages 2 0 R /Perms << /DocMDP 6 0 R >> >>")
    certified.append((6, b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /Reference [<< /Type /SigRef /TransformMethod /DocMDP /TransformParams << /Type /TransformParams /P 1 /V /1.2 >> >>] /Contents <00> /ByteRange [0 1 2 3] >>"))
    seeds["certified-no-changes.pdf"] = classic(certified)
    seeds["not-a-pdf.txt"] = b"%!PS-Adobe-3.0\nthis is not a PDF\n"

    # What a real tool writes: qpdf's object streams and linearization, when qpdf is there.
    if shutil.which("qpdf"):
        with tempfile.TemporaryDirectory() as work:
            source = os.path.join(work, "in.pdf")
            with open(source, "wb") as f:
                f.write(seeds["form-fields.pdf"])
            for name, args in {"qpdf-object-streams.pdf": ["--object-streams=generate"],
                               "qpdf-linearized.pdf": ["--linearize"]}.items():
                target = os.path.join(work, name)
                subprocess.run(["qpdf", "--deterministic-id"] + args + [source, target], check=True)
                with open(target, "rb") as f:
                    seeds[name] = f.read()
    else:
        print("notice: qpdf not found; its seeds not rewritten", file=sys.stderr)
    return seeds


# ---------------------------------------------------------------- the bombs of issue 10


def bomb_xref_rows(widths, index):
    """(a) A cross-reference stream whose Flate data decodes to every row `/Index` lists: all
    zero bytes (free entries, or with a zero-width type field, normal entries at offset 0)."""
    row_len = sum(widths)
    rows = sum(index[1::2])
    compressor = zlib.compressobj(9)
    data = bytearray()
    chunk = bytes(1 << 20)
    left = rows * row_len
    while left:
        take = min(left, len(chunk))
        data += compressor.compress(chunk[:take])
        left -= take
    data += compressor.flush()
    objects = page_objects(1)
    out, offsets = lay_out(objects)
    xref = len(out)
    w = b"[%s]" % b" ".join(b"%d" % n for n in widths)
    i = b"[%s]" % b" ".join(b"%d" % n for n in index)
    out += b"%d 0 obj\n<< /Type /XRef /Size %d /W " % (max(offsets) + 1, index[-2] + index[-1]) + w
    out += b" /Index " + i + b" /Root 1 0 R /Filter /FlateDecode /Length %d >>\nstream\n" % len(data)
    out += data + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def bomb_object_streams(streams, decoded):
    """(b) `streams` object streams of `decoded` bytes each (blank padding after one member, so
    Flate shrinks them ~1000-fold), each holding one field that the AcroForm lists."""
    fields = [20 + i for i in range(streams)]
    containers = [40 + i for i in range(streams)]
    refs = b" ".join(b"%d 0 R" % n for n in fields)
    objects = with_catalog(page_objects(1), b"<< /Type /Catalog /Pages 2 0 R /AcroForm 9 0 R >>")
    objects.append((9, b"<< /Fields [" + refs + b"] >>"))
    compressed = {}
    for field, container in zip(fields, containers):
        member = b"<< /FT /Tx /T (f%d) >>" % field
        objects.append((container, object_stream([(field, member)], pad=decoded - len(member) - 8)))
        compressed[field] = (container, 0)
    return xref_stream_file(objects, compressed=compressed)


def bomb_open_fields(fields, filler):
    """(c) `fields` field objects that open `<</T (f` and never close (each listed in the
    AcroForm and the cross-reference table), then `filler` bytes before the table."""
    numbers = [20 + i for i in range(fields)]
    refs = b" ".join(b"%d 0 R" % n for n in numbers)
    objects = with_catalog(page_objects(1), b"<< /Type /Catalog /Pages 2 0 R /AcroForm 9 0 R >>")
    objects.append((9, b"<< /Fields [" + refs + b"] >>"))
    out, offsets = lay_out(objects)
    for number in numbers:
        offsets[number] = len(out)
        out += b"%d 0 obj\n<</T (f" % number
    out += b"\n" + (b"A" * 79 + b"\n") * (filler // 80)
    xref = len(out)
    out += table(offsets, max(offsets) + 1, b"/Root 1 0 R " + ID)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def bombs(full):
    seeds = {
        "bomb-xref-stream-w140.pdf": bomb_xref_rows((1, 4, 0), (0, 5, 1000, 12582912)),
        # Just under the 64 MiB decode cap.
        "bomb-xref-stream-w100.pdf": bomb_xref_rows((1, 0, 0), (0, (64 << 20) - 4096)),
    }
    if full:
        seeds["bomb-object-streams.pdf"] = bomb_object_streams(8, 64 << 20)
        seeds["bomb-open-fields.pdf"] = bomb_open_fields(2000, 4 << 20)
    else:
        seeds["bomb-object-streams-small.pdf"] = bomb_object_streams(8, 256 << 10)
        seeds["bomb-open-fields-small.pdf"] = bomb_open_fields(64, 32 << 10)
    return seeds


# ---------------------------------------------------------------- CSRs and personal numbers


def csr_seeds():
    """CSRs made by openssl. The csr_parse target reads its first byte as a mode: even, the rest
    is text (PEM); odd, the rest is DER (the target base64-encodes it)."""
    if shutil.which("openssl") is None:
        print("notice: openssl not found; CSR seeds not rewritten", file=sys.stderr)
        return None
    seeds = {}
    keys = {
        "p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "p384": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "rsa2048": ["-newkey", "rsa:2048"],
        "ed25519": ["-newkey", "ed25519"],
    }
    subject = "/CN=Jane Doe/serialNumber=197001011234/emailAddress=jane@example.org/O=Example/C=SE"
    with tempfile.TemporaryDirectory() as work:
        for name, args in keys.items():
            pem_path = os.path.join(work, name + ".csr")
            subprocess.run(["openssl", "req", "-new", "-nodes", "-keyout", os.devnull, "-subj",
                            subject, "-out", pem_path] + args,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            der = subprocess.run(["openssl", "req", "-in", pem_path, "-outform", "DER"],
                                 check=True, stdout=subprocess.PIPE).stdout
            with open(pem_path, "rb") as f:
                pem = f.read()
            seeds[name + "-pem"] = b"\x00" + pem
            seeds[name + "-der"] = b"\x01" + der
    seeds["pem-crlf-new-label"] = b"\x00" + seeds["p256-pem"][1:].replace(
        b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST").replace(b"\n", b"\r\n")
    seeds["not-base64"] = b"\x00-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n"
    return seeds


def luhn(nine):
    """The check digit over the nine digits `YYMMDDNNN`."""
    total = 0
    for i, digit in enumerate(nine):
        product = int(digit) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return str((10 - total % 10) % 10)


def personal_number_seeds():
    """Two bytes of "today" (days after 1900-01-01, big-endian), then the text."""
    import datetime
    days = (datetime.date(2026, 5, 10) - datetime.date(1900, 1, 1)).days
    today = days.to_bytes(2, "big")

    def number(short_date, serial):
        return short_date + serial + luhn(short_date + serial)

    texts = {
        "full": "19" + number("700101", "123"),
        "full-dash": "19700101-" + number("700101", "123")[6:],
        "short": number("700101", "123"),
        "short-dash": "700101-" + number("700101", "123")[6:],
        "short-plus": "190101+" + number("190101", "123")[6:],
        "coordination": "19" + number("700161", "123"),
        "leap-day": "20" + number("000229", "456"),
        "not-a-leap-day": "19" + number("000229", "456"),
        "bad-check": "19700101" + "1230" if luhn("700101123") != "0" else "197001011231",
        "future": "20" + number("990101", "123"),
        "letters": "19700101-12A9",
        "empty": "",
        "arabic-digits": "١٩٧٠٠١٠١١٢٣٩",
    }
    texts = {name: text.encode() for name, text in texts.items()}
    return {name: today + text for name, text in texts.items()}


def multipart(parts, boundary=b"fuzzboundary"):
    """A multipart/form-data body; `parts` is [(name, value)] or [(name, value, file_name)]."""
    out = bytearray()
    for part in parts:
        name, value = part[0], part[1]
        out += b"--" + boundary + b"\r\n"
        out += b'Content-Disposition: form-data; name="' + name + b'"'
        if len(part) > 2:
            out += b'; filename="' + part[2] + b'"\r\nContent-Type: application/pdf'
        out += b"\r\n\r\n" + value + b"\r\n"
    return bytes(out + b"--" + boundary + b"--\r\n")


def order_form_seeds(pdf):
    """A route byte (even: POST /orders, odd: POST /anonymize), the Content-Type, a newline, the
    body. The order seeds name the people of the target's own directory file."""
    form = b"multipart/form-data; boundary=fuzzboundary\n"
    jdoe = b'{"source":"INTERNAL","identifier":"sAMAccountName=jdoe","attributes":{}}'
    elsa = (b'{"source":"EXTERNAL","identifier":"200001011907","priorityGroup":2,'
            b'"attributes":{"mail":{"value":"elsa@example.net"},"mobile":{"value":"+46700000000"}}}')
    order = [(b"title", b"A signing order"), (b"description", b"made by the fuzz seeds"),
             (b"upload", pdf, b"contract.pdf"), (b"dueDate", b"2030-12-24T00:00:00"),
             (b"solicitor", jdoe), (b"signers", jdoe), (b"signers", elsa),
             (b"linkType", b"ORDER_PAGE"), (b"tags", b'["a","b"]')]
    return {
        "order-complete": b"\x00" + form + multipart(order),
        "order-without-upload": b"\x00" + form + multipart([p for p in order if p[0] != b"upload"]),
        "order-bad-signer-json": b"\x00" + form + multipart(
            [p for p in order if p[0] != b"signers"] + [(b"signers", b'{"source":')]),
        "order-unknown-person": b"\x00" + form + multipart(
            [p for p in order if p[0] != b"solicitor"]
            + [(b"solicitor", b'{"source":"EXTERNAL","identifier":"19700101-1233"}')]),
        "order-quoted-boundary": b'\x00multipart/form-data; boundary="a b"\n'
            + multipart([(b"title", b"t")], boundary=b"a b"),
        "order-not-multipart": b"\x00application/json\n{}",
        "anonymize-json": b'\x01application/json\n{"externalId": "EXTERNAL:200001011907"}',
        "anonymize-urlencoded": b"\x01application/x-www-form-urlencoded\ninternalId=jdoe&x=%41+b",
        "anonymize-multipart": b"\x01" + form + multipart([(b"ldapSearch", b"uid=jdoe")]),
        "anonymize-multipart-file": b"\x01" + form + multipart([(b"externalId", b"x", b"f.txt")]),
    }


# ---------------------------------------------------------------- writing


def write(target, seeds):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full-bombs", metavar="DIR",
                        help="also write the full-size bombs (b) and (c) to DIR (not seeds: too large)")
    parser.add_argument("--csr", action="store_true", help="rewrite the CSR seeds (new keys)")
    args = parser.parse_args()
    pdfs = honest_pdfs()
    pdfs.update(bombs(full=False))
    for target in PDF_TARGETS:
        write(target, pdfs)
    csr_dir = os.path.join(CORPUS, "csr_parse")
    csrs = None
    if args.csr or not os.path.isdir(csr_dir) or not os.listdir(csr_dir):
        csrs = csr_seeds()
    if csrs is not None:
        write("csr_parse", csrs)
    write("personal_number", personal_number_seeds())
    write("order_form", order_form_seeds(pdfs["classic-one-page.pdf"]))
    if args.full_bombs:
        os.makedirs(args.full_bombs, exist_ok=True)
        for name, data in bombs(full=True).items():
            with open(os.path.join(args.full_bombs, name), "wb") as f:
                f.write(data)
        print("wrote the full-size bombs to " + args.full_bombs)


if __name__ == "__main__":
    main()
