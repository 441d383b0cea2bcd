"""The finding catalogue (rules/audit_findings.yaml): code, severity, rationale, source, examples and, for the
pattern-based findings, the patterns per language."""

from __future__ import annotations

import re
from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from advisor.errors import UserError
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
    patterns: dict[str, list[str]] | None = Field(
        None, description="regular expressions per language (ISO 639-1, or `any`), matched case-insensitively")


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


@cache
def patterns(code: str, langs: tuple[str, ...] | None = None) -> re.Pattern:
    """A finding's patterns as one case-insensitive regex: of every language (None), or of `langs` only (a cheaper
    search when the text's language is known)."""
    entry = catalog()[code]
    parts = []
    for lang, items in (entry.patterns or {}).items():
        if langs is not None and lang not in langs:
            continue
        for j, rx in enumerate(items):
            try:
                re.compile(rx)
            except re.error as e:
                raise UserError(f"{rules_dir() / 'audit_findings.yaml'}: `{code}.patterns.{lang}[{j}]` is not a valid "
                                f"regular expression ({e}); fix the pattern") from None
            parts.append(f"(?:{rx})")
    return re.compile("|".join(parts) or r"(?!x)x", re.IGNORECASE)
