"""What `tunewise recommend` hands over (public contract of `recommend --json`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from advisor.reconcile import Conflict, DataFacts
from core.estimate.memory import EstimateRequest, MemoryEstimate
from core.probe_report import ProbeReport


class Reason(BaseModel):
    rule: str
    text: str
    source: str
    effect: str = Field(description="`+2` (preference), `ruled out` (constraint), `decides` / `set aside` / "
                        "`agrees` / `outranked by RULE` / `overruled` (decisive)")
    stage: str = Field("preference", description="constraint, decisive or preference")
    precedence: int | None = Field(None, description="decisive rules: their place in the order")
    facts: dict[str, Any] = Field(default_factory=dict, description="the named facts the text cites, with the "
                                  "values it was written from")


class Ranked(BaseModel):
    method: str
    score: float = Field(description="sum of the preference rules (they only break ties among candidates)")
    feasible: bool = Field(description="no constraint ruled it out")
    candidate: bool = Field(False, description="left by the decisive rules")
    set_aside_by: str | None = Field(None, description="the decisive rule that set this method aside")
    reasons: list[Reason]


class Warning_(BaseModel):
    model_config = ConfigDict(title="Warning")
    code: str
    message: str
    rule: str
    source: str
    facts: dict[str, Any] = Field(default_factory=dict, description="the named facts the text cites, with the "
                                  "values it was written from")
    advises: list[str] = Field(default_factory=list, description="methods the warning tells the user to use")


class Sentence(BaseModel):
    """One sentence the panel, `--json` or `--explain` shows, with the facts it rests on."""

    where: str = Field(description="where it is shown: decided_by, runner_up, warning:CODE, next_step:N, "
                       "ranking:METHOD:RULE, memory, data, conflict:KEY, finding:CODE")
    text: str
    rule: str | None = Field(None, description="the rule it comes from, when one does")
    facts: dict[str, Any] = Field(default_factory=dict, description="the named facts it cites, with their values")
    advises: list[str] = Field(default_factory=list, description="methods it tells the user to use")


class Override(BaseModel):
    key: str
    answered: Any
    measured: Any


class Decision(BaseModel):
    """The rule that decided, and the candidates it left."""

    rule: str
    precedence: int | None
    stage: str = Field(description="decisive, or preference when only the preferences separated the candidates")
    text: str
    source: str
    candidates: list[str] = Field(description="methods left after the decisive rules")
    facts: dict[str, Any] = Field(default_factory=dict, description="the named facts the text cites, with the "
                                  "values it was written from")


class RunnerUp(BaseModel):
    method: str
    why: str = Field(description="exactly why it lost")
    rule: str | None = Field(None, description="the rule that made it lose, when one did")
    facts: dict[str, Any] = Field(default_factory=dict, description="the named facts the text cites, with the "
                                  "values it was written from")


class Tie(BaseModel):
    methods: list[str]
    score: float
    broken_by: str


class FindingNote(BaseModel):
    """An audit finding that matters for the decision, with its count and what it changed."""

    code: str
    severity: str
    count: int
    share: float
    effect: str
    rules: list[str] = Field(default_factory=list, description="rules that reacted to it")


class MethodEstimate(MemoryEstimate):
    """One method's memory and time estimate, in the configuration the advisor settled on for it."""

    fits: bool = Field(description="the advisor's fit: the expected reading within the memory (no `tight` allowance)")
    config_rung: int = Field(description="the step of the method's configuration ladder that was estimated (0: the "
                             "standard configuration, higher: leaner settings the memory needed)")
    request: EstimateRequest = Field(description="the configuration that was estimated")


class Recommendation(BaseModel):
    method: str
    ranking: list[Ranked]
    warnings: list[Warning_]
    next_steps: list[str]
    estimate: dict[str, MethodEstimate] = Field(description="every fine-tune method's estimate, by method")
    overrides: list[Override] = []
    assumptions: dict[str, Any] = {}
    fired_rules: list[str] = []
    decided_by: Decision | None = None
    runner_up: RunnerUp | None = None
    ties: list[Tie] = []
    conflicts: list[Conflict] = []
    data: DataFacts | None = None
    audit_findings: list[FindingNote] = []
    sentences: list[Sentence] = Field(default_factory=list, description="every sentence shown, each with the "
                                      "named facts it cites and the methods it advises")
    probe: ProbeReport | None = Field(None, description="what `tunewise probe` measured, when it ran")

    def ranked(self, method: str) -> Ranked:
        return next(r for r in self.ranking if r.method == method)


STAGE_ORDER = {"constraint": 0, "decisive": 1, "preference": 2}


class Explanation(BaseModel):
    """The full trace of one method (`recommend --explain METHOD`)."""

    method: str
    verdict: str = Field(description="chosen, or why not, in one sentence")
    score: float
    feasible: bool
    candidate: bool
    trace: list[Reason] = Field(description="every rule that touched the method: constraints, decisive rules by "
                                "precedence, then preferences")


def explain(rec: Recommendation, method: str) -> Explanation:
    r = rec.ranked(method)
    trace = sorted(r.reasons, key=lambda x: (STAGE_ORDER.get(x.stage, 3), x.precedence or 0))
    if method == rec.method:
        verdict = f"chosen: {rec.decided_by.rule} decided" if rec.decided_by else "chosen"
        if rec.decided_by and len(rec.decided_by.candidates) > 1:
            verdict += f" among {', '.join(rec.decided_by.candidates)}, and it scored highest on preferences"
    elif not r.feasible:
        verdict = "ruled out by " + ", ".join(x.rule for x in r.reasons if x.effect == "ruled out")
    elif r.set_aside_by:
        verdict = f"set aside by {r.set_aside_by}, a decisive rule that comes before any rule in its favour"
    else:
        verdict = (f"a candidate, but scored {r.score:+g} on preferences against {rec.ranked(rec.method).score:+g} "
                   f"for {rec.method}")
        if any(method in t.methods and rec.method in t.methods for t in rec.ties):
            verdict = f"tied with {rec.method} at {r.score:+g}; the tie went to {rec.method} by cost order"
    if rec.runner_up and rec.runner_up.method == method:
        verdict += f" (runner-up: {rec.runner_up.why})"
    return Explanation(method=method, verdict=verdict, score=r.score, feasible=r.feasible, candidate=r.candidate,
                       trace=trace)
