"""The condition and text language of the YAML rules (rules/*.yaml): a condition is a mapping of fact → value,
operator mapping or list, combined with any / all / not; a text names facts as {placeholders} in str.format
syntax. Used by the decision rules (advisor/rules) and the probe's rules (core/probe_report.py)."""

from __future__ import annotations

import string
from typing import Any

OPERATORS = {"eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"}
COMBINATORS = {"any", "all", "not"}


class _FactFormatter(string.Formatter):
    """str.format over the facts; an unknown value (None) reads `unknown` whatever its format spec."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return "unknown"
        return super().format_field(value, format_spec)


FORMATTER = _FactFormatter()


def placeholders(text: str) -> list[str]:
    return [name for _, name, _, _ in FORMATTER.parse(text) if name]


def render_text(text: str, facts: dict[str, Any]) -> str:
    """A rule's text with its {fact} placeholders filled in for the case at hand."""
    return FORMATTER.vformat(text, (), facts) if "{" in text else text


def check_condition(cond: Any, known: set[str], path: str = "when") -> list[str]:
    """Problems in a condition (unknown facts, bad operators), as 'path: message' strings."""
    import difflib

    problems: list[str] = []
    if not isinstance(cond, dict):
        return [f"{path}: a condition is a mapping of fact → value, got {type(cond).__name__}"]
    for key, val in cond.items():
        if key in ("any", "all"):
            if not isinstance(val, list) or not val:
                problems.append(f"{path}.{key}: expects a non-empty list of conditions")
            else:
                for i, c in enumerate(val):
                    problems += check_condition(c, known, f"{path}.{key}[{i}]")
        elif key == "not":
            problems += check_condition(val, known, f"{path}.not")
        elif key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            problems.append(f"{path}: unknown fact `{key}`" + (f", did you mean `{hint[0]}`?" if hint else ""))
        elif isinstance(val, dict):
            bad = set(val) - OPERATORS
            if bad:
                problems.append(f"{path}.{key}: unknown operator(s) {sorted(bad)}; use {sorted(OPERATORS)}")
    return problems


def _holds(op: str, actual: Any, expected: Any) -> bool:
    if actual is None and op not in ("eq", "ne"):
        return False
    match op:
        case "eq":
            return actual == expected
        case "ne":
            return actual != expected
        case "lt":
            return actual < expected
        case "le":
            return actual <= expected
        case "gt":
            return actual > expected
        case "ge":
            return actual >= expected
        case "in":
            return actual in expected
        case "not_in":
            return actual not in expected
    raise ValueError(op)


def matches(cond: dict[str, Any], facts: dict[str, Any]) -> bool:
    for key, val in cond.items():
        if key == "any":
            ok = any(matches(c, facts) for c in val)
        elif key == "all":
            ok = all(matches(c, facts) for c in val)
        elif key == "not":
            ok = not matches(val, facts)
        elif isinstance(val, dict):
            ok = all(_holds(op, facts.get(key), exp) for op, exp in val.items())
        elif isinstance(val, list):
            ok = facts.get(key) in val
        else:
            ok = facts.get(key) == val
        if not ok:
            return False
    return True
