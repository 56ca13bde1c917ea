"""YAML reading that keeps line numbers and refuses duplicate keys.

PyYAML's ``safe_load`` silently keeps the last of two equal keys and forgets where each value
came from; both matter for precise validation errors. :func:`load` composes the node tree with
the safe loader and converts it itself, recording the 1-based line of every key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Tests set this to ``yaml.SafeLoader`` to exercise the pure-Python parser; by default the
#: libyaml-backed ``CSafeLoader`` is used when PyYAML has it (several times faster).
PURE_LOADER: Any = None

#: A key path inside a document: mapping keys (str) and sequence indexes (int).
KeyPath = tuple[Any, ...]


class YamlError(Exception):
    """The file is not valid YAML (or repeats a key); ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.message = message
        self.line = line


def format_key(path: KeyPath) -> str:
    """Render a key path as ``measures[1].expr``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``path``; return the plain data and a map key path -> line (1-based).

    Raises :class:`YamlError` for syntax errors and duplicate keys, ``OSError`` if unreadable.
    """
    import yaml

    text = path.read_text(encoding="utf-8")
    loader = (PURE_LOADER or getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        data = None if node is None else _Converter(loader, lines).convert(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc)
        # An unclosed bracket is only noticed at the end of the file: point at its opening.
        if exc.context_mark is not None and "<stream end>" in problem:
            mark = exc.context_mark
        line = mark.line + 1 if mark is not None else None
        last = len(text.rstrip().splitlines())
        if line is not None and last and line > last:
            line = last  # "end of file" is reported past the last line: show the last one
        if exc.context:
            where = ""
            if exc.context_mark is not None and exc.context_mark is not mark:
                where = f" (started at line {exc.context_mark.line + 1})"
            problem = f"{exc.context}{where}: {problem}"
        raise YamlError(f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}", None) from None
    except RecursionError:  # the pure-Python composer recurses once per nesting level
        raise YamlError(_too_deep(), None) from None
    finally:
        loader.dispose()
    return data, lines


#: Bound on converted nodes: aliases may repeat a subtree exponentially ("billion laughs").
MAX_NODES = 200_000
#: Bound on nesting (mappings and lists inside each other): a project file needs 4 or 5 levels;
#: the conversion recurses once per level and must stay far from Python's recursion limit.
MAX_DEPTH = 64


def _too_deep() -> str:
    return (
        f"invalid YAML: nested more than {MAX_DEPTH} levels deep (lists or mappings inside "
        "each other)"
    )


_STR_TAG = "tag:yaml.org,2002:str"


class _Converter:
    """Node tree -> plain data, recording lines; refuses recursive and exploding aliases."""

    def __init__(self, loader: Any, lines: dict[KeyPath, int]):
        import yaml

        self.loader = loader
        self.lines = lines
        self.active: set[int] = set()
        self.count = 0
        self.mapping_node = yaml.MappingNode
        self.sequence_node = yaml.SequenceNode
        self.scalar_node = yaml.ScalarNode

    def scalar(self, node: Any) -> Any:
        """A scalar's value; plain strings skip the constructor (it would return the same)."""
        if node.tag == _STR_TAG:
            return node.value
        return self.loader.construct_object(node, deep=True)

    def convert(self, node: Any, path: KeyPath) -> Any:
        line = node.start_mark.line + 1
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(f"document too large (over {MAX_NODES} nodes; aliases?)", line)
        if id(node) in self.active:
            raise YamlError("recursive alias (an anchor that contains itself)", line)
        if len(path) > MAX_DEPTH:
            raise YamlError(_too_deep(), line)
        self.lines[path] = line
        if isinstance(node, self.mapping_node):
            self.active.add(id(node))
            self.loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, self.scalar_node):
                    raise YamlError("mapping keys must be plain scalars", key_line)
                key = self.scalar(key_node)
                if key in out:
                    raise YamlError(f"duplicate key {key!r}", key_line)
                out[key] = self.convert(value_node, (*path, key))
                self.lines[(*path, key)] = key_line
            self.active.discard(id(node))
            return out
        if isinstance(node, self.sequence_node):
            self.active.add(id(node))
            items = [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            self.active.discard(id(node))
            return items
        if isinstance(node, self.scalar_node):
            return self.scalar(node)
        return self.loader.construct_object(node, deep=True)
