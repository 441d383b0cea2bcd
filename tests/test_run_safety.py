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
    for f in ("tokenizer.json", "tokenizer_config.json"):
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
    from trainer.config import TrainConfig
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
    from advisor.errors import UserError
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

    monkeypatch.setattr(Trainer, "compute_loss", poisoned)
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
    from advisor.files import json_text

    text = json_text({"loss": float("nan"), "rows": [1.0, float("inf"), {"x": -float("inf")}]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {"loss": None,
                                                                                  "rows": [1.0, None, {"x": None}]}


# ---- 3. a JSONL file whose first line is longer than the sniffed head is still JSON Lines

def test_a_first_line_over_64_kb_is_read_by_audit_and_train(tmp_path, tiny_model, cli, cli_json):
    from advisor.data.reader import SNIFF_BYTES

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
