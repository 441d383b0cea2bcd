"""Score `recommend` on tunewise's own decision cases (tests/cases/recommend_cases.yaml).

Prints accuracy overall and per failure class of issue 14, the best constant-answer baseline, and the misses.
Works on any version of the advisor: answer keys and signal fields the version does not know are dropped, so an
older engine decides without them (as it would for a user).

    python bench/recommend_cases.py [--cases FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE_ANSWERS = dict(tasks=1, needs_citations=False, private_data=False, requests_per_day=1000,
                    gpu_memory_gb=24, gpu_count=1, model_params_b=7)


def build_answers(over: dict):
    from advisor.answers import Answers

    known = set(Answers.model_fields)
    return Answers(**{k: v for k, v in {**BASE_ANSWERS, **over}.items() if k in known})


def build_signals(data: dict | None, examples: int):
    """Signals of a clean, varied behaviour dataset of `examples` records, with `data` changed."""
    if data is None:
        return None
    from advisor.audit import report

    n = max(examples, 1)
    base = dict(records=n, valid_records=n, examples=n, estimated_tasks=1, content="behaviour",
                knowledge_share=0.0, low_diversity=False, error_records=0, error_share=0.0,
                diversity=report.Diversity(unique_prompt_ratio=1.0, near_duplicate_share=0.0, mean_similarity=0.1,
                                           distinct_2gram_answers=0.6),
                tokens=report.TokenSignal(p90_total=0, mean_total=0.0))
    fields = {**base, **{k: v for k, v in data.items() if k != "findings"}}
    records = fields["records"]
    fields["error_share"] = round(fields["error_records"] / records, 4) if records else 0.0
    found = {}
    for code, (severity, count) in (data.get("findings") or {}).items():
        found[code] = report.FindingSignal(severity=severity, count=count, share=round(count / records, 4))
    fields["findings"] = found
    known = set(report.Signals.model_fields)
    return report.Signals(**{k: v for k, v in fields.items() if k in known})


def score(cases: list[dict]) -> dict:
    from advisor.recommend import recommend

    rows = []
    for case in cases:
        answers = build_answers(case["answers"])
        rec = recommend(answers, build_signals(case.get("data"), answers.examples))
        rows.append({"id": case["id"], "class": case["class"], "expect": case["expect"], "got": rec.method,
                     "ok": rec.method in case["expect"]})
    by_class: dict[int, list[bool]] = {}
    for r in rows:
        by_class.setdefault(r["class"], []).append(r["ok"])
    counts = Counter(m for c in cases for m in c["expect"])
    constant = {m: sum(m in c["expect"] for c in cases) / len(cases) for m in counts}
    best = max(constant, key=constant.get)
    return {
        "cases": len(rows),
        "accuracy": round(sum(r["ok"] for r in rows) / len(rows), 4),
        "by_class": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_class.items())},
        "constant_baseline": {"method": best, "accuracy": round(constant[best], 4)},
        "misses": [r for r in rows if not r["ok"]],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=str(ROOT / "tests" / "cases" / "recommend_cases.yaml"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = score(yaml.safe_load(Path(args.cases).read_text(encoding="utf-8")))
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['cases']} cases: accuracy {result['accuracy']:.1%}; per class {result['by_class']}")
    c = result["constant_baseline"]
    print(f"constant-answer baseline: always {c['method']} → {c['accuracy']:.1%}")
    for m in result["misses"]:
        print(f"  miss {m['id']} (class {m['class']}): expected {'/'.join(m['expect'])}, got {m['got']}")


if __name__ == "__main__":
    main()
