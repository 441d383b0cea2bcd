"""`tunewise eval`: base vs tuned on held-out records (issue 18): the metrics against their reference libraries, the
metric chosen from the answers, and whole runs (LoRA and full) evaluated from the command line."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import write_yaml
from tests.trainer_fixtures import make_records, train_config, write_dataset

# ---- metrics: values from sacrebleu 2.6.0 (CHRF()) and rouge-score 0.1.2 (RougeScorer(["rougeL"])) on these pairs

@pytest.mark.parametrize("hyp,ref,chrf_ref,rouge_ref", [
    ("The cat sat on the mat.", "A cat sat on a mat", 54.181970344350205, 0.6666666666666666),
    ("Bonjour le monde", "Bonjour tout le monde", 59.31686519948626, 0.8571428571428571),
    ("It is 5.", "It is five.", 24.998206728355214, 0.6666666666666666),
])
def test_chrf_and_rouge_l_match_the_reference_libraries(hyp, ref, chrf_ref, rouge_ref):
    from trainer.metrics import chrf, rouge_l

    assert chrf(hyp, ref) == pytest.approx(chrf_ref, abs=1e-9)
    assert rouge_l(hyp, ref) == pytest.approx(rouge_ref, abs=1e-9)
    assert chrf(ref, ref) == pytest.approx(100.0) and chrf("", ref) == 0.0


def test_the_metric_is_chosen_from_the_answers():
    from trainer.metrics import choose_metric

    assert choose_metric(['{"a": 1}', '{"a": 2}', '[1, 2]']).name == "json"
    assert choose_metric(["positive", "negative", "Positive.", "neutral", "negative", "positive"]).name == \
        "classification"
    assert choose_metric(["The capital of France is Paris.", "Water boils at 100 C at sea level."]).name == "chrf"
    assert choose_metric(["The capital is Paris."], "exact_match").why == "set by --metric"


@pytest.mark.parametrize("asked,answers,needle", [
    ("json", ["Paris is the capital.", '{"a": 1}'], "1 of 2 expected answers are not a JSON"),
    ("classification", ["The capital of France is Paris, a large city.", "Rome"], "not labels"),
])
def test_a_metric_that_does_not_fit_the_answers_is_refused(asked, answers, needle):
    from core.errors import UserError
    from trainer.metrics import choose_metric

    with pytest.raises(UserError, match=needle):
        choose_metric(answers, asked)


def test_classification_scores_are_accuracy_and_macro_f1():
    from trainer.metrics import aggregate

    s = aggregate("classification", ["a", "b", "b", "B."], ["a", "a", "b", "b"])
    # a: precision 1, recall 1/2 -> F1 2/3; b: precision 2/3, recall 1 -> F1 4/5; macro = 11/15
    assert s == {"exact_match": 0.5, "accuracy": 0.75, "macro_f1": round(11 / 15, 4)}


TICKET = {"type": "object", "required": ["name", "age", "city"], "additionalProperties": False,
          "properties": {"name": {"type": "string", "minLength": 1}, "age": {"type": "integer", "minimum": 0},
                         "city": {"enum": ["Oslo", "Lima"]}}}


def test_json_scores_and_schema_match():
    from trainer.metrics import aggregate, matches

    assert matches({"name": "A", "age": 3, "city": "Oslo"}, TICKET)
    for bad in ({"name": "A", "age": 3}, {"name": "A", "age": 3.5, "city": "Oslo"},
                {"name": "A", "age": 3, "city": "Pune"}, {"name": "A", "age": 3, "city": "Oslo", "x": 1}):
        assert not matches(bad, TICKET), bad
    outputs = ['```json\n{"name": "A", "age": 3, "city": "Oslo"}\n```', '{"name": "B", "age": 4, "city": "Pune"}',
               "not json"]
    expected = ['{"name": "A", "age": 3, "city": "Oslo"}', '{"name": "B", "age": 4, "city": "Lima"}',
                '{"name": "C", "age": 5, "city": "Oslo"}']
    assert aggregate("json", outputs, expected, TICKET) == {
        "exact_match": 0.0, "json_valid": round(2 / 3, 4), "json_match": round(1 / 3, 4),
        "schema_match": round(1 / 3, 4)}


def test_a_schema_with_keywords_the_validator_does_not_apply_is_refused():
    from core.errors import UserError
    from trainer.metrics import check_schema

    with pytest.raises(UserError, match=r"properties\.city: unsupported JSON Schema keyword\(s\) \$ref"):
        check_schema({"type": "object", "properties": {"city": {"$ref": "#/defs/city"}}}, "schema")


# ---- whole runs --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model):
    from trainer.run import train

    tmp = tmp_path_factory.mktemp("evalrun")
    data = write_dataset(tmp / "d.jsonl", n=60)
    cfg = train_config(tiny_model, data, tmp / "run", {"name": "lora", "lora_r": 8, "lora_alpha": 16},
                       max_steps=30, eval_steps=30)
    cfg["eval"] = {"enabled": True}  # the default: every run ends with base vs tuned on its held-out split
    train(str(write_yaml(tmp / "t.yaml", cfg)), progress=False)
    return tmp


def test_a_run_ends_with_base_vs_tuned(lora_run):
    summary = json.loads((lora_run / "run" / "summary.json").read_text())
    report = json.loads((lora_run / "run" / "eval.json").read_text())
    ev = summary["eval"]
    assert ev["report"] == str(lora_run / "run" / "eval.json") and ev["records"] == report["records"] == 12
    assert (ev["base"], ev["tuned"], ev["diff"]) == (report["base"], report["tuned"], report["diff"])


def test_eval_compares_base_and_tuned_on_the_held_out_split(lora_run, cli_json):
    d = cli_json("eval", lora_run / "run")
    assert d["records"] == 12 and d["data"].endswith("(the run's held-out split)")  # val_size 0.2 of 60
    assert d["metric"] == "json" and d["metric_why"] == "100% of the expected answers are JSON objects or arrays"
    b, t = d["base"], d["tuned"]
    assert t["answer_loss"] < b["answer_loss"] and d["diff"]["answer_loss"] == round(t["answer_loss"] -
                                                                                      b["answer_loss"], 4)
    assert t["metrics"]["json_valid"] > b["metrics"]["json_valid"]
    assert d["wins"] and all(w["tuned_score"] > w["base_score"] for w in d["wins"])
    assert d["forgetting"] == (t["general_loss"] > b["general_loss"] * 1.05)
    saved = json.loads((lora_run / "run" / "eval.json").read_text())
    assert saved == d and (lora_run / "run" / "eval.png").stat().st_size > 1000


def test_eval_on_a_test_file_with_a_schema(lora_run, cli_json, cli):
    test = lora_run / "test.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in make_records(6, seed=5)))
    first = (lora_run / "run" / "eval.json").read_text()
    schema = lora_run / "schema.json"
    schema.write_text(json.dumps({**TICKET, "properties": {**TICKET["properties"],
                                                           "city": {"type": "string"}}}))
    d = cli_json("eval", lora_run / "run", "--data", test, "--schema", schema, "--limit", "4")
    assert d["records"] == 4 and d["data"] == str(test) and "schema_match" in d["tuned"]["metrics"]
    # issue 28: another test file's results go beside the run's own evaluation, never over it
    assert (lora_run / "run" / "eval.json").read_text() == first
    assert d["report"] == str(lora_run / "run" / "eval-test.json") and d["plot"].endswith("eval-test.png")
    assert json.loads((lora_run / "run" / "eval-test.json").read_text()) == d
    code, out, _ = cli("eval", lora_run / "run", "--data", test, "--limit", "2")
    assert code == 0 and "base vs tuned" in out and "loss on general text" in out


def test_eval_of_a_full_fine_tune(tmp_path, tiny_model, cli_json):
    from trainer.run import train

    data = write_dataset(tmp_path / "d.jsonl", n=40)
    cfg = train_config(tiny_model, data, tmp_path / "run", {"name": "full"}, max_steps=4, learning_rate=1e-3)
    train(str(write_yaml(tmp_path / "t.yaml", cfg)), progress=False)
    d = cli_json("eval", tmp_path / "run", "--limit", "3", "--max-new-tokens", "8")
    assert d["method"] == "full" and d["records"] == 3 and d["tuned"]["answer_loss"] != d["base"]["answer_loss"]


def test_eval_bad_input_is_exit_2_with_the_reason(lora_run, tmp_path, cli):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(lora_run / "run" / "tunewise_config.yaml", unfinished)
    pref = tmp_path / "pref.jsonl"
    pref.write_text(json.dumps({"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}) + "\n")
    bad_schema = tmp_path / "s.json"
    bad_schema.write_text(json.dumps({"type": "object", "$ref": "#/x"}))
    cases = [
        ((tmp_path / "nowhere",), "not a folder"),
        ((tmp_path,), "not a tunewise run"),
        ((unfinished,), "holds no adapter or model"),
        ((lora_run / "run", "--data", pref), "preference data"),
        ((lora_run / "run", "--metric", "classification"), "not labels"),
        ((lora_run / "run", "--schema", bad_schema), "unsupported JSON Schema keyword"),
        ((lora_run / "run", "--limit", "0"), "--limit must be at least 1"),
    ]
    for args, needle in cases:
        code, _out, err = cli("eval", *args)
        assert code == 2 and needle in err, (args, err)


def test_eval_compares_against_the_best_prompting_baseline(lora_run, cli_json, tmp_path):
    """'Was fine-tuning worth it?': the tuned model against the base model prompted with worked examples from the
    training side (never the evaluated records), and against a probe's best prompt when one is given."""
    d = cli_json("eval", lora_run / "run", "--limit", "4", "--max-new-tokens", "12")
    p = d["prompting"]
    assert d["prompting_prompt"] == "few-shot (k=5), few-shot with the data's own instruction"
    assert p["answer_loss"] is None and set(p["metrics"]) == set(d["tuned"]["metrics"])
    assert d["diff_prompting"] == {k: round(d["tuned"]["metrics"][k] - v, 4) for k, v in p["metrics"].items()}
    from tests.test_probe import make_probe

    probe = make_probe({"zero-shot": (0.0, 0.0, 0.04), "few-shot": (0.02, 0.0, 0.07),
                        "answer only": (0.05, 0.01, 0.1)})
    (tmp_path / "probe.json").write_text(probe.model_dump_json())
    d = cli_json("eval", lora_run / "run", "--limit", "2", "--max-new-tokens", "8", "--probe", tmp_path / "probe.json")
    assert d["prompting_prompt"] == "answer only (k=5), the probe's best prompt"
    d = cli_json("eval", lora_run / "run", "--limit", "2", "--max-new-tokens", "8", "--no-prompting")
    assert d["prompting"] is None and d["diff_prompting"] == {}
