#!/usr/bin/env python3
"""Append a forged incremental update that replaces page 1's content.

Usage: forge.py IN OUT

Used by the negative tests: a validator must flag this revision as a modification that a
signature does not allow.
"""

import sys

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter


def main(src, dst):
    with open(src, "rb") as inf:
        w = IncrementalPdfFileWriter(inf, strict=False)
        page_ref = w.find_page_for_modification(0)[0]
        page = page_ref.get_object()
        forged = generic.StreamObject(stream_data=b"BT /F1 36 Tf 72 500 Td (FORGED) Tj ET")
        page["/Contents"] = w.add_object(forged)
        w.mark_update(page_ref)
        with open(dst, "wb") as outf:
            w.write(outf)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
