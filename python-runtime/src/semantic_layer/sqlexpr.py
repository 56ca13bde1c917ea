"""sqlglot helpers: parse user SQL fragments and refuse anything but plain expressions.

Every SQL fragment a user writes (column ``expr``, measure ``expr`` and ``filter``, segment and
join ``on`` expressions, query filters) goes through :func:`parse_fragment` then
:func:`check_nodes`, which walks the tree against an allow-list: columns, literals, operators,
predicates, CASE, CAST and scalar functions. Statements, subqueries, ``*`` outside ``count(*)``,
window functions, table functions and parameters are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

#: Scalar functions refused even though they are not statements: file, extension or server
#: access, and side effects a read-only transaction does not stop (PostgreSQL large objects and
#: session settings, advisory locks, other sessions) on SQLite, PostgreSQL, DuckDB and MySQL.
DENIED_FUNCTIONS = frozenset(
    {
        # SQLite
        "load_extension",
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
        "sqlite_compileoption_get",
        # PostgreSQL
        "lo_import",
        "lo_export",
        "lo_create",
        "lo_creat",
        "lo_unlink",
        "lo_from_bytea",
        "lo_put",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "set_config",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_notify",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "dblink",
        "dblink_exec",
        # DuckDB
        "getenv",
        # MySQL / MariaDB
        "load_file",
        "get_lock",
        "release_lock",
        "release_all_locks",
    }
)

_ALLOWED_NODES: tuple[type[exp.Expression], ...] = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Predicate,
    exp.Connector,
    exp.Binary,
    exp.Unary,
    exp.Cast,
    exp.DataType,
    exp.DataTypeParam,
    exp.Interval,
    exp.Var,
    exp.Tuple,
    exp.Bracket,
)

_REFUSED_NODES: tuple[type[exp.Expression], ...] = (
    exp.Query,
    exp.Subquery,
    exp.UDTF,
    exp.Window,
    exp.Placeholder,
    exp.Parameter,
    exp.Alias,
    exp.Table,
)


#: Words that cannot be used as a bare name in at least one supported dialect (SQL-standard and
#: PostgreSQL reserved words, plus SQLite's). Names from YAML that are one of them are quoted.
RESERVED_WORDS = frozenset(
    """all analyse analyze and any array as asc asymmetric authorization between binary both by
    case cast check collate collation column constraint create cross current_catalog current_date
    current_role current_schema current_time current_timestamp current_user default deferrable
    delete desc distinct do drop else end escape except exists false fetch for foreign freeze from
    full glob grant group having ilike in index initially inner insert intersect interval into is
    isnull join lateral leading left like limit localtime localtimestamp match natural not notnull
    null offset on only or order outer over overlaps placing primary qualify references regexp
    returning right select session_user set similar some symmetric table tablesample then to
    trailing true union unique update user using values variadic verbose when where window
    with""".split()
)


class ExprError(Exception):
    """A SQL fragment was refused; the message says why in user terms."""


def identifier(name: str, dialect: str) -> exp.Identifier:
    """A name from YAML (source or column) as an identifier that ``dialect`` accepts.

    Ordinary names stay bare (so the database folds their case as usual); a reserved word such
    as ``order`` is quoted, in the case the dialect would have folded it to (``"order"`` in
    PostgreSQL, ``"ORDER"`` in Snowflake), so it still names the same column.
    """
    ident = exp.to_identifier(name)
    if ident.quoted or name.lower() not in RESERVED_WORDS:
        return ident
    ident = Dialect.get_or_raise(dialect).normalize_identifier(ident)
    ident.set("quoted", True)
    return ident


#: Deepest nesting accepted in one SQL fragment: parentheses, function calls, CASE ... END and
#: runs of NOT / unary minus, each one level. sqlglot parses and renders recursively, about 25
#: Python frames per level; 20 levels stay well inside Python's default recursion limit of 1000
#: even when the compiler's own frames and a daemon thread's are below it, and no hand-written
#: condition comes near it.
MAX_NESTING = 20

_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.CASE}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.END}
_UNARY = {TokenType.NOT, TokenType.DASH, TokenType.PLUS, TokenType.TILDE}
#: Connectors that end the operand of a NOT (NOT binds tighter than AND/OR, looser than =).
_CONNECTORS = {
    TokenType.AND,
    TokenType.OR,
    TokenType.XOR,
    TokenType.COMMA,
    TokenType.WHEN,
    TokenType.THEN,
    TokenType.ELSE,
}
#: Tokens after which an operator is binary (a - b) rather than unary (- b).
_OPERAND_END = {
    TokenType.VAR,
    TokenType.IDENTIFIER,
    TokenType.NUMBER,
    TokenType.STRING,
    TokenType.NULL,
    TokenType.TRUE,
    TokenType.FALSE,
    TokenType.STAR,
    *_CLOSE,
}


def nesting_depth(tokens: list) -> int:
    """How deeply the expression of ``tokens`` nests (see :data:`MAX_NESTING`), iteratively."""
    deepest = 0
    saved: list[tuple[int, int]] = []  # (nots, negs) of each enclosing level
    outer = 0  # levels and unary runs of the enclosing levels
    nots = negs = 0  # unary operators open at the current level
    prev = None
    for token in tokens:
        kind = token.token_type
        prefix = prev is None or prev not in _OPERAND_END
        if kind in _OPEN:
            saved.append((nots, negs))
            outer += 1 + nots + negs
            nots = negs = 0
        elif kind in _CLOSE:
            if saved:
                nots, negs = saved.pop()
                outer -= 1 + nots + negs
        elif kind in _UNARY and prefix:
            if kind == TokenType.NOT:
                nots += 1
            else:
                negs += 1
        else:
            if kind in _CONNECTORS:
                nots = 0
            if not prefix or kind in _CONNECTORS:
                negs = 0  # a binary operator closes the unary minus runs before it
        deepest = max(deepest, outer + nots + negs)
        prev = kind
    return deepest


def _shorten(text: str, keep: int = 60) -> str:
    """``text`` quoted, with the middle of a very long one left out."""
    if len(text) <= 2 * keep:
        return repr(text)
    return f"{text[:keep]!r}...{text[-keep // 3 :]!r} ({len(text)} characters)"


def _too_deep(what: str, text: str) -> ExprError:
    return ExprError(
        f"{what}{_shorten(text)} nests too deeply: at most {MAX_NESTING} levels of parentheses, "
        "function calls, CASE and NOT are allowed; simplify it (e.g. drop redundant "
        "parentheses, or split it into several filters)"
    )


def parse_fragment(text: object, dialect: str, what: str = "") -> exp.Expression:
    """Parse ``text`` as exactly one SQL expression in ``dialect``.

    ``what`` names the fragment in messages (``"filter"``: "cannot parse filter 'x': ...").
    Every error is an :class:`ExprError` in user terms: never a sqlglot class name, and a
    fragment nested deeper than :data:`MAX_NESTING` is refused before sqlglot recurses into it.
    """
    what = f"{what} " if what else ""
    if not isinstance(text, str) or not text.strip():
        raise ExprError(f"expected a non-empty SQL {what or 'expression '}string")
    # What sqlglot.parse does, keeping the tokens to look for ';' without tokenizing twice.
    reader = Dialect.get_or_raise(dialect)
    try:
        tokens = reader.tokenize(text)
        if nesting_depth(tokens) > MAX_NESTING:
            raise _too_deep(what, text)
        statements = reader.parser().parse(tokens, text)
    except ParseError as exc:
        raise ExprError(f"cannot parse {what}{text!r}: {_parse_problem(exc)}") from None
    except TokenError:
        raise ExprError(f"cannot parse {what}{text!r}: {_token_problem(text)}") from None
    except RecursionError:  # a backstop: the nesting check keeps sqlglot well below the limit
        raise _too_deep(what, text) from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1 or any(t.token_type == TokenType.SEMICOLON for t in tokens):
        raise ExprError(f"{what}{text!r} must be a single SQL expression (no ';', no statements)")
    tree = statements[0]
    # Comments would be carried into the generated SQL: user text never reaches it verbatim.
    for node in tree.walk():
        node.comments = None
    return tree


#: sqlglot expression classes -> the SQL a user wrote for them (for "missing operand" errors).
_OPERATORS = {
    "EQ": "=",
    "NEQ": "!=",
    "GT": ">",
    "GTE": ">=",
    "LT": "<",
    "LTE": "<=",
    "NullSafeEQ": "IS NOT DISTINCT FROM",
    "NullSafeNEQ": "IS DISTINCT FROM",
    "Add": "+",
    "Sub": "-",
    "Mul": "*",
    "Div": "/",
    "IntDiv": "DIV",
    "Mod": "%",
    "DPipe": "||",
    "And": "AND",
    "Or": "OR",
    "Xor": "XOR",
    "Not": "NOT",
    "Neg": "-",
    "Like": "LIKE",
    "ILike": "ILIKE",
    "Glob": "GLOB",
    "RegexpLike": "REGEXP",
    "SimilarTo": "SIMILAR TO",
    "Is": "IS",
    "In": "IN",
    "BitwiseAnd": "&",
    "BitwiseOr": "|",
    "BitwiseXor": "^",
    "BitwiseNot": "~",
    "BitwiseLeftShift": "<<",
    "BitwiseRightShift": ">>",
    "Escape": "ESCAPE",
}
_MISSING_RE = re.compile(r"Required keyword: '(\w+)' missing for <class '(?:[\w.]+\.)?(\w+)'>")


def _parse_problem(exc: ParseError) -> str:
    """What is wrong, in SQL terms, from sqlglot's first parse error (no sqlglot internals)."""
    errors = getattr(exc, "errors", None) or [{}]
    first = errors[0]
    description = str(first.get("description") or "")
    token = str(first.get("highlight") or "").strip()
    line, col = first.get("line"), first.get("col")
    where = ""
    if isinstance(col, int):
        where = f" (line {line}, column {col})" if isinstance(line, int) and line > 1 else ""
        where = where or f" (at character {col})"
    missing = _MISSING_RE.search(description)
    if missing:
        arg, cls = missing.groups()
        op = _OPERATORS.get(cls)
        if cls == "Between":
            return f"BETWEEN needs both bounds: x BETWEEN low AND high{where}"
        if cls in ("If", "Case"):
            return f"CASE needs WHEN <condition> THEN <value> ... END{where}"
        if cls == "Column":
            return f"a name is missing around {token!r} (write source.column){where}"
        if cls in ("Parameter", "Placeholder"):
            return f"{token!r} must be followed by a name{where}"
        if op is not None and arg == "this" and cls not in ("Not", "Neg", "BitwiseNot"):
            return f"{op!r} has nothing on its left{where}"
        if op is not None:
            return f"{op!r} has nothing on its right{where}"
        return f"the expression ends early or a value is missing near {token!r}{where}"
    if description.startswith("Expecting )"):
        return f"a '(' is not closed: ')' expected{where}"
    if description.startswith("Invalid expression / Unexpected token"):
        return f"unexpected {token!r}{where}"
    if "<class" in description or "sqlglot" in description or not description:
        return f"not valid SQL near {token!r}{where}"
    return f"{description}{where}"  # sqlglot's own SQL-level wording, e.g. Expected END after CASE


def _token_problem(text: str) -> str:
    """Why ``text`` cannot be split into SQL tokens (sqlglot only says "Error tokenizing")."""
    for quote, what in (("'", "a string literal"), ('"', "a quoted name"), ("`", "a quoted name")):
        if text.count(quote) % 2:
            return f"{what} is not closed (missing {quote})"
    return "it contains characters that are not SQL (check quotes and brackets)"


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def check_nodes(tree: exp.Expression, text: str, *, aggregates: bool) -> None:
    """Refuse any node outside the allow-list; ``aggregates`` allows aggregate functions."""
    for node in tree.walk():
        if isinstance(node, _REFUSED_NODES):
            raise ExprError(f"{text!r} contains {_refused_name(node)}, which is not allowed here")
        if isinstance(node, exp.In) and (node.args.get("field") or node.args.get("unnest")):
            # `x IN t` / `x IN f(...)`: SQLite reads the name as a table or table function.
            raise ExprError(f"{text!r}: IN takes a list in parentheses, e.g. x IN ('a', 'b')")
        if isinstance(node, exp.Star):
            parent = node.parent
            if aggregates and isinstance(parent, exp.Count) and parent.this is node:
                continue
            raise ExprError(f"{text!r}: '*' is only allowed as count(*) in a measure")
        if isinstance(node, exp.Distinct):
            if aggregates and isinstance(node.parent, exp.AggFunc):
                continue
            raise ExprError(f"{text!r}: DISTINCT is only allowed inside an aggregate of a measure")
        if isinstance(node, exp.AggFunc):
            if not aggregates:
                raise ExprError(
                    f"{text!r} uses the aggregate {_function_name(node)}(); aggregates belong "
                    "in measures (a query filter over a measure becomes HAVING)"
                )
            continue
        if isinstance(node, exp.Func):
            if _function_name(node) in DENIED_FUNCTIONS:
                raise ExprError(f"{text!r}: function {_function_name(node)}() is not allowed")
            continue
        if isinstance(node, _ALLOWED_NODES):
            continue
        raise ExprError(
            f"{text!r} contains {node.key.replace('_', ' ').upper()} syntax, which is not "
            "allowed in an expression (use columns, literals, operators, CASE, CAST and scalar "
            "functions)"
        )


def _refused_name(node: exp.Expression) -> str:
    """A refused node in the words of SQL."""
    if isinstance(node, (exp.Query, exp.Subquery)):
        return "a subquery"
    if isinstance(node, exp.Alias):
        return "an alias (a name after a value, as in `x AS y` or `x y`)"
    if isinstance(node, exp.Window):
        return "a window function (OVER ...)"
    if isinstance(node, (exp.Placeholder, exp.Parameter)):
        return f"a query parameter ({node.sql()})"
    if isinstance(node, exp.UDTF):
        return "a table function"
    if isinstance(node, exp.Table):
        return "a table reference"
    return node.key


def check_measure_shape(tree: exp.Expression, text: str) -> None:
    """A measure aggregates: at least one aggregate, no nesting, no column outside one."""
    aggs = list(tree.find_all(exp.AggFunc))
    if not aggs:
        raise ExprError(f"{text!r} must aggregate, e.g. sum(amount) or count(*)")
    for agg in aggs:
        if agg.find_ancestor(exp.AggFunc) is not None:
            raise ExprError(f"{text!r} nests aggregates, which SQL does not allow")
    for col in tree.find_all(exp.Column):
        if col.find_ancestor(exp.AggFunc) is None:
            raise ExprError(
                f"{text!r} uses column {col.sql()!r} outside an aggregate; wrap it, e.g. max(...)"
            )


def is_boolean_shape(tree: exp.Expression) -> bool:
    """True if ``tree`` is syntactically a condition (comparison, AND/OR/NOT, IN, LIKE...)."""
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if isinstance(tree, exp.Escape):  # x LIKE 'a!%' ESCAPE '!'
        return isinstance(tree.this, (exp.Like, exp.ILike))
    if isinstance(tree, exp.SubqueryPredicate):  # a bare ANY x / ALL x is not a condition
        return False
    return isinstance(tree, (exp.Predicate, exp.Connector, exp.Not, exp.Boolean))


def needs_parens(node: exp.Expression) -> bool:
    """Whether substituting ``node`` into a larger expression needs parentheses."""
    return not isinstance(
        node, (exp.Column, exp.Literal, exp.Func, exp.Paren, exp.Identifier, exp.Boolean, exp.Null)
    )


def wrap(node: exp.Expression) -> exp.Expression:
    """``node`` in parentheses if it is compound."""
    return exp.Paren(this=node) if needs_parens(node) else node


def map_columns(
    tree: exp.Expression, fn: Callable[[exp.Column], exp.Expression], *, copy: bool = True
) -> exp.Expression:
    """A copy of ``tree`` with every column replaced by ``fn(column)``.

    ``copy=False`` rewrites ``tree`` in place instead, for a freshly parsed tree that the
    caller does not use afterwards (saves a deep copy).
    """

    def visit(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column):
            return fn(node)
        return node

    return tree.transform(visit, copy=copy)


def conjuncts(tree: exp.Expression) -> list[exp.Expression]:
    """Split a condition on its top-level ANDs."""
    inner = tree
    while isinstance(inner, exp.Paren) and isinstance(inner.this, exp.And):
        inner = inner.this
    if isinstance(inner, exp.And):
        return [*conjuncts(inner.left), *conjuncts(inner.right)]
    return [tree]
