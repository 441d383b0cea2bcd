"""Precision and recall of the pattern- and model-based audit findings on the labelled sets in tests/labelled/
(positives and look-alikes written by hand for each finding and language). Prints one row per finding, and one per
language for the refusal and knowledge measures (bench/language_id.py has the language-identification table)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.audit.checks import (  # noqa: E402
    TEMPLATE_LEAK,
    _template_hint,
    find_placeholder,
    language_mismatch,
    refusal_in,
)
from advisor.audit.intents import intent  # noqa: E402
from advisor.audit.language import UND, detect  # noqa: E402
from advisor.audit.pii import find_pii  # noqa: E402
from advisor.audit.text import carries_facts  # noqa: E402
from core.data.formats import Message, Sample  # noqa: E402

LABELLED = ROOT / "tests" / "labelled"


def load(name: str):
    return yaml.safe_load((LABELLED / name).read_text(encoding="utf-8"))


def row(name: str, pairs: list[tuple[bool, bool]]) -> None:
    tp = sum(1 for want, got in pairs if want and got)
    fp = sum(1 for want, got in pairs if not want and got)
    fn = sum(1 for want, got in pairs if want and not got)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(f"{name:22s} cases {len(pairs):3d}  positives {tp + fn:3d}  precision {precision:6.1%}  recall {recall:6.1%}")


def main() -> int:
    pii = load("pii.yaml")
    row("pii", [(True, kind in {h.kind for h in find_pii(t)}) for kind, t in pii["positive"]]
        + [(False, bool(find_pii(t))) for t in pii["negative"]])
    ph = load("placeholder.yaml")
    row("placeholder", [(True, bool(find_placeholder(t))) for t in ph["positive"]]
        + [(False, bool(find_placeholder(t))) for t in ph["negative"]])
    ref = load("refusal.yaml")
    row("refusal_boilerplate", [(True, bool(refusal_in(bad))) for v in ref.values() for bad, _ in v]
        + [(False, bool(refusal_in(good))) for v in ref.values() for _, good in v])
    for lang, v in ref.items():
        row(f"  refusal {lang}", [(True, bool(refusal_in(bad))) for bad, _ in v]
            + [(False, bool(refusal_in(good))) for _, good in v])
    leak = load("template_leak.yaml")
    found = lambda t: bool(_template_hint(t) and TEMPLATE_LEAK.search(t))  # noqa: E731
    row("template_leak", [(True, found(t)) for t in leak["positive"]] + [(False, found(t)) for t in leak["negative"]])
    knowledge = load("knowledge.yaml")
    row("knowledge", [(want, carries_facts(q, a, intent(q))) for v in knowledge.values() for q, a, want in v])
    for lang, v in knowledge.items():
        row(f"  knowledge {lang}", [(want, carries_facts(q, a, intent(q))) for q, a, want in v])
    lang = load("language.yaml")
    row("language_mismatch", [(want, language_mismatch(Sample([Message("user", u), Message("assistant", a)])) is not None)
                              for u, a, want in lang])
    for name in ("task_intents.yaml", "task_intents_b.yaml", "task_intents_c.yaml"):
        intents_row(name, load(name)["items"])
    return 0


def intents_row(name: str, items: list[dict]) -> None:
    """Task intents (advisor/audit/intents.py): right per language, as the audit reads an instruction (its detected
    language, else its record's: the item's)."""
    right: dict[str, list[int]] = {}
    for item in items:
        lang = detect(item["text"])
        got = intent(item["text"], (lang if lang != UND else item["lang"],))
        right.setdefault(item["lang"], [0, 0])[0] += got == item["intent"]
        right[item["lang"]][1] += 1
    total = [sum(v[0] for v in right.values()), sum(v[1] for v in right.values())]
    print(f"task intents {name:20s} {total[0]}/{total[1]} ({total[0] / total[1]:.1%}); "
          + " ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(right.items())))


if __name__ == "__main__":
    raise SystemExit(main())
