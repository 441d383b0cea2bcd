"""The audit report and the signals the advisor reads (public contract of `tunewise audit --json`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


class Finding(BaseModel):
    code: str
    severity: Severity
    count: int
    records: list[int] = Field(default_factory=list, description="0-based record indices (duplicates: every copy after the first)")
    groups: list[list[int]] | None = Field(None, description="duplicate groups (first record first)")
    similarity: list[float] | None = Field(None, description="near-duplicates: each group's lowest pairwise similarity")
    line: list[int] | None = Field(None, description="line of each listed record (JSONL and JSON arrays)")
    message: str
    details: dict[int, str] | None = Field(None, description="per-record detail for the first records listed")
    samples: list[dict[str, Any]] = Field(default_factory=list, description="a few records that trigger it, shortened")


class Diversity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unique_prompt_ratio: float = Field(description="distinct prompts / valid records (1.0 without prompts)")
    near_duplicate_share: float = Field(description="share of records that are exact or near copies of another")
    mean_similarity: float = Field(description="mean MinHash similarity of random record pairs")
    distinct_2gram_answers: float = Field(description="distinct word bigrams / all bigrams of the first answers")


class TokenSignal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p90_total: int = Field(description="90th percentile of tokens per record (prompt + answer + template)")
    mean_total: float
    mean_prompt: float = Field(0.0, description="mean tokens of the prompt side (what a tuned model is still sent)")


class FindingSignal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    severity: Severity
    count: int = Field(description="records (or groups' extra members) the finding covers")
    share: float = Field(description="count / records")


class Signals(BaseModel):
    """What the dataset audit tells the advisor (`recommend --dataset`, `ask`): measured, typed, one place."""

    model_config = ConfigDict(extra="forbid")
    records: int = 0
    valid_records: int = 0
    examples: int = Field(description="valid records minus exact copies")
    usable_examples: int | None = Field(None, description="valid records that carry no error-level finding and "
                                        "are not a later exact copy: what a fine-tune can learn from")
    exact_copies: int = Field(0, description="records that are an exact copy of an earlier one")
    estimated_tasks: int
    content: Literal["knowledge", "behaviour", "mixed"]
    knowledge_share: float = Field(description="share of answers that carry facts rather than a pattern")
    diversity: Diversity
    low_diversity: bool
    error_records: int = Field(0, description="records with at least one error-level finding")
    error_share: float = Field(0.0, description="error_records / records")
    tokens: TokenSignal
    findings: dict[str, FindingSignal] = Field(default_factory=dict, description="every finding by code (worst "
                                               "severity, count, share of records)")


class AuditReport(BaseModel):
    path: str
    format: str
    detection: dict[str, Any] = Field(default_factory=dict,
                                      description="container, format, kind (sft, preference, text) and why")
    records: int
    valid_records: int
    findings: list[Finding]
    stats: dict[str, Any]
    signals: Signals
    selection: list[str] | None = Field(None, description="the finding codes checked, when not all (--select/--ignore)")

    def worst_first(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (SEVERITY_ORDER[f.severity], -f.count))

    def error_records(self) -> int:
        bad: set[int] = set()
        for f in self.findings:
            if f.severity == "error":
                bad.update(f.records)
        return len(bad)

    def signals_for_advisor(self) -> Signals:
        """What `recommend --dataset` feeds into the decision (the signals; kept for callers of the first version)."""
        return self.signals
