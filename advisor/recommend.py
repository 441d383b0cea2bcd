"""answers (+ audit signals) → a decided, explained recommendation. The knowledge lives in rules/*.yaml; the
stages that apply it are in advisor/rules/engine.py."""

from __future__ import annotations

from advisor.answers import Answers
from advisor.audit.report import Signals
from advisor.facts import DEFAULT_AVG_TOKENS, DEFAULT_SEQ_LEN, FactSheet, chosen_facts, compute_facts
from advisor.recommendation import (
    Decision,
    FindingNote,
    MethodEstimate,
    Override,
    Ranked,
    Reason,
    Recommendation,
    RunnerUp,
    Sentence,
    Tie,
    Warning_,
)
from advisor.reconcile import Conflict, reconcile
from advisor.rules import engine
from advisor.rules.loader import load_next_steps, load_rules
from advisor.rules.schema import Rule
from core.methods import REGISTRY, offered_next_to, offered_only
from core.probe_report import ProbeReport

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


def _estimates(sheet: FactSheet) -> dict[str, MethodEstimate]:
    # `fits`: the advisor's fit, the expected reading within the memory (no `tight` allowance)
    return {m: MethodEstimate(**{**dict(f.estimate), "fits": f.fits, "config_rung": f.rung, "request": f.request})
            for m, f in sheet.fits.items()}


MEMORY_SENTENCE = ("{chosen_memory_gb:,.1f} GB of {chosen_memory_limit_gb:g} GB{memory_device}, at {seq_len:,} tokens "
                   "per example ({seq_len_source}); ≈ {chosen_train_time} of training for {examples:,} examples × "
                   "{epochs:g} epoch(s)")
MEMORY_SUBSET = "; the budget trains about {chosen_budget_examples:,} of them (see budget_subset)"
MEMORY_TIGHT = "; above the GPU's memory: it runs only if the allocator gives back its reserve (see memory_tight)"


def memory_sentence(facts: dict, method: str, sheet: FactSheet) -> Sentence | None:
    """The panel's memory line, from the chosen method's facts."""
    if method not in sheet.fits:
        return None
    req = sheet.fits[method].request
    facts["memory_device"] = (f" of host RAM (CPU, {sheet.fits[method].estimate.trainable_params:,} trainable "
                              "parameters)" if req.device == "cpu" else
                              f" per GPU × {req.gpus} ({sheet.fits[method].estimate.trainable_params:,} trainable "
                              "parameters" + (", sharded" if req.sharding != "none" and req.gpus > 1 else "") + ")")
    template = (MEMORY_SENTENCE + (MEMORY_SUBSET if facts.get("chosen_over_budget") else "")
                + (MEMORY_TIGHT if facts.get("chosen_tight") else ""))
    cited = {k: facts.get(k) for k in engine.placeholders(template)}
    return Sentence(where="memory", text=engine.render_text(template, facts), facts=cited)


def sentences(rec: Recommendation, trail: engine.Trail, method_steps: list[str], step_templates: list[str],
              memory: Sentence | None) -> list[Sentence]:
    """Every sentence the output shows, with the facts it cites (for the panel, --json and the truth test)."""
    out: list[Sentence] = []
    d = rec.decided_by
    if d is not None:
        out.append(Sentence(where="decided_by", text=d.text, rule=d.rule if d.stage == "decisive" else None,
                            facts=d.facts, advises=list(d.candidates)))
    if rec.runner_up:
        out.append(Sentence(where="runner_up", text=rec.runner_up.why, rule=rec.runner_up.rule,
                            facts=rec.runner_up.facts))
    if memory is not None:
        out.append(memory)
    for c in rec.conflicts:
        out.append(Sentence(where=f"conflict:{c.key}", text=c.message,
                            facts={"answered": c.answered, "measured": c.measured}))
    for f in rec.audit_findings:
        out.append(Sentence(where=f"finding:{f.code}", text=f.effect, facts={"count": f.count, "share": f.share}))
    for w in rec.warnings:
        out.append(Sentence(where=f"warning:{w.code}", text=w.message, rule=w.rule, facts=w.facts,
                            advises=w.advises))
    for text, template in zip(method_steps, step_templates, strict=True):
        out.append(Sentence(where="next_step", text=text, facts=trail.cited(template), advises=[rec.method]))
    out += trail.step_sentences
    for r in rec.ranking:
        for x in r.reasons:
            out.append(Sentence(where=f"ranking:{r.method}:{x.effect}", text=x.text, rule=x.rule, facts=x.facts))
    return out


def tune_target(feasible: dict[str, bool]) -> str:
    """Where a tune can put the behaviour, in words, naming only the fine-tunes the constraints left."""
    def possible(kind) -> bool:  # a method the advisor decides between, of that kind, survived the constraints
        return any(feasible[m] for m, u in REGISTRY.items() if kind(u) and not offered_only(m))

    parts = []
    if possible(lambda u: u.adapters):
        parts.append("an adapter on the model")
    if possible(lambda u: u.soft_prompt):
        parts.append("a soft prompt in front of the unchanged base")
    if possible(lambda u: u.trains_all_weights):
        parts.append("the model's own weights")
    if not parts:
        return "the model (no fine-tune is possible here, see the ranking)"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def recommend(answers: Answers, signals: Signals | None = None, rules: tuple[Rule, ...] | None = None,
              probe: ProbeReport | None = None) -> Recommendation:
    """`probe`: what `tunewise probe` measured on the data (the measured `prompting`, with its numbers)."""
    rules = load_rules() if rules is None else rules
    decided, conflicts, data = reconcile(answers, signals, probe)
    sheet = compute_facts(decided, answers, signals, probe)
    trail = engine.Trail(sheet.facts)
    feasible = engine.run_constraints(rules, trail)
    for m in (m for m, u in REGISTRY.items() if u.adapters):
        trail.facts[f"{m}_ruled_out_by"] = ", ".join(x.rule for x in trail.reasons[m] if x.effect == "ruled out") or None
    trail.facts["tune_target"] = tune_target(feasible)
    narrowing = engine.run_decisive(rules, trail, feasible)
    scores = engine.run_preferences(rules, trail)
    engine.fire_matching(rules, trail, after_choice=False)
    order = engine.rank(narrowing, feasible, scores)
    chosen = order[0]
    chosen_facts(sheet, chosen)
    engine.fire_matching(rules, trail, after_choice=True)
    tie = engine.ties(narrowing, scores)
    # the chosen method's next steps, then the methods offered next to it that survived the constraints (DoRA next
    # to LoRA: an option, never a silent replacement; core/methods.py `offered_next_to`)
    step_templates = load_next_steps().get(chosen, []) + [
        u.offer_text for u in offered_next_to(chosen) if feasible[u.name] and u.offer_text]
    method_steps = [trail.text(t) for t in step_templates]
    memory = memory_sentence(trail.facts, chosen, sheet)
    rec = Recommendation(
        method=chosen,
        ranking=engine.ranked_list(order, narrowing, feasible, scores, trail),
        warnings=trail.warnings,
        next_steps=method_steps + trail.steps,
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
    rec.sentences = sentences(rec, trail, method_steps, step_templates, memory)
    return rec
