"""The ktx semantic layer: metric definitions in YAML compiled to SQL with sqlglot.

Importing this package is free: nothing heavy (sqlglot, yaml, sqlite3) is imported until an op
runs. Modules: ``ops`` (the ABI ops and their contract), ``project`` (ktx.yaml and source
files), ``compiler`` (query -> SQL), ``granularity`` (time buckets per dialect), ``sqlexpr``
(parsing and vetting user SQL fragments), ``execute`` (read-only SQLite), ``demo`` (the demo
project), ``yamlio`` (YAML with line numbers), ``errors``.
"""
