"""The ktx semantic layer: metric definitions in YAML compiled to SQL with sqlglot."""
