"""answers (+ audit signals) → a ranked, explained recommendation. The knowledge lives in rules/*.yaml."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from advisor.answers import Answers
from advisor.audit.report import Signals
from advisor.rules.hardware import fit_methods
from advisor.rules.loader import load_next_steps, load_rules
from advisor.rules.schema import FINE_TUNES, METHODS, Rule, matches

DEFAULT_SEQ_LEN = 512
DEFAULT_AVG_TOKENS = 512


class Reason(BaseModel):
    rule: str
    text: str
    source: str
    effect: str


class Ranked(BaseModel):
    method: str
    score: float
    feasible: bool
    reasons: list[Reason]


class Warning_(BaseModel):
    model_config = ConfigDict(title="Warning")
    code: str
    message: str
    rule: str
    source: str


class Override(BaseModel):
    key: str
    answered: Any
    measured: Any


class Recommendation(BaseModel):
    method: str
    ranking: list[Ranked]
    warnings: list[Warning_]
    next_steps: list[str]
    estimate: dict[str, dict]
    overrides: list[Override] = []
    assumptions: dict[str, Any] = {}
    fired_rules: list[str] = []


def apply_signals(answers: Answers, signals: Signals | None) -> tuple[Answers, list[Override]]:
    """The audit's measured facts replace what the user estimated."""
    if signals is None:
        return answers, []
    overrides: list[Override] = []
    update: dict[str, Any] = {}
    for key, measured in (("examples", signals.examples), ("tasks", signals.estimated_tasks)):
        measured = max(int(measured), 1 if key == "tasks" else 0)
        if measured != getattr(answers, key):
            overrides.append(Override(key=key, answered=getattr(answers, key), measured=measured))
        update[key] = measured
    return answers.model_copy(update=update), overrides


def compute_facts(answers: Answers, signals: Signals | None) -> tuple[dict[str, Any], dict]:
    facts: dict[str, Any] = answers.model_dump()
    tokens = signals.tokens if signals is not None and signals.tokens.p90_total else None
    seq_len = tokens.p90_total if tokens else DEFAULT_SEQ_LEN
    seq_len = max(128, min(8192, -(-seq_len // 128) * 128))  # round up to a multiple of 128
    avg_tokens = float(tokens.mean_total) if tokens else float(DEFAULT_AVG_TOKENS)
    epochs = 3.0 if answers.examples < 10_000 else 1.0
    fits = fit_methods(answers, seq_len, max(answers.examples, 1), avg_tokens, epochs)
    for m, f in fits.items():
        facts[f"fits_{m}"] = f.fits
        facts[f"gpu_hours_{m}"] = f.estimate.gpu_hours
        budget = answers.budget_gpu_hours
        facts[f"over_budget_{m}"] = bool(budget is not None and answers.gpu_count > 0 and f.estimate.gpu_hours is not None
                                         and f.estimate.gpu_hours > budget)
    facts["cpu_only"] = answers.gpu_count == 0
    facts["daily_prompt_tokens"] = answers.requests_per_day * answers.prompt_tokens
    facts["has_dataset"] = signals is not None
    facts["audit_content"] = signals.content if signals else "none"
    facts["audit_knowledge_share"] = signals.knowledge_share if signals else None
    facts["audit_low_diversity"] = bool(signals and signals.low_diversity)
    facts["audit_error_share"] = signals.error_share if signals else None
    facts["method"] = None
    facts["chosen_headroom_share"] = None
    assumptions = {
        "seq_len": seq_len,
        "avg_tokens_per_example": avg_tokens,
        "epochs": epochs,
        "token_source": "dataset audit" if tokens else f"assumed {DEFAULT_SEQ_LEN} tokens per example",
    }
    return facts, {"fits": fits, "assumptions": assumptions}


def _effect_text(rule: Rule, method: str) -> str | None:
    if method in rule.effect.veto:
        return "ruled out"
    delta = rule.effect.score.get(method)
    return None if delta is None else f"{delta:+g}"


def recommend(answers: Answers, signals: Signals | None = None, rules: tuple[Rule, ...] | None = None) -> Recommendation:
    rules = load_rules() if rules is None else rules
    answers, overrides = apply_signals(answers, signals)
    facts, ctx = compute_facts(answers, signals)
    scores = {m: 0.0 for m in METHODS}
    feasible = {m: True for m in METHODS}
    reasons: dict[str, list[Reason]] = {m: [] for m in METHODS}
    warnings: list[Warning_] = []
    steps: list[str] = []
    fired: list[str] = []

    def fire(rule: Rule) -> None:
        fired.append(rule.id)
        for m in METHODS:
            text = _effect_text(rule, m)
            if text is None:
                continue
            reasons[m].append(Reason(rule=rule.id, text=rule.rationale, source=rule.source, effect=text))
            if m in rule.effect.veto:
                feasible[m] = False
            scores[m] += rule.effect.score.get(m, 0.0)
        if rule.effect.warn and all(w.code != rule.effect.warn.code for w in warnings):
            warnings.append(Warning_(code=rule.effect.warn.code, message=rule.effect.warn.message,
                                     rule=rule.id, source=rule.source))
        if rule.effect.next_step:
            steps.append(rule.effect.next_step)

    for rule in rules:
        if not rule.after_choice and matches(rule.when, facts):
            fire(rule)
    order = {m: i for i, m in enumerate(METHODS)}
    ranking = sorted(METHODS, key=lambda m: (not feasible[m], -scores[m], order[m]))
    chosen = ranking[0]
    facts["method"] = chosen
    if chosen in FINE_TUNES:
        est = ctx["fits"][chosen].estimate
        facts["chosen_headroom_share"] = est.headroom_gb / est.gpu_memory_gb if est.gpu_memory_gb else 0.0
    for rule in rules:
        if rule.after_choice and matches(rule.when, facts):
            fire(rule)
    estimates = {}
    for m, f in ctx["fits"].items():
        d = f.estimate.model_dump(mode="json")
        d["config_rung"] = f.rung
        d["request"] = f.request.model_dump(mode="json")
        estimates[m] = d
    return Recommendation(
        method=chosen,
        ranking=[Ranked(method=m, score=scores[m], feasible=feasible[m], reasons=reasons[m]) for m in ranking],
        warnings=warnings,
        next_steps=load_next_steps().get(chosen, []) + steps,
        estimate=estimates,
        overrides=overrides,
        assumptions=ctx["assumptions"],
        fired_rules=fired,
    )
