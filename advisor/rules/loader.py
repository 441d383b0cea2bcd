"""Find and load the rule files: `rules/` in a checkout, or the copy packed into the wheel."""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from advisor.rules.schema import Rule, check_condition, check_texts, fact_names
from core.errors import UserError
from core.files import format_validation_error, read_structured, rules_dir  # noqa: F401 - rules_dir named here as before

FOR_EACH = "for_each_fine_tune"  # a block of rule templates, expanded once per registered fine-tune


def method_variables(unit) -> dict:
    """What a `for_each_fine_tune` template may name: $method, $method_id (in rule ids: p_tuning -> p-tuning), $run
    (the method's run in words) and the unit's rule facts ($memory_source, $fit_example, ...: core/methods.py)."""
    return {"method": unit.name, "method_id": unit.name.replace("_", "-"), "run": unit.run_phrase,
            **unit.rule_template_facts()}


def fill_template(value, variables: dict):
    """The template with every $name filled: a string that is exactly one $name takes the value itself (a mapping
    for an example), any other string is filled as text; mapping keys are filled too."""
    if isinstance(value, dict):
        return {fill_template(k, variables): fill_template(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_template(v, variables) for v in value]
    if isinstance(value, str):
        if value.startswith("$") and value[1:] in variables:
            return variables[value[1:]]
        return string.Template(value).substitute(variables)
    return value


def expand(data: list, lines: dict) -> list[tuple[Any, int, dict]]:
    """(rule mapping, line, its lines) of every rule in a file: a `for_each_fine_tune` block gives its templates
    once per registered fine-tune, in registry order (every method's rules together, as written before)."""
    from core.methods import REGISTRY

    out: list[tuple[Any, int, dict]] = []
    for i, item in enumerate(data):
        line = lines.get((i,), 1)
        if isinstance(item, dict) and set(item) == {FOR_EACH}:
            templates = item[FOR_EACH] if isinstance(item[FOR_EACH], list) else []
            # each template's line and the lines of its keys: the same for every method it is filled for
            where = [(lines.get((i, FOR_EACH, j), line),
                      {k[3:]: v for k, v in lines.items() if k[:3] == (i, FOR_EACH, j) and len(k) > 3})
                     for j in range(len(templates))]
            for unit in REGISTRY.values():
                variables = method_variables(unit)
                for j, (template, (at, sub)) in enumerate(zip(templates, where, strict=True)):
                    try:
                        rule = fill_template(template, variables)
                    except (KeyError, ValueError) as e:
                        raise UserError(f"{at}: template #{j + 1}: unknown or malformed $name ({e}); known: "
                                        f"{', '.join(sorted(variables))}") from None
                    out.append((rule, at, sub))
        else:
            out.append((item, line, {k[1:]: v for k, v in lines.items() if k and k[0] == i}))
    return out


def load_rules_from(folder: Path, prefix: str = "decide_") -> list[Rule]:
    """Every `decide_*.yaml` in `folder`, validated (templates expanded). Malformed rules name their file and line."""
    known = fact_names()
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob(f"{prefix}*.yaml")):
        data, lines = read_structured(path, "rule file")
        if not isinstance(data, list):
            raise UserError(f"{path}:1: a rule file is a YAML list of rules")
        try:
            items = expand(data, lines)
        except UserError as e:
            raise UserError(f"{path}:{e}") from None
        for n, (item, line, sub) in enumerate(items):
            if not isinstance(item, dict):
                raise UserError(f"{path}:{line}: rule #{n + 1} is not a mapping")
            try:
                rule = Rule.model_validate(item)
            except ValidationError as e:
                raise UserError(format_validation_error(e, Rule, str(path), sub)) from None
            problems = check_condition(rule.when, known) + check_texts(rule, known)
            if problems:
                raise UserError(f"{path}:{sub.get(('when',), line)}: rule `{rule.id}`: " + "; ".join(problems))
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
