"""The rule file format (one pydantic model per concern) and the facts a condition may name."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MethodName = Literal["prompting", "rag", "full", "lora", "qlora", "p_tuning"]
METHODS: tuple[str, ...] = ("prompting", "rag", "lora", "qlora", "p_tuning", "full")  # tie-break: cheapest first
FINE_TUNES: tuple[str, ...] = ("full", "lora", "qlora", "p_tuning")
OPERATORS = {"eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"}
COMBINATORS = {"any", "all", "not"}

# Facts a `when` condition may name: every answers key, plus derived facts computed by the engine.
DERIVED_FACTS: dict[str, str] = {
    "has_dataset": "a dataset was audited and its signals are in use",
    "cpu_only": "no GPU (gpu_count is 0)",
    "daily_prompt_tokens": "requests_per_day × prompt_tokens",
    "method": "the chosen method (only in rules with `after_choice: true`)",
    "chosen_headroom_share": "free share of memory for the chosen method (after_choice rules only)",
    "audit_content": "knowledge | behaviour | mixed (from the dataset audit), none without one",
    "audit_knowledge_share": "share of records whose answers carry facts rather than a pattern",
    "audit_low_diversity": "the audit found clustered, near-identical data",
    "audit_error_share": "share of records with error-level findings",
    **{f"fits_{m}": f"a standard {m} configuration fits the hardware (GPU, or CPU for small models)" for m in FINE_TUNES},
    **{f"gpu_hours_{m}": f"estimated GPU-hours of the {m} run" for m in FINE_TUNES},
    **{f"over_budget_{m}": f"the {m} run needs more GPU-hours than budget_gpu_hours" for m in FINE_TUNES},
}


class WarningSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    message: str


class Effect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    veto: list[MethodName] = []
    score: dict[MethodName, float] = {}
    warn: WarningSpec | None = None
    next_step: str | None = None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    when: dict[str, Any] = Field(default_factory=dict, description="condition over facts; empty = always")
    effect: Effect
    rationale: str = Field(min_length=10)
    source: str = Field(min_length=3)
    after_choice: bool = False
    example: dict[str, Any] = Field(default_factory=dict, description="answers overrides that make the rule fire")
    counter_example: dict[str, Any] | None = Field(None, description="answers overrides that must not fire it")

    @field_validator("effect")
    @classmethod
    def _not_empty(cls, v: Effect) -> Effect:
        if not (v.veto or v.score or v.warn or v.next_step):
            raise ValueError("effect does nothing: give veto, score, warn or next_step")
        return v


def fact_names() -> set[str]:
    from advisor.answers import Answers

    return set(Answers.model_fields) | set(DERIVED_FACTS)


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


SLUG = re.compile(r"[^a-z0-9]+")
