"""
---
id: ktx-default-top-rows
title: Top rows by a column
kind: transform
entrypoint: transform
enabled: true
version: 1
updatedAt: '2026-12-07T00:00:00Z'
description: The n rows with the largest value in one column (rows as JSON objects).
---
Context: {"rows": [{"segment": "a", "revenue": 3}, ...], "by": "revenue", "n": 5}.
Returns the rows sorted by `by`, largest first, at most `n` of them. Rows without the
column sort last. Shipped with ktx; `ktx script seed` updates it while you have not changed it.
"""


def transform(context):
    """The top `n` rows by column `by`."""
    rows = context.get("rows")
    by = context.get("by")
    n = context.get("n", 10)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("context.rows must be a list of objects")
    if not isinstance(by, str):
        raise TypeError("context.by must be a column name")
    if not isinstance(n, int) or n < 0:
        raise ValueError("context.n must be a non-negative integer")

    def key(row):
        value = row.get(by)
        present = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (present, value if present else 0)

    return sorted(rows, key=key, reverse=True)[:n]
