"""`tunewise ask` driven in a pseudo-terminal (pexpect), and its agreement with `recommend`."""

from __future__ import annotations

import json
import os
import sys

import pexpect
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.answers import Answers
from tests.conftest import ROOT, write_jsonl, write_yaml
from tests.test_recommend import answers_strategy
from tests.trainer_fixtures import write_dataset

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm", "COLUMNS": "120",
       "OMP_NUM_THREADS": "1"}
DOWN, UP, ENTER = "\x1b[B", "\x1b[A", "\r"


def spawn(*args: str) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "advisor.cli.main", "ask", *map(str, args)], env=ENV, cwd=str(ROOT),
                          encoding="utf-8", timeout=120, dimensions=(40, 120))
    return child


def answer(child, prompt: str, text: str) -> None:
    child.expect(prompt)
    child.sendline(text)


def test_knowledge_goal_leads_to_rag_with_arrow_keys(tmp_path):
    """A real terminal: questionary menus driven with arrow keys."""
    child = spawn("--out", tmp_path)
    child.expect("Training data file")
    child.send("\x15" + ENTER)                       # empty: no dataset
    child.expect("What must the model gain")
    child.send(UP + UP + ENTER)                      # from the default `task` up to `knowledge`
    child.expect("How often do those facts change")
    child.send(DOWN + DOWN + ENTER)                  # monthly → daily
    child.expect("tokens is all of that knowledge")
    child.send("\x15" + ENTER)                       # empty: unknown
    child.expect("How does prompting perform")
    child.send(DOWN + ENTER)                         # untried → works
    for q, text in [("labelled examples", "500"), ("distinct tasks", "1")]:
        child.expect(q)
        child.send("\x15" + text + ENTER)
    for q in ("cite their sources", "never leave"):
        child.expect(q)
        child.send(ENTER)                            # default: no
    child.expect("requests per day")
    child.send("\x15" + "1000" + ENTER)
    child.expect("How many GPUs")
    child.send("\x15" + "1" + ENTER)
    child.expect("Memory per GPU")
    child.send("\x15" + "24" + ENTER)
    child.expect("Local folder of the base model")
    child.send("\x15" + ENTER)
    child.expect("billions of parameters")
    child.send("\x15" + "7" + ENTER)
    child.expect("Training budget")
    child.send("\x15" + ENTER)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    saved = yaml.safe_load((tmp_path / "answers.yaml").read_text())
    assert saved["goal"] == "knowledge" and saved["knowledge_freshness"] == "daily" and saved["prompting"] == "works"
    assert (tmp_path / "rag_plan.md").is_file() and not (tmp_path / "train.yaml").exists()
    assert "recall@5" in (tmp_path / "rag_plan.md").read_text()


@pytest.mark.slow
def test_format_with_dataset_leads_to_lora_and_a_launched_run(tmp_path, tiny_model):
    data = write_dataset(tmp_path / "d.jsonl", n=120)
    child = spawn("--out", tmp_path / "plan", "--plain")
    answer(child, "Training data file", str(data))
    child.expect("found .*usable examples")
    answer(child, "What must the model gain", "2")           # format
    answer(child, "How does prompting perform", "unstable")
    answer(child, "labelled examples", "")                   # accept the audit's count
    answer(child, "distinct tasks", "")
    answer(child, "Which kind of task", "structured_output")
    answer(child, "cite their sources", "n")
    answer(child, "never leave", "n")
    answer(child, "requests per day", "500")
    answer(child, "How many GPUs", "0")
    answer(child, "Host memory", "")
    answer(child, "Local folder of the base model", str(tiny_model))
    answer(child, "Training budget", "")
    answer(child, "Measure prompting on your data", "y")  # the probe step: a dataset and a local model
    child.expect("prompting measured: ", timeout=300)
    answer(child, "Start training now", "y")
    child.expect("training summary", timeout=300)
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 0, child.before
    saved = yaml.safe_load((tmp_path / "plan" / "answers.yaml").read_text())
    assert 100 <= saved["examples"] <= 120 and saved["goal"] == "format"  # the audit's count (duplicates removed)
    cfg = yaml.safe_load((tmp_path / "plan" / "train.yaml").read_text())
    assert cfg["method"]["name"] in ("lora", "qlora") and cfg["model"]["path"] == str(tiny_model)
    summary = json.loads((tmp_path / "plan" / "run" / "summary.json").read_text())
    assert summary["steps"] > 0 and summary["eval_loss_last"] < summary["eval_loss_first"]


def test_too_few_examples_leads_to_prompting_with_starter_prompt(tmp_path):
    data = write_jsonl(tmp_path / "few.jsonl", [
        {"messages": [{"role": "user", "content": f"Classify: {t}"}, {"role": "assistant", "content": lab}]}
        for t, lab in [("great film", "positive"), ("awful plot", "negative"), ("loved it", "positive"),
                       ("boring and long", "negative"), ("a masterpiece", "positive"), ("waste of time", "negative"),
                       ("fine, I guess", "neutral"), ("the actors shine", "positive"), ("too loud", "negative"),
                       ("ok for kids", "neutral"), ("will watch again", "positive"), ("fell asleep", "negative")]])
    child = spawn("--out", tmp_path / "plan", "--plain")
    answer(child, "Training data file", str(data))
    answer(child, "What must the model gain", "task")
    answer(child, "How does prompting perform", "unstable")
    for q in ("labelled examples", "distinct tasks", "Which kind of task", "cite", "never leave", "requests per day",
              "How many GPUs", "Host memory", "Local folder", "billions", "Training budget"):
        answer(child, q, "")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    prompt = (tmp_path / "plan" / "prompt.md").read_text()
    assert "Few-shot examples" in prompt and prompt.count("### Example") == 4
    assert "few_examples" in child.before or (tmp_path / "plan" / "answers.yaml").is_file()


def test_invalid_answer_is_reprompted_with_the_reason(tmp_path):
    child = spawn("--out", tmp_path, "--plain")
    answer(child, "Training data file", str(tmp_path / "missing.jsonl"))
    child.expect("no file at")
    answer(child, "Training data file", "")
    answer(child, "What must the model gain", "wisdom")
    child.expect("choose one of")
    answer(child, "What must the model gain", "?")
    child.expect("why:")
    answer(child, "What must the model gain", "style")
    answer(child, "How does prompting perform", "unstable")
    answer(child, "labelled examples", "-4")
    child.expect(">= 0")
    answer(child, "labelled examples", "lots")
    child.expect("whole number")
    answer(child, "labelled examples", "2000")
    for q in ("long training example", "distinct tasks", "Which kind of task", "cite", "never leave", "requests per day"):
        answer(child, q, "")
    answer(child, "How many GPUs", "1")
    answer(child, "Memory per GPU", "0")
    child.expect("must be > 0")
    answer(child, "Memory per GPU", "24")
    for q in ("Local folder", "billions", "Training budget"):
        answer(child, q, "")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    saved = yaml.safe_load((tmp_path / "answers.yaml").read_text())
    assert saved["examples"] == 2000 and saved["gpu_memory_gb"] == 24


def test_ctrl_c_leaves_no_file(tmp_path):
    child = spawn("--out", tmp_path)
    child.expect("Training data file")
    child.send("\x15" + ENTER)
    child.expect("What must the model gain")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus != 0 and not any(tmp_path.iterdir())
    assert "Traceback" not in (child.before or "")


def test_answers_prefill_asks_only_what_is_missing(tmp_path, cli_json):
    partial = write_yaml(tmp_path / "partial.yaml", {"goal": "format", "prompting": "unstable", "examples": 3000})
    d = cli_json("ask", "--answers", partial, "--defaults", "--out", tmp_path / "o", "--train", "no")
    assert d["answers"]["goal"] == "format" and d["answers"]["examples"] == 3000
    # defaults: no GPU and a 7B base, so no fine-tune fits: prompting, and the user is told why
    assert d["recommendation"]["method"] == "prompting"
    assert "hardware_too_small" in {w["code"] for w in d["recommendation"]["warnings"]}
    assert (tmp_path / "o" / "answers.yaml").is_file()


def test_unknown_prefill_key_exits_2(tmp_path, cli):
    bad = write_yaml(tmp_path / "bad.yaml", {"gaol": "format"})
    code, _out, err = cli("ask", "--answers", bad, "--defaults", "--out", tmp_path / "o")
    assert code == 2 and "did you mean `goal`" in err


@settings(max_examples=40, deadline=None)
@given(a=answers_strategy, mem=st.floats(1, 120))
def test_ask_and_recommend_agree(tmp_path_factory, a, mem):
    from rich.console import Console

    from advisor.ask.flow import run_ask
    from advisor.ask.prompter import PlainPrompter
    from advisor.recommend import recommend

    a = {**a, "gpu_memory_gb": mem if a["gpu_count"] else 0.0}
    if a["goal"] != "knowledge":
        a.pop("knowledge_freshness")
    full = Answers(**a)
    with open(os.devnull, "w") as sink:
        via_ask = run_ask(PlainPrompter(Console(file=sink)), full.model_dump(exclude_none=True),
                          defaults=True).recommendation
    direct = recommend(full)
    assert via_ask.method == direct.method
    assert [(r.method, r.score, r.feasible) for r in via_ask.ranking] == \
           [(r.method, r.score, r.feasible) for r in direct.ranking]


def test_detected_gpu_is_confirmed_instead_of_asked(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from advisor.ask.flow import run_ask
    from advisor.ask.prompter import PlainPrompter

    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'NVIDIA A100-SXM4-80GB, 81920'\necho 'NVIDIA A100-SXM4-80GB, 81920'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    # dataset, GPU confirm, goal, prompting, examples, example length, tasks, task type, citations, private, requests,
    # model, size, budget
    answers_in = "\n".join(["", "y", "format", "unstable", "3000", "", "", "", "", "", "", "", "7", ""]) + "\n"
    out = io.StringIO()
    r = run_ask(PlainPrompter(Console(file=out, width=200), stream=io.StringIO(answers_in)))
    text = out.getvalue()
    assert "Detected 2 × NVIDIA A100-SXM4-80GB (85.9 GB)" in text
    assert "How many GPUs" not in text and "Memory per GPU" not in text
    assert r.answers.gpu_count == 2 and r.answers.gpu_memory_gb == 85.9


def test_p_tuning_and_prompt_cost_questions_branch_in(tmp_path):
    import io

    from rich.console import Console

    from advisor.ask.flow import run_ask
    from advisor.ask.prompter import PlainPrompter

    prefill = dict(dataset="", goal="task", prompting="works", examples=4000, tasks=12, task_type="classification",
                   needs_citations=False, private_data=False, requests_per_day=400_000, prompt_tokens=1500,
                   gpu_count=0, cpu_memory_gb=64.0, model_path="", model_params_b=13.0, budget_gpu_hours=None)
    # asked: tuned prompt tokens, tenants, frozen base, storage per variant
    r = run_ask(PlainPrompter(Console(file=io.StringIO(), width=200), stream=io.StringIO("120\n3\ny\n0.5\n")),
                prefill)
    assert r.asked == ["tuned_prompt_tokens", "tenants", "frozen_base", "storage_per_task_mb"]
    a = r.answers
    assert (a.tuned_prompt_tokens, a.tenants, a.frozen_base, a.storage_per_task_mb) == (120, 3, True, 0.5)
    one = dict(prefill, tasks=1, prompting="unstable", model_params_b=7.0)
    r = run_ask(PlainPrompter(Console(file=io.StringIO(), width=200), stream=io.StringIO("\n")), one)
    assert r.asked == ["example_tokens"]  # one task, a 7B model, prompting not working: only the example length


def test_host_memory_is_detected_for_the_cpu_question(tmp_path):
    import io

    from rich.console import Console

    from advisor.ask.flow import run_ask
    from advisor.ask.hardware import detect_host_memory_gb
    from advisor.ask.prompter import PlainPrompter

    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       24576000 kB\nMemFree:         1000 kB\n")
    assert detect_host_memory_gb(str(fake)) == 25.2
    prefill = dict(dataset="", goal="format", prompting="unstable", examples=300, tasks=1, task_type="other",
                   needs_citations=False, private_data=False, requests_per_day=100, gpu_count=0, model_path="",
                   model_params_b=0.5, budget_gpu_hours=None)
    r = run_ask(PlainPrompter(Console(file=io.StringIO(), width=200), stream=io.StringIO("\n\n")), prefill)
    assert r.asked == ["example_tokens", "cpu_memory_gb"] and r.answers.cpu_memory_gb == detect_host_memory_gb()


@pytest.mark.parametrize(("examples", "kind", "method"), [(500, "persona", "lora"), (40, "name", "prompting")])
def test_ask_defaults_an_unset_identity_kind_as_the_advisor_reads_it(examples, kind, method):
    """A character whose prompting plateaued with 500 examples is a persona to the advisor when identity_kind is
    unset; `ask --defaults` must fill the same kind (it filled `name` and answered prompting where recommend, on the
    same answers, trained an adapter: found by test_ask_and_recommend_agree)."""
    from rich.console import Console

    from advisor.ask.flow import run_ask
    from advisor.ask.prompter import PlainPrompter
    from advisor.recommend import recommend

    given_answers = Answers(goal="identity", prompting="plateaued", examples=examples, tasks=1, needs_citations=False,
                            private_data=False, requests_per_day=0, gpu_count=0, gpu_memory_gb=0.0,
                            model_params_b=0.1)
    with open(os.devnull, "w") as sink:
        done = run_ask(PlainPrompter(Console(file=sink)), given_answers.model_dump(exclude_none=True), defaults=True)
    assert done.answers.identity_kind == kind
    assert done.recommendation.method == recommend(given_answers).method == method
