"""Trainer runs end to end: interruption and resume, several processes, and the fail-fast checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, write_yaml
from tests.trainer_fixtures import train_config, write_dataset

LORA = {"name": "lora", "lora_r": 8, "lora_alpha": 16}


def spawn(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "advisor.cli.main", *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_kill_mid_run_then_resume_matches_uninterrupted(tmp_path, tiny_model):
    from trainer.run import train

    data = write_dataset(tmp_path / "d.jsonl", n=80)
    common = dict(max_steps=300, save_steps=20, eval_steps=20, logging_steps=10, batch_size=4)
    ref_cfg = write_yaml(tmp_path / "ref.yaml", train_config(tiny_model, data, tmp_path / "ref", LORA, **common))
    ref = train(str(ref_cfg), progress=False)

    cfg = write_yaml(tmp_path / "run.yaml", train_config(tiny_model, data, tmp_path / "run", LORA, **common))
    proc = spawn("train", cfg, "--no-progress")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (tmp_path / "run" / "checkpoint-40" / "trainer_state.json").is_file():
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "summary.json").exists()

    p = spawn("train", cfg, "--no-progress")
    _out, err = p.communicate(timeout=240)
    assert p.returncode == 2 and "--resume" in err  # refuses to silently start over
    resumed = train(str(cfg), resume=True, progress=False)
    assert resumed.steps == ref.steps == 300
    # the same batches in the same order with the same dropout masks: the uninterrupted run's losses, to 1e-5
    assert resumed.eval_loss_last == pytest.approx(ref.eval_loss_last, rel=1e-5, abs=1e-6)
    assert resumed.train_loss_last == pytest.approx(ref.train_loss_last, rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_resume_refuses_a_changed_config(tmp_path, tiny_model):
    from trainer.run import train

    data = write_dataset(tmp_path / "d.jsonl")
    cfg = train_config(tiny_model, data, tmp_path / "run", LORA, max_steps=10, save_steps=5, eval_steps=5)
    write_yaml(tmp_path / "a.yaml", cfg)
    train(str(tmp_path / "a.yaml"), progress=False)
    cfg["training"]["learning_rate"] = 1e-2
    write_yaml(tmp_path / "b.yaml", cfg)
    from core.errors import UserError

    with pytest.raises(UserError, match="config differs"):
        train(str(tmp_path / "b.yaml"), resume=True, progress=False)


@pytest.mark.slow
def test_two_processes_on_cpu(tmp_path, tiny_model):
    # 80 training records; 5 steps × 4 × 2 ranks (+ accelerate's one-batch prefetch) stay inside one epoch
    data = write_dataset(tmp_path / "d.jsonl", n=100)
    cfg = train_config(tiny_model, data, tmp_path / "run", LORA, max_steps=5, eval_steps=5, batch_size=4,
                       learning_rate=5e-3)
    cfg["distributed"] = {"processes": 2, "strategy": "ddp"}
    path = write_yaml(tmp_path / "t.yaml", cfg)
    p = spawn("train", path, "--no-progress", "--json")
    out, err = p.communicate(timeout=400)
    assert p.returncode == 0, err[-3000:]
    ranks = [json.loads((tmp_path / "run" / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and all(r["steps"] == 5 for r in ranks)
    seen0, seen1 = set(ranks[0]["records"]), set(ranks[1]["records"])
    assert seen0 and seen1 and not (seen0 & seen1), "each rank must train on its own share of the data"
    assert ranks[0]["pid"] != ranks[1]["pid"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["eval_loss_last"] < summary["eval_loss_first"]
    assert json.loads(out) == summary  # one summary, from the launcher: the ranks print none
    assert "training summary" not in err


def _cfg(tmp_path, tiny_model, **data_over):
    data = write_dataset(tmp_path / "d.jsonl")
    c = train_config(tiny_model, data, tmp_path / "run", LORA, max_steps=2)
    c["data"].update(data_over)
    return c


def _no_template_model(tmp_path, tiny_model):
    m = tmp_path / "nt"
    shutil.copytree(tiny_model, m)
    (m / "chat_template.jinja").unlink(missing_ok=True)
    tc = json.loads((m / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    (m / "tokenizer_config.json").write_text(json.dumps(tc))
    return m


@pytest.mark.parametrize("case,needle", [
    ("missing_model", "not a local model folder"),
    ("not_causal", "not a causal language model"),
    ("no_template", "no chat template"),
    ("untrainable", "no trainable tokens"),
    ("no_bnb", "bitsandbytes"),
    ("memory", "--force"),
    ("resume_nothing", "no checkpoint"),
    ("bad_key", "did you mean `lora_r`"),
])
def test_fail_fast_checks_exit_2(tmp_path, tiny_model, cli, monkeypatch, case, needle):
    c = _cfg(tmp_path, tiny_model)
    args = []
    if case == "missing_model":
        c["model"]["path"] = str(tmp_path / "nope")
    elif case == "not_causal":
        bert = tmp_path / "bert"
        bert.mkdir()
        (bert / "config.json").write_text(json.dumps({"model_type": "t5"}))
        (bert / "model.safetensors").write_bytes(b"")
        c["model"]["path"] = str(bert)
    elif case == "no_template":
        c["model"]["path"] = str(_no_template_model(tmp_path, tiny_model))
    elif case == "untrainable":
        c["data"]["max_seq_len"] = 12
    elif case == "no_bnb":
        import trainer.model

        monkeypatch.setattr(trainer.model, "bitsandbytes_available", lambda: False)
        c["method"] = {"name": "qlora"}
    elif case == "memory":
        import trainer.preflight

        monkeypatch.setattr(trainer.preflight, "available_memory_gb", lambda: (0.001, "cpu"))
    elif case == "resume_nothing":
        args = ["--resume"]
    elif case == "bad_key":
        c["method"]["lora_rank"] = 4
    path = write_yaml(tmp_path / "t.yaml", c)
    code, _out, err = cli("train", path, "--no-progress", *args)
    assert code == 2, err
    assert needle in " ".join(err.split()), err


def test_memory_check_can_be_forced(tmp_path, tiny_model, cli, monkeypatch):
    import trainer.preflight

    monkeypatch.setattr(trainer.preflight, "available_memory_gb", lambda: (0.001, "cpu"))
    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model))
    code, _out, err = cli("train", path, "--no-progress", "--force")
    assert code == 0, err


def test_dry_run_marks_the_trained_span(tmp_path, tiny_model, cli_json, cli):
    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model))
    d = cli_json("train", path, "--dry-run")
    from tests.trainer_fixtures import make_records

    first = make_records(60)[0]["messages"]
    assert d["samples"][0] == {"record": 0, "trained": [first[-1]["content"] + "<|im_end|>"]}
    assert d["template"] == {"assistant_turns": "markers", "system_merged_into_user": 0}
    marked = d["sample"]["marked"]
    assert d["dry_run"] and "«{" in marked and "<|im_end|>»" in marked and "«<|im_start|>user" not in marked
    assert d["estimate"]["total_gb"] > 0 and not (tmp_path / "run").exists()
    code, out, _ = cli("train", path, "--dry-run")
    assert code == 0 and "trained" in out and "memory estimate" in out


def test_print_schema(cli):
    code, out, _ = cli("train", "--print-schema")
    schema = json.loads(out)
    assert code == 0 and {"model", "data", "method", "training", "output", "distributed"} <= set(schema["properties"])


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path, tiny_model):
    from trainer.run import train

    data = write_dataset(tmp_path / "d.jsonl", n=80)
    cfg = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, data, tmp_path / "run", LORA, max_steps=400,
                                                      save_steps=1000, eval_steps=1000, logging_steps=5, batch_size=4))
    proc = spawn("train", cfg, "--no-progress")
    deadline = time.time() + 240
    metrics = tmp_path / "run" / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]  # interrupted (128 + SIGINT), not a failure
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["interrupted"] and 0 < summary["steps"] < 400
    assert (tmp_path / "run" / f"checkpoint-{summary['steps']}" / "trainer_state.json").is_file()
    done = train(str(cfg), resume=True, progress=False)
    assert done.steps == 400 and not done.interrupted
    # the summary describes the whole run, not the resumed part
    assert done.train_loss_first == summary["train_loss_first"] and done.wall_time_s > summary["wall_time_s"]


@pytest.mark.slow
def test_fsdp_two_processes_full_model_reloads(tmp_path, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    data = write_dataset(tmp_path / "d.jsonl", n=60)
    cfg = train_config(tiny_model, data, tmp_path / "run", {"name": "full"}, max_steps=4, eval_steps=2, batch_size=2,
                       learning_rate=1e-3)
    cfg["distributed"] = {"processes": 2, "strategy": "fsdp"}
    p = spawn("train", write_yaml(tmp_path / "t.yaml", cfg), "--no-progress")
    _out, err = p.communicate(timeout=400)
    assert p.returncode == 0, err[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["eval_loss_last"] < summary["eval_loss_first"]
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "run", local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, local_files_only=True)
    moved = [float((a - b).abs().max()) for a, b in zip(tuned.parameters(), base.parameters(), strict=True)]
    assert all(torch.isfinite(torch.tensor(moved))) and max(moved) > 0


def test_deepspeed_without_the_package_exits_2(tmp_path, tiny_model, cli):
    import importlib.util

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    c = _cfg(tmp_path, tiny_model)
    c["distributed"] = {"processes": 2, "strategy": "deepspeed_zero3"}
    code, _out, err = cli("train", write_yaml(tmp_path / "t.yaml", c), "--no-progress")
    assert code == 2 and "pip install deepspeed" in " ".join(err.split())


def test_cli_train_with_progress_bar(tmp_path, tiny_model, cli):
    """The default (progress bar on) path, as a person runs it."""
    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model))
    code, out, err = cli("train", path)
    assert code == 0, err
    assert "training summary" in out and "training" in out


@pytest.mark.parametrize("precision,dtype,flags", [
    ("fp32", "float32", (False, False)), ("bf16", "bfloat16", (False, False)),
    ("bf16-mixed", "float32", (False, False))])
def test_precision_plan_on_cpu(tmp_path, precision, dtype, flags):
    """The trainer trains in the mode the estimate was made for (on CPU autocast flags stay off)."""
    import torch

    from core.train_config import TrainConfig
    from trainer.model import resolve_precision

    cfg = TrainConfig.model_validate({"model": {"path": "m"}, "data": {"path": "d"},
                                      "training": {"precision": precision}})
    plan = resolve_precision(cfg, "cpu")
    assert plan.name == precision and plan.load_dtype == getattr(torch, dtype) and (plan.bf16, plan.fp16) == flags


def test_precision_errors_name_the_fields(tmp_path):
    from pydantic import ValidationError

    from core.errors import UserError
    from core.train_config import TrainConfig
    from trainer.model import resolve_precision

    with pytest.raises(ValidationError, match="model.dtype"):
        TrainConfig.model_validate({"model": {"path": "m", "dtype": "bfloat16"}, "data": {"path": "d"},
                                    "training": {"precision": "bf16-mixed"}})
    cfg = TrainConfig.model_validate({"model": {"path": "m"}, "data": {"path": "d"}, "training": {"precision": "fp16"}})
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        resolve_precision(cfg, "cpu")


def test_dry_run_estimates_the_precision_and_targets_that_train(tmp_path, tiny_model, cli_json):
    cfg = _cfg(tmp_path, tiny_model)
    cfg["training"]["precision"] = "bf16"
    cfg["method"] = {"name": "lora", "r": 8, "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.0}
    d = cli_json("train", write_yaml(tmp_path / "t.yaml", cfg), "--dry-run")
    a = d["estimate"]["assumptions"]
    assert a["precision"].startswith("pure bf16") and "r=8 on q_proj, v_proj, dropout 0" in a["lora"]


def test_no_validation_split_and_step_checkpoints_without_eval_steps(tmp_path, tiny_model, cli):
    """data.val_size 0 trains without evaluation; training.save_steps alone checkpoints every N steps."""
    c = _cfg(tmp_path, tiny_model, val_size=0)
    c["training"].update(max_steps=4, save_steps=2, save_total_limit=5)
    c["training"].pop("eval_steps", None)
    code, _out, err = cli("train", write_yaml(tmp_path / "t.yaml", c), "--no-progress")
    assert code == 0, err
    ckpts = sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-2", "checkpoint-4"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 4 and summary.get("eval_loss_last") is None


def test_config_cross_field_errors(tmp_path):
    from pydantic import ValidationError

    from core.train_config import TrainConfig

    with pytest.raises(ValidationError, match="data.val_size"):
        TrainConfig.model_validate({"model": {"path": "m"}, "data": {"path": "d", "val_size": 0},
                                    "training": {"early_stopping_patience": 2}})
    with pytest.raises(ValidationError, match="same schedule"):
        TrainConfig.model_validate({"model": {"path": "m"}, "data": {"path": "d"},
                                    "training": {"early_stopping_patience": 2, "save_steps": 10}})


def test_every_config_field_is_described():
    from core.train_config import TrainConfig

    def walk(model, prefix=""):
        for name, f in model.model_fields.items():
            yield prefix + name, f
            ann = f.annotation
            for sub in getattr(ann, "__args__", ()) or (ann,):
                if isinstance(sub, type) and hasattr(sub, "model_fields"):
                    yield from walk(sub, f"{prefix}{name}.")

    missing = [n for n, f in walk(TrainConfig) if not f.description]
    assert not missing, missing


def test_key_value_overrides_are_validated_like_the_file(tmp_path, tiny_model, cli_json, cli):
    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model))
    d = cli_json("train", path, "method.lora_r=4", "method.target_modules=[q_proj, v_proj]", "data.max_seq_len=64",
                 "--dry-run")
    assert "r=4 on q_proj, v_proj" in d["estimate"]["assumptions"]["lora"] and d["estimate"]["assumptions"]["seq_len"] <= 64
    code, _out, err = cli("train", path, "training.learnig_rate=1e-4", "--dry-run")
    err = " ".join(err.split())
    assert code == 2 and "learnig_rate" in err and "did you mean `learning_rate`" in err and "overridden" in err
    code, _out, err = cli("train", path, "training.learning_rate", "--dry-run")
    assert code == 2 and "KEY=VALUE" in err


def test_a_chat_template_path_that_does_not_exist_is_exit_2(tmp_path, tiny_model, cli):
    c = _cfg(tmp_path, tiny_model, chat_template="templates/missing.jinja")
    code, _out, err = cli("train", write_yaml(tmp_path / "t.yaml", c), "--dry-run")
    assert code == 2 and "templates/missing.jinja" in err and "no such file" in err


def test_resume_of_a_finished_run_changes_nothing(tmp_path, tiny_model, cli_json):
    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model))
    first = cli_json("train", path, "--no-progress")
    summary = (tmp_path / "run" / "summary.json").read_text()
    ckpts = sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*"))
    again = cli_json("train", path, "--resume", "--no-progress")
    assert again["already_finished"] and again["steps"] == first["steps"] == 2
    assert (tmp_path / "run" / "summary.json").read_text() == summary
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ckpts


def test_a_second_run_on_the_same_output_dir_is_refused(tmp_path, tiny_model, cli):
    from trainer.lock import lock_output

    path = write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model))
    held = lock_output(tmp_path / "run")  # another run holds it (flock is per open file)
    try:
        code, _out, err = cli("train", path, "--no-progress")
        assert code == 2 and f"PID {os.getpid()}" in err and "in use" in err
    finally:
        held.close()
    code, _out, err = cli("train", path, "--no-progress")
    assert code == 0, err  # released


def test_a_fresh_run_does_not_append_to_a_killed_runs_metrics(tmp_path, tiny_model, cli):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 99, "loss": 123.0}\n')
    code, _out, err = cli("train", write_yaml(tmp_path / "t.yaml", _cfg(tmp_path, tiny_model)), "--no-progress")
    assert code == 0, err
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(r["step"] <= 2 for r in rows) and not any(r.get("loss") == 123.0 for r in rows)
