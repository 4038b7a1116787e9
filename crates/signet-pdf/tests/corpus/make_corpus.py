#!/usr/bin/env python3
"""Generate a corpus of PDFs from different producers for signing tests.

Usage: make_corpus.py OUTDIR [--p12 FILE --p12-pass PW] [--only NAME,...]

Writes OUTDIR/<name>.pdf for every entry and OUTDIR/manifest.json:
  {"<name>": {"producer": "...", "signatures": <existing signatures>,
              "pyhanko_args": [...extra args pyHanko validation needs...],
              "refuse": true}}     (only on entries a signer must refuse)

Run with the oracle venv's python (reportlab, pypdf, pyHanko, Pillow); it also calls
gs/ps2pdf, rsvg-convert, qpdf and openssl. Every PDF is made at run time, so nothing large is
committed. Without --p12 the "already signed by pyHanko" entry is skipped (its signature must
chain to the CA the tests trust).
"""

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
BIN = os.path.dirname(PY)


def run(*args, **kw):
    subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


# ---------------------------------------------------------------- producers


def reportlab_pdf(path, pages=2, text="reportlab", links=False):
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(path, pagesize=A4)
    c.setTitle("Signet corpus: " + text)
    for i in range(pages):
        c.setFont("Helvetica", 14)
        c.drawString(72, 760, f"{text} page {i + 1} of {pages}")
        c.drawString(72, 740, "Ünïcödé and (parens) \\ backslash")
        if links:
            c.linkURL("https://example.org/", (72, 700, 300, 720), relative=0)
        c.showPage()
    c.save()


def make_reportlab(out):
    reportlab_pdf(out, pages=2, links=True)


def make_many_pages(out):
    reportlab_pdf(out, pages=300, text="many pages")


def make_big(out):
    """About 20 MB: an incompressible image on one page."""
    from PIL import Image
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas
    from reportlab import rl_config

    rl_config.useA85 = 0
    side = 2600  # 2600 * 2600 * 3 bytes of noise ~ 20 MB
    img = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    c = canvas.Canvas(out, pagesize=A4)
    c.drawImage(ImageReader(img), 36, 36, width=520, height=520)
    c.drawString(72, 800, "big")
    c.showPage()
    c.save()


def make_form(out):
    """An AcroForm with a text field and a check box (reportlab's acroform)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(out, pagesize=A4)
    c.drawString(72, 780, "A form")
    c.acroForm.textfield(name="fullName", tooltip="Name", x=72, y=700, width=300, height=20, value="Ada")
    c.acroForm.checkbox(name="agree", x=72, y=650, checked=True)
    c.showPage()
    c.save()


def make_form_objstreams(out, work):
    """The form above with its AcroForm, fields and pages moved into object streams."""
    src = os.path.join(work, "form-objstm-src.pdf")
    make_form(src)
    run("qpdf", "--object-streams=generate", src, out)


def make_pypdf(out, work):
    """pypdf writer output: pages of two reportlab files merged."""
    from pypdf import PdfReader, PdfWriter

    a = os.path.join(work, "pypdf-a.pdf")
    b = os.path.join(work, "pypdf-b.pdf")
    reportlab_pdf(a, pages=1, text="pypdf A")
    reportlab_pdf(b, pages=2, text="pypdf B")
    w = PdfWriter()
    for src in (a, b):
        for page in PdfReader(src).pages:
            w.add_page(page)
    w.add_metadata({"/Title": "pypdf merge"})
    with open(out, "wb") as f:
        w.write(f)


def make_ghostscript(out, work):
    ps = os.path.join(work, "gs.ps")
    with open(ps, "w") as f:
        f.write(
            "%!PS\n/Helvetica findfont 20 scalefont setfont\n"
            "72 720 moveto (Ghostscript page 1) show\n"
            "newpath 72 600 moveto 300 650 lineto 2 setlinewidth stroke showpage\n"
            "72 720 moveto (Ghostscript page 2) show showpage\n"
        )
    run("ps2pdf", ps, out)


def make_cairo(out, work):
    svg = os.path.join(work, "cairo.svg")
    with open(svg, "w") as f:
        f.write(
            '<svg xmlns="http://www.w3.org/2000/svg" width="595" height="842">'
            '<rect x="50" y="50" width="200" height="100" fill="teal"/>'
            '<text x="60" y="200" font-size="24">cairo via rsvg-convert</text></svg>'
        )
    run("rsvg-convert", "-f", "pdf", "-o", out, svg)


def make_libreoffice(out, work):
    """LibreOffice Writer's PDF export, from a flat ODF text document."""
    fodt = os.path.join(work, "writer.fodt")
    with open(fodt, "w") as f:
        f.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
            'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
            'office:version="1.2" office:mimetype="application/vnd.oasis.opendocument.text">'
            "<office:body><office:text>"
            "<text:h>LibreOffice Writer</text:h>"
            "<text:p>A contract exported to PDF by LibreOffice, then signed by Signet.</text:p>"
            "</office:text></office:body></office:document>\n"
        )
    profile = "file://" + os.path.join(work, "lo-profile")
    run(
        "soffice", "--headless", "--norestore", f"-env:UserInstallation={profile}",
        "--convert-to", "pdf", "--outdir", work, fodt,
    )
    os.replace(os.path.join(work, "writer.pdf"), out)


def make_objstreams(out, work):
    src = os.path.join(work, "objstm-src.pdf")
    reportlab_pdf(src, pages=3, text="object streams")
    run("qpdf", "--object-streams=generate", src, out)


def make_linearized(out, work):
    src = os.path.join(work, "lin-src.pdf")
    reportlab_pdf(src, pages=4, text="linearized")
    run("qpdf", "--linearize", src, out)


def make_linearized_objstreams(out, work):
    src = os.path.join(work, "linos-src.pdf")
    reportlab_pdf(src, pages=4, text="linearized with object streams")
    run("qpdf", "--linearize", "--object-streams=generate", src, out)


def make_pdf20(out, work):
    src = os.path.join(work, "pdf20-src.pdf")
    reportlab_pdf(src, pages=1, text="PDF 2.0")
    run("qpdf", "--force-version=2.0", src, out)


def make_qdf(out, work):
    src = os.path.join(work, "qdf-src.pdf")
    reportlab_pdf(src, pages=1, text="QDF")
    run("qpdf", "--qdf", src, out)


def make_incremental(out, work):
    """A file with an earlier incremental update (pyHanko adds an /Info title)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils import generic

    src = os.path.join(work, "incr-src.pdf")
    reportlab_pdf(src, pages=1, text="incremental")
    with open(src, "rb") as inf:
        w = IncrementalPdfFileWriter(inf)
        info = w.set_info(generic.DictionaryObject({generic.NameObject("/Title"): generic.TextStringObject("updated")}))
        with open(out, "wb") as outf:
            w.write(outf)


def make_pyhanko_signed(out, work, p12, p12_pass):
    src = os.path.join(work, "signed-src.pdf")
    reportlab_pdf(src, pages=1, text="already signed by pyHanko")
    passfile = os.path.join(work, "p12pass")
    with open(passfile, "w") as f:
        f.write(p12_pass)
    run(os.path.join(BIN, "pyhanko"), "sign", "addsig", "--field", "1/100,100,300,150/Existing",
        "pkcs12", "--passfile", passfile, src, out, p12)


def make_certified(out, work, p12, p12_pass, no_changes):
    """A certification signature (DocMDP) made with pyHanko's API: /P 2 (form filling and
    signing allowed) or /P 1 (no changes allowed)."""
    from pyhanko.sign import fields, signers
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    src = os.path.join(work, "certified-src.pdf")
    reportlab_pdf(src, pages=1, text="certified")
    signer = signers.SimpleSigner.load_pkcs12(p12, passphrase=p12_pass.encode())
    perms = fields.MDPPerm.NO_CHANGES if no_changes else fields.MDPPerm.FILL_FORMS
    meta = signers.PdfSignatureMetadata(field_name="Certification", certify=True, docmdp_permissions=perms)
    with open(src, "rb") as inf:
        w = IncrementalPdfFileWriter(inf)
        with open(out, "wb") as outf:
            signers.sign_pdf(w, meta, signer=signer, output=outf)


def make_hybrid(out):
    """A hybrid-reference file: a classic table whose trailer points (/XRefStm) at a
    cross-reference stream for objects kept in an object stream."""
    objs = {}
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[2] = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
    objs[3] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
    content = b"BT /F1 24 Tf 72 700 Td (hybrid reference file) Tj ET"
    objs[4] = b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
    # Object 5 (the font) lives in object stream 6.
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    header = b"5 0 "
    objstm = header + font
    data = zlib.compress(objstm)
    objs[6] = b"<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\nstream\n" % (len(header), len(data)) + data + b"\nendstream"
    buf = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for n in sorted(objs):
        offsets[n] = len(buf)
        buf += b"%d 0 obj\n" % n + objs[n] + b"\nendobj\n"
    # The cross-reference stream (object 7) covers object 5 (type 2) only.
    rows = bytes([2]) + (6).to_bytes(2, "big") + (0).to_bytes(1, "big")
    offsets[7] = len(buf)
    buf += (b"7 0 obj\n<< /Type /XRef /Size 8 /Index [5 1] /W [1 2 1] /Length %d >>\nstream\n" % len(rows)) + rows + b"\nendstream\nendobj\n"
    xref = len(buf)
    buf += b"xref\n0 8\n0000000000 65535 f\r\n"
    for n in range(1, 8):
        if n == 5:
            buf += b"0000000000 00000 f\r\n"  # older readers see it free; /XRefStm has it
        else:
            buf += b"%010d 00000 n\r\n" % offsets[n]
    buf += b"trailer\n<< /Size 8 /Root 1 0 R /XRefStm %d >>\nstartxref\n%d\n%%%%EOF\n" % (offsets[7], xref)
    with open(out, "wb") as f:
        f.write(buf)


def classic_base(objs, version=b"1.4", trailer_extra=b""):
    buf = bytearray(b"%PDF-" + version + b"\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for n in sorted(objs):
        offsets[n] = len(buf)
        buf += b"%d 0 obj\n" % n + objs[n] + b"\nendobj\n"
    size = max(objs) + 1
    xref = len(buf)
    buf += b"xref\n0 %d\n0000000000 65535 f\r\n" % size
    for n in range(1, size):
        buf += (b"%010d 00000 n\r\n" % offsets[n]) if n in offsets else b"0000000000 00000 f\r\n"
    buf += b"trailer\n<< /Size %d /Root 1 0 R" % size + trailer_extra + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(buf)


def make_indirect_arrays(out):
    """Indirect /Annots and /Fields arrays, an indirect AcroForm, an existing text field,
    and reals that a float round trip would change."""
    content = b"BT /F1 18 Tf 72 700 Td (indirect arrays) Tj ET"
    objs = {
        1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 7 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.303937007874 841.889763779528] "
           b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R /Annots 6 0 R >>",
        4: b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        6: b"[9 0 R]",
        7: b"<< /Fields 8 0 R /DA (/Helv 0 Tf 0 g) /DR << /Font << /Helv 5 0 R >> >> >>",
        8: b"[9 0 R]",
        9: b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (Signature1) /V (taken name) "
           b"/Rect [72.123456789 600 300.987654321 620] /P 3 0 R /F 4 >>",
    }
    with open(out, "wb") as f:
        f.write(classic_base(objs))


def make_direct_acroform(out):
    """A direct AcroForm dictionary inside the catalog, with a direct /Annots array."""
    content = b"BT /F1 18 Tf 72 700 Td (direct acroform) Tj ET"
    objs = {
        1: b"<</Type/Catalog/Pages 2 0 R/AcroForm<</Fields[6 0 R]/SigFlags 1/DA(/Helv 0 Tf 0 g)>>/Lang(en-GB)>>",
        2: b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        3: b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Resources<</Font<</F1 5 0 R>>>>/Contents 4 0 R/Annots[6 0 R]>>",
        4: b"<</Length %d>>\nstream\n" % len(content) + content + b"\nendstream",
        5: b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
        6: b"<</Type/Annot/Subtype/Widget/FT/Tx/T(name)/Rect[72 600 300 620]/P 3 0 R>>",
    }
    with open(out, "wb") as f:
        f.write(classic_base(objs))


def make_page_tree(out):
    """Nested page tree with inherited MediaBox/Resources and a page 1 deep inside."""
    content = b"BT /F1 18 Tf 72 700 Td (nested page tree) Tj ET"
    objs = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R 8 0 R] /Count 2 /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> >>",
        3: b"<< /Type /Pages /Parent 2 0 R /Kids [6 0 R] /Count 1 >>",
        4: b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        6: b"<< /Type /Page /Parent 3 0 R /Contents 4 0 R >>",
        8: b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Rotate 90 >>",
    }
    with open(out, "wb") as f:
        f.write(classic_base(objs))


# ---------------------------------------------------------------- driver

ENTRIES = [
    ("reportlab", "reportlab (classic xref, link annotation)", lambda o, w, a: make_reportlab(o)),
    ("ghostscript", "ghostscript ps2pdf", lambda o, w, a: make_ghostscript(o, w)),
    ("cairo", "cairo via rsvg-convert", lambda o, w, a: make_cairo(o, w)),
    ("pypdf", "pypdf writer", lambda o, w, a: make_pypdf(o, w)),
    ("libreoffice", "LibreOffice Writer --convert-to pdf", lambda o, w, a: make_libreoffice(o, w)),
    ("form", "reportlab AcroForm (text field, check box)", lambda o, w, a: make_form(o)),
    ("form-objstreams", "reportlab AcroForm moved into object streams by qpdf", lambda o, w, a: make_form_objstreams(o, w)),
    ("objstreams", "qpdf --object-streams=generate (xref stream)", lambda o, w, a: make_objstreams(o, w)),
    ("linearized", "qpdf --linearize", lambda o, w, a: make_linearized(o, w)),
    ("linearized-objstreams", "qpdf --linearize --object-streams=generate", lambda o, w, a: make_linearized_objstreams(o, w)),
    ("pdf20", "qpdf --force-version=2.0", lambda o, w, a: make_pdf20(o, w)),
    ("qdf", "qpdf --qdf", lambda o, w, a: make_qdf(o, w)),
    ("incremental", "earlier incremental update (pyHanko writer)", lambda o, w, a: make_incremental(o, w)),
    ("pyhanko-signed", "already signed by pyHanko", None),
    ("certified", "certified by pyHanko, DocMDP /P 2", None),
    ("certified-no-changes", "certified by pyHanko, DocMDP /P 1: must be refused", None),
    ("hybrid", "hybrid-reference (classic table + /XRefStm)", lambda o, w, a: make_hybrid(o)),
    ("indirect-arrays", "indirect /Annots, /Fields and AcroForm; taken name Signature1; long reals", lambda o, w, a: make_indirect_arrays(o)),
    ("direct-acroform", "direct AcroForm in the catalog, compact syntax", lambda o, w, a: make_direct_acroform(o)),
    ("page-tree", "nested page tree with inherited attributes", lambda o, w, a: make_page_tree(o)),
    ("many-pages", "reportlab, 300 pages", lambda o, w, a: make_many_pages(o)),
    ("big", "reportlab, ~20 MB incompressible image", lambda o, w, a: make_big(o)),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--p12")
    ap.add_argument("--p12-pass", default="")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    work = os.path.join(args.outdir, "_work")
    os.makedirs(work, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    manifest = {}
    for name, producer, make in ENTRIES:
        if only and name not in only:
            continue
        out = os.path.join(args.outdir, name + ".pdf")
        entry = {"producer": producer, "signatures": 0, "pyhanko_args": []}
        if name in ("pyhanko-signed", "certified", "certified-no-changes"):
            if not args.p12:
                continue
            if name == "pyhanko-signed":
                make_pyhanko_signed(out, work, args.p12, args.p12_pass)
            else:
                make_certified(out, work, args.p12, args.p12_pass, name == "certified-no-changes")
                entry["refuse"] = name == "certified-no-changes"
            entry["signatures"] = 1
        else:
            make(out, work, args)
        if name == "hybrid":
            # pyHanko refuses hybrid-reference files in strict mode by design.
            entry["pyhanko_args"] = ["--no-strict-syntax"]
        manifest[name] = entry
    shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
