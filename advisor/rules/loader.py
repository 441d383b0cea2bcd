"""Find and load the rule files: `rules/` in a checkout, or the copy packed into the wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import ValidationError

from advisor.errors import UserError
from advisor.files import format_validation_error, read_structured
from advisor.rules.schema import Rule, check_condition, check_texts, fact_names


def rules_dir() -> Path:
    here = Path(__file__).resolve().parent.parent  # advisor/
    for cand in (here / "_rules", here.parent / "rules"):
        if cand.is_dir():
            return cand
    raise FileNotFoundError("the rules/ folder is missing from this installation")


def load_rules_from(folder: Path, prefix: str = "decide_") -> list[Rule]:
    """Every `decide_*.yaml` in `folder`, validated. Malformed rules name their file and line."""
    known = fact_names()
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob(f"{prefix}*.yaml")):
        data, lines = read_structured(path, "rule file")
        if not isinstance(data, list):
            raise UserError(f"{path}:1: a rule file is a YAML list of rules")
        for i, item in enumerate(data):
            line = lines.get((i,), 1)
            if not isinstance(item, dict):
                raise UserError(f"{path}:{line}: rule #{i + 1} is not a mapping")
            try:
                rule = Rule.model_validate(item)
            except ValidationError as e:
                sub = {k[1:]: v for k, v in lines.items() if k and k[0] == i}
                raise UserError(format_validation_error(e, Rule, str(path), sub)) from None
            problems = check_condition(rule.when, known) + check_texts(rule, known)
            if problems:
                raise UserError(f"{path}:{lines.get((i, 'when'), line)}: rule `{rule.id}`: " + "; ".join(problems))
            if rule.id in seen:
                raise UserError(f"{path}:{line}: duplicate rule id `{rule.id}` (first in {seen[rule.id]})")
            seen[rule.id] = f"{path.name}:{line}"
            rules.append(rule)
    if not rules:
        raise UserError(f"no rules found in {folder} (expected {prefix}*.yaml files)")
    return rules


@cache
def load_rules() -> tuple[Rule, ...]:
    return tuple(load_rules_from(rules_dir()))


@cache
def load_next_steps() -> dict[str, list[str]]:
    data, _ = read_structured(rules_dir() / "next_steps.yaml", "next-steps file")
    return {k: list(v) for k, v in data.items()}
