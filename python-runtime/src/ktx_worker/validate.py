"""The result ABI: a script returns plain JSON, checked here before it is encoded.

Accepted: ``None``, ``bool``, ``int`` in ``[-2**63, 2**64 - 1]`` (what a 64-bit reader holds),
finite ``float``, ``str`` (without lone surrogates), ``list`` and ``tuple`` (a tuple becomes a
JSON array, as ``json`` does), ``dict`` with ``str`` keys. Nesting is limited to
:data:`MAX_DEPTH` levels. Anything else (NaN, Infinity, bytes, sets, other key types, bigger
ints, objects) is a :class:`BadValue` naming the JSON path of the value, e.g. ``$.rows[3].x``.
"""

from __future__ import annotations

import math

#: Deepest nesting accepted (the Rust reader's own limit is 128, and the reply wraps the value).
MAX_DEPTH = 100
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


class BadValue(Exception):
    """A value outside the ABI: ``path`` is where it is, ``message`` what it is."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def child_path(path: str, key: str) -> str:
    """``$.a`` for identifier keys, ``$["a b"]`` for the others."""
    if key.isascii() and key.isidentifier():
        return f"{path}.{key}"
    import json  # only for the rare quoted key: keeps the worker's start-up imports small

    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _type_name(value: object) -> str:
    return type(value).__qualname__


def _check_str(value: str, path: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadValue(path, f"string holds a lone surrogate at index {e.start}") from None


def _check_scalar(value: object, path: str) -> bool:
    """True when ``value`` is a valid scalar; False when it is a container to walk."""
    if value is None or value is True or value is False:
        return True
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise BadValue(path, f"integer {value} does not fit in 64 bits (return it as a string)")
        return True
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadValue(path, f"{value!r} is not a JSON number (use null or a string)")
        return True
    if isinstance(value, str):
        _check_str(value, path)
        return True
    if isinstance(value, (list, tuple, dict)):
        return False
    hint = {
        "bytes": "decode it to a string",
        "bytearray": "decode it to a string",
        "set": "return a sorted list",
        "frozenset": "return a sorted list",
        "coroutine": "async entrypoints are not supported: define a plain function",
    }.get(_type_name(value), "return only dicts, lists, strings, numbers, booleans and None")
    raise BadValue(path, f"{_type_name(value)} is not JSON: {hint}")


def check(value: object, path: str = "$", depth: int = 0) -> None:
    """Raise :class:`BadValue` at the first value outside the ABI (depth first)."""
    if _check_scalar(value, path):
        return
    if depth >= MAX_DEPTH:
        raise BadValue(path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadValue(
                    path,
                    f"object key {key!r} ({_type_name(key)}) is not a string: JSON keys are"
                    " strings",
                )
            _check_str(key, path)
            check(item, child_path(path, key), depth + 1)
    else:
        for index, item in enumerate(value):
            check(item, f"{path}[{index}]", depth + 1)
