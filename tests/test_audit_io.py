"""Audit input handling: real public datasets, formats, broken files, fuzzing, CLI and HTML report."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.audit import audit_file
from core.data import iter_raw
from core.errors import UserError
from tests.conftest import EXTERNAL, run_tunewise, write_jsonl

needs_external = pytest.mark.skipif(not EXTERNAL.is_dir(), reason="shared/data/external not beside the checkout")


@needs_external
@pytest.mark.parametrize("name,fmt,records,must_find", [
    ("openai_toy_chat_fine_tuning.jsonl", "openai", 5, {"too_few_examples", "no_user", "too_long"}),
    ("llamafactory_identity.json", "alpaca", 91, {"placeholder"}),
    ("llamafactory_alpaca_en_demo.json", "alpaca", 999, {"mixed_tasks", "exact_duplicate", "placeholder"}),
    ("llamafactory_alpaca_zh_demo.json", "alpaca", 1000, {"mixed_tasks", "language_mismatch"}),
    ("llamafactory_glaive_toolcall_en_demo.json", "sharegpt", 300, {"exact_duplicate"}),
    ("stanford_alpaca_sample_1727.json", "alpaca", 1727, {"empty_output", "placeholder"}),
    ("smbx_alpaca_custom.json", "alpaca", 8, {"too_few_examples"}),
])
def test_real_datasets(name, fmt, records, must_find):
    r = audit_file(EXTERNAL / name)
    assert (r.format, r.records) == (fmt, records)
    assert must_find <= {f.code for f in r.findings}


@needs_external
def test_identity_placeholders_are_the_templated_rows():
    r = audit_file(EXTERNAL / "llamafactory_identity.json")
    data = json.loads((EXTERNAL / "llamafactory_identity.json").read_text())
    f = next(x for x in r.findings if x.code == "placeholder")
    assert f.records == [i for i, d in enumerate(data) if "{{" in d["output"]]


@needs_external
def test_broken_json_array_exits_2_with_line_and_column():
    p = run_tunewise("audit", EXTERNAL / "smbx_alpaca_custom_broken.json")
    assert p.returncode == 2 and "smbx_alpaca_custom_broken.json:5:19" in p.stderr and "Traceback" not in p.stderr


def test_json_array_streams_in_chunks(tmp_path, monkeypatch):
    import core.data.reader as reader

    monkeypatch.setattr(reader, "CHUNK", 7)  # force records to span many chunks
    recs = [{"instruction": f"q{i} 中文", "input": "", "output": "a" * (i % 13)} for i in range(50)]
    p = tmp_path / "d.json"
    p.write_text(json.dumps(recs, indent=2, ensure_ascii=False), encoding="utf-8")
    out = list(iter_raw(p))
    assert [r.obj for r in out] == recs and out[1].line == 7


def test_json_array_elements_come_unparsed_as_their_own_json_text(tmp_path):
    """iter_raw(parse=False) hands a JSON array's elements over as their JSON text (the audit's workers parse them,
    as they parse JSONL lines); parse_line gives the object iter_raw(parse=True) gives, and an element nested deeper
    than MAX_DEPTH is that record's error either way, not the file's."""
    import core.data.reader as reader

    deep = {"messages": [{"role": "user", "content": "x"}]}
    for _ in range(reader.MAX_DEPTH + 1):
        deep = {"d": deep}
    recs = [{"instruction": "q 中文", "output": "a"}, deep, {"instruction": "q2", "output": "b"}]
    p = tmp_path / "d.json"
    p.write_text(json.dumps(recs, indent=2, ensure_ascii=False), encoding="utf-8")
    raw = list(iter_raw(p, parse=False))
    lines = p.read_text(encoding="utf-8").splitlines()
    assert [json.loads(r.raw) for r in raw] == recs and raw[0].line == 2
    assert all(lines[r.line - 1].strip() == "{" and r.raw.splitlines()[0] == b"{" for r in raw)  # where each starts
    parsed = [reader.parse_line(r) for r in raw]
    assert [r.error for r in parsed] == [None, f"nesting deeper than {reader.MAX_DEPTH} levels", None]
    assert [(r.obj, r.error) for r in parsed] == [(r.obj, r.error) for r in iter_raw(p)]


@pytest.mark.parametrize("text,needle", [
    ('[{"a": 1}, {"a": 2}', "not closed"),
    ('[{"a": 1} {"a": 2}]', "expected `,` or `]`"),
    ('[{"a": 1}] trailing', "extra data"),
    ('{"a": 1}\n{"a": ', None),  # JSONL: a finding, not an exit
])
def test_malformed_files(tmp_path, text, needle):
    p = tmp_path / ("d.json" if text.startswith("[") else "d.jsonl")
    p.write_text(text)
    if needle is None:
        assert [r.error is not None for r in iter_raw(p)] == [False, True]
    else:
        with pytest.raises(UserError, match=needle):
            list(iter_raw(p))


def test_formats_alpaca_history_sharegpt_tools_csv_prompt_completion(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps([{"instruction": "and now?", "input": "", "output": "done", "system": "be brief",
                              "history": [["first?", "ok"]]}] * 1))
    r = audit_file(a)
    assert r.format == "alpaca" and r.stats["turns"] == {"4": 1}
    s = tmp_path / "s.json"
    s.write_text(json.dumps([{"conversations": [{"from": "human", "value": "weather?"},
                                                {"from": "function_call", "value": "{\"name\": \"w\"}"},
                                                {"from": "observation", "value": "{\"t\": 20}"},
                                                {"from": "gpt", "value": "20 degrees"}],
                              "tools": "[{\"name\": \"w\"}]"}]))
    r = audit_file(s)
    assert r.format == "sharegpt" and not [f for f in r.findings if f.code in ("role_order", "unknown_role")]
    c = tmp_path / "d.csv"
    c.write_text('prompt,completion\n"Say hi, please",hi\nSay bye,bye\n')
    r = audit_file(c)
    assert r.format == "prompt_completion" and r.valid_records == 2
    t = write_jsonl(tmp_path / "t.jsonl", [{"text": "plain text for continued pre-training"}] * 3)
    assert audit_file(t).format == "text"


def test_unknown_format_is_usage_error(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"foo": 1, "bar": 2}])
    with pytest.raises(UserError, match="cannot tell the format"):
        audit_file(p)


def test_forced_format_reports_schema(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "x"}]}])
    r = audit_file(p, fmt="alpaca")
    assert any(f.code == "schema" for f in r.findings)


def test_cli_json_contract_and_html_report(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": f"q {i}"},
                                                         {"role": "assistant", "content": "a" if i else ""}]}
                                           for i in range(12)])
    proc = run_tunewise("audit", p, "--json", "--report", tmp_path / "rep")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert {"path", "format", "records", "valid_records", "findings", "stats", "signals"} <= set(d)
    f = next(x for x in d["findings"] if x["code"] == "empty_output")
    assert {"code", "severity", "count", "records", "line", "message"} <= set(f) and f["line"] == [1]
    assert {"prompt", "answer"} <= set(d["stats"]["tokens"]) and {"p50", "p90", "max"} <= set(d["stats"]["tokens"]["answer"])
    assert {"examples", "estimated_tasks", "content", "knowledge_share", "diversity"} <= set(d["signals"])
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "empty_output" in html and "<svg" in html and (tmp_path / "rep" / "answer_lengths.svg").exists()
    assert run_tunewise("audit", p, "--fail-on", "error").returncode == 1
    human = run_tunewise("audit", p)
    assert human.returncode == 0 and "empty_output" in human.stdout


def test_model_tokenizer_counts(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    p = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "hello world hello", "completion": "world"}] * 3)
    r = audit_file(p, model_path=str(tmp_path))
    assert r.stats["tokens"]["answer"]["max"] == 1 + 4 and "tokenizer of" in r.stats["token_counting"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=3000).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=40)),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(
                     st.sampled_from(["messages", "role", "content", "instruction", "output", "conversations",
                                      "from", "value", "text", "prompt", "completion", "tools", "input"]), c, max_size=5),
                 max_leaves=30).map(lambda o: json.dumps(o).encode()),
), suffix=st.sampled_from([".jsonl", ".json", ".csv"]), cut=st.integers(0, 100))
def test_fuzz_never_tracebacks(tmp_path, blob, suffix, cut):
    p = tmp_path / f"f{suffix}"
    p.write_bytes(blob[: max(1, len(blob) * cut // 100)] if cut < 100 else blob)
    proc = run_tunewise("audit", p, "--json") if cut == 0 else None
    if proc is not None:
        assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr
        return
    with contextlib.suppress(UserError):
        audit_file(p)


def test_deep_nesting_and_huge_lines(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("[" * 5000 + "]" * 5000 + "\n" + json.dumps({"prompt": "x" * 2_000_000, "completion": "y"}) + "\n")
    r = audit_file(p, fmt="prompt_completion")
    assert r.records == 2 and any(f.code in ("invalid_json", "schema") for f in r.findings)
    q = tmp_path / "d.json"
    q.write_text("[" * 100000)
    with pytest.raises(UserError):
        list(iter_raw(q))


def test_audit_on_a_terminal_shows_progress_and_summary(tmp_path):
    import os
    import sys

    import pexpect

    from tests.conftest import ROOT

    p = write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(30)])
    child = pexpect.spawn(sys.executable, ["-m", "advisor.cli.main", "audit", str(p)], encoding="utf-8", timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "usable examples" in child.before and "Traceback" not in child.before
