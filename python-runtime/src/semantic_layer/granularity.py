"""Time granularities per dialect: the first day of the period as a ``YYYY-MM-DD`` string.

Weeks start on Monday in every dialect, whatever the session settings: Snowflake uses
``DAYOFWEEKISO`` (``DATE_TRUNC('WEEK')`` follows ``WEEK_START``), T-SQL counts days from
1900-01-01, a Monday (``DATEPART(weekday)`` follows ``@@DATEFIRST``), BigQuery asks for
``WEEK(MONDAY)`` (plain ``WEEK`` starts on Sunday). SQLite time columns must hold ISO-8601 text.

The templates are constant SQL in the target dialect, parsed once with sqlglot; ``ktx_x`` is
replaced by the column expression as a tree, never as text.
"""

from __future__ import annotations

from functools import cache

from sqlglot import exp

GRANULARITIES = ("day", "week", "month", "quarter", "year")
_X = "ktx_x"

_PG = {
    "day": "TO_CHAR(DATE_TRUNC('day', ktx_x), 'YYYY-MM-DD')",
    "week": "TO_CHAR(DATE_TRUNC('week', ktx_x), 'YYYY-MM-DD')",
    "month": "TO_CHAR(DATE_TRUNC('month', ktx_x), 'YYYY-MM-DD')",
    "quarter": "TO_CHAR(DATE_TRUNC('quarter', ktx_x), 'YYYY-MM-DD')",
    "year": "TO_CHAR(DATE_TRUNC('year', ktx_x), 'YYYY-MM-DD')",
}

TEMPLATES: dict[str, dict[str, str]] = {
    "sqlite": {
        "day": "DATE(ktx_x)",
        "week": "DATE(ktx_x, 'weekday 0', '-6 days')",
        "month": "DATE(ktx_x, 'start of month')",
        "quarter": "DATE(ktx_x, 'start of month', "
        "'-' || ((CAST(STRFTIME('%m', ktx_x) AS INTEGER) - 1) % 3) || ' months')",
        "year": "DATE(ktx_x, 'start of year')",
    },
    "postgres": _PG,
    "redshift": _PG,
    "duckdb": {g: f"STRFTIME(DATE_TRUNC('{g}', ktx_x), '%Y-%m-%d')" for g in GRANULARITIES},
    "bigquery": {
        "day": "FORMAT_DATE('%Y-%m-%d', DATE(ktx_x))",
        "week": "FORMAT_DATE('%Y-%m-%d', DATE_TRUNC(DATE(ktx_x), WEEK(MONDAY)))",
        "month": "FORMAT_DATE('%Y-%m-%d', DATE_TRUNC(DATE(ktx_x), MONTH))",
        "quarter": "FORMAT_DATE('%Y-%m-%d', DATE_TRUNC(DATE(ktx_x), QUARTER))",
        "year": "FORMAT_DATE('%Y-%m-%d', DATE_TRUNC(DATE(ktx_x), YEAR))",
    },
    "snowflake": {
        "day": "TO_CHAR(CAST(ktx_x AS DATE), 'YYYY-MM-DD')",
        "week": "TO_CHAR(DATEADD(day, 1 - DAYOFWEEKISO(ktx_x), CAST(ktx_x AS DATE)), 'YYYY-MM-DD')",
        "month": "TO_CHAR(DATE_TRUNC('month', ktx_x), 'YYYY-MM-DD')",
        "quarter": "TO_CHAR(DATE_TRUNC('quarter', ktx_x), 'YYYY-MM-DD')",
        "year": "TO_CHAR(DATE_TRUNC('year', ktx_x), 'YYYY-MM-DD')",
    },
    "mysql": {
        "day": "DATE_FORMAT(ktx_x, '%Y-%m-%d')",
        "week": "DATE_FORMAT(DATE_SUB(DATE(ktx_x), INTERVAL WEEKDAY(ktx_x) DAY), '%Y-%m-%d')",
        "month": "DATE_FORMAT(ktx_x, '%Y-%m-01')",
        "quarter": "DATE_FORMAT(MAKEDATE(YEAR(ktx_x), 1) + INTERVAL (QUARTER(ktx_x) - 1) "
        "QUARTER, '%Y-%m-%d')",
        "year": "DATE_FORMAT(ktx_x, '%Y-01-01')",
    },
    "tsql": {
        "day": "CONVERT(VARCHAR(10), CAST(ktx_x AS DATE), 23)",
        "week": "CONVERT(VARCHAR(10), DATEADD(day, -(DATEDIFF(day, '19000101', ktx_x) % 7), "
        "CAST(ktx_x AS DATE)), 23)",
        "month": "CONVERT(VARCHAR(10), DATEFROMPARTS(YEAR(ktx_x), MONTH(ktx_x), 1), 23)",
        "quarter": "CONVERT(VARCHAR(10), DATEFROMPARTS(YEAR(ktx_x), "
        "(DATEPART(quarter, ktx_x) - 1) * 3 + 1, 1), 23)",
        "year": "CONVERT(VARCHAR(10), DATEFROMPARTS(YEAR(ktx_x), 1, 1), 23)",
    },
    "clickhouse": {
        "day": "formatDateTime(toDate(ktx_x), '%Y-%m-%d')",
        "week": "formatDateTime(toMonday(ktx_x), '%Y-%m-%d')",
        "month": "formatDateTime(toStartOfMonth(ktx_x), '%Y-%m-%d')",
        "quarter": "formatDateTime(toStartOfQuarter(ktx_x), '%Y-%m-%d')",
        "year": "formatDateTime(toStartOfYear(ktx_x), '%Y-%m-%d')",
    },
    "databricks": {
        g: f"DATE_FORMAT(DATE_TRUNC('{g.upper()}', ktx_x), 'yyyy-MM-dd')" for g in GRANULARITIES
    },
}


@cache
def _template(dialect: str, granularity: str) -> exp.Expression:
    import sqlglot

    return sqlglot.parse_one(TEMPLATES[dialect][granularity], read=dialect)


def truncate(column_sql: exp.Expression, granularity: str, dialect: str) -> exp.Expression:
    """``column_sql`` truncated to ``granularity`` and formatted ``YYYY-MM-DD`` in ``dialect``."""
    template = _template(dialect, granularity)

    def visit(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.name == _X and not node.table:
            return column_sql.copy()
        return node

    return template.transform(visit)
