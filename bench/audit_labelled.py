"""Precision and recall of the pattern- and model-based audit findings on the labelled sets in tests/labelled/
(positives and look-alikes written by hand for each finding and language). Prints one row per finding."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.audit.checks import find_placeholder, language_mismatch, refusal_in  # noqa: E402
from advisor.audit.pii import find_pii  # noqa: E402
from advisor.data.formats import Message, Sample  # noqa: E402

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
    lang = load("language.yaml")
    row("language_mismatch", [(want, language_mismatch(Sample([Message("user", u), Message("assistant", a)])) is not None)
                              for u, a, want in lang])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
