"""Layouts users have, read the same by `audit` and `train`: published layouts recognised from their keys, a column
mapping (--columns, tunewise.yaml `data:`, train config `data.columns`), compressed files, wrapper JSON, the plain
text unit, and answers.yaml's `dataset:` read against the file's folder.

The records are the published shapes of real datasets (first records quoted from databricks-dolly-15k, GPTeacher,
songys/Chatbot_data's ChatbotData.csv `Q,A,label`, lmsys-chat-1m, Intel/orca_dpo_pairs, NuminaMath, xP3)."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import shutil
import subprocess

import pytest

from core.data.detect import open_dataset
from core.data.layout import ColumnMap, DataLayout, parse_columns_flag
from core.errors import UserError
from tests.conftest import run_tunewise, write_jsonl, write_yaml

DOLLY = [
    {"instruction": "When did Virgin Australia start operating?",
     "context": "Virgin Australia, the trading name of Virgin Australia Airlines Pty Ltd, is an Australian-based airline. "
                "It commenced services on 31 August 2000 as Virgin Blue, with two aircraft on a single route.",
     "response": "Virgin Australia commenced services on 31 August 2000 as Virgin Blue, with two aircraft on a single "
                 "route.", "category": "closed_qa"},
    {"instruction": "Which is a species of fish? Tope or Rope", "context": "", "response": "Tope",
     "category": "classification"},
    {"instruction": "Why can camels survive for long without water?", "context": "",
     "response": "Camels use the fat in their humps to keep them filled with energy and hydration for long periods "
                 "of time.", "category": "open_qa"},
]
GPTEACHER = [
    {"instruction": "Identify the logical fallacy in the given argument.",
     "input": "If we allow students to use calculators, next they'll want computers to do all their work.",
     "response": "Slippery slope fallacy: it assumes one step inevitably leads to an extreme outcome."},
    {"instruction": "Explain why the sky is blue in one sentence.", "input": "",
     "response": "Air molecules scatter short blue wavelengths of sunlight more than long red ones."},
]
KOREAN_CSV = "Q,A,label\n12시 땡!,하루가 또 가네요.,0\n1지망 학교 떨어졌어,위로해 드립니다.,0\n3박4일 놀러가고 싶다,여행은 언제나 좋죠.,0\n"


def _sample(path, layout=None):
    det = open_dataset(path, "auto", layout)
    first = next(iter(det.records(path)))
    return det, det.sample(first.obj)


# ---- published layouts, recognised -----------------------------------------------------------------------------

def test_dolly_is_read_with_its_context_and_the_reason_names_its_fields(tmp_path):
    path = write_jsonl(tmp_path / "dolly.jsonl", DOLLY)
    det, s = _sample(path)
    assert det.format == "alpaca"
    assert "`instruction` (the instruction), `context` (its input or context), `response` (the answer)" in det.reason
    assert "`output`" not in det.reason and "`input`" not in det.reason
    assert [(m.role, m.content) for m in s.messages] == [
        ("user", DOLLY[0]["instruction"] + "\n\n" + DOLLY[0]["context"]), ("assistant", DOLLY[0]["response"])]
    assert det.as_dict()["columns"] == {"instruction": "instruction", "input": "context", "output": "response"}


def test_audit_reads_gpteacher_without_schema_errors(tmp_path, cli_json):
    path = write_jsonl(tmp_path / "gpteacher.jsonl", GPTEACHER)
    r = cli_json("audit", path)
    assert (r["format"], r["valid_records"]) == ("alpaca", 2)
    assert "`input` (its input or context), `response` (the answer)" in r["detection"]["reason"]
    assert not [f for f in r["findings"] if f["code"] == "schema"]


@pytest.mark.parametrize("record, prompt, answer", [
    ({"input": "Translate to French: cat", "output": "chat"}, "Translate to French: cat", "chat"),
    ({"problem": "What is 2+3?", "solution": "2+3 = 5"}, "What is 2+3?", "2+3 = 5"),  # NuminaMath
    ({"inputs": "Is this review positive? Great film.", "targets": "yes"}, "Is this review positive? Great film.",
     "yes"),  # xP3 / FLAN
    ({"Question": "Capital of Peru?", "Answer": "Lima"}, "Capital of Peru?", "Lima"),
    ({"question": "Who commenced services in 2000?", "context": "Virgin Blue commenced services in 2000.",
      "answer": "Virgin Blue"}, "Who commenced services in 2000?\n\nVirgin Blue commenced services in 2000.",
     "Virgin Blue"),  # the context is no longer dropped
    ({"system_prompt": "You are terse.", "question": "2+2?", "response": "4"}, "2+2?", "4"),  # OpenOrca
    ({"Context": "I feel anxious before exams.", "Response": "That is common; try a short breathing routine."},
     "I feel anxious before exams.", "That is common; try a short breathing routine."),  # counseling conversations
])
def test_common_instruction_layouts(tmp_path, record, prompt, answer):
    det, s = _sample(write_jsonl(tmp_path / "d.jsonl", [record, record]))
    assert (s.instruction if "context" not in record else s.messages[-2].content, s.answer) == (prompt, answer)
    assert not s.problems
    for key in record:  # the reason names the fields the records have, and only those
        assert f"`{key}`" in det.reason


def test_conversations_under_other_keys_and_turn_keys(tmp_path):
    lmsys = {"conversation_id": "a1", "model": "vicuna-13b", "conversation": [
        {"content": "What is the capital of France?", "role": "user"},
        {"content": "The capital of France is Paris.", "role": "assistant"}], "language": "English"}
    det, s = _sample(write_jsonl(tmp_path / "lmsys.jsonl", [lmsys] * 2))
    assert (det.format, [m.role for m in s.messages], s.answer) == ("openai", ["user", "assistant"],
                                                                    "The capital of France is Paris.")
    dialog = {"dialog": [{"speaker": "human", "text": "Hi, can you book a table?"},
                         {"speaker": "bot", "text": "For how many people?"}]}
    det, s = _sample(write_jsonl(tmp_path / "dialog.jsonl", [dialog] * 2))
    assert (det.format, [m.role for m in s.messages]) == ("sharegpt", ["user", "assistant"])
    assert "a conversation in `dialog` with {speaker, text} turns" in det.reason
    oasst = {"messages": [{"role": "prompter", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}]}
    _, s = _sample(write_jsonl(tmp_path / "oasst.jsonl", [oasst] * 2))
    assert [m.role for m in s.messages] == ["user", "assistant"] and not s.problems


def test_preference_pair_with_a_question_keeps_its_prompt(tmp_path):
    orca = {"system": "", "question": "Translate to German: good morning", "chosen": "Guten Morgen",
            "rejected": "Gute Nacht"}
    det, s = _sample(write_jsonl(tmp_path / "orca_dpo.jsonl", [orca] * 2))
    assert det.format == "dpo"
    assert [(m.role, m.content) for m in s.messages] == [("user", orca["question"]), ("assistant", "Guten Morgen")]
    assert [m.content for m in s.rejected] == ["Gute Nacht"]


def test_canonical_files_are_read_as_before(tmp_path):
    alpaca = [{"instruction": "Say hi", "input": "", "output": "hi"}] * 2
    det, _ = _sample(write_jsonl(tmp_path / "a.jsonl", alpaca))
    assert (det.format, det.layout) == ("alpaca", None)
    assert det.reason.startswith("`instruction` / `input` / `output` (alpaca)")
    det, _ = _sample(write_jsonl(tmp_path / "b.jsonl", [{"instruction": "Say hi", "output": "hi"}] * 2))
    assert det.reason.startswith("`instruction` / `output` (alpaca)")  # no `input` claimed where none is


# ---- the column mapping ------------------------------------------------------------------------------------------

def test_korean_csv_q_a_label_is_mappable_from_the_flag(tmp_path, cli_json):
    path = tmp_path / "ChatbotData.csv"
    path.write_text(KOREAN_CSV, encoding="utf-8")
    r = cli_json("audit", path, "--columns", "prompt=Q,response=A")
    assert (r["format"], r["valid_records"]) == ("prompt_completion", 3)
    assert r["detection"]["columns"] == {"prompt": "Q", "completion": "A"}
    assert "columns mapped by --columns: Q → prompt, A → completion" in r["detection"]["reason"]
    r = cli_json("audit", path)  # also recognised without a mapping: Q / A
    assert (r["format"], r["valid_records"]) == ("alpaca", 3)


def test_column_mapping_errors_name_the_flag_file_field_and_fix(tmp_path, cli):
    path = tmp_path / "ChatbotData.csv"
    path.write_text(KOREAN_CSV, encoding="utf-8")
    code, _, err = cli("audit", path, "--columns", "prompt=Q,response=B")
    assert code == 2 and "--columns: column `B` (mapped to response) is in none of the first 3 records; their " \
                          "columns are ['A', 'Q', 'label']" in err
    code, _, err = cli("audit", path, "--columns", "prompt=q,response=A")
    assert code == 2 and "did you mean `Q`?" in err
    code, _, err = cli("audit", path, "--columns", "prompt=Q,respons=A")
    assert code == 2 and "--columns: unknown key `columns.respons`, did you mean `response`?" in err
    code, _, err = cli("audit", path, "--columns", "prompt=Q")
    assert code == 2 and "needs both `prompt` and `response`" in err
    project = tmp_path / "tunewise.yaml"
    project.write_text("data:\n  columns:\n    prompt: Q\n    answer: A\n")
    code, _, err = cli("audit", path, "--project", project)
    assert code == 2 and f"{project}:4: unknown key `data.columns.answer`" in err


def test_mapping_file_with_tags_and_kto_labels(tmp_path, cli_json):
    path = write_jsonl(tmp_path / "chat.jsonl", [
        {"turns": [{"who": "Q", "said": "Is 7 prime?"}, {"who": "A", "said": "Yes."}], "ok": "1"},
        {"turns": [{"who": "Q", "said": "Is 9 prime?"}, {"who": "A", "said": "Yes."}], "ok": "0"}])
    mapping = write_yaml(tmp_path / "columns.yaml", {
        "columns": {"messages": "turns", "kto_tag": "ok"},
        "tags": {"role_tag": "who", "content_tag": "said", "user_tag": "Q", "assistant_tag": "A"}})
    r = cli_json("audit", path, "--columns", mapping)
    assert (r["format"], r["valid_records"]) == ("kto", 2)
    det = open_dataset(path, "auto", parse_columns_flag(str(mapping)))
    samples = [det.sample(x.obj) for x in det.records(path)]
    assert [(m.role, m.content) for m in samples[0].messages] == [("user", "Is 7 prime?"), ("assistant", "Yes.")]
    assert [s.label for s in samples] == [True, False]


def test_a_record_missing_a_mapped_column_names_that_column(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text("Q,A\nWhat is tunewise?,A fine-tuning advisor.\n", encoding="utf-8")
    det = open_dataset(path, "auto", DataLayout(columns=ColumnMap(prompt="Q", response="A")))
    s = det.sample({"Q": "orphan question"})
    assert s.problems == [("schema", "missing field `A`")]


def test_project_columns_and_schema(tmp_path, cli, monkeypatch):
    (tmp_path / "ChatbotData.csv").write_text(KOREAN_CSV, encoding="utf-8")
    write_yaml(tmp_path / "tunewise.yaml", {"data": {"columns": {"prompt": "Q", "response": "A"}}})
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("audit", "ChatbotData.csv", "--json")
    assert code == 0 and json.loads(out)["detection"]["columns"] == {"prompt": "Q", "completion": "A"}
    code, out, _ = cli("audit", "--print-schema", "columns")
    schema = json.loads(out)
    assert schema["additionalProperties"] is False and "columns" in schema["properties"]


# ---- train reads the same way ------------------------------------------------------------------------------------

def test_train_reads_the_mapping_the_audit_reads(tmp_path):
    from trainer.config_file import load_config
    from trainer.data import load_conversations

    (tmp_path / "ChatbotData.csv").write_text(KOREAN_CSV, encoding="utf-8")
    cfg = {"model": {"path": str(tmp_path)}, "data": {"path": "ChatbotData.csv"}, "method": {"name": "lora"},
           "output": {"dir": "run"}}
    write_yaml(tmp_path / "train.yaml", cfg)
    write_yaml(tmp_path / "tunewise.yaml", {"data": {"columns": {"prompt": "A", "response": "Q"}}})
    c = load_config(str(tmp_path / "train.yaml"))  # no data.columns: the project file's
    assert c.data.columns == ColumnMap(prompt="A", response="Q")
    convs, fmt, skipped, total = load_conversations(c.data.path, c.data.format, None, c.data.layout())
    assert (fmt, skipped, total) == ("prompt_completion", {}, 3)
    assert convs[0][1] == [{"role": "user", "content": "하루가 또 가네요.", "train": True},
                           {"role": "assistant", "content": "12시 땡!", "train": True}]
    write_yaml(tmp_path / "train.yaml", {**cfg, "data": {"path": "ChatbotData.csv",
                                                          "columns": {"prompt": "Q", "response": "X"}}})
    c = load_config(str(tmp_path / "train.yaml"))  # the config's own columns win, errors name the file
    with pytest.raises(UserError, match=r"train\.yaml:5: data\.columns: column `X` \(mapped to response\)"):
        load_conversations(c.data.path, c.data.format, None, c.data.layout(), c.data.columns_origin)


def test_train_reads_dolly_as_the_audit_does(tmp_path):
    from trainer.data import load_conversations

    convs, fmt, skipped, total = load_conversations(write_jsonl(tmp_path / "dolly.jsonl", DOLLY))
    assert (fmt, skipped, total) == ("alpaca", {}, 3)
    assert convs[1][1] == [{"role": "user", "content": "Which is a species of fish? Tope or Rope", "train": True},
                           {"role": "assistant", "content": "Tope", "train": True}]


# ---- containers: compressed files, wrapper JSON, text units --------------------------------------------------------

def _compressed(tmp_path, name: str, data: bytes) -> list:
    out = [(tmp_path / f"{name}.gz", gzip.compress(data)), (tmp_path / f"{name}.bz2", bz2.compress(data)),
           (tmp_path / f"{name}.xz", lzma.compress(data))]
    for path, blob in out:
        path.write_bytes(blob)
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-q", "-f", str(tmp_path / name), "-o", str(tmp_path / f"{name}.zst")], check=True)
        out.append((tmp_path / f"{name}.zst", None))
    else:  # pyarrow writes zstd as well
        import pyarrow as pa

        with pa.CompressedOutputStream(str(tmp_path / f"{name}.zst"), "zstd") as f:
            f.write(data)
        out.append((tmp_path / f"{name}.zst", None))
    return [p for p, _ in out]


@pytest.mark.parametrize("name, body", [
    ("dolly.jsonl", "".join(json.dumps(r) + "\n" for r in DOLLY)),
    ("dolly.json", json.dumps(DOLLY, indent=2)),
    ("ChatbotData.csv", KOREAN_CSV),
    ("notes.txt", "First paragraph line one\ncontinues here.\n\nSecond paragraph\nalso two lines.\n"),
])
def test_compressed_files_read_like_the_plain_file(tmp_path, name, body):
    plain = tmp_path / name
    plain.write_text(body, encoding="utf-8")
    want = open_dataset(plain)
    records = [r.obj for r in want.records(plain)]
    for path in _compressed(tmp_path, name, body.encode()):
        det = open_dataset(path)
        assert (det.container.kind, det.format, det.container.text_unit) == \
               (want.container.kind, want.format, want.container.text_unit)
        assert [r.obj for r in det.records(path)] == records
        assert det.container.compression in det.as_dict()["reason"]


def test_compressed_train_and_audit_cli(tmp_path, cli_json):
    from trainer.data import load_conversations

    path = tmp_path / "dolly.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in DOLLY).encode()))
    r = cli_json("audit", path)
    assert (r["records"], r["detection"]["compression"]) == (3, "gzip")
    assert load_conversations(path)[3] == 3


def test_damaged_compressed_file_is_exit_2_with_the_reason(tmp_path):
    path = tmp_path / "big.jsonl.gz"
    blob = gzip.compress("".join(json.dumps({"text": f"line {i} " * 40}) + "\n" for i in range(3000)).encode())
    path.write_bytes(blob[:len(blob) // 2])
    p = run_tunewise("audit", path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "gzip" in p.stderr and "truncated or damaged" in p.stderr.replace("\n", " ")


@pytest.mark.parametrize("body, key", [
    ('{"data": [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}]}', "data"),
    ('{"version": 1, "train": [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}]}', "train"),
])
def test_wrapper_json_on_one_line(tmp_path, cli_json, body, key):
    path = tmp_path / "w.json"
    path.write_text(body)
    r = cli_json("audit", path)
    assert (r["records"], r["valid_records"], r["format"]) == (2, 2, "alpaca")
    assert f"its `{key}` list holds the records" in r["detection"]["reason"]


def test_text_unit_is_chosen_and_said(tmp_path, cli_json):
    path = tmp_path / "corpus.txt"
    path.write_text("one line\nanother line\n\nthird line\n", encoding="utf-8")
    seen = {}
    for unit in ("line", "paragraph", "document"):
        r = cli_json("audit", path, "--text-unit", unit)
        seen[unit] = r["records"]
        assert r["detection"]["text_unit"] == unit and f"(chosen: text unit `{unit}`)" in r["detection"]["reason"]
    assert seen == {"line": 3, "paragraph": 2, "document": 1}
    r = cli_json("audit", path)
    assert "choose" in r["detection"]["reason"]  # auto says which unit and how to pick another


# ---- answers.yaml: dataset read against its folder ---------------------------------------------------------------

def test_answers_dataset_is_relative_to_the_answers_file(tmp_path):
    from tests.conftest import BASE_ANSWERS

    project = tmp_path / "project"
    project.mkdir()
    write_jsonl(project / "data.jsonl", DOLLY * 4)
    write_yaml(project / "answers.yaml", {**BASE_ANSWERS, "goal": "task", "prompting": "plateaued",
                                                  "examples": 12, "dataset": "data.jsonl"})
    p = run_tunewise("recommend", "--answers", project / "answers.yaml", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["method"]


def test_dataset_paths_for_and_from_the_answers_file(tmp_path, monkeypatch):
    from advisor.answers import dataset_for_file, dataset_from_file

    monkeypatch.chdir(tmp_path)
    assert dataset_from_file("data.jsonl", "project/answers.yaml") == "project/data.jsonl"
    assert dataset_from_file("/abs/data.jsonl", "project/answers.yaml") == "/abs/data.jsonl"
    assert dataset_for_file("data/train.jsonl", tmp_path / "out" / "answers.yaml") == "../data/train.jsonl"


def test_audit_from_a_llamafactory_config_uses_its_dataset_info_columns(tmp_path, cli_json):
    (tmp_path / "ChatbotData.csv").write_text(KOREAN_CSV, encoding="utf-8")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"chatbot": {
        "file_name": "ChatbotData.csv", "columns": {"prompt": "A", "response": "Q"}}}))
    cfg = write_yaml(tmp_path / "lf.yaml", {"model_name_or_path": str(tmp_path), "stage": "sft", "dataset": "chatbot",
                                            "dataset_dir": str(tmp_path), "template": "qwen", "cutoff_len": 512,
                                            "finetuning_type": "lora"})
    r = cli_json("audit", "--from", cfg)
    assert r["detection"]["columns"] == {"prompt": "A", "completion": "Q"}
    assert "columns mapped by" in r["detection"]["reason"] and "dataset_info columns" in r["detection"]["reason"]


def test_export_carries_the_columns_to_llamafactory_and_names_them_for_the_others(tmp_path):
    from advisor.export import export
    from core.train_config import TrainConfig
    from tests.trainer_fixtures import train_config

    data = write_jsonl(tmp_path / "dolly.jsonl", DOLLY * 4)
    cfg = TrainConfig.model_validate(train_config(tmp_path / "model", data, tmp_path / "run", {"name": "lora"}))
    lf = export(cfg, "llamafactory", tmp_path / "lf" / "lf.yaml")
    entry = json.loads(lf.files["dataset_info.json"])["tunewise_train"]
    assert entry["columns"] == {"prompt": "instruction", "query": "context", "response": "response"}
    assert ("data.columns", "dataset_info.json columns") in lf.mapped
    ax = export(cfg, "axolotl", tmp_path / "ax" / "ax.yaml")
    assert ax.config["datasets"][0]["type"] == {
        "field_instruction": "instruction", "field_output": "response", "format": "{instruction}\n\n{input}",
        "no_input_format": "{instruction}", "field_input": "context"}
    trl = export(cfg, "trl", tmp_path / "trl" / "trl.yaml")
    assert any(k == "data.columns" and "context → input" in why for k, why in trl.not_expressed)


def test_ultrachat_strings_alternate_user_and_assistant(tmp_path):
    from trainer.data import load_conversations

    path = write_jsonl(tmp_path / "ultrachat.jsonl", [{"id": "0", "data": ["How do bees fly?", "By flapping fast.",
                                                                          "How fast?", "About 200 beats a second."]}] * 2)
    det, s = _sample(path)
    assert (det.format, [m.role for m in s.messages]) == ("sharegpt", ["user", "assistant", "user", "assistant"])
    assert "a conversation in `data` as alternating strings, the user's first" in det.reason
    assert load_conversations(path)[0][0][1][3] == {"role": "assistant", "content": "About 200 beats a second.",
                                                    "train": True}


def test_columns_change_the_run_fingerprint_and_unset_ones_leave_it_as_it_was():
    from core.train_config import TrainConfig

    base = {"model": {"path": "m"}, "data": {"path": "d.jsonl"}, "method": {"name": "lora"}, "output": {"dir": "o"}}
    plain = TrainConfig.model_validate(base)
    mapped = TrainConfig.model_validate({**base, "data": {"path": "d.jsonl", "columns": {"prompt": "Q", "response": "A"}}})
    assert plain.fingerprint() != mapped.fingerprint()
    d = plain.model_dump(mode="json")
    assert {"columns", "tags", "text_unit"} <= set(d["data"])  # present in the config, left out of the hash when unset
