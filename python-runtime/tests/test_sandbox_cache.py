"""The compiled-module cache of ``ktx_sandbox``: atomic, hash-checked, safe under concurrency.

Recompiling python.wasm takes seconds, so these tests copy the session's cached module into
their own cache dir and compile only where compiling is the point.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ktx_sandbox import cache

SRC = Path(__file__).resolve().parents[1] / "src"


def _warm_copy(sandbox, dest: Path) -> Path:
    """``dest`` holding a copy of the session's cache files; returns the module's path."""
    sandbox.run("pass")
    key = sandbox.call("sandbox.status")["result"]["engineKey"]
    src = cache.cache_path(sandbox.cache_dir, key)
    dest.mkdir(mode=0o700, exist_ok=True)
    for f in (src, src.with_name(src.name + cache.SIDECAR)):
        shutil.copy2(f, dest / f.name)
    return dest / src.name


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def fresh_process_cache():
    """Each test here starts without the in-memory module, and leaves it that way."""
    cache.forget()
    yield
    cache.forget()


def test_a_valid_cache_file_is_loaded_not_compiled(sandbox, tmp_path, fresh_process_cache):
    path = _warm_copy(sandbox, tmp_path / "c")
    cache.forget()
    st = sandbox.call("sandbox.status", cacheDir=str(path.parent))["result"]
    assert st["cached"] is True and st["cachePath"] == str(path)
    r = sandbox.run("print(1+1)", cacheDir=str(path.parent))
    assert r["stdout"] == "2\n" and r["compiled"] is False


@pytest.mark.parametrize("damage", ["flip-a-byte", "truncate", "wrong-sidecar", "no-sidecar"])
def test_a_damaged_cache_file_is_not_cached(sandbox, tmp_path, fresh_process_cache, damage):
    path = _warm_copy(sandbox, tmp_path / "c")
    cache.forget()
    sidecar = path.with_name(path.name + cache.SIDECAR)
    data = bytearray(path.read_bytes())
    if damage == "flip-a-byte":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 3]))
    elif damage == "wrong-sidecar":
        sidecar.write_text("0" * 64 + "\n")
    else:
        sidecar.unlink()
    assert cache.read_valid(path) is None
    st = sandbox.call("sandbox.status", cacheDir=str(path.parent))["result"]
    assert st["cached"] is False


def test_a_tampered_cache_file_is_recompiled_never_loaded(sandbox, tmp_path, fresh_process_cache):
    path = _warm_copy(sandbox, tmp_path / "c")
    cache.forget()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the code: loading it would run corrupted code
    path.write_bytes(bytes(data))
    r = sandbox.run("print(1+1)", cacheDir=str(path.parent))
    assert r["status"] == "ok" and r["stdout"] == "2\n"
    assert r["compiled"] is True and r["compileMs"] > 0
    assert cache.read_valid(path) is not None  # rewritten, valid again
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _leftovers(path.parent) == []


def test_a_wasm_that_is_not_the_verified_one_is_refused(sandbox, tmp_path, fresh_process_cache):
    resp = sandbox.call("sandbox.run", code="print(1)", cacheDir=str(tmp_path), wasmSha256="a" * 64)
    assert resp["ok"] is False
    err = resp["error"]
    assert err["code"] == "sandbox_bundle_mismatch"
    assert err["details"]["expected"] == "a" * 64
    assert err["details"]["actual"] == sandbox.sha256
    assert list(tmp_path.iterdir()) == []  # nothing compiled, nothing written


CHILD = """
import json, sys
from ktx_daemon import abi
payload = json.loads(sys.argv[1])
print(json.dumps(abi.handle({"abi": 1, "op": "sandbox.run", "payload": payload})))
"""


def test_two_processes_compiling_at_once_leave_a_valid_cache(sandbox, tmp_path):
    d = tmp_path / "shared"
    d.mkdir(mode=0o700)
    payload = json.dumps(sandbox.payload(code="print(1+1)", cacheDir=str(d), timeoutMs=20_000))
    env = dict(os.environ, PYTHONPATH=str(SRC))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, payload],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err.decode()
        resp = json.loads(out)
        assert resp["ok"], resp
        results.append(resp["result"])
    assert [r["stdout"] for r in results] == ["2\n", "2\n"]
    assert any(r["compiled"] for r in results)
    modules = [p for p in d.iterdir() if p.name.endswith(cache.SUFFIX)]
    assert len(modules) == 1 and cache.read_valid(modules[0]) is not None
    assert _leftovers(d) == []
    # A third process loads what they left, without compiling.
    out = subprocess.run(
        [sys.executable, "-c", CHILD, payload], capture_output=True, env=env, timeout=300
    )
    assert json.loads(out.stdout)["result"]["compiled"] is False
