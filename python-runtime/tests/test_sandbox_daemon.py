"""``sandbox.run`` through the real daemon: the module stays loaded, each run gets a fresh
store, and 100 runs leave the daemon's RSS within 50 MB of where it started."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ktx_sandbox import cache
from test_daemon_server import TOKEN, Daemon, _read_state, _spawn, _wait_for


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def sandbox_daemon(tmp_path: Path, sandbox):
    proc, state_file = _spawn(tmp_path, features="core,sandbox")
    d = Daemon(proc, state_file, TOKEN)
    try:
        d.state = _wait_for(
            lambda: proc.poll() is None and _read_state(state_file), what="state file"
        )
        yield d
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status")
def test_a_hundred_runs_keep_the_module_loaded_and_rss_flat(sandbox, sandbox_daemon, tmp_path):
    sandbox.run("pass")  # the session cache holds the compiled module
    d = sandbox_daemon
    assert "sandbox" in d.state["features"]
    # The daemon's own cache dir, seeded from the session's: the first run loads the file.
    key = sandbox.call("sandbox.status")["result"]["engineKey"]
    own = tmp_path / "daemon-cache"
    own.mkdir(mode=0o700)
    src = cache.cache_path(sandbox.cache_dir, key)
    for f in (src, src.with_name(src.name + cache.SIDECAR)):
        (own / f.name).write_bytes(f.read_bytes())
    payload = sandbox.payload(cacheDir=str(own), timeoutMs=20_000, filename="<string>")
    conn = d.conn()

    def run(code: str) -> dict:
        resp = d.call("sandbox.run", {**payload, "code": code}, conn=conn)
        assert resp["ok"], resp
        return resp["result"]

    code = "x = [str(i) * 10 for i in range(20000)]\nprint(len(x))"
    for _ in range(5):  # warm: module deserialized, allocator pools settled
        assert run(code)["status"] == "ok"
    # The module is held in memory: without the cache file runs still need no compile.
    for f in own.iterdir():
        f.unlink()
    before = _rss_bytes(d.proc.pid)
    for i in range(100):
        r = run(code)
        assert r["status"] == "ok" and r["compiled"] is False, (i, r)
    after = _rss_bytes(d.proc.pid)
    conn.close()
    print(f"daemon RSS before {before / 2**20:.1f} MiB, after 100 runs {after / 2**20:.1f} MiB")
    assert after - before < 50 * 1024 * 1024, (before, after)
    assert list(own.iterdir()) == []
