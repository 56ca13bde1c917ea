"""Tidy rules over python-runtime/src: no function longer than ``MAX_LINES`` lines unless a
comment inside it says why (``# long function: <reason>``); split such a function by phase."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
MAX_LINES = 100
REASON = "# long function:"


def long_functions(root: Path) -> list[str]:
    """``file:line name (N lines)`` of every function over MAX_LINES without a reason."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            body = lines[node.lineno - 1 : node.end_lineno]
            if length > MAX_LINES and not any(REASON in line for line in body):
                rel = path.relative_to(root)
                found.append(f"{rel}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_over_the_limit_without_a_reason():
    assert list(SRC.rglob("*.py")), f"no sources under {SRC}"
    found = long_functions(SRC)
    assert not found, (
        f"functions over {MAX_LINES} lines: split them by phase, or say why in a "
        f"`{REASON} ...` comment inside:\n  " + "\n  ".join(found)
    )


def test_the_rule_counts_lines_and_reads_the_reason(tmp_path: Path):
    body = "\n".join(f"    x = {i}" for i in range(MAX_LINES))
    (tmp_path / "a.py").write_text(f"def long():\n{body}\n", encoding="utf-8")
    (tmp_path / "b.py").write_text(
        f"def explained():\n    {REASON} one table\n{body}\n", encoding="utf-8"
    )
    (tmp_path / "c.py").write_text("def short():\n    return 1\n", encoding="utf-8")
    assert long_functions(tmp_path) == [f"a.py:1 long ({MAX_LINES + 1} lines)"]
