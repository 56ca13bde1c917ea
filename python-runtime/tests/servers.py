"""PostgreSQL and MariaDB servers for the warehouse tests, started on loopback in temp dirs.

Used through the session fixtures in ``conftest.py`` (``pg_server``, ``mariadb_server``). Each
server runs from Debian's packages (``postgresql``, ``mariadb-server``) as an unprivileged user
(PostgreSQL refuses root), with its data, socket and log in a fresh temporary directory and a
free port on 127.0.0.1; it is stopped (SIGTERM, then SIGKILL) at the end of the session, also
when tests fail, and an ``atexit`` hook catches an interrupted session.

When the binaries or the Python drivers are missing the tests fail with the install command,
unless ``KTX_SKIP_SERVER_TESTS=1`` is set (then they are skipped with that reason).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

SKIP_ENV = "KTX_SKIP_SERVER_TESTS"
APT_INSTALL = "apt-get update && apt-get install -y postgresql mariadb-server"
PIP_INSTALL = (
    "uv pip install --python .dev-venv/bin/python -r python-runtime/dev-requirements.txt "
    "(psycopg[binary], duckdb, PyMySQL)"
)

#: Seconds a server may take to accept connections (initdb + start is ~2 s here).
START_TIMEOUT = 60.0

#: Password of the test users (the wrong-password test uses another one).
PASSWORD = "ktx-test-pw"
DATABASE = "ktx_demo"

_RUNNING: list[Server] = []


def unavailable(reason: str) -> None:
    """Fail (or skip with KTX_SKIP_SERVER_TESTS=1) because a server prerequisite is missing."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{reason} ({SKIP_ENV}=1)")
    pytest.fail(f"{reason}; install it or set {SKIP_ENV}=1 to skip the server tests", False)


def need_module(name: str) -> Any:
    """Import a driver module or fail/skip with the install command."""
    try:
        return __import__(name)
    except ImportError:
        unavailable(f"Python package {name} is not installed: {PIP_INSTALL}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _service_user() -> tuple[str, int, int]:
    """The unprivileged user the servers run as (``nobody`` when we are root)."""
    if os.geteuid() != 0:
        pw = pwd.getpwuid(os.geteuid())
    else:
        pw = pwd.getpwnam("nobody")
    return pw.pw_name, pw.pw_uid, pw.pw_gid


def _as_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", _service_user()[0], "--", *cmd]


class Server:
    """A running server: where to reach it, and how to stop it."""

    def __init__(self, kind: str, root: Path, port: int, proc: subprocess.Popen[bytes]):
        self.kind = kind
        self.root = root
        self.host = "127.0.0.1"
        self.port = port
        self.proc = proc
        self.user = "ktx"
        self.password = PASSWORD
        self.database = DATABASE
        self.log = root / "server.log"

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL; then remove the temp directory. Idempotent."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self in _RUNNING:
            _RUNNING.remove(self)
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> None:
        """A new empty database ``name`` the ``ktx`` user owns (admin connection)."""
        if self.kind == "PostgreSQL":
            import psycopg

            with psycopg.connect(
                host=self.host,
                port=self.port,
                user="postgres",
                password=PASSWORD,
                dbname="postgres",
                autocommit=True,
            ) as con:
                con.execute(f"CREATE DATABASE {name} OWNER ktx")
        else:
            import pymysql

            con = pymysql.connect(unix_socket=str(self.socket), user="root")
            try:
                with con.cursor() as cur:
                    cur.execute(f"CREATE DATABASE {name}")
                    cur.execute(f"GRANT ALL ON {name}.* TO 'ktx'@'%'")
            finally:
                con.close()

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


def _workdir(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    _, uid, gid = _service_user()
    os.chmod(root, 0o755)
    os.chown(root, uid, gid)
    return root


def _wait_ready(server: Server, probe: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.kind} exited with {server.proc.returncode}:\n{server.tail()}"
            )
        try:
            probe()
            return
        except Exception as exc:  # not accepting yet
            last = exc
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.kind} not ready after {START_TIMEOUT:g}s ({last}):\n")


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def start_postgres() -> Server:
    """initdb + postgres as the service user; superuser ``postgres`` and an ordinary ``ktx``
    role (both with :data:`PASSWORD`), database ``ktx_demo`` owned by ``ktx``."""
    psycopg = need_module("psycopg")
    bindir = postgres_bin()
    if bindir is None:
        unavailable(
            f"PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: {APT_INSTALL}"
        )
    root = _workdir("ktx-pg-")
    _, uid, gid = _service_user()
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    os.chown(pwfile, uid, gid)
    subprocess.run(
        _as_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = free_port()
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        _as_user(
            [
                str(bindir / "postgres"),
                "-D",
                str(root / "data"),
                "-k",
                str(root),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=off",
            ]
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    server = Server("PostgreSQL", root, port, proc)
    _RUNNING.append(server)

    def probe() -> None:
        psycopg.connect(
            host="127.0.0.1",
            port=port,
            user="postgres",
            password=PASSWORD,
            dbname="postgres",
            connect_timeout=2,
        ).close()

    _wait_ready(server, probe)
    # ktx connects as an ordinary role that owns the demo database (not the superuser).
    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        password=PASSWORD,
        dbname="postgres",
        autocommit=True,
    ) as con:
        con.execute(f"CREATE ROLE ktx LOGIN PASSWORD '{PASSWORD}'")
        con.execute(f"CREATE DATABASE {DATABASE} OWNER ktx")
    return server


def mariadb_bin() -> tuple[Path, Path] | None:
    daemon = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/bin")
    install = shutil.which("mariadb-install-db")
    if not daemon or not install:
        return None
    return Path(daemon), Path(install)


def start_mariadb() -> Server:
    """mariadb-install-db + mariadbd as the service user; a ``ktx`` user with a password and
    all rights on ``ktx_demo``."""
    pymysql = need_module("pymysql")
    found = mariadb_bin()
    if found is None:
        unavailable(
            f"MariaDB server binaries (mariadbd, mariadb-install-db) not found: {APT_INSTALL}"
        )
    daemon, install = found
    root = _workdir("ktx-mariadb-")
    user, uid, gid = _service_user()
    data = root / "data"
    subprocess.run(
        [
            str(install),
            "--no-defaults",
            f"--datadir={data}",
            f"--user={user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = free_port()
    sock = root / "mysqld.sock"
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        [
            str(daemon),
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--user={user}",
            f"--pid-file={root / 'mysqld.pid'}",
            "--skip-log-bin",
            "--innodb-flush-log-at-trx-commit=0",
            "--skip-name-resolve",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    server = Server("MariaDB", root, port, proc)
    server.socket = sock
    _RUNNING.append(server)

    def admin() -> Any:
        return pymysql.connect(unix_socket=str(sock), user="root", connect_timeout=2)

    _wait_ready(server, lambda: admin().close())
    con = admin()
    try:
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE}")
            cur.execute("CREATE USER 'ktx'@'%%' IDENTIFIED BY %s", (PASSWORD,))
            cur.execute(f"GRANT ALL ON {DATABASE}.* TO 'ktx'@'%'")
            # PROCESS-free KILL QUERY of one's own threads needs nothing more.
        con.commit()
    finally:
        con.close()
    return server


#: Environment variable holding the test password in the generated ktx.yaml.
PASSWORD_ENV = "KTX_TEST_WAREHOUSE_PASSWORD"

#: Connection ids of the four-engine demo project, by engine.
ENGINE_IDS = {"sqlite": "sqlite", "duckdb": "duck", "postgres": "pg", "mysql": "maria"}


def connection_yaml(cid: str, driver: str, server: Server | None, path: str | None = None) -> str:
    """One ``connections:`` entry (indented) for ktx.yaml."""
    lines = [f"  {cid}:", f"    driver: {driver}"]
    if path is not None:
        lines.append(f"    path: {path}")
    if server is not None:
        lines += [
            f"    host: {server.host}",
            f"    port: {server.port}",
            f"    database: {server.database}",
            f"    user: {server.user}",
            f"    password_env: {PASSWORD_ENV}",
        ]
    return "\n".join(lines) + "\n"


def load_server(server: Server, driver: str) -> None:
    """(Re)load the demo tables into ``server``'s database."""
    from semantic_layer import demo

    if driver == "postgres":
        import psycopg

        with psycopg.connect(
            host=server.host,
            port=server.port,
            user=server.user,
            password=server.password,
            dbname=server.database,
        ) as con:
            demo.load_tables(con, "postgres")
            con.commit()
    else:
        import pymysql

        con = pymysql.connect(
            host=server.host,
            port=server.port,
            user=server.user,
            password=server.password,
            database=server.database,
        )
        try:
            demo.load_tables(con, "mysql")
            con.commit()
        finally:
            con.close()


def demo_project(root: Path, pg: Server, maria: Server) -> Path:
    """The demo project with the same warehouse on four connections: SQLite, DuckDB,
    PostgreSQL and MariaDB (``ENGINE_IDS``), each with a copy of the demo's source files."""
    from semantic_layer import demo

    demo.scaffold(root)
    demo.build_duckdb(root / "warehouse.duckdb")
    load_server(pg, "postgres")
    load_server(maria, "mysql")
    text = "connections:\n" + connection_yaml("sqlite", "sqlite", None, "warehouse.db")
    text += connection_yaml("duck", "duckdb", None, "warehouse.duckdb")
    text += connection_yaml("pg", "postgres", pg)
    text += connection_yaml("maria", "mysql", maria)
    (root / "ktx.yaml").write_text(text, encoding="utf-8")
    layer = root / "semantic-layer"
    for cid in ("duck", "pg", "maria", "sqlite"):
        if not (layer / cid).exists():
            shutil.copytree(layer / "warehouse", layer / cid)
    shutil.rmtree(layer / "warehouse")
    return root
