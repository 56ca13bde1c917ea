"""Query compiler: measures, dimensions, filters and segments to one SQL statement.

Shape of the SQL (all built as sqlglot trees, rendered in the connection's dialect):

* Measures are grouped by their source. Each measure source ``S`` gets one aggregate query:
  ``FROM S LEFT JOIN ...`` along the shortest join path to every source the dimensions, row
  filters and segments need, ``WHERE`` row filters and segments, ``GROUP BY`` the dimensions.
* If that join tree crosses a ``one_to_many`` edge (as traversed from ``S``), ``S``'s rows
  would be repeated, so its measures are not aggregated over the joined rows: a ``ktx_keys_S``
  CTE selects the DISTINCT (grain of ``S``, dimensions) pairs, and the aggregate joins ``S``
  back on its grain. Each row of ``S`` then counts once per dimension value.
* One measure source: that aggregate query is the statement (``HAVING`` for measure filters;
  without dimensions an outer ``WHERE`` filters its single row, as SQLite < 3.39 has no
  ``HAVING`` without ``GROUP BY``).
  Several: each is a CTE ``ktx_agg_S``; ``ktx_dims`` is the UNION of their dimension values and
  every CTE is LEFT JOINed to it on the dimensions (NULL-safe), so no source's rows multiply
  another's. Measure filters then filter the outer query.
* Without ``orderBy`` the rows are ordered by the dimensions, ascending.
"""

from __future__ import annotations

import difflib
from collections import deque
from typing import Any

from sqlglot import exp

from semantic_layer import granularity, sqlexpr
from semantic_layer.errors import Record, SemanticError
from semantic_layer.project import Connection, Project, Source, join_edges
from semantic_layer.sqlexpr import ExprError

DEFAULT_LIMIT = 1000


class QueryRequest(Record):
    """A validated query payload."""

    __slots__ = ("measures", "dimensions", "filters", "segments", "order_by", "limit")

    def __init__(
        self,
        measures: list[str],
        dimensions: list[str] | None = None,
        filters: list[str] | None = None,
        segments: list[str] | None = None,
        order_by: list[str] | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.measures = measures
        self.dimensions = [] if dimensions is None else dimensions
        self.filters = [] if filters is None else filters
        self.segments = [] if segments is None else segments
        self.order_by = [] if order_by is None else order_by
        self.limit = limit


class CompiledQuery(Record):
    """The SQL and what the caller needs to present its rows."""

    __slots__ = ("sql", "dialect", "headers", "plan")

    def __init__(self, sql: str, dialect: str, headers: list[str], plan: dict[str, Any]) -> None:
        self.sql = sql
        self.dialect = dialect
        self.headers = headers
        self.plan = plan


class _MeasureRef(Record):
    __slots__ = ("source", "name", "sql", "header", "alias", "hidden")

    def __init__(
        self,
        source: Source,
        name: str,
        sql: exp.Expression,
        header: str,
        alias: str,
        hidden: bool = False,
    ) -> None:
        self.source = source
        self.name = name
        self.sql = sql
        self.header = header
        self.alias = alias
        self.hidden = hidden


class _DimRef(Record):
    __slots__ = ("source", "column", "granularity", "header", "alias", "sql")

    def __init__(
        self,
        source: Source,
        column: str,
        granularity: str | None,
        header: str,
        alias: str,
        sql: exp.Expression,
    ) -> None:
        self.source = source
        self.column = column
        self.granularity = granularity
        self.header = header
        self.alias = alias
        self.sql = sql


class _Having(Record):
    __slots__ = ("tree", "text")

    def __init__(self, tree: exp.Expression, text: str) -> None:
        self.tree = tree
        self.text = text


def _suggest(text: str, candidates: list[str]) -> list[str]:
    close = difflib.get_close_matches(text, candidates, n=5, cutoff=0.5)
    tail = text.split(".")[-1]
    for cand in candidates:
        if cand.split(".")[-1] == tail and cand not in close:
            close.append(cand)
    return close[:5]


def _unknown(code: str, kind: str, text: str, candidates: list[str], conn: Connection):
    # Close names are data (details.suggestions, printed by the CLI), never message text.
    close = _suggest(text, candidates)
    none = f"; connection {conn.id!r} has no {kind}s" if not candidates else ""
    return SemanticError(
        code,
        f"unknown {kind} {text!r}{none}",
        {"name": text, "suggestions": close, "connectionId": conn.id},
    )


class _Aliases:
    """Output column aliases ``source__name[__grain]``, made unique (names may contain ``__``)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = "__".join(parts)
        alias, n = base, 2
        while alias.lower() in self.used:
            alias, n = f"{base}_{n}", n + 1
        self.used.add(alias.lower())
        return alias


class _Scope:
    """What every phase of one compilation reads: the connection's sources and dialect, the
    alias allocator (shared, so aliases stay unique across phases) and the known names (for
    "did you mean" suggestions)."""

    __slots__ = ("sources", "conn", "dialect", "alias", "all_measures", "all_dims")

    def __init__(self, sources: dict[str, Source], conn: Connection) -> None:
        self.sources = sources
        self.conn = conn
        self.dialect = conn.dialect
        self.alias = _Aliases()
        self.all_measures = sorted(f"{s.name}.{m}" for s in sources.values() for m in s.measures)
        self.all_dims = sorted(f"{s.name}.{c}" for s in sources.values() for c in s.columns)


class _Rows(Record):
    """Row conditions (``WHERE``: segments and column filters) and the sources they touch."""

    __slots__ = ("conditions", "sources")

    def __init__(self, conditions: list[exp.Expression], sources: set[str]) -> None:
        self.conditions = conditions
        self.sources = sources


def compile_query(project: Project, conn: Connection, req: QueryRequest) -> CompiledQuery:
    """Compile ``req`` against ``conn``'s sources; raises SemanticError for bad queries.

    One function per phase, in the order they run (each refuses what it cannot resolve):
    measures, dimensions, segments, filters, order, then the aggregate statement.
    """
    scope = _Scope(project.sources.get(conn.id, {}), conn)
    if not req.measures:
        raise SemanticError("invalid_query", "give at least one measure (source.measure)")
    headers_seen: set[str] = set()
    measures = _resolve_measures(scope, req.measures, headers_seen)
    dims = _resolve_dimensions(scope, req.dimensions, headers_seen)
    rows = _resolve_segments(scope, req.segments, dims)
    havings, hidden = _resolve_filters(scope, req.filters, measures, rows)
    headers, order = _resolve_order(req.order_by, dims, measures)
    final, ctes, strategy, plan_sources = _aggregate_statement(
        scope, dims, measures, hidden, havings, rows
    )
    for alias, desc in order:
        final = final.order_by(exp.Ordered(this=exp.column(alias), desc=desc), copy=False)
    final = final.limit(req.limit, copy=False)
    for name, query in ctes:
        final = final.with_(name, as_=query, copy=False)

    dialect = scope.dialect
    sql = final.sql(dialect=dialect, pretty=True)
    plan = {
        "strategy": strategy,
        "measureSources": plan_sources,
        "where": [c.sql(dialect=dialect) for c in rows.conditions],
        "having": [h.tree.sql(dialect=dialect) for h in havings],
        "orderBy": [{"field": a, "desc": d} for a, d in order],
        "limit": req.limit,
    }
    return CompiledQuery(sql=sql, dialect=dialect, headers=headers, plan=plan)


def _resolve_measures(scope: _Scope, texts: list[str], headers_seen: set[str]) -> list[_MeasureRef]:
    """``source.measure`` references, each listed once."""
    measures: list[_MeasureRef] = []
    for text in texts:
        if not isinstance(text, str) or text.count(".") != 1:
            raise _unknown("unknown_measure", "measure", str(text), scope.all_measures, scope.conn)
        sname, mname = text.split(".")
        source = scope.sources.get(sname)
        measure = source.measures.get(mname) if source else None
        if source is None or measure is None or measure.sql is None:
            raise _unknown("unknown_measure", "measure", text, scope.all_measures, scope.conn)
        if text in headers_seen:
            raise SemanticError("invalid_query", f"measure {text!r} is listed twice")
        headers_seen.add(text)
        measures.append(_MeasureRef(source, mname, measure.sql, text, scope.alias(sname, mname)))
    return measures


def _resolve_dimensions(scope: _Scope, texts: list[str], headers_seen: set[str]) -> list[_DimRef]:
    """``source.column[:granularity]`` references, each listed once; a granularity truncates a
    time column in the connection's dialect."""
    dims: list[_DimRef] = []
    for text in texts:
        if not isinstance(text, str):
            raise SemanticError("invalid_query", f"dimension {text!r} must be a string")
        ref, colon, gran = text.partition(":")
        if colon and not gran:
            raise SemanticError(
                "invalid_query",
                f"{text!r}: give a granularity after ':' ({', '.join(granularity.GRANULARITIES)})"
                " or drop the ':'",
            )
        if ref.count(".") != 1:
            raise _unknown("unknown_dimension", "dimension", text, scope.all_dims, scope.conn)
        sname, cname = ref.split(".")
        source = scope.sources.get(sname)
        column = source.columns.get(cname) if source else None
        if source is None or column is None or column.sql is None:
            raise _unknown("unknown_dimension", "dimension", ref, scope.all_dims, scope.conn)
        if text in headers_seen:
            raise SemanticError("invalid_query", f"dimension {text!r} is listed twice")
        headers_seen.add(text)
        sql = column.sql.copy()
        if gran:
            if gran not in granularity.GRANULARITIES:
                raise SemanticError(
                    "invalid_query",
                    f"unknown granularity {gran!r} in {text!r}; use one of "
                    f"{', '.join(granularity.GRANULARITIES)}",
                )
            if column.type != "time":
                raise SemanticError(
                    "invalid_query",
                    f"{text!r}: granularity needs a time column, {ref} is {column.type}",
                )
            sql = granularity.truncate(sql, gran, scope.dialect)
            alias = scope.alias(sname, cname, gran)
        else:
            alias = scope.alias(sname, cname)
        dims.append(_DimRef(source, cname, gran or None, text, alias, sql))
    return dims


def _resolve_segments(scope: _Scope, texts: list[str], dims: list[_DimRef]) -> _Rows:
    """``source.segment`` references: the first row conditions. The row sources start with the
    dimensions' sources."""
    all_segments = sorted(f"{s.name}.{g}" for s in scope.sources.values() for g in s.segments)
    rows = _Rows([], {d.source.name for d in dims})
    for text in texts:
        if not isinstance(text, str) or text.count(".") != 1:
            raise _unknown("unknown_segment", "segment", str(text), all_segments, scope.conn)
        sname, gname = text.split(".")
        source = scope.sources.get(sname)
        segment = source.segments.get(gname) if source else None
        if source is None or segment is None or segment.sql is None:
            raise _unknown("unknown_segment", "segment", text, all_segments, scope.conn)
        rows.conditions.append(segment.sql.copy())
        rows.sources.add(sname)
    return rows


def _resolve_filters(
    scope: _Scope, texts: list[str], measures: list[_MeasureRef], rows: _Rows
) -> tuple[list[_Having], dict[str, _MeasureRef]]:
    """Filters, split into conjuncts: column conditions join ``rows`` (WHERE), measure
    conditions become HAVINGs. Returns the HAVINGs and the measures they need that the query
    does not list (computed but hidden from the output)."""
    sources, dialect = scope.sources, scope.dialect
    havings: list[_Having] = []
    hidden: dict[str, _MeasureRef] = {}
    by_header = {m.header: m for m in measures}
    for text in texts:
        try:
            tree = sqlexpr.parse_fragment(text, dialect, "filter")
            sqlexpr.check_nodes(tree, text, aggregates=False)
            if not sqlexpr.is_boolean_shape(tree) and not _is_boolean_column(tree, sources):
                raise ExprError(f"{text!r} must be a condition (a comparison, AND/OR, IN...)")
        except ExprError as exc:
            message = str(exc)
            if isinstance(text, str) and message.startswith(repr(text)):
                message = f"filter {message}"  # name what was refused: the filter
            raise SemanticError("invalid_filter", message, {"filter": text}) from None
        for part in sqlexpr.conjuncts(tree):
            kinds = set()
            for col in part.find_all(exp.Column):
                kinds.add(_classify_column(col, text, sources, scope.all_dims, scope.all_measures))
            if "measure" in kinds and "column" in kinds:
                raise SemanticError(
                    "invalid_filter",
                    f"{part.sql(dialect=dialect)!r} mixes measures and columns; split it into "
                    "separate filters (column conditions filter rows, measure conditions groups)",
                    {"filter": text},
                )
            if "measure" in kinds:
                for col in part.find_all(exp.Column):
                    header = f"{col.table}.{col.name}"
                    if header not in by_header and header not in hidden:
                        source = sources[col.table]
                        hidden[header] = _MeasureRef(
                            source,
                            col.name,
                            source.measures[col.name].sql,
                            header,
                            scope.alias(col.table, col.name),
                            hidden=True,
                        )
                havings.append(_Having(part, text))
            else:
                for col in part.find_all(exp.Column):
                    rows.sources.add(col.table)
                rows.conditions.append(
                    sqlexpr.map_columns(
                        part, lambda c: sqlexpr.wrap(sources[c.table].columns[c.name].sql.copy())
                    )
                )
    return havings, hidden


def _resolve_order(
    texts: list[str], dims: list[_DimRef], measures: list[_MeasureRef]
) -> tuple[list[str], list[tuple[str, bool]]]:
    """The output headers and the ORDER BY as (alias, descending); without ``orderBy``, the
    dimensions ascending."""
    headers = [d.header for d in dims] + [m.header for m in measures]
    alias_of = {d.header: d.alias for d in dims} | {m.header: m.alias for m in measures}
    order: list[tuple[str, bool]] = []
    for text in texts:
        if not isinstance(text, str):
            raise SemanticError("invalid_query", f"orderBy entry {text!r} must be a string")
        field_name, desc = text, False
        head, _, tail = text.rpartition(":")
        if head and tail.lower() in ("asc", "desc"):
            field_name, desc = head, tail.lower() == "desc"
        elif head and text not in alias_of and tail not in granularity.GRANULARITIES:
            # `field:up`: a direction typo, not a field (`x:month` is a time dimension).
            known = "" if head in alias_of else f"; and {head!r} is not in the query either"
            raise SemanticError(
                "invalid_query",
                f"cannot order by {text!r}: the direction after ':' must be asc or desc, "
                f"not {tail!r} (write {head}:asc or {head}:desc){known} (fields: "
                f"{', '.join(headers)})",
                {"orderBy": text, "fields": headers},
            )
        if field_name not in alias_of:
            raise SemanticError(
                "invalid_query",
                f"cannot order by {field_name!r}: it is not in the query (fields: "
                f"{', '.join(headers)})",
                {"orderBy": text, "fields": headers},
            )
        order.append((alias_of[field_name], desc))
    if not texts:
        order = [(d.alias, False) for d in dims]
    return headers, order


def _aggregate_statement(
    scope: _Scope,
    dims: list[_DimRef],
    measures: list[_MeasureRef],
    hidden: dict[str, _MeasureRef],
    havings: list[_Having],
    rows: _Rows,
) -> tuple[exp.Select, list[tuple[str, exp.Expression]], str, list[dict[str, Any]]]:
    """One aggregate per measure source, then the statement over them (see the module doc).
    Returns the statement (without ORDER BY and LIMIT), its CTEs, the strategy and the plan's
    per-source entries."""
    sources = scope.sources
    by_source: dict[str, list[_MeasureRef]] = {}
    for m in measures + list(hidden.values()):
        by_source.setdefault(m.source.name, []).append(m)
    edges = join_edges(sources)
    reserved = _reserved_names(sources)
    ctes: list[tuple[str, exp.Expression]] = []
    aggregates: list[tuple[str, exp.Select, list[_MeasureRef]]] = []
    plan_sources = []
    for sname, refs in by_source.items():
        root = sources[sname]
        tree = _join_tree(sname, sorted(rows.sources - {sname}), edges)
        fanned = [step for step in tree if step[2] == "one_to_many"]
        select, keys_cte = _aggregate(
            root, sources, tree, dims, refs, rows.conditions, bool(fanned), reserved
        )
        if keys_cte is not None:
            ctes.append(keys_cte)
        aggregates.append((sname, select, refs))
        plan_sources.append(
            {
                "source": sname,
                "measures": [m.header for m in refs],
                "joins": [{"from": a, "to": b, "relationship": r} for a, b, r, _ in tree],
                "fanOut": bool(fanned),
                "strategy": "distinct_grain_keys" if fanned else "direct",
            }
        )
    if len(aggregates) == 1:
        _, select, refs = aggregates[0]
        final = _single_source(select, refs, dims, measures, bool(hidden), havings, reserved)
        return final, ctes, "single_source", plan_sources
    final, extra = _combine(aggregates, dims, measures, havings, reserved)
    ctes.extend(extra)
    return final, ctes, "per_source_ctes", plan_sources


def _single_source(
    select: exp.Select,
    refs: list[_MeasureRef],
    dims: list[_DimRef],
    measures: list[_MeasureRef],
    has_hidden: bool,
    havings: list[_Having],
    reserved: set[str],
) -> exp.Select:
    """The statement when one source holds every measure: its aggregate, with the measure
    filters as HAVING (or an outer WHERE without dimensions) and hidden measures dropped."""
    if havings and not dims:
        # HAVING without GROUP BY needs SQLite >= 3.39 (Python 3.10 may bring 3.37): filter
        # the single aggregate row in an outer query instead, in every dialect.
        totals = _fresh("ktx_totals", reserved)
        alias_by_header = {m.header: m.alias for m in refs}
        final = exp.select(
            *[_as(exp.column(m.alias, table=totals), m.alias) for m in measures]
        ).from_(exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(totals))))
        for h in havings:
            final = final.where(
                sqlexpr.map_columns(
                    h.tree,
                    lambda c: exp.column(alias_by_header[f"{c.table}.{c.name}"], table=totals),
                ),
                copy=False,
            )
        return final
    measure_sql = {m.header: m.sql for m in refs}
    for h in havings:
        select = select.having(
            sqlexpr.map_columns(
                h.tree, lambda c: sqlexpr.wrap(measure_sql[f"{c.table}.{c.name}"].copy())
            ),
            copy=False,
        )
    if has_hidden:
        keep = {d.alias for d in dims} | {m.alias for m in measures}
        select.set("expressions", [e for e in select.expressions if e.alias in keep])
    return select


def _is_boolean_column(tree: exp.Expression, sources: dict[str, Source]) -> bool:
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if isinstance(tree, exp.Column) and tree.table in sources:
        column = sources[tree.table].columns.get(tree.name)
        return column is not None and column.type == "boolean"
    return False


def _classify_column(
    col: exp.Column,
    text: str,
    sources: dict[str, Source],
    all_dims: list[str],
    all_measures: list[str],
) -> str:
    if col.args.get("db") or not col.table:
        written = col.sql()
        close = [c for c in all_dims + all_measures if c.split(".")[-1] == col.name][:5]
        raise SemanticError(
            "invalid_filter",
            f"filter {text!r}: column {written!r} must be written source.column "
            "(string literals take single quotes)",
            {"filter": text, "suggestions": close},
        )
    source = sources.get(col.table)
    ref = f"{col.table}.{col.name}"
    if source is not None:
        column = source.columns.get(col.name)
        if column is not None and column.sql is not None:
            return "column"
        measure = source.measures.get(col.name)
        if measure is not None and measure.sql is not None:
            return "measure"
    close = _suggest(ref, all_dims + all_measures)
    raise SemanticError(
        "invalid_filter",
        f"filter {text!r}: unknown column {ref!r}",
        {"filter": text, "suggestions": close},
    )


def _join_tree(
    root: str, targets: list[str], edges: dict[str, list[tuple[str, str, Any]]]
) -> list[tuple[str, str, str, Any]]:
    """Shortest-path join tree from ``root`` to ``targets``: [(from, to, relationship, on)]."""
    dist = {root: 0}
    count = {root: 1}
    parents: dict[str, list[tuple[str, str, Any]]] = {root: []}
    queue = deque([root])
    while queue:
        node = queue.popleft()
        for nxt, rel, on in edges.get(node, []):
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                count[nxt] = count[node]
                parents[nxt] = [(node, rel, on)]
                queue.append(nxt)
            elif dist[nxt] == dist[node] + 1:
                count[nxt] += count[node]
                parents[nxt].append((node, rel, on))
    for target in targets:
        if target not in dist:
            raise SemanticError(
                "no_join_path",
                f"no join path between {root} and {target}; declare a join (joins: "
                f"[{{to: ..., on: ..., relationship: ...}}]) linking them",
                {"from": root, "to": target},
            )
        if target not in edges:
            raise SemanticError("no_join_path", f"unknown source {target}", {"to": target})
    for target in targets:
        if count[target] > 1:
            paths = _paths(target, root, parents)
            shown = "; ".join(" -> ".join(p) for p in paths[:4])
            raise SemanticError(
                "ambiguous_join",
                f"ambiguous join path between {root} and {target}: {len(paths)} shortest paths "
                f"({shown}); remove a join or query through a single path",
                {"from": root, "to": target, "paths": paths[:10]},
            )
    steps: dict[str, tuple[str, str, str, Any]] = {}
    for target in targets:
        node = target
        while node != root and node not in steps:
            parent, rel, on = parents[node][0]
            steps[node] = (parent, node, rel, on)
            node = parent
    return sorted(steps.values(), key=lambda s: (dist[s[1]], s[1]))


def _paths(node: str, root: str, parents: dict[str, list[tuple[str, str, Any]]]) -> list[list[str]]:
    if node == root:
        return [[root]]
    out = []
    for parent, _, _ in parents[node]:
        for path in _paths(parent, root, parents):
            out.append([*path, node])
            if len(out) >= 10:
                return out
    return out


def _reserved_names(sources: dict[str, Source]) -> set[str]:
    names = {s.lower() for s in sources}
    for source in sources.values():
        if source.relation is not None:
            for table in source.relation.find_all(exp.Table):
                names.add(table.name.lower())
    return names


def _fresh(base: str, reserved: set[str]) -> str:
    name, n = base, 2
    while name.lower() in reserved:
        name, n = f"{base}_{n}", n + 1
    reserved.add(name.lower())
    return name


def _and(conditions: list[exp.Expression]) -> exp.Expression | None:
    if not conditions:
        return None
    return exp.and_(*[c.copy() for c in conditions], copy=False)


def _as(node: exp.Expression, alias: str) -> exp.Alias:
    """``node AS alias`` without copying ``node`` (callers pass fresh trees)."""
    return exp.Alias(this=node, alias=exp.to_identifier(alias))


def _join(select: exp.Select, table: exp.Expression, on: exp.Expression | None, side: str):
    """Append ``side JOIN table ON on`` in place (``side`` LEFT, INNER or CROSS)."""
    join = exp.Join(this=table)
    if side == "CROSS":
        join.set("kind", "CROSS")
    elif side == "INNER":
        join.set("kind", "INNER")
    else:
        join.set("side", side)
    if on is not None:
        join.set("on", on)
    select.append("joins", join)
    return select


def _aggregate(
    root: Source,
    sources: dict[str, Source],
    tree: list[tuple[str, str, str, Any]],
    dims: list[_DimRef],
    refs: list[_MeasureRef],
    conditions: list[exp.Expression],
    fanned: bool,
    reserved: set[str],
) -> tuple[exp.Select, tuple[str, exp.Expression] | None]:
    """The aggregate query for one measure source (plus its keys CTE when fanned out)."""

    def joined(select: exp.Select) -> exp.Select:
        select = select.from_(root.relation.copy(), copy=False)
        for _, child, _, on in tree:
            select = _join(select, sources[child].relation.copy(), on.copy(), "LEFT")
        where = _and(conditions)
        return select.where(where, copy=False) if where is not None else select

    measures = [_as(m.sql.copy(), m.alias) for m in refs]
    if not fanned:
        select = joined(exp.select(*[_as(d.sql.copy(), d.alias) for d in dims]))
        select = select.select(*measures, copy=False)
        if dims:
            select = select.group_by(*[d.sql.copy() for d in dims], copy=False)
        return select, None

    if not root.grain:
        via = ", ".join(f"{a} -> {b}" for a, b, r, _ in tree if r == "one_to_many")
        raise SemanticError(
            "missing_grain",
            f"measures of {root.name} would be repeated by the one_to_many join {via}; declare "
            f"`grain:` (its primary key columns) in {root.file} so ktx can count each row once",
            {"source": root.name, "file": root.file},
        )
    keys_name = _fresh(f"ktx_keys_{root.name}", reserved)
    grain_sql = [root.columns[g].sql for g in root.grain]
    keys = joined(
        exp.select(
            *[_as(g.copy(), f"ktx_grain_{i}") for i, g in enumerate(grain_sql)],
            *[_as(d.sql.copy(), d.alias) for d in dims],
        ).distinct(copy=False)
    )
    on = exp.and_(
        *[
            exp.EQ(this=g.copy(), expression=exp.column(f"ktx_grain_{i}", table=keys_name))
            for i, g in enumerate(grain_sql)
        ]
    )
    select = exp.select(
        *[_as(exp.column(d.alias, table=keys_name), d.alias) for d in dims], *measures
    ).from_(exp.to_table(keys_name))
    select = _join(select, root.relation.copy(), on, "INNER")
    if dims:
        select = select.group_by(*[exp.column(d.alias, table=keys_name) for d in dims], copy=False)
    return select, (keys_name, keys)


def _null_safe_eq(left: exp.Expression, right: exp.Expression) -> exp.Expression:
    both_null = exp.and_(
        exp.Is(this=left.copy(), expression=exp.Null()),
        exp.Is(this=right.copy(), expression=exp.Null()),
    )
    return exp.Paren(this=exp.or_(exp.EQ(this=left, expression=right), exp.Paren(this=both_null)))


def _combine(
    aggregates: list[tuple[str, exp.Select, list[_MeasureRef]]],
    dims: list[_DimRef],
    measures: list[_MeasureRef],
    havings: list[_Having],
    reserved: set[str],
) -> tuple[exp.Select, list[tuple[str, exp.Expression]]]:
    """Join per-source aggregates on the dimensions without multiplying rows."""
    ctes: list[tuple[str, exp.Expression]] = []
    cte_of: dict[str, str] = {}
    alias_of: dict[str, str] = {}
    for sname, select, refs in aggregates:
        name = _fresh(f"ktx_agg_{sname}", reserved)
        ctes.append((name, select))
        for m in refs:
            cte_of[m.header] = name
            alias_of[m.header] = m.alias
    if dims:
        dims_name = _fresh("ktx_dims", reserved)
        parts = [
            exp.select(*[exp.column(d.alias) for d in dims]).from_(exp.to_table(name))
            for name, _ in ctes
        ]
        union: exp.Expression = parts[0]
        for part in parts[1:]:
            union = exp.union(union, part, distinct=True)
        ctes.append((dims_name, union))
        final = exp.select(
            *[_as(exp.column(d.alias, table=dims_name), d.alias) for d in dims]
        ).from_(exp.to_table(dims_name))
        for name, _ in ctes[:-1]:
            on = exp.and_(
                *[
                    _null_safe_eq(
                        exp.column(d.alias, table=dims_name), exp.column(d.alias, table=name)
                    )
                    for d in dims
                ]
            )
            final = _join(final, exp.to_table(name), on, "LEFT")
    else:
        agg_names = [name for name, _ in ctes]
        final = exp.select().from_(exp.to_table(agg_names[0]))
        for name in agg_names[1:]:
            final = _join(final, exp.to_table(name), None, "CROSS")
    final = final.select(
        *[_as(exp.column(m.alias, table=cte_of[m.header]), m.alias) for m in measures],
        copy=False,
    )
    for h in havings:
        cond = sqlexpr.map_columns(
            h.tree,
            lambda c: exp.column(
                alias_of[f"{c.table}.{c.name}"], table=cte_of[f"{c.table}.{c.name}"]
            ),
        )
        final = final.where(cond, copy=False)
    return final, ctes
