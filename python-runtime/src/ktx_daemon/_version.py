"""Package version, written by `cargo xtask stamp-version`; do not edit by hand."""

__version__ = "0.1.0rc0"
