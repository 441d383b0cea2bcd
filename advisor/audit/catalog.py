"""The finding catalogue (rules/audit_findings.yaml): code, severity, rationale, source, examples."""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, ConfigDict

from advisor.files import read_structured, validate
from advisor.rules.loader import rules_dir


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    severity: str
    title: str
    rationale: str
    source: str
    example: str
    ok_example: str | None = None


@cache
def catalog() -> dict[str, CatalogEntry]:
    path = rules_dir() / "audit_findings.yaml"
    data, lines = read_structured(path, "finding catalogue")
    out = {}
    for i, item in enumerate(data):
        sub = {k[1:]: v for k, v in lines.items() if k and k[0] == i}
        entry = validate(CatalogEntry, item, str(path), sub)
        out[entry.code] = entry
    return out
