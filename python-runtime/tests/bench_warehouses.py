"""p50/p95 of a repeated demo query on each engine, one-shot vs through the daemon.

Run (as root or a user who may start servers; needs the packages of dev-requirements.txt)::

    cd python-runtime && python tests/bench_warehouses.py [--one-shot N] [--daemon N]

Starts PostgreSQL and MariaDB with tests/servers.py, loads the demo into them, SQLite and DuckDB,
then times ``semantic.query --execute`` of the demo's third query: one-shot as ``python -m
ktx_daemon call`` per query (a new process: imports, connect, query, close), and through one
daemon (``serve``) over a kept-alive HTTP connection (the daemon keeps the warehouse connection).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path[:0] = [str(HERE), str(SRC)]

import servers  # noqa: E402

QUERY = {
    "measures": ["orders.revenue", "order_items.quantity_total"],
    "dimensions": ["customers.segment"],
    "execute": True,
}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one-shot", type=int, default=20)
    parser.add_argument("--daemon", type=int, default=200)
    args = parser.parse_args()
    pg = servers.start_postgres()
    maria = servers.start_mariadb()
    tmp = Path(tempfile.mkdtemp(prefix="ktx-bench-"))
    daemon = None
    try:
        os.environ[servers.PASSWORD_ENV] = servers.PASSWORD
        project = servers.demo_project(tmp / "demo", pg, maria)
        env = dict(os.environ, PYTHONPATH=str(SRC))
        token = "b" * 43
        (tmp / "token").write_text(token)
        os.chmod(tmp / "token", 0o600)
        state = tmp / "state.json"
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ktx_daemon",
                "serve",
                "--state-file",
                str(state),
                "--token-file",
                str(tmp / "token"),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        port = json.loads(state.read_text())["port"]
        http_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {
            "Authorization": f"Bearer {token}",
            "Host": f"127.0.0.1:{port}",
            "Content-Type": "application/json",
        }
        print(f"{'engine':8} {'one-shot p50':>13} {'p95':>8} {'daemon p50':>11} {'p95':>8}  (ms)")
        for cid in ("sqlite", "duck", "pg", "maria"):
            body = json.dumps(
                {
                    "abi": 1,
                    "op": "semantic.query",
                    "payload": {"projectDir": str(project), "connectionId": cid, **QUERY},
                }
            ).encode()
            one: list[float] = []
            for _ in range(args.one_shot):
                t = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-m", "ktx_daemon", "call"],
                    input=body,
                    env=env,
                    capture_output=True,
                    check=True,
                )
                one.append((time.perf_counter() - t) * 1000)
                assert json.loads(out.stdout)["ok"], out.stdout
            dm: list[float] = []
            for i in range(args.daemon + 5):
                t = time.perf_counter()
                http_conn.request("POST", "/v1/call", body, headers)
                data = json.loads(http_conn.getresponse().read())
                if i >= 5:  # the first calls import the modules and open the connection
                    dm.append((time.perf_counter() - t) * 1000)
                assert data["ok"], data
            print(
                f"{cid:8} {statistics.median(one):13.1f} {pct(one, 0.95):8.1f} "
                f"{statistics.median(dm):11.2f} {pct(dm, 0.95):8.2f}"
            )
        return 0
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=20)
        pg.stop()
        maria.stop()


if __name__ == "__main__":
    sys.exit(main())
