"""Scripts loaded once per content hash; the entrypoint callable is reused.

A script is identified by its id; its cached module is kept while the caller sends the same
``hash`` and ``path``. The hash is the caller's (the index's) and is trusted as the cache key:
a file edited without a new hash keeps running its loaded version. A new hash reloads the file,
so a long-lived worker picks up the new version. A failed load is not cached (the next call
tries again). Each module is registered in ``sys.modules`` under ``_ktx_script_<n>`` so that
``dataclasses``, ``pickle`` and ``typing`` can find it.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from ktx_worker.errors import ScriptError, from_exception

if TYPE_CHECKING:
    from collections.abc import Callable


class Loaded:
    """A loaded script: the hash and path it was loaded from, its module, resolved callables.

    A plain class, not a dataclass: ``dataclasses`` imports ``inspect``, which costs the
    worker's start-up (and so every restart) tens of milliseconds.
    """

    __slots__ = ("hash", "path", "module", "callables")

    def __init__(self, hash_: str, path: str, module: types.ModuleType) -> None:
        self.hash = hash_
        self.path = path
        self.module = module
        self.callables: dict[str, Callable] = {}


class Loader:
    """The cache of loaded scripts, by script id."""

    def __init__(self) -> None:
        self._scripts: dict[str, Loaded] = {}
        self._serial = 0
        #: How many times a file was executed (loaded), for tests and stats.
        self.loads = 0

    def entrypoint(self, script: dict) -> Callable:
        """The callable ``script["entrypoint"]`` of the script, loading it when needed."""
        loaded = self._scripts.get(script["id"])
        if loaded is None or loaded.hash != script["hash"] or loaded.path != script["path"]:
            if loaded is not None:
                sys.modules.pop(loaded.module.__name__, None)
                del self._scripts[script["id"]]
            loaded = self._load(script)
            self._scripts[script["id"]] = loaded
        name = script["entrypoint"]
        fn = loaded.callables.get(name)
        if fn is None:
            fn = _resolve(loaded.module, name, loaded.path)
            loaded.callables[name] = fn
        return fn

    def _load(self, script: dict) -> Loaded:
        path = script["path"]
        try:
            with open(path, "rb") as f:
                source = f.read()
        except OSError as e:
            raise ScriptError("load_failed", f"cannot read {path}: {e.strerror}") from None
        try:
            code = compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as e:
            raise from_exception("load_failed", e, path, skip=1) from None
        self._serial += 1
        name = f"_ktx_script_{self._serial}"
        module = types.ModuleType(name)
        module.__file__ = path
        sys.modules[name] = module
        self.loads += 1
        try:
            exec(code, module.__dict__)
        except BaseException as e:  # noqa: BLE001 - any failure of the top level is the script's
            sys.modules.pop(name, None)
            if isinstance(e, MemoryError):
                raise
            raise from_exception("load_failed", e, path, skip=1) from None
        return Loaded(script["hash"], path, module)


def _resolve(module: types.ModuleType, name: str, path: str) -> Callable:
    fn = getattr(module, name, None)
    if fn is None:
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        listed = ", ".join(found) if found else "none"
        raise ScriptError(
            "missing_entrypoint",
            f"{path} defines no `{name}` (callables found: {listed})",
        )
    if not callable(fn):
        raise ScriptError(
            "missing_entrypoint", f"`{name}` in {path} is a {type(fn).__name__}, not a function"
        )
    return fn
