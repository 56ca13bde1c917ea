"""Whether this process is a long-lived daemon, and what to close when it stops.

Ops that keep resources between calls (the warehouse connections of
:mod:`semantic_layer.warehouse`) keep them only when :data:`serving` is True (set by
:func:`ktx_daemon.server.serve`); a one-shot ``call`` opens and closes per call. Hooks added with
:func:`on_stop` run once when the daemon stops. No imports: ops may read this module cheaply.
"""

from __future__ import annotations

from collections.abc import Callable

#: True while :func:`ktx_daemon.server.serve` runs in this process.
serving = False

_hooks: list[Callable[[], None]] = []


def on_stop(hook: Callable[[], None]) -> None:
    """Run ``hook`` when the daemon stops (at most once per registration)."""
    if hook not in _hooks:
        _hooks.append(hook)


def run_stop_hooks() -> list[str]:
    """Run and forget every hook; returns one line per hook that raised (logged by the caller)."""
    failures: list[str] = []
    while _hooks:
        hook = _hooks.pop()
        try:
            hook()
        except Exception as exc:  # a failing close must not keep the others from running
            failures.append(f"{getattr(hook, '__qualname__', hook)}: {exc}")
    return failures
