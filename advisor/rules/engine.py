"""The decision engine: rules run in stages, so a decisive fact cannot be outvoted by generic bonuses.

1. constraints — vetoes (memory, budget, time, data minimum, a user's policy) rule methods out;
2. decisive rules, by precedence — the first that fires with a possible method decides the candidates, later
   ones may only narrow them (knowledge → retrieval; reasoning → prompting; prompting untried → prompting ...);
3. preferences — scores that only break ties among the candidates; a remaining tie goes to the cheaper method
   (cost order), and the output says so;
4. after-choice rules — warnings and next steps that depend on the chosen method.
Every step leaves a `Reason` on the methods it touched, so the trace of any method can be shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from advisor.recommendation import Decision, Ranked, Reason, RunnerUp, Sentence, Tie, Warning_
from advisor.rules.schema import METHODS, Rule, matches, placeholders, render_text
from core.methods import offered_next_to, offered_only

COST_ORDER = "cost order (cheapest first: " + ", ".join(m for m in METHODS if not offered_only(m)) + ")"


@dataclass
class Trail:
    """What the stages have done so far."""

    facts: dict[str, Any]
    reasons: dict[str, list[Reason]] = field(default_factory=lambda: {m: [] for m in METHODS})
    warnings: list[Warning_] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    step_sentences: list[Sentence] = field(default_factory=list)
    fired: list[Rule] = field(default_factory=list)

    def text(self, s: str) -> str:
        return render_text(s, self.facts)

    def cited(self, s: str) -> dict[str, Any]:
        """The facts a text names, with the values it is rendered from."""
        return {name: self.facts.get(name) for name in placeholders(s)}

    def reason(self, method: str, rule: Rule, effect: str) -> None:
        self.reasons[method].append(Reason(rule=rule.id, text=self.text(rule.rationale), source=rule.source,
                                           effect=effect, stage=rule.stage, precedence=rule.precedence,
                                           facts=self.cited(rule.rationale)))

    def fire(self, rule: Rule) -> None:
        """Record a rule as fired, with its warning and next step."""
        self.fired.append(rule)
        warn = rule.effect.warn
        if warn and all(w.code != warn.code for w in self.warnings):
            self.warnings.append(Warning_(code=warn.code, message=self.text(warn.message), rule=rule.id,
                                          source=rule.source, facts=self.cited(warn.message),
                                          advises=list(rule.effect.advises)))
        if rule.effect.next_step:
            step = self.text(rule.effect.next_step)
            if step not in self.steps:
                self.steps.append(step)
                self.step_sentences.append(Sentence(where="next_step", text=step, rule=rule.id,
                                                    facts=self.cited(rule.effect.next_step),
                                                    advises=list(rule.effect.advises)))


@dataclass
class Narrowing:
    candidates: list[str]
    deciders: list[Rule]
    set_aside: dict[str, Rule]


def run_constraints(rules: tuple[Rule, ...], trail: Trail) -> dict[str, bool]:
    feasible = {m: True for m in METHODS}
    for rule in rules:
        if rule.after_choice or not rule.effect.veto or not matches(rule.when, trail.facts):
            continue
        for m in rule.effect.veto:
            # a method offered only next to another is ruled out with it (DoRA where LoRA is not possible)
            for x in (m, *(u.name for u in offered_next_to(m))):
                feasible[x] = False
                trail.reason(x, rule, "ruled out")
    trail.facts.update({f"feasible_{m}": ok for m, ok in feasible.items()})
    return feasible


def run_decisive(rules: tuple[Rule, ...], trail: Trail, feasible: dict[str, bool]) -> Narrowing:
    decisive = sorted((r for r in rules if r.stage == "decisive" and matches(r.when, trail.facts)),
                      key=lambda r: r.precedence)
    # a method offered only next to another is never a candidate on its own (core/methods.py `offered_next_to`)
    n = Narrowing([m for m in METHODS if feasible[m] and not offered_only(m)], [], {})
    for rule in decisive:
        wanted = rule.effect.decide
        keep = [m for m in n.candidates if m in wanted]
        if not any(feasible[m] for m in wanted):
            for m in wanted:
                trail.reason(m, rule, "overruled (ruled out by a constraint)")
        elif not keep:
            first = n.deciders[0]
            for m in wanted:
                if feasible[m]:
                    trail.reason(m, rule, f"outranked by {first.id} (precedence {first.precedence})")
        elif n.deciders and keep == n.candidates:  # fires, but leaves the candidates as they are
            for m in keep:
                trail.reason(m, rule, "agrees")
        else:
            for m in n.candidates:
                if m not in keep:
                    n.set_aside[m] = rule
                    trail.reason(m, rule, "set aside")
            for m in keep:
                trail.reason(m, rule, "decides")
            n.candidates, n.deciders = keep, [*n.deciders, rule]
    return n


def run_preferences(rules: tuple[Rule, ...], trail: Trail) -> dict[str, float]:
    scores = {m: 0.0 for m in METHODS}
    for rule in rules:
        if rule.stage != "preference" or not matches(rule.when, trail.facts):
            continue
        for m, delta in rule.effect.score.items():
            scores[m] += delta
            trail.reason(m, rule, f"{delta:+g}")
    return scores


def fire_matching(rules: tuple[Rule, ...], trail: Trail, after_choice: bool) -> None:
    for rule in rules:
        if rule.after_choice == after_choice and matches(rule.when, trail.facts):
            trail.fire(rule)


def rank(n: Narrowing, feasible: dict[str, bool], scores: dict[str, float]) -> list[str]:
    order = {m: i for i, m in enumerate(METHODS)}
    group = {m: 0 if m in n.candidates else (1 if feasible[m] else 2) for m in METHODS}
    return sorted(METHODS, key=lambda m: (offered_only(m), group[m], -scores[m], order[m]))


def ties(n: Narrowing, scores: dict[str, float]) -> list[Tie]:
    """Candidates with equal preference scores: their order (and the choice, at the top) came from cost order."""
    groups: dict[float, list[str]] = {}
    for m in n.candidates:
        groups.setdefault(scores[m], []).append(m)
    return [Tie(methods=ms, score=score, broken_by=COST_ORDER)
            for score, ms in sorted(groups.items(), reverse=True) if len(ms) > 1]


def ranked_list(order: list[str], n: Narrowing, feasible: dict[str, bool], scores: dict[str, float],
                trail: Trail) -> list[Ranked]:
    return [Ranked(method=m, score=scores[m], feasible=feasible[m], candidate=m in n.candidates,
                   set_aside_by=n.set_aside[m].id if m in n.set_aside else None, reasons=trail.reasons[m])
            for m in order]


def decision(n: Narrowing, trail: Trail, chosen: str) -> Decision:
    candidates = list(n.candidates)
    if n.deciders:
        rule = n.deciders[-1]
        return Decision(rule=rule.id, precedence=rule.precedence, stage="decisive", text=trail.text(rule.rationale),
                        source=rule.source, candidates=candidates, facts=trail.cited(rule.rationale))
    return Decision(rule="preferences", precedence=None, stage="preference",
                    text="No decisive rule applied: the preference scores chose among the possible methods.",
                    source="rules/ (preference rules)", candidates=candidates)


def _score_parts(reasons: list[Reason]) -> str:
    parts = [f"{r.effect} {r.rule}" for r in reasons if r.stage == "preference"]
    return ", ".join(parts) or "no preference rule"


def runner_up(order: list[str], n: Narrowing, feasible: dict[str, bool], scores: dict[str, float],
              trail: Trail, tie: list[Tie]) -> RunnerUp | None:
    if len(order) < 2:
        return None
    chosen, second = order[0], order[1]
    if not feasible[second]:
        vetoes = [r for r in trail.reasons[second] if r.effect == "ruled out"]
        return RunnerUp(method=second, rule=vetoes[0].rule,
                        why=f"ruled out by {vetoes[0].rule}: {vetoes[0].text}", facts=vetoes[0].facts)
    if second in n.set_aside:
        rule = n.set_aside[second]
        return RunnerUp(method=second, rule=rule.id,
                        why=f"set aside by {rule.id} (decisive, precedence {rule.precedence}): "
                            f"{trail.text(rule.rationale)}", facts=trail.cited(rule.rationale))
    if any(chosen in t.methods and second in t.methods for t in tie):
        return RunnerUp(method=second, rule=None,
                        why=f"tied with {chosen} at {scores[chosen]:+g} on preferences; the tie goes to {chosen} "
                            f"by {COST_ORDER}")
    return RunnerUp(method=second, rule=None,
                    why=f"scored {scores[second]:+g} on preferences ({_score_parts(trail.reasons[second])}) "
                        f"against {scores[chosen]:+g} for {chosen} ({_score_parts(trail.reasons[chosen])})")
