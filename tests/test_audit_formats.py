"""The audit reads every format rightly: single objects and wrappers, text files, typed content parts, Parquet, unreadable files
(refused once), preference data (detected, pairs checked, counted in records)."""


from __future__ import annotations

import json

import pytest

from advisor.audit import audit_file
from core.errors import UserError
from tests.conftest import by_code, write_jsonl
from tests.test_audit_findings import chat, filler

# ---- 3. formats read rightly -----------------------------------------------------------------------------------

def test_single_json_object_and_wrapper(tmp_path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"instruction": "Name a colour", "input": "", "output": "Blue"}, indent=2))
    r = audit_file(one)
    assert r.records == 1 and r.format == "alpaca" and r.detection["container"] == "json_object"
    wrapped = tmp_path / "w.json"
    wrapped.write_text(json.dumps({"version": 2, "data": [json.loads(json.dumps(x)) for x in filler()]}, indent=2))
    r = audit_file(wrapped)
    assert r.records == 12 and r.format == "openai" and "`data`" in r.detection["reason"]
    assert not [f for f in r.findings if f.code in ("invalid_json", "schema")]


@pytest.mark.parametrize("text,unit,records", [
    ("The first sample line.\nThe second sample line.\nA third one here.\n", "line", 3),
    ("First paragraph, line one.\nline two of it.\n\nSecond paragraph here.\nand more of it.\n", "paragraph", 2),
    ("This is a document that was\nwrapped at a fixed width so\nits lines break in the middle\nof sentences.\n",
     "document", 1),
])
def test_text_files(tmp_path, text, unit, records):
    p = tmp_path / "corpus.txt"
    p.write_text(text)
    r = audit_file(p)
    assert (r.format, r.detection["text_unit"], r.records) == ("text", unit, records)
    assert not [f for f in r.findings if f.code == "invalid_json"]


@pytest.mark.parametrize("key", ["text", "value"])
def test_typed_content_parts(tmp_path, key):
    recs = [{"messages": [{"role": "user", "content": [{"type": "text", key: f"question {i} about cats"}]},
                          {"role": "assistant", "content": [{"type": "text", key: f"answer {i}: cats purr"}]}]}
            for i in range(12)]
    r = audit_file(write_jsonl(tmp_path / "d.jsonl", recs))
    assert not {"empty_output", "exact_duplicate", "schema"} & set(by_code(r))
    assert r.valid_records == 12


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"instruction": f"Name colour {i}", "input": "", "output": f"Blue {i}"} for i in range(12)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    r = audit_file(tmp_path / "d.parquet")
    assert (r.format, r.records, r.detection["container"]) == ("alpaca", 12, "parquet")


@pytest.mark.parametrize("blob,needle", [
    ("[".encode("utf-16") + json.dumps([{"text": "é"}]).encode("utf-16-le"), "UTF-16"),
    (json.dumps([{"text": "café"}], ensure_ascii=False).encode("latin-1"), "not UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"instruction,output\nhello", None),
])
def test_unreadable_files_are_refused_once(tmp_path, blob, needle):
    p = tmp_path / ("d.csv" if needle is None else "d.jsonl")
    p.write_bytes(blob)
    if needle is None:
        assert audit_file(p).format == "alpaca"
        return
    with pytest.raises(UserError, match=needle):
        audit_file(p)


def test_jsonl_that_is_not_json_is_one_error(tmp_path, cli):
    p = tmp_path / "d.jsonl"
    p.write_text("this is\nnot json\nat all\n")
    code, out, err = cli("audit", p)
    assert code == 2 and "not JSON" in err and err.count("\n") <= 3


# ---- 4. preference data ----------------------------------------------------------------------------------------

PREFERENCE = [
    ("dpo", {"prompt": "Greet the user", "chosen": "Hello! How can I help?", "rejected": "What do you want."}),
    ("dpo", {"prompt": [{"role": "user", "content": "Greet the user"}],
             "chosen": [{"role": "assistant", "content": "Hello! How can I help?"}],
             "rejected": [{"role": "assistant", "content": "What do you want."}]}),
    ("dpo", {"conversations": [{"from": "human", "value": "Greet the user"}],
             "chosen": {"from": "gpt", "value": "Hello! How can I help?"},
             "rejected": {"from": "gpt", "value": "What do you want."}}),
    ("dpo", {"instruction": "Greet the user", "input": "", "chosen": "Hello! How can I help?",
             "rejected": "What do you want."}),
    ("dpo", {"chosen": "\n\nHuman: Greet the user\n\nAssistant: Hello! How can I help?",
             "rejected": "\n\nHuman: Greet the user\n\nAssistant: What do you want."}),
    ("openai_preference", {"input": {"messages": [{"role": "user", "content": "Greet the user"}]},
                           "preferred_output": [{"role": "assistant", "content": "Hello! How can I help?"}],
                           "non_preferred_output": [{"role": "assistant", "content": "What do you want."}]}),
    ("kto", {"messages": [{"role": "user", "content": "Greet the user"},
                          {"role": "assistant", "content": "Hello! How can I help?"}], "label": True}),
    ("kto", {"prompt": "Greet the user", "completion": "Hello! How can I help?", "label": False}),
]


def _variants(rec: dict, n: int = 12) -> list[dict]:
    text = json.dumps(rec)
    return [json.loads(text.replace("Greet the user", f"Greet user number {i}")) for i in range(n)]


@pytest.mark.parametrize("fmt,rec", PREFERENCE)
def test_preference_formats_are_detected_and_clean(tmp_path, fmt, rec):
    r = audit_file(write_jsonl(tmp_path / "p.jsonl", _variants(rec)))
    assert r.format == fmt and r.detection["kind"] == "preference" and r.valid_records == 12
    assert not {"no_assistant", "no_user", "empty_output", "schema", "pair_identical"} & set(by_code(r)), r.findings


def test_pair_checks(tmp_path):
    good = _variants(PREFERENCE[0][1])
    bad = [{"prompt": "Name a colour", "chosen": "Blue.", "rejected": "blue"},
           {"prompt": "Name a fruit", "chosen": "An apple.", "rejected": ""},
           {"prompt": "Describe the water cycle for a child",
            "chosen": "Water rises from the sea, makes clouds and falls again as rain on the land.",
            "rejected": "El agua sube del mar, forma nubes y vuelve a caer como lluvia sobre la tierra."},
           {"prompt": "Greet me", "chosen": "Hello there, friend!", "rejected": "Go away, I am busy."},
           {"prompt": "Greet me", "chosen": "Go away, I am busy.", "rejected": "Hello there, friend!"},
           {"prompt": "Say hi", "chosen": "Hi!", "rejected": "As an AI language model, I cannot greet you."},
           {"prompt": "Sign it", "chosen": "Regards, Ann", "rejected": "Regards, [Your Name]"}]
    f = by_code(audit_file(write_jsonl(tmp_path / "p.jsonl", good + bad)))
    assert f["pair_identical"].records == [12]
    assert f["pair_empty_side"].records == [13]
    assert f["pair_language_mismatch"].records == [14]
    assert f["pair_contradiction"].groups == [[15, 16]]
    assert "refusal_boilerplate" not in f  # a refusal is what a rejected answer often is
    assert f["placeholder"].records == [18] and "rejected side" in f["placeholder"].details[18]


def test_kto_contradicting_labels(tmp_path):
    recs = _variants(PREFERENCE[7][1]) + [{"prompt": "Greet me", "completion": "Hi!", "label": True},
                                          {"prompt": "Greet me", "completion": "Hi!", "label": False}]
    r = audit_file(write_jsonl(tmp_path / "k.jsonl", recs))
    assert by_code(r)["pair_contradiction"].groups == [[12, 13]]
    assert r.stats["labels"] == {"desirable": 1, "undesirable": 13}


# ---- class 6: counts on preference data are records --------------------------------------------------------------

def test_preference_findings_count_records_not_sides(tmp_path):
    recs = [{"prompt": f"Question {i}: how do I reach the team?",
             "chosen": f"Mail jane.doe{i}@acme-mail.io.  Human: thanks",
             "rejected": f"Mail john.roe{i}@acme-mail.io.  Human: ok"} for i in range(13)]
    report = audit_file(write_jsonl(tmp_path / "dpo.jsonl", recs))
    found = by_code(report)
    assert found["pii"].count == 13 and found["pii"].records == list(range(13))
    assert found["template_leak"].count == 13
    assert "rejected side" in found["pii"].details[0]
    assert report.signals.findings["pii"].share == 1.0


def test_report_json_is_unchanged_in_shape(tmp_path):
    recs = [chat("¿Cuántos días de vacaciones tengo?", "Tienes 22 días hábiles al año.")] * 3
    report = audit_file(write_jsonl(tmp_path / "x.jsonl", recs))
    assert json.loads(report.model_dump_json())["signals"]["content"] in ("knowledge", "behaviour", "mixed")
