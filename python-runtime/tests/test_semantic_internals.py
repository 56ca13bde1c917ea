"""Internals the rest of the semantic layer relies on: YAML values, records, in-place rewrites."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from semantic_layer import sqlexpr, yamlio
from semantic_layer.errors import Issue
from semantic_layer.project import Column

DOCUMENT = """\
name: orders
quoted: "007"
single: 'yes'
block: |
  two
  lines
number: 42
float: 1.5
flag: yes
off_flag: false
nothing: null
tilde: ~
day: 2024-01-31
stamp: 2024-01-31T10:00:00Z
on: bare key
42: int key
base: &base {driver: sqlite, path: a.db}
merged:
  <<: *base
  extra: 1
alias: *base
list: [1, "2", three, 4.0, null]
"""


@pytest.mark.parametrize("pure", [True, False], ids=["pure-python-yaml", "libyaml"])
def test_yaml_values_match_safe_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool):
    import yaml

    if not pure and not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML built without libyaml")
    monkeypatch.setattr(yamlio, "PURE_LOADER", yaml.SafeLoader if pure else None)
    path = tmp_path / "doc.yaml"
    path.write_text(DOCUMENT, encoding="utf-8")
    data, lines = yamlio.load(path)
    assert data == yaml.safe_load(DOCUMENT)
    # Spot checks, in case safe_load itself changed: the types the loader must keep.
    assert data["quoted"] == "007" and data["single"] == "yes" and data["flag"] is True
    assert data["day"] == datetime.date(2024, 1, 31) and data[True] == "bare key"
    assert data[42] == "int key" and data["merged"] == {
        "driver": "sqlite",
        "path": "a.db",
        "extra": 1,
    }
    assert data["list"] == [1, "2", "three", 4.0, None]
    assert lines[("list", 2)] == 22 and lines[("merged",)] == 18


def test_issue_is_an_immutable_value() -> None:
    issue = Issue("a.yaml", "measures[0].expr", 3, "bad")
    assert issue == Issue("a.yaml", "measures[0].expr", 3, "bad", syntax=False)
    assert issue != Issue("a.yaml", "measures[0].expr", 4, "bad")
    assert len({issue, Issue("a.yaml", "measures[0].expr", 3, "bad")}) == 1
    assert repr(issue) == (
        "Issue(file='a.yaml', key='measures[0].expr', line=3, message='bad', syntax=False)"
    )
    with pytest.raises(AttributeError):
        issue.line = 4  # type: ignore[misc]


def test_records_compare_by_value_and_are_not_hashable() -> None:
    assert Column("id", "number") == Column("id", "number", None)
    assert Column("id", "number") != Column("id", "string")
    with pytest.raises(TypeError):
        hash(Column("id", "number"))


def test_map_columns_copies_unless_told_otherwise() -> None:
    tree = sqlexpr.parse_fragment("a + b", "sqlite")

    def rename(column):
        return sqlexpr.parse_fragment(f"x_{column.name}", "sqlite")

    copied = sqlexpr.map_columns(tree, rename)
    assert copied.sql() == "x_a + x_b" and tree.sql() == "a + b"
    in_place = sqlexpr.map_columns(tree, rename, copy=False)
    assert in_place is tree and tree.sql() == "x_a + x_b"


def test_a_query_reads_each_project_file_once_and_reloads_on_change(
    semantic_shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from semantic_layer import ops

    reads: list[str] = []
    real_load = yamlio.load

    def counting_load(path: Path):
        reads.append(path.name)
        return real_load(path)

    monkeypatch.setattr(yamlio, "load", counting_load)
    payload = {"projectDir": str(semantic_shop), "measures": ["orders.revenue"]}
    sources = sorted(p.name for p in (semantic_shop / "semantic-layer/warehouse").iterdir())

    first = ops.query(payload)
    assert sorted(reads) == sorted(["ktx.yaml", *sources])
    reads.clear()
    assert ops.query(payload) == first
    assert reads == []  # unchanged files: the loaded project is reused

    settings = semantic_shop / "ktx.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert ops.query(payload)["sql"] == first["sql"]
    assert sorted(reads) == sorted(["ktx.yaml", *sources])
