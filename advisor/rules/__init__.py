"""Declarative decision rules: the YAML in `rules/` is the knowledge, this package is a small engine."""
