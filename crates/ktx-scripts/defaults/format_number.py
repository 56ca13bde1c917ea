"""
---
id: ktx-default-format-number
title: Format a number
kind: macro
entrypoint: render
enabled: true
version: 2
updatedAt: '2026-12-07T00:00:00Z'
description: A number with thousands separators and a fixed number of decimals.
---
Context: {"value": 1234567.891, "decimals": 2, "separator": ","}. Returns "1,234,567.89".
Shipped with ktx; `ktx script seed` updates it while you have not changed it.
"""


def render(context):
    """The formatted number as a string."""
    value = context.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("context.value must be a number")
    decimals = context.get("decimals", 0)
    if not isinstance(decimals, int) or not 0 <= decimals <= 12:
        raise ValueError("context.decimals must be an integer from 0 to 12")
    separator = context.get("separator", ",")
    text = f"{value:,.{decimals}f}"
    return text.replace(",", separator)
