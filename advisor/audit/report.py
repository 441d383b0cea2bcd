"""The audit report (public contract of `tunewise audit --json`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

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


class AuditReport(BaseModel):
    path: str
    format: str
    detection: dict[str, Any] = Field(default_factory=dict,
                                      description="container, format, kind (sft, preference, text) and why")
    records: int
    valid_records: int
    findings: list[Finding]
    stats: dict[str, Any]
    signals: dict[str, Any]

    def worst_first(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (SEVERITY_ORDER[f.severity], -f.count))

    def error_records(self) -> int:
        bad: set[int] = set()
        for f in self.findings:
            if f.severity == "error":
                bad.update(f.records)
        return len(bad)

    def signals_for_advisor(self) -> dict[str, Any]:
        """What `recommend --dataset` feeds into the decision."""
        return {
            **self.signals,
            "error_share": round(self.error_records() / self.records, 4) if self.records else 0.0,
            "tokens": {"p90_total": self.stats["tokens"]["total"]["p90"], "mean_total": self.stats["tokens"]["total"]["mean"]},
        }
