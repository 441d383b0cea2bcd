"""The audit and the data in the recommendation: findings with their counts, usable examples, personal data, and answers
that the data contradicts (the measured value wins)."""


from __future__ import annotations

import pytest
import yaml

from advisor.recommend import FINDING_SHOWN_SHARE, recommend
from bench.recommend_cases import build_answers, build_signals
from tests.conftest import BASE_ANSWERS, ROOT, write_jsonl, write_yaml

CASES = yaml.safe_load((ROOT / "tests" / "cases" / "recommend_cases.yaml").read_text(encoding="utf-8"))


def decide(over: dict, data: dict | None = None):
    a = build_answers(over)
    return recommend(a, build_signals(data, a.examples))


# ---- class 3: the audit reaches the decision ------------------------------------------------------------------

def test_unfilled_placeholders_everywhere_leave_nothing_to_tune_on(tmp_path, cli_json):
    data = write_jsonl(tmp_path / "d.jsonl", [
        {"messages": [{"role": "user", "content": f"Order {i} for {{{{customer_name}}}} is late, ticket {i * 7}"},
                      {"role": "assistant", "content": f"Dear {{{{customer_name}}}}, order {i} ships on day {i % 9}."}]}
        for i in range(300)])
    f = write_yaml(tmp_path / "a.yaml", {**BASE_ANSWERS, "goal": "format", "prompting": "unstable", "examples": 300})
    d = cli_json("recommend", "--answers", f, "--dataset", data)
    assert d["method"] == "prompting" and d["data"]["usable_examples"] == 0 and d["data"]["error_records"] == 300
    assert {"key": "examples", "answered": 300, "measured": 0} in d["overrides"]
    note = next(n for n in d["audit_findings"] if n["code"] == "placeholder")
    assert note["count"] == 300 and note["effect"] == "300 records left out of the usable examples"
    assert d["decided_by"]["rule"] == "few-examples"


def test_usable_examples_are_after_errors_and_copies():
    rec = decide(dict(goal="format", prompting="unstable", examples=2000),
                 {"records": 2000, "valid_records": 2000, "examples": 1990, "usable_examples": 30,
                  "error_records": 1960, "exact_copies": 10, "findings": {"empty_output": ["error", 1960]}})
    assert rec.data.usable_examples == 30 and rec.method == "prompting"
    assert rec.conflicts[0].key == "examples" and rec.conflicts[0].measured == 30


@pytest.mark.parametrize("code,count,warning", [
    ("pii", 420, "personal_data"), ("refusal_boilerplate", 600, "refusal_data"),
    ("language_mismatch", 900, "language_mismatch"), ("template_leak", 12, "template_leak"),
    ("conflicting_answers", 200, "conflicting_answers"), ("too_long", 400, "truncation"),
])
def test_audit_findings_appear_with_their_counts(code, count, warning):
    rec = decide(dict(goal="format", prompting="unstable", examples=3000),
                 {"records": 3000, "findings": {code: ["warning", count]}})
    w = next(w for w in rec.warnings if w.code == warning)
    assert f"{count:,}" in w.message
    note = next(n for n in rec.audit_findings if n.code == code)
    assert note.count == count and note.rules


def test_findings_below_the_share_are_not_listed_and_the_threshold_is_pinned():
    assert FINDING_SHOWN_SHARE == 0.01
    rec = decide(dict(goal="format", prompting="unstable", examples=3000),
                 {"records": 3000, "findings": {"degenerate_repetition": ["warning", 20],
                                                "near_duplicate": ["warning", 60]}})
    assert [n.code for n in rec.audit_findings] == ["near_duplicate"]  # 20/3000 < 1% ≤ 60/3000
    assert rec.audit_findings[0].effect.startswith("does not change the method")


def test_personal_data_found_makes_the_data_private():
    rec = decide(dict(goal="format", prompting="unstable", examples=3000, private_data=False),
                 {"records": 3000, "findings": {"pii": ["warning", 420]}})
    c = next(c for c in rec.conflicts if c.key == "private_data")
    assert (c.answered, c.measured, c.used) == (False, True, "measured")
    assert {"personal_data", "private_data"} <= {w.code for w in rec.warnings}


# ---- class 4: answers and data disagree -----------------------------------------------------------------------

@pytest.mark.parametrize("over,data,key,answered,measured_value,method", [
    (dict(goal="format", prompting="unstable", examples=3000), {"content": "knowledge", "knowledge_share": 0.82},
     "goal", "format", "knowledge", "rag"),
    (dict(goal="knowledge", knowledge_freshness="monthly", prompting="unstable", examples=3000),
     {"content": "behaviour", "knowledge_share": 0.03}, "goal", "knowledge", "behaviour", "lora"),
    (dict(goal="format", prompting="unstable", examples=5000), {"records": 40, "valid_records": 40, "examples": 40},
     "examples", 5000, 40, "prompting"),
    (dict(goal="task", prompting="unstable", examples=3000), {"estimated_tasks": 3}, "tasks", 1, 3, "lora"),
])
def test_conflicts_are_shown_and_the_measured_value_wins(over, data, key, answered, measured_value, method):
    rec = decide(over, data)
    c = next(c for c in rec.conflicts if c.key == key)
    assert (c.answered, c.measured, c.used) == (answered, measured_value, "measured")
    assert rec.method == method and "Decided" in c.message


def test_mixed_content_is_reported_but_the_answer_kept():
    rec = decide(dict(goal="style", prompting="unstable", examples=3000), {"content": "mixed", "knowledge_share": 0.35})
    c = next(c for c in rec.conflicts if c.key == "goal")
    assert c.used == "answered" and rec.method == "lora" and not rec.overrides[1:]
