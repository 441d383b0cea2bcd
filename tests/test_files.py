"""User files: line numbers, did-you-mean hints, atomic writes."""

from __future__ import annotations

import pytest

from advisor.answers import Answers
from core.errors import UserError
from core.files import atomic_write, load_model_file, read_structured
from core.train_config import TrainConfig


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    p = tmp_path / "train.yaml"
    p.write_text("model:\n  path: m\ndata:\n  path: d.jsonl\nmethod:\n  name: lora\n  lora_rank: 8\n")
    with pytest.raises(UserError) as e:
        load_model_file(TrainConfig, p)
    msg = str(e.value)
    assert f"{p}:7" in msg and "unknown key `method.lora_rank`" in msg and "did you mean `lora_r`" in msg


def test_wrong_type_names_the_key(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"goal": "format", "prompting": "unstable", "examples": "many", "requests_per_day": 1,\n'
                 ' "gpu_memory_gb": 24, "gpu_count": 1, "model_params_b": 7}')
    with pytest.raises(UserError) as e:
        load_model_file(Answers, p)
    assert "`examples`" in str(e.value) and ":1" in str(e.value)


def test_invalid_yaml_reports_position(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("goal: [format\n")
    with pytest.raises(UserError) as e:
        read_structured(p)
    assert str(p) in str(e.value) and "invalid YAML" in str(e.value)


def test_yaml_does_not_execute_tags(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("goal: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError):
        read_structured(p)


def test_hf_aliases_accepted():
    cfg = TrainConfig.model_validate({"model": {"path": "m"}, "data": {"path": "d"}, "training": {
        "num_train_epochs": 2, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4,
        "lr_scheduler_type": "linear", "lr": 1e-4}, "output": {"output_dir": "o"}})
    t = cfg.training
    assert (t.epochs, t.batch_size, t.grad_accum, t.scheduler, t.learning_rate) == (2, 8, 4, "linear", 1e-4)
    assert cfg.output.dir == "o"


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "out" / "f.txt"
    atomic_write(p, "one")
    atomic_write(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in p.parent.iterdir()] == ["f.txt"]


def test_atomic_writes_keep_the_users_umask(tmp_path):
    import os
    import stat

    from core.files import atomic_write

    old = os.umask(0o022)
    try:
        mode = stat.S_IMODE(atomic_write(tmp_path / "a.txt", "x").stat().st_mode)
        os.umask(0o077)
        private = stat.S_IMODE(atomic_write(tmp_path / "b.txt", "x").stat().st_mode)
    finally:
        os.umask(old)
    assert mode == 0o644 and private == 0o600
