"""Exact duplicates (the whole normalised record, independent of order), near-duplicate groups that do not chain,
and the real files' exact groups."""


from __future__ import annotations

from pathlib import Path

import pytest

from advisor.audit import audit_file
from core.data.formats import Message, Sample
from tests.conftest import by_code, write_jsonl
from tests.test_audit_findings import chat, filler

# ---- 1. exact duplicates: the whole normalised record, independent of order ------------------------------------

def test_same_answer_to_different_questions_is_not_a_copy(tmp_path):
    recs = [chat("Who are you?", a) for a in "ABC"] + [chat("What is your name?", a) for a in "DEC"]
    recs = [chat(r["messages"][0]["content"], f"I am answer {r['messages'][1]['content']}") for r in recs]
    f = by_code(audit_file(write_jsonl(tmp_path / "d.jsonl", [*filler(), *recs])))
    assert "exact_duplicate" not in f
    assert f["conflicting_answers"].groups == [[12, 13, 14], [15, 16, 17]]


def test_identical_records_form_one_group_and_skip_nothing(tmp_path):
    rec = chat("Who are you?", "I am Aria.")
    report = audit_file(write_jsonl(tmp_path / "d.jsonl", [rec] * 4 + filler()))
    f = by_code(report)
    assert f["exact_duplicate"].groups == [[0, 1, 2, 3]] and f["exact_duplicate"].records == [1, 2, 3]
    assert "conflicting_answers" not in f
    assert report.signals.examples == 13


def test_signs_and_operators_keep_prompts_apart(tmp_path):
    recs = [chat("Weather in Tunis, -18 C?", "Freezing."), chat("Weather in Tunis, 18 C?", "Mild."),
            chat("What is 3 - 5?", "-2"), chat("What is 3 + 5?", "8")]
    f = by_code(audit_file(write_jsonl(tmp_path / "d.jsonl", [*filler(), *recs])))
    assert "conflicting_answers" not in f and "exact_duplicate" not in f


# ---- 2. near-duplicate groups do not chain ---------------------------------------------------------------------

def test_near_duplicate_groups_do_not_chain(tmp_path):
    base = ("The delivery of your order number 4471 was delayed because the courier could not reach the warehouse "
            "during the storm; we will ship it again on Monday and refund the shipping fee to your card.")
    words = base.split()
    chain = [" ".join(words[:i] + [w.upper() + "x" for w in words[i:i + 4]] + words[i + 4:]) for i in range(0, 32, 4)]
    recs = [chat("Write the customer update", t) for t in chain]
    report = audit_file(write_jsonl(tmp_path / "d.jsonl", [*filler(), *recs]), near_dup_threshold=0.6)
    near = by_code(report).get("near_duplicate")
    assert near is not None and near.similarity and len(near.similarity) == len(near.groups)
    assert min(near.similarity) >= 0.5  # every pair in every group, not only neighbours in a chain
    assert not any(12 in g and 19 in g for g in near.groups)  # the ends of the chain share little


# ---- the real files keep their known findings, with no false exact duplicates ----------------------------------

@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared" / "data" / "external").is_dir(),
                    reason="shared/data/external not beside the checkout")
@pytest.mark.parametrize("name", ["llamafactory_alpaca_en_demo.json", "llamafactory_alpaca_zh_demo.json",
                                  "llamafactory_glaive_toolcall_en_demo.json", "llamafactory_identity.json",
                                  "stanford_alpaca_sample_1727.json"])
def test_every_exact_group_in_real_files_is_identical_after_normalising(name):
    from advisor.audit.text import normalise
    from core.data import iter_raw
    from core.data import normalise as to_sample

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / name
    r = audit_file(path)
    records = {x.index: to_sample(x.obj, r.format) for x in iter_raw(path)}

    def key(i: int) -> str:
        return normalise("\n".join(f"{m.role}:{m.content}" for m in records[i].messages))

    for group in (by_code(r).get("exact_duplicate").groups if "exact_duplicate" in by_code(r) else []):
        assert len({key(i) for i in group}) == 1, group


def test_template_leak_knows_the_special_tokens_of_every_template_trl_ships():
    """Every turn and special token written in trl/chat_templates/*.jinja, pasted into an answer, is a leak."""
    import re
    from pathlib import Path

    import trl

    from advisor.audit.checks import RecordView, template_leak

    folder = Path(trl.__file__).parent / "chat_templates"
    markers = set()
    for f in folder.glob("*.jinja"):
        markers.update(re.findall(r"<\|[^|'\"\s]{1,30}\|>|<｜[^｜]{1,30}｜>|<(?:start|end)_of_turn>|\[/?INST\]|"
                                  r"<\|[A-Za-z_][\w.-]{0,30}>|<[A-Za-z_][\w.-]{0,30}\|>",  # Gemma 4: <|turn> <turn|>
                                  f.read_text(encoding="utf-8")))
    assert len(markers) >= 40 and {"<|turn>", "<turn|>"} <= markers, sorted(markers)
    for m in sorted(markers):
        s = Sample([Message("user", "Say hi"), Message("assistant", f"Hi there{m} how can I help?")])
        assert list(template_leak(RecordView(s, "openai"))), m
    clean = Sample([Message("user", "What does a | b mean?"), Message("assistant", "In Python, <a|b> is not valid; "
                                                                                     "a | b is bitwise or.")])
    assert not list(template_leak(RecordView(clean, "openai")))
