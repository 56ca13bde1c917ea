"""
---
id: ktx-default-format-number
title: Format a number
kind: macro
entrypoint: render
enabled: true
version: 1
updatedAt: '2026-11-01T00:00:00Z'
description: A number with thousands separators.
---
Context: {"value": 1234567}. Returns "1,234,567".
Shipped with ktx; `ktx script seed` updates it while you have not changed it.
"""


def render(context):
    """The formatted number as a string."""
    return f"{context['value']:,}"
