"""answers (+ audit signals) → a decided, explained recommendation. The knowledge lives in rules/*.yaml; the
stages that apply it are in advisor/rules/engine.py."""

from __future__ import annotations

from advisor.answers import Answers
from advisor.audit.report import Signals
from advisor.facts import DEFAULT_AVG_TOKENS, DEFAULT_SEQ_LEN, FactSheet, chosen_facts, compute_facts
from advisor.probe import ProbeReport
from advisor.recommendation import (
    Decision,
    FindingNote,
    Override,
    Ranked,
    Reason,
    Recommendation,
    RunnerUp,
    Tie,
    Warning_,
)
from advisor.reconcile import Conflict, reconcile
from advisor.rules import engine
from advisor.rules.loader import load_next_steps, load_rules
from advisor.rules.schema import Rule

__all__ = ["DEFAULT_AVG_TOKENS", "DEFAULT_SEQ_LEN", "Decision", "FindingNote", "Override", "Ranked", "Reason",
           "Recommendation", "RunnerUp", "Tie", "Warning_", "recommend"]

FINDING_SHOWN_SHARE = 0.01  # a warning- or info-level finding on at least 1% of records is shown with the decision
# audit findings that reach the decision through a fact other than finding_CODE
FINDING_FACTS = {
    "exact_duplicate": ("examples", "usable_examples", "examples_per_task"),
    "too_few_examples": ("examples", "usable_examples", "examples_per_task"),
    "mixed_tasks": ("tasks", "examples_per_task"),
    "low_diversity": ("audit_low_diversity",),
    "knowledge_heavy": ("goal", "audit_content", "audit_knowledge_share"),
    "pii": ("private_data",),
}


def _condition_facts(cond) -> set[str]:
    out: set[str] = set()
    if isinstance(cond, dict):
        for k, v in cond.items():
            if k in ("any", "all"):
                for c in v:
                    out |= _condition_facts(c)
            elif k == "not":
                out |= _condition_facts(v)
            else:
                out.add(k)
    return out


def _finding_effect(code: str, severity: str, count: int, rules: list[str], conflicts: list[Conflict]) -> str:
    if severity == "error":
        return f"{count:,} records left out of the usable examples"
    if code == "exact_duplicate":
        return f"{count:,} copies left out of the usable examples"
    changed = [c.key for c in conflicts if c.used == "measured" and c.key in FINDING_FACTS.get(code, ())]
    if changed:
        return "decided on the measured " + ", ".join(f"`{k}`" for k in changed)
    if rules:
        return "used by " + ", ".join(rules)
    return "does not change the method; fix it before training (see `tunewise audit`)"


def audit_notes(signals: Signals | None, fired: list[Rule], conflicts: list[Conflict]) -> list[FindingNote]:
    """Every finding with severity error, on at least FINDING_SHOWN_SHARE of the records, or that a rule reacted
    to, with its count and what it changed."""
    if signals is None:
        return []
    notes = []
    for code, f in sorted(signals.findings.items(), key=lambda kv: (kv[1].severity != "error", -kv[1].count)):
        facts = {f"finding_{code}", f"finding_{code}_share", *FINDING_FACTS.get(code, ())}
        rules = [r.id for r in fired if _condition_facts(r.when) & facts]
        if f.severity != "error" and f.share < FINDING_SHOWN_SHARE and not rules:
            continue
        notes.append(FindingNote(code=code, severity=f.severity, count=f.count, share=f.share, rules=rules,
                                 effect=_finding_effect(code, f.severity, f.count, rules, conflicts)))
    return notes


def _estimates(sheet: FactSheet) -> dict[str, dict]:
    out = {}
    for m, f in sheet.fits.items():
        d = f.estimate.model_dump(mode="json")
        d["config_rung"] = f.rung
        d["request"] = f.request.model_dump(mode="json")
        out[m] = d
    return out


def recommend(answers: Answers, signals: Signals | None = None, rules: tuple[Rule, ...] | None = None,
              probe: ProbeReport | None = None) -> Recommendation:
    """`probe`: what `tunewise probe` measured on the data (the measured `prompting`, with its numbers)."""
    rules = load_rules() if rules is None else rules
    decided, conflicts, data = reconcile(answers, signals, probe)
    sheet = compute_facts(decided, answers, signals, probe)
    trail = engine.Trail(sheet.facts)
    feasible = engine.run_constraints(rules, trail)
    narrowing = engine.run_decisive(rules, trail, feasible)
    scores = engine.run_preferences(rules, trail)
    engine.fire_matching(rules, trail, after_choice=False)
    order = engine.rank(narrowing, feasible, scores)
    chosen = order[0]
    chosen_facts(sheet, chosen)
    engine.fire_matching(rules, trail, after_choice=True)
    tie = engine.ties(narrowing, scores)
    return Recommendation(
        method=chosen,
        ranking=engine.ranked_list(order, narrowing, feasible, scores, trail),
        warnings=trail.warnings,
        next_steps=load_next_steps().get(chosen, []) + trail.steps,
        estimate=_estimates(sheet),
        overrides=[Override(key=c.key, answered=c.answered, measured=c.measured)
                   for c in conflicts if c.used == "measured"],
        assumptions=sheet.assumptions,
        fired_rules=[r.id for r in trail.fired],
        decided_by=engine.decision(narrowing, trail, chosen),
        runner_up=engine.runner_up(order, narrowing, feasible, scores, trail, tie),
        ties=tie,
        conflicts=conflicts,
        data=data,
        audit_findings=audit_notes(signals, trail.fired, conflicts),
        probe=probe,
    )
