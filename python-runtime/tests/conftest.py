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
