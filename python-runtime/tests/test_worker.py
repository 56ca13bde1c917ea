"""The script worker's Python side (``ktx_worker``): the result ABI, checks, the capped capture,
the loader's cache, and the frame loop end to end in a real subprocess (the Rust side's tests
in ``crates/ktx-worker/tests`` drive the same process from Rust)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from ktx_worker import validate
from ktx_worker.capture import Capture
from ktx_worker.check import check
from ktx_worker.errors import ScriptError
from ktx_worker.loader import Loader

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.mark.parametrize(
    ("value", "path", "text"),
    [
        ({"rows": [{"x": 1}, {"x": float("nan")}]}, "$.rows[1].x", "nan is not a JSON number"),
        ([float("inf")], "$[0]", "inf is not a JSON number"),
        ({"b": b"x"}, "$.b", "bytes is not JSON"),
        ({"s": {1}}, "$.s", "set is not JSON"),
        ({"k": {(1, 2): 1}}, "$.k", "object key (1, 2) (tuple) is not a string"),
        ({"n": 2**64}, "$.n", "does not fit in 64 bits"),
        ({"a-b": [None, object()]}, '$["a-b"][1]', "object is not JSON"),
        ("\udcff", "$", "lone surrogate"),
    ],
)
def test_values_outside_the_abi_name_their_path(value, path, text):
    with pytest.raises(validate.BadValue) as caught:
        validate.check(value)
    assert caught.value.path == path
    assert text in caught.value.message


def test_plain_json_passes_and_tuples_are_arrays():
    value = {"t": (1, "a"), "max": 2**64 - 1, "min": -(2**63), "nested": [[{"x": None}]]}
    validate.check(value)
    assert json.loads(json.dumps(value))["t"] == [1, "a"]


def test_a_cycle_is_caught_by_the_depth_limit():
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(validate.BadValue, match="nested deeper than"):
        validate.check(cycle)


def test_the_capture_keeps_the_first_bytes_and_flags_the_cut():
    cap = Capture(10)
    cap.stream.write("é" * 8)  # 16 bytes: the cut falls inside a character, which is dropped
    cap.stream.buffer.write(b"more")
    text, truncated = cap.take()
    assert text == "é" * 5
    assert truncated


def test_the_capture_survives_a_closed_stream():
    cap = Capture(100)
    cap.stream.write("kept")
    cap.stream.close()
    assert cap.take() == ("kept", False)


def test_check_reports_syntax_errors_and_does_not_run_code(tmp_path: Path):
    marker = tmp_path / "ran"
    good = tmp_path / "good.py"
    good.write_text(f"open({str(marker)!r}, 'w')\ndef render(context):\n    return 1\n")
    assert check(str(good), "render") == {"ok": True, "entrypointFound": True, "errors": []}
    assert not marker.exists()
    bad = tmp_path / "bad.py"
    bad.write_text("def render(context):\n  return [\n")
    out = check(str(bad), "render")
    assert out["ok"] is False
    assert out["errors"][0]["line"] == 2


def _script(tmp_path: Path, source: str, hash_: str, entry: str = "render") -> dict:
    path = tmp_path / "s.py"
    path.write_text(source)
    return {"id": "s", "path": str(path), "hash": hash_, "entrypoint": entry}


def test_the_loader_runs_a_file_once_per_hash(tmp_path: Path):
    loader = Loader()
    s1 = _script(tmp_path, "def render(c):\n    return 1\n", "h1")
    assert loader.entrypoint(s1)(None) == 1
    assert loader.entrypoint(s1)(None) == 1
    assert loader.loads == 1
    s2 = _script(tmp_path, "def render(c):\n    return 2\n", "h2")
    assert loader.entrypoint(s2)(None) == 2
    assert loader.loads == 2
    with pytest.raises(ScriptError) as caught:
        loader.entrypoint({**s2, "entrypoint": "main"})
    assert caught.value.kind == "missing_entrypoint"


def test_a_dataclass_in_a_script_works(tmp_path: Path):
    source = (
        "from dataclasses import dataclass, asdict\n@dataclass\nclass Row:\n    x: int\n"
        "def render(c):\n    return asdict(Row(3))\n"
    )
    loader = Loader()
    assert loader.entrypoint(_script(tmp_path, source, "h"))(None) == {"x": 3}


class _Worker:
    """``python -I -m ktx_worker`` with the source tree on its path, spoken to in frames."""

    CODE = (
        f"import sys; sys.path.insert(0, {str(SRC)!r}); import runpy; "
        "sys.argv = ['ktx_worker']; runpy.run_module('ktx_worker', run_name='__main__')"
    )

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", self.CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def read(self) -> dict:
        (n,) = struct.unpack(">I", self.proc.stdout.read(4))
        return json.loads(self.proc.stdout.read(n))

    def send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.proc.stdin.write(struct.pack(">I", len(body)) + body)
        self.proc.stdin.flush()

    def close(self) -> int:
        self.proc.stdin.close()
        code = self.proc.wait(timeout=20)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


def test_the_frame_loop_answers_calls_in_order_and_exits_at_end_of_input(tmp_path: Path):
    script = _script(
        tmp_path,
        "import os, sys\ndef render(c):\n    print('fake', end='')\n"
        "    os.write(1, b'\\x00\\x00\\x00\\x02{}')\n    return {'c': c, 'in': sys.stdin.read()}\n"
        "def bad(c):\n    return {1: 2}\n",
        "h",
    )
    w = _Worker()
    try:
        ready = w.read()
        assert ready["ready"] is True and ready["pid"] != os.getpid()
        calls = [
            {"script": script, "context": {"n": 1}},
            {"script": {**script, "entrypoint": "bad"}, "context": None},
        ]
        w.send({"op": "call", "calls": calls})
        first, second = w.read(), w.read()
        assert first["ok"] is True
        assert first["value"] == {"c": {"n": 1}, "in": ""}
        assert first["stdout"] == "fake"
        assert second["ok"] is False and second["error"]["kind"] == "bad_result"
        assert second["error"]["path"] == "$"
        w.send({"op": "check", "script": script})
        assert w.read()["ok"] is True
    finally:
        assert w.close() == 0


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_orphaned_in_a_looping_call_exits(tmp_path: Path):
    import signal
    import time

    script = _script(tmp_path, "def render(c):\n    while True:\n        pass\n", "h")
    parent_code = f"""
import json, struct, subprocess, sys, time
code = {_Worker.CODE!r}
w = subprocess.Popen([sys.executable, "-I", "-c", code], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE)
n, = struct.unpack(">I", w.stdout.read(4)); w.stdout.read(n)
body = json.dumps({{"op": "call", "calls": [{{"script": {script!r}, "context": None}}]}}).encode()
w.stdin.write(struct.pack(">I", len(body)) + body); w.stdin.flush()
print(w.pid, flush=True)
time.sleep(3600)
"""
    parent = subprocess.Popen([sys.executable, "-I", "-c", parent_code], stdout=subprocess.PIPE)
    try:
        worker_pid = int(parent.stdout.readline())
        time.sleep(0.2)
        assert not _gone(worker_pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        parent.stdout.close()
    limit = time.monotonic() + 20
    while not _gone(worker_pid):
        assert time.monotonic() < limit, f"worker {worker_pid} outlived its parent"
        time.sleep(0.05)
