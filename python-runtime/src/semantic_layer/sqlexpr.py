"""sqlglot helpers: parse user SQL fragments and refuse anything but plain expressions.

Every SQL fragment a user writes (column ``expr``, measure ``expr`` and ``filter``, segment and
join ``on`` expressions, query filters) goes through :func:`parse_fragment` then
:func:`check_nodes`, which walks the tree against an allow-list: columns, literals, operators,
predicates, CASE, CAST and scalar functions. Statements, subqueries, ``*`` outside ``count(*)``,
window functions, table functions and parameters are refused.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

#: Scalar functions refused even though they are not statements (file or extension access).
DENIED_FUNCTIONS = frozenset(
    {
        "load_extension",
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
        "sqlite_compileoption_get",
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


def parse_fragment(text: object, dialect: str) -> exp.Expression:
    """Parse ``text`` as exactly one SQL expression in ``dialect``."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("expected a non-empty SQL expression string")
    # What sqlglot.parse does, keeping the tokens to look for ';' without tokenizing twice.
    reader = Dialect.get_or_raise(dialect)
    try:
        tokens = reader.tokenize(text)
        statements = reader.parser().parse(tokens, text)
    except (ParseError, TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExprError(f"cannot parse {text!r}: {first}") from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1 or any(t.token_type == TokenType.SEMICOLON for t in tokens):
        raise ExprError(f"{text!r} must be a single SQL expression (no ';', no statements)")
    tree = statements[0]
    # Comments would be carried into the generated SQL: user text never reaches it verbatim.
    for node in tree.walk():
        node.comments = None
    return tree


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def check_nodes(tree: exp.Expression, text: str, *, aggregates: bool) -> None:
    """Refuse any node outside the allow-list; ``aggregates`` allows aggregate functions."""
    for node in tree.walk():
        if isinstance(node, _REFUSED_NODES):
            what = "a subquery" if isinstance(node, (exp.Query, exp.Subquery)) else node.key
            raise ExprError(f"{text!r} contains {what}, which is not allowed here")
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
        raise ExprError(f"{text!r} contains {node.key!r}, which is not allowed in an expression")


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
