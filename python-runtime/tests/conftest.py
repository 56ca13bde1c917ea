"""Shared pytest fixtures. Keep this file small: each area owns its own test modules."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

SEMANTIC_FIXTURES = Path(__file__).parent / "fixtures" / "semantic"


@pytest.fixture
def semantic_shop(tmp_path: Path) -> Path:
    """A copy of fixtures/semantic/shop with warehouse.db built from its warehouse.sql."""
    root = tmp_path / "shop"
    shutil.copytree(SEMANTIC_FIXTURES / "shop", root)
    con = sqlite3.connect(root / "warehouse.db")
    try:
        con.execute("PRAGMA synchronous=OFF")  # a throwaway test file: skip the fsyncs
        con.executescript((root / "warehouse.sql").read_text(encoding="utf-8"))
        con.commit()
    finally:
        con.close()
    return root


# -- warehouse servers (tests/servers.py): started once per session, stopped at its end ----


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server on 127.0.0.1 (fails with the apt command when not installed)."""
    import servers

    server = servers.start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_server():
    """A MariaDB server on 127.0.0.1 (fails with the apt command when not installed)."""
    import servers

    server = servers.start_mariadb()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def warehouses(tmp_path_factory, pg_server, mariadb_server):
    """The demo project on four connections (sqlite, duck, pg, maria): the same rows in each."""
    import os

    import servers

    servers.need_module("duckdb")
    os.environ[servers.PASSWORD_ENV] = servers.PASSWORD
    return servers.demo_project(
        tmp_path_factory.mktemp("warehouses") / "demo", pg_server, mariadb_server
    )


# -- the Python sandbox (tests/sandbox_support.py) ---------------------------------------------


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """The real python.wasm with a session-wide compiled-module cache."""
    import sandbox_support

    return sandbox_support.find_sandbox(tmp_path_factory.mktemp("sandbox"))
