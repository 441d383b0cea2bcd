"""What `tunewise probe` measured (public contract: `probe.json`, `tunewise probe --json`, the `probe` of a
recommendation) and how the numbers become the `prompting` answer: the rules of rules/probe_prompting.yaml.
Torch-free: the measurement itself is trainer/probe.py."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import UserError

Measured = Literal["works", "unstable", "plateaued"]
VariantKind = Literal["zero_shot", "few_shot", "reworded"]

# the facts a probe rule may name (rules/probe_prompting.yaml)
PROBE_FACTS: dict[str, str] = {
    "metric": "json | classification | chrf | exact_match: the metric `tunewise eval` would choose",
    "best_score": "the best prompt's headline score, 0-1",
    "best_low": "the low end of the best prompt's 95% confidence interval",
    "best_high": "the high end of that interval",
    "spread": "highest minus lowest headline score across the instruction wordings",
    "spread_low": "the lowest wording's score",
    "spread_high": "the highest wording's score",
    "spread_beyond_noise": "the highest and lowest wording's intervals do not overlap",
    "zero_shot_score": "the zero-shot prompt's score",
    "few_shot_score": "the few-shot prompt's score (the data's own instruction)",
    "records": "held-out records scored",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Interval(_Model):
    low: float
    high: float
    method: Literal["wilson", "bootstrap", "none"] = Field(
        description="wilson: Wilson score interval of a share of records; bootstrap: BCa bootstrap of a mean score")
    confidence: float = 0.95


class Sample(_Model):
    record: int = Field(description="record index in the data file")
    prompt: str = Field(description="the last user message")
    expected: str
    output: str = Field(description="the model's greedy answer")
    score: float


class Variant(_Model):
    """One way of prompting, scored on every held-out record."""
    name: str = Field(description="zero-shot, few-shot, or the rewording's name")
    kind: VariantKind
    instruction: str | None = Field(description="the system instruction sent (none: no system message)")
    instruction_in_user_turn: bool = Field(False, description="the instruction opened the user's message instead")
    shots: int = Field(description="worked examples before the request")
    score: float = Field(description="the headline number (the report's `headline` key), 0-1")
    interval: Interval
    metrics: dict[str, float] = Field(description="every number of the metric, as `tunewise eval` reports them")
    samples: list[Sample] = Field(description="the first few records, to read")


class ProbeReport(_Model):
    data: str = Field(description="the user's records")
    test: str = Field(description="where the held-out records came from")
    model: str
    device: str
    records: int = Field(description="held-out records scored per prompt")
    test_records: list[int] = Field(description="their record indices")
    metric: str = Field(description="exact_match, json, classification or chrf (as `tunewise eval` chooses)")
    metric_why: str
    headline: str = Field(description="the number each prompt is judged by: json_match, accuracy, chrf or "
                          "exact_match")
    shots: int = Field(description="k, the few-shot examples per prompt")
    shots_why: str
    shot_records: list[int] = Field(description="the training-side records used as examples")
    max_new_tokens: int
    variants: list[Variant]
    best: str = Field(description="the name of the best-scoring prompt")
    spread: float = Field(description="highest minus lowest score across the instruction wordings")
    spread_low: float
    spread_high: float
    spread_beyond_noise: bool
    prompting: Measured = Field(description="the measured answer to 'how does prompting perform today?'")
    rule: str = Field(description="the rule of rules/probe_prompting.yaml that set it")
    rule_source: str
    why: str = Field(description="the rule's reason, with the numbers")
    summary: str = Field(description="one line: the best prompt's score, the spread, the verdict")
    generations: int = Field(description="answers generated")
    generation_time_s: float
    wall_time_s: float

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def facts(self) -> dict[str, Any]:
        return probe_facts(self.metric, self.variants, self.best, self.records)


class ProbeRule(_Model):
    id: str = Field(pattern=r"^probe-[a-z0-9-]+$")
    sets: Measured
    when: dict[str, Any] = Field(default_factory=dict, description="condition over the probe facts; empty = always")
    rationale: str = Field(min_length=10)
    source: str = Field(min_length=3)
    example: dict[str, Any] = Field(description="facts that make this rule the first to fire")
    counter_example: dict[str, Any] | None = None


def instruction_variants(variants: list[Variant]) -> list[Variant]:
    """The few-shot prompt and its rewordings: the same examples, the instruction said differently."""
    return [v for v in variants if v.kind in ("few_shot", "reworded")] or list(variants)


def probe_facts(metric: str, variants: list[Variant], best: str, records: int) -> dict[str, Any]:
    worded = instruction_variants(variants)
    low = min(worded, key=lambda v: v.score)
    high = max(worded, key=lambda v: v.score)
    b = next(v for v in variants if v.name == best)
    by_kind = {v.kind: v.score for v in reversed(variants)}
    return {"metric": metric, "best_score": b.score, "best_low": b.interval.low, "best_high": b.interval.high,
            "spread": round(high.score - low.score, 4), "spread_low": low.score, "spread_high": high.score,
            "spread_beyond_noise": low.interval.high < high.interval.low,
            "zero_shot_score": by_kind.get("zero_shot"), "few_shot_score": by_kind.get("few_shot"),
            "records": records}


@cache
def load_probe_rules() -> tuple[ProbeRule, ...]:
    from core.conditions import check_condition, placeholders
    from core.files import format_validation_error, read_structured, rules_dir

    path = rules_dir() / "probe_prompting.yaml"
    data, lines = read_structured(path, "probe rule file")
    if not isinstance(data, list) or not data:
        raise UserError(f"{path}:1: the probe rule file is a YAML list of rules")
    out = []
    for i, item in enumerate(data):
        try:
            rule = ProbeRule.model_validate(item)
        except ValidationError as e:
            sub = {k[1:]: v for k, v in lines.items() if k and k[0] == i}
            raise UserError(format_validation_error(e, ProbeRule, str(path), sub)) from None
        problems = check_condition(rule.when, set(PROBE_FACTS))
        problems += [f"text placeholder {{{n}}} is not a probe fact" for n in placeholders(rule.rationale)
                     if n not in PROBE_FACTS]
        problems += [f"example fact `{n}` is not a probe fact" for n in {**rule.example, **(rule.counter_example or {})}
                     if n not in PROBE_FACTS]
        if problems:
            raise UserError(f"{path}:{lines.get((i,), 1)}: rule `{rule.id}`: " + "; ".join(problems))
        out.append(rule)
    if out[-1].when:
        raise UserError(f"{path}: the last probe rule must have an empty `when` (it decides what no other rule did)")
    return tuple(out)


def classify(facts: dict[str, Any], rules: tuple[ProbeRule, ...] | None = None) -> tuple[ProbeRule, str]:
    """The first rule that fires on the measured facts, and its reason with the numbers filled in."""
    from core.conditions import matches, render_text

    rules = load_probe_rules() if rules is None else rules
    facts = {**dict.fromkeys(PROBE_FACTS), **facts}  # a fact not measured reads `unknown`
    rule = next(r for r in rules if matches(r.when, facts))
    return rule, render_text(rule.rationale, facts)


def summary_line(report_headline: str, best: Variant, facts: dict[str, Any], worded: list[Variant],
                 prompting: str) -> str:
    """`few-shot gets 62% json_match (95% interval 52-71%) and varies 41%-66% across 4 instruction wordings →
    unstable`. The interval as measured (asymmetric near 0% and 100%, where a ± would mislead)."""
    low, high = best.interval.low, best.interval.high
    line = f"{best.name} gets {best.score:.0%} {report_headline} (95% interval {low * 100:.0f}-{high:.0%})"
    if len(worded) > 1:
        line += (f" and varies {facts['spread_low']:.0%}-{facts['spread_high']:.0%} across {len(worded)} "
                 "instruction wordings")
    return f"{line} → {prompting}"


def load_probe(path: str) -> ProbeReport:
    """A saved probe result (`tunewise probe --out FILE`)."""
    from core.files import load_model_file

    return load_model_file(ProbeReport, path, "probe result")
