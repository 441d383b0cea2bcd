"""Safety and honesty of a run (issue 28): no code runs because a received folder says so, a diverged run fails
and writes no NaN weights, --json is strict JSON, long records are read, training uses what the audit knows, no
silent overwrites, and broken inputs are exit 2 with one sentence."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import run_tunewise, write_yaml
from tests.trainer_fixtures import make_records, train_config, write_dataset

LORA = {"name": "lora", "lora_r": 8, "lora_alpha": 16}


# ---- 1. remote code only from the command line (or a yes on a terminal), never from a received config

SHIPPED = '''
import pathlib
pathlib.Path({marker!r}).write_text("the shipped code ran")
from transformers import LlamaConfig, LlamaForCausalLM


class ShippedConfig(LlamaConfig):
    model_type = "shipped_llama"


class ShippedForCausalLM(LlamaForCausalLM):
    config_class = ShippedConfig
'''


@pytest.fixture
def shipped_model(tmp_path, tiny_model, monkeypatch):
    """A copy of the tiny model whose config.json maps its classes to a Python file that leaves a marker."""
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    model = tmp_path / "shipped"
    shutil.copytree(tiny_model, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["model_type"] = "shipped_llama"
    cfg["auto_map"] = {"AutoConfig": "shipped.ShippedConfig", "AutoModelForCausalLM": "shipped.ShippedForCausalLM"}
    (model / "config.json").write_text(json.dumps(cfg))
    marker = tmp_path / "RAN"
    (model / "shipped.py").write_text(SHIPPED.format(marker=str(marker)))
    return model, marker


def _received_run(tmp_path, model):
    """A run folder as someone might send it: its config asks for remote code."""
    data = write_dataset(tmp_path / "d.jsonl")
    run = tmp_path / "received"
    run.mkdir()
    cfg = train_config(model, data, run, LORA)
    cfg["model"]["trust_remote_code"] = True
    write_yaml(run / "tunewise_config.yaml", cfg)
    (run / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16,
                                                          "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}))
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(model / f, run / f)
    return run, cfg


@pytest.mark.parametrize("command", ["eval", "merge"])
def test_a_received_run_folder_never_runs_the_model_code_it_names(tmp_path, shipped_model, command):
    model, marker = shipped_model
    run, _ = _received_run(tmp_path, model)
    p = run_tunewise(command, run)
    assert p.returncode == 2, p.stderr
    assert not marker.exists()
    assert "--trust-remote-code" in p.stderr and "shipped.py" in p.stderr and "Traceback" not in p.stderr


def test_train_runs_shipped_code_only_with_the_command_line_flag(tmp_path, shipped_model):
    model, marker = shipped_model
    _, cfg = _received_run(tmp_path, model)
    path = write_yaml(tmp_path / "t.yaml", cfg)
    p = run_tunewise("train", path, "--dry-run")
    assert p.returncode == 2 and not marker.exists()
    assert "not enough" in p.stderr  # says why the config's trust_remote_code: true did not count
    p = run_tunewise("train", path, "--dry-run", "--trust-remote-code")
    assert p.returncode == 0, p.stderr
    assert marker.exists()


def test_launched_ranks_get_the_flag_only_when_the_person_gave_it(tmp_path, tiny_model):
    from core.train_config import TrainConfig
    from trainer.launch import command
    from trainer.model import RemoteCodePolicy, set_remote_code_policy

    cfg = TrainConfig.model_validate(train_config(tiny_model, tmp_path / "d.jsonl", tmp_path / "run", LORA)
                                     | {"distributed": {"processes": 2}})
    try:
        set_remote_code_policy(RemoteCodePolicy())
        assert "--trust-remote-code" not in command("t.yaml", cfg, False, False)
        set_remote_code_policy(RemoteCodePolicy(flag=True))
        assert "--trust-remote-code" in command("t.yaml", cfg, False, False)
    finally:
        set_remote_code_policy(RemoteCodePolicy())


def test_a_terminal_yes_allows_it_and_a_no_refuses(shipped_model):
    from core.errors import UserError
    from trainer.model import RemoteCodePolicy, set_remote_code_policy, trust_remote_code_for

    model, _ = shipped_model
    asked = []
    try:
        set_remote_code_policy(RemoteCodePolicy(ask=lambda q: asked.append(q) or True))
        assert trust_remote_code_for(model) and trust_remote_code_for(model)
        assert len(asked) == 1 and "shipped.py" in asked[0]  # asked once per model folder
        set_remote_code_policy(RemoteCodePolicy(ask=lambda q: False))
        with pytest.raises(UserError, match="--trust-remote-code"):
            trust_remote_code_for(model)
    finally:
        set_remote_code_policy(RemoteCodePolicy())


# ---- 2. a diverged run fails: exit 1, the step, the cause; no NaN weights written; strict JSON

@pytest.mark.parametrize("lr", ["2e4", ".inf", ".nan", "5"])
def test_an_absurd_learning_rate_is_refused_before_training(tmp_path, tiny_model, cli, lr):
    path = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, write_dataset(tmp_path / "d.jsonl"),
                                                        tmp_path / "run", LORA))
    path.write_text(path.read_text().replace("learning_rate: 0.003", f"learning_rate: {lr}"))
    code, _, err = cli("train", path, "--dry-run")
    assert code == 2 and "training.learning_rate" in err
    assert ("did you mean 2e-4" in err) if lr == "2e4" else True
    assert not (tmp_path / "run").exists()


def test_a_run_whose_loss_turns_nan_fails_and_keeps_the_last_finite_checkpoint(tmp_path, tiny_model, cli,
                                                                             monkeypatch):
    import torch
    from transformers import Trainer

    real = Trainer.compute_loss

    def poisoned(self, model, inputs, *a, **k):  # the loss of step 5 on is NaN (as a diverging run's would be)
        loss = real(self, model, inputs, *a, **k)
        if self.state.global_step >= 4 and model.training:
            loss = loss * torch.tensor(float("nan"))
        return loss

    monkeypatch.setattr(Trainer, "compute_loss", poisoned)  # the plain loss
    import trainer.loss

    real_with = trainer.loss.with_loss

    def with_poison(trainer_class, plan):  # the chunked loss (the default) overrides compute_loss: poison it too
        chosen = real_with(trainer_class, plan)
        if chosen is trainer_class:
            return chosen

        class Poisoned(chosen):
            def compute_loss(self, model, inputs, *a, **k):
                loss = chosen.compute_loss(self, model, inputs, *a, **k)
                if self.state.global_step >= 4 and model.training:
                    loss = loss * torch.tensor(float("nan"))
                return loss

        return Poisoned

    monkeypatch.setattr(trainer.loss, "with_loss", with_poison)
    cfg = train_config(tiny_model, write_dataset(tmp_path / "d.jsonl"), tmp_path / "run", LORA, max_steps=8,
                       save_steps=2, eval_steps=2, save_total_limit=1)
    code, out, err = cli("train", write_yaml(tmp_path / "t.yaml", cfg), "--json")
    said = " ".join(err.split())
    assert code == 1 and out == ""
    assert "diverged at step 5" in said and "training loss became nan" in said
    assert "checkpoint-4" in said
    run = tmp_path / "run"
    assert not (run / "adapter_model.safetensors").exists() and not (run / "summary.json").exists()
    from safetensors.torch import load_file

    kept = load_file(run / "checkpoint-4" / "adapter_model.safetensors")
    assert kept and all(torch.isfinite(t).all() for t in kept.values())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]  # strict JSON rows
    assert rows


def test_json_output_is_strict_json_without_nan():
    from core.files import json_text

    text = json_text({"loss": float("nan"), "rows": [1.0, float("inf"), {"x": -float("inf")}]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {"loss": None,
                                                                                  "rows": [1.0, None, {"x": None}]}


# ---- 3. a JSONL file whose first line is longer than the sniffed head is still JSON Lines

def test_a_first_line_over_64_kb_is_read_by_audit_and_train(tmp_path, tiny_model, cli, cli_json):
    from core.data.reader import SNIFF_BYTES

    recs = make_records(40)
    recs[0]["messages"][1]["content"] = "long context " * (SNIFF_BYTES // 6)  # ~140 KB on the first line
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert len(data.read_text().splitlines()[0]) > 2 * SNIFF_BYTES
    report = cli_json("audit", data)
    assert report["records"] == 40 and report["format"] == "openai"
    cfg = train_config(tiny_model, data, tmp_path / "run", LORA)
    cfg["data"]["drop_untrainable"] = True  # the long record is cut before its answer at this max_seq_len
    d = cli_json("train", write_yaml(tmp_path / "t.yaml", cfg), "--dry-run")
    assert d["format"] == "openai" and d["records_total"] == 40
    assert d["records_train"] + d["records_val"] == 39 and d["skipped"] == {"no_trainable_tokens": 1}


# ---- 4. training uses what the audit knows: copies on one side of the split, pointless data stops the run

def _chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def test_exact_copies_never_straddle_the_train_validation_split(tmp_path, tiny_model):
    from trainer.data import prepare
    from trainer.model import open_tokenizer

    distinct = make_records(30, seed=3)
    recs = [r for r in distinct for _ in range(3)]  # every record three times
    data = tmp_path / "copies.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = prepare(data, open_tokenizer(tiny_model), max_seq_len=96, val_size=0.2, cache=False)
    seen_train = {tuple(e.input_ids) for e in p.train}
    seen_val = {tuple(e.input_ids) for e in p.val}
    assert seen_val and not seen_train & seen_val
    assert len(p.train) + len(p.val) == 90 and len(p.val) == 18  # whole groups of 3 fill the 20% exactly
    assert p.copies == 90 - len(seen_train | seen_val) and p.distinct == len(seen_train | seen_val)


def test_the_split_without_copies_is_the_split_as_it_was():
    import random

    from trainer.data_cache import copy_groups, fill_validation

    groups = copy_groups([f"d{i}" for i in range(50)])
    random.Random(42).shuffle(groups)
    order = list(range(50))
    random.Random(42).shuffle(order)
    assert [g[0] for g in fill_validation(groups, 10)] == order[:10]
    # one record and its 49 copies: nothing to hold out without a leak, so nothing is held out
    assert fill_validation(copy_groups(["same"] * 50), 10) == []


@pytest.mark.parametrize(("records", "says"), [
    ([_chat(f"Question {i}?", "") for i in range(40)], "40 of 40 records (100%) have an empty answer"),
    ([_chat("Say hello.", "Hello!")] * 40, "only 1 distinct (39 exact copies)"),
])
def test_data_not_worth_training_stops_train_unless_forced(tmp_path, tiny_model, cli, records, says):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    path = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, data, tmp_path / "run", LORA))
    code, _, err = cli("train", path, "--dry-run")
    assert code == 2 and says in " ".join(err.split()) and "--force" in err
    code, _, err = cli("train", path, "--dry-run", "--force")
    assert code == 0, err


# ---- 5. no silent overwrites

def test_ask_never_overwrites_the_answers_file_it_read_or_a_hand_written_config(tmp_path, cli):
    from tests.conftest import BASE_ANSWERS

    mine = "# my answers, with a comment\n" + "".join(
        f"{k}: {json.dumps(v)}\n" for k, v in {**BASE_ANSWERS, "goal": "format", "prompting": "unstable",
                                                "examples": 500}.items())
    answers = tmp_path / "answers.yaml"
    answers.write_text(mine)
    code, _, err = cli("ask", "--answers", answers, "--defaults", "--train", "no", "--out", tmp_path)
    assert code == 2 and "answers.yaml already exists" in err and "--force" in err
    assert answers.read_text() == mine and not (tmp_path / "train.yaml").exists()  # nothing written
    hand = tmp_path / "plan" / "train.yaml"
    hand.parent.mkdir()
    hand.write_text("# hand-written\nmodel: {path: m}\ndata: {path: d.jsonl}\n")
    code, _, err = cli("ask", "--answers", answers, "--defaults", "--train", "no", "--out", tmp_path / "plan")
    assert code == 2 and "train.yaml already exists" in err and hand.read_text().startswith("# hand-written")
    assert not (tmp_path / "plan" / "answers.yaml").exists()  # nothing written when the first file is refused
    code, _, err = cli("ask", "--answers", answers, "--defaults", "--train", "no", "--out", tmp_path / "plan",
                       "--force")
    assert code == 0, err
    assert "tunewise training config" in hand.read_text()
    # the same answers again: the same files, nothing lost, no --force needed
    code, _, err = cli("ask", "--answers", tmp_path / "plan" / "answers.yaml", "--defaults", "--train", "no", "--out",
                       tmp_path / "plan")
    assert code == 0, err


def test_export_never_replaces_its_source_or_an_edited_file(tmp_path, tiny_model, cli):
    src = write_yaml(tmp_path / "train.yaml", train_config(tiny_model, write_dataset(tmp_path / "d.jsonl"),
                                                           tmp_path / "run", LORA))
    before = src.read_text()
    code, _, err = cli("export", src, "--to", "trl", "--out", src, "--force")
    assert code == 2 and "is the config being exported" in err and src.read_text() == before
    out = tmp_path / "trl.yaml"
    assert cli("export", src, "--to", "trl", "--out", out)[0] == 0
    assert cli("export", src, "--to", "trl", "--out", out)[0] == 0  # the same file again: fine
    out.write_text(out.read_text() + "# my edit\n")
    code, _, err = cli("export", src, "--to", "trl", "--out", out)
    assert code == 2 and "already exists" in err and out.read_text().endswith("# my edit\n")
    assert cli("export", src, "--to", "trl", "--out", out, "--force")[0] == 0


def test_an_evaluation_on_other_data_is_named_after_it():
    from trainer.evaluate import report_name

    assert report_name(None) == "eval"
    assert report_name("/data/test.jsonl") == "eval-test" and report_name("my held out.v2.jsonl") == "eval-my_held_out"


# ---- 6. runtime failures named, damaged inputs refused or rebuilt

def test_a_full_disk_is_exit_1_naming_the_file(tmp_path, cli, monkeypatch):
    import errno
    import os

    real = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    src = write_yaml(tmp_path / "train.yaml", train_config(tmp_path / "m", write_dataset(tmp_path / "d.jsonl"),
                                                           tmp_path / "r", LORA))
    code, _, err = cli("export", src, "--to", "trl", "--out", tmp_path / "trl.yaml")
    monkeypatch.setattr(os, "fsync", real)
    said = " ".join(err.split())
    assert code == 1 and f"cannot write {tmp_path / 'trl.yaml'}: No space left on device" in said
    assert "free some space" in said and "Traceback" not in err
    assert not (tmp_path / "trl.yaml").exists() and not list(tmp_path.glob(".trl.yaml.*"))  # no half file left


def test_a_damaged_prepared_data_cache_is_checked_and_rebuilt(tmp_path, tiny_model):
    path = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, write_dataset(tmp_path / "d.jsonl"),
                                                        tmp_path / "run", LORA))
    first = run_tunewise("train", path, "--dry-run", "--json")
    assert first.returncode == 0, first.stderr
    cache = json.loads(first.stdout)["data_cache"]
    from pathlib import Path

    table = next(Path(cache["path"]).glob("train/*.arrow"))
    raw = bytearray(table.read_bytes())
    for i in range(len(raw) // 3, len(raw) // 3 + 64):  # flip bits in the middle of the token table
        raw[i] ^= 0xFF
    table.write_bytes(bytes(raw))
    again = run_tunewise("train", path, "--dry-run", "--json")
    assert again.returncode == 0, again.stderr
    d = json.loads(again.stdout)["data_cache"]
    assert d["hit"] is False and d["key"] == cache["key"]
    third = json.loads(run_tunewise("train", path, "--dry-run", "--json").stdout)["data_cache"]
    assert third["hit"] is True  # the rebuilt entry is whole


def test_a_stdout_that_is_not_utf8_does_not_kill_commands(tmp_path, monkeypatch):
    data = tmp_path / "u.jsonl"
    data.write_text("".join(json.dumps(_chat(f"héllo {i} ✓", f"wörld {i} ✓"), ensure_ascii=False) + "\n"
                            for i in range(12)), encoding="utf-8")
    monkeypatch.setenv("PYTHONIOENCODING", "ascii")
    monkeypatch.setenv("LC_ALL", "C")
    p = run_tunewise("audit", data)
    assert p.returncode == 0, p.stderr[-300:]
    p = run_tunewise("audit", data, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["records"] == 12


def test_debug_after_the_command_is_accepted(tmp_path):
    p = run_tunewise("recommend", "--answers", tmp_path / "missing.yaml", "--debug")
    assert p.returncode == 2 and "Traceback" in p.stderr and "unrecognized arguments" not in p.stderr


# ---- 7. interactive ask: the default is shown, not typed into the edit box

def test_typing_over_a_default_replaces_it(tmp_path):
    import pexpect

    from tests.test_ask import ENTER, spawn

    data = write_dataset(tmp_path / "d.jsonl", n=60)
    child = spawn("--out", tmp_path, "--dataset", data, "--train", "no")
    child.expect("What must the model gain")
    child.send(ENTER)                                  # default goal
    child.expect("How does prompting perform")
    child.send(ENTER)
    child.expect(r"labelled examples.*\[\d+, Enter keeps it")
    child.send("500" + ENTER)                          # typed as a person would: no clearing first
    while True:
        i = child.expect([r"Enter keeps it", r"\(\? for why\)", r"\? why this matters", pexpect.EOF], timeout=120)
        if i == 3:
            break
        child.send(ENTER)
    child.close()
    saved = yaml_load(tmp_path / "answers.yaml")
    assert saved["examples"] == 500


def yaml_load(path):
    import yaml

    return yaml.safe_load(path.read_text())
