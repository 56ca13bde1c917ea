"""``check``: syntax check and entrypoint discovery, without running the script.

The file is parsed and compiled (so errors the compiler finds after parsing, such as ``return``
outside a function, are reported too), never executed: a script's top-level code cannot run,
loop or print during a check. The entrypoint is found statically, as a top-level binding of its
name: a ``def`` (checked to accept the context argument), an assignment, or an import. A
binding made any other way (``globals()[...]``, ``exec``) is not seen. ``async def`` is an error:
entrypoints are plain functions.
"""

from __future__ import annotations

import ast


def _error(message: str, line: int | None, col: int | None) -> dict:
    return {"message": message, "line": line, "col": col}


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [t.id for t in targets if isinstance(t, ast.Name)]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.ClassDef):
        return [node.name]
    return []


def _takes_context(fn: ast.FunctionDef) -> bool:
    args = fn.args
    positional = len(args.posonlyargs) + len(args.args)
    return positional >= 1 or args.vararg is not None


def _entrypoint(tree: ast.Module, name: str) -> tuple[bool, list[dict]]:
    errors: list[dict] = []
    found = False
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef) and node.name == name:
            found = True
            errors.append(
                _error(
                    f"`{name}` is `async def`: entrypoints are plain functions",
                    node.lineno,
                    node.col_offset + 1,
                )
            )
        elif isinstance(node, ast.FunctionDef) and node.name == name:
            found = True
            if not _takes_context(node):
                errors.append(
                    _error(
                        f"`{name}` takes no argument: it is called as {name}(context)",
                        node.lineno,
                        node.col_offset + 1,
                    )
                )
        elif name in _bound_names(node):
            found = True
    if not found:
        errors.append(_error(f"no top-level `{name}` is defined", None, None))
    return found, errors


def check(path: str, entrypoint: str) -> dict:
    """``{ok, entrypointFound, errors: [{message, line, col}]}`` for the file at ``path``."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        return {
            "ok": False,
            "entrypointFound": False,
            "errors": [_error(f"cannot read {path}: {e.strerror}", None, None)],
        }
    try:
        tree = compile(source, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        compile(tree, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        message = f"{type(e).__name__}: {e.msg}"
        return {
            "ok": False,
            "entrypointFound": False,
            "errors": [_error(message, e.lineno, e.offset)],
        }
    except ValueError as e:  # e.g. a NUL byte in the source
        return {"ok": False, "entrypointFound": False, "errors": [_error(str(e), None, None)]}
    found, errors = _entrypoint(tree, entrypoint)
    return {"ok": not errors, "entrypointFound": found, "errors": errors}
