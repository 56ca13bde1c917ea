"""
---
id: ktx-default-slugify
title: Slugify a text
kind: utility
entrypoint: main
enabled: true
version: 1
updatedAt: '2026-12-07T00:00:00Z'
description: Lowercase ASCII words joined by '-', for file names and anchors.
---
Context: {"text": "Revenue by Segment (2026)"}. Returns "revenue-by-segment-2026".
Shipped with ktx; `ktx script seed` updates it while you have not changed it.
"""

import re
import unicodedata


def main(context):
    """The slug of context.text."""
    text = context.get("text")
    if not isinstance(text, str):
        raise TypeError("context.text must be a string")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "-".join(re.findall(r"[a-z0-9]+", ascii_text.lower()))
