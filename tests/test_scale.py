"""Scale out (issue 17): several nodes through torchrun's rendezvous, and the Slurm script that starts them."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_yaml
from tests.test_trainer_runs import LORA, spawn
from tests.trainer_fixtures import train_config, write_dataset


@pytest.mark.slow
def test_two_nodes_on_the_loopback_address(tmp_path, tiny_model):
    """Two launchers with nnodes=2 (node ranks 0 and 1) on 127.0.0.1, gloo: one job of two ranks that train on
    disjoint records; node 0 writes the result, which reloads."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainer.launch import free_port

    data = write_dataset(tmp_path / "d.jsonl", n=100)
    cfg = train_config(tiny_model, data, tmp_path / "run", LORA, max_steps=5, eval_steps=5, batch_size=4,
                       learning_rate=5e-3)
    cfg["distributed"] = {"processes": 1, "nodes": 2, "master_port": free_port()}
    path = write_yaml(tmp_path / "t.yaml", cfg)
    nodes = [spawn("train", path, f"distributed.node_rank={r}", "--no-progress", "--json") for r in (0, 1)]
    outs = [p.communicate(timeout=400) for p in nodes]
    for p, (_out, err) in zip(nodes, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    ranks = [json.loads((tmp_path / "run" / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and all(r["steps"] == 5 for r in ranks)
    seen0, seen1 = set(ranks[0]["records"]), set(ranks[1]["records"])
    assert seen0 and seen1 and not (seen0 & seen1)
    summary = json.loads(outs[0][0])
    assert summary["world_size"] == 2 and summary["steps"] == 5
    base = AutoModelForCausalLM.from_pretrained(tiny_model, local_files_only=True)
    ids = torch.tensor([[5, 6, 7, 8]])
    before = base(input_ids=ids).logits
    tuned = PeftModel.from_pretrained(base, tmp_path / "run", local_files_only=True)
    assert not torch.allclose(tuned(input_ids=ids).logits, before)


def test_slurm_script_runs_the_config_on_every_node(tmp_path, tiny_model, cli):
    import subprocess

    data = write_dataset(tmp_path / "d.jsonl")
    path = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, data, tmp_path / "run", LORA))
    code, out, _ = cli("train", path, "distributed.nodes=4", "distributed.processes=8",
                       "distributed.strategy=fsdp", "training.learning_rate=1e-4", "--emit", "slurm")
    assert code == 0 and "#SBATCH --nodes=4" in out and "#SBATCH --gpus-per-node=8" in out
    assert "distributed.node_rank=$SLURM_NODEID" in out and "distributed.master_addr=$MASTER_ADDR" in out
    assert "distributed.strategy=fsdp training.learning_rate=1e-4" in out  # the overrides travel with the job
    assert subprocess.run(["bash", "-n"], input=out, text=True).returncode == 0
    assert not (tmp_path / "run").exists()


def test_a_node_rank_outside_the_job_is_refused(tmp_path, tiny_model, cli):
    data = write_dataset(tmp_path / "d.jsonl")
    path = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, data, tmp_path / "run", LORA))
    code, _out, err = cli("train", path, "distributed.nodes=2", "distributed.node_rank=2", "--dry-run")
    assert code == 2 and "must be below `distributed.nodes`" in err


def test_launch_commands_carry_the_node_settings(tmp_path):
    from core.train_config import TrainConfig
    from trainer.launch import command

    cfg = TrainConfig.model_validate({"model": {"path": "m"}, "data": {"path": "d.jsonl"}, "distributed": {
        "processes": 8, "nodes": 2, "node_rank": 1, "master_addr": "10.0.0.1", "master_port": 29555}})
    torchrun = command("t.yaml", cfg, False, False)
    i = torchrun.index("--nnodes")
    assert torchrun[i:i + 10] == ["--nnodes", "2", "--node_rank", "1", "--nproc_per_node", "8", "--master_addr",
                                  "10.0.0.1", "--master_port", "29555"]
    acc = command("t.yaml", cfg.model_copy(update={"distributed": cfg.distributed.model_copy(
        update={"launcher": "accelerate"})}), False, False)
    assert acc[acc.index("--num_processes") + 1] == "16" and acc[acc.index("--machine_rank") + 1] == "1"
    assert "distributed.node_rank=1" in torchrun


# ---- speed: padding-free batches, thread policy, start-up time

def test_a_padding_free_batch_has_the_padded_batchs_loss_and_no_cross_talk(tiny_model):
    """One row of concatenated records (position ids restarting) gives each record's logits as if alone, and the
    same loss over the same trained tokens as the padded batch."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.data import Collator

    model = AutoModelForCausalLM.from_pretrained(tiny_model, local_files_only=True)
    model.train()  # training mode: the case where a cache would hide the packing
    torch.manual_seed(0)
    records = [{"input_ids": list(range(5, 5 + n)), "labels": [-100] * (n // 2) + list(range(5 + n // 2, 5 + n))}
               for n in (7, 12, 4)]
    padded = Collator(0)(records)
    flat = Collator(0, padding_free=True)(records)
    with torch.no_grad():
        model.eval()
        lp = model(**padded).loss
        lf = model(**flat).loss
        flat_logits = model(**flat).logits[0]
        start = 0
        for r in records:
            alone = model(input_ids=torch.tensor([r["input_ids"]])).logits[0]
            n = len(r["input_ids"])
            assert torch.allclose(flat_logits[start:start + n], alone, atol=1e-4)
            start += n
    assert torch.allclose(lp, lf, atol=1e-5)
    assert flat["labels"].ne(-100).sum() == padded["labels"].ne(-100).sum()


def test_padding_free_training_and_the_speed_fields_in_the_summary(tmp_path, tiny_model, cli_json, monkeypatch):
    data = write_dataset(tmp_path / "d.jsonl")
    cfg = train_config(tiny_model, data, tmp_path / "run", LORA, max_steps=4)
    cfg["training"]["padding_free"] = True
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    s = cli_json("train", write_yaml(tmp_path / "t.yaml", cfg), "--no-progress")
    assert s["padding_free"] and s["steps"] == 4 and s["train_loss_last"] < s["train_loss_first"]
    assert s["cpu_threads"] == 1 and s["cpu_threads_why"] == "OMP_NUM_THREADS" and 0 < s["startup_s"] < 600


def test_the_thread_policy_shares_the_cores_it_may_use(monkeypatch):
    import trainer.cpu as cpu

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(cpu, "cgroup_cpus", lambda: 4.5)
    assert cpu.available_cores() == 4 and cpu.thread_count(2) == (2, "4 available core(s) / 2 process(es)")
    monkeypatch.setattr(cpu, "cgroup_cpus", lambda: None)
    assert cpu.thread_count(3) == (2, "8 available core(s) / 3 process(es)")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu.thread_count(2) == (3, "OMP_NUM_THREADS")


def test_padding_free_is_refused_for_p_tuning(tmp_path, tiny_model, cli):
    data = write_dataset(tmp_path / "d.jsonl")
    path = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, data, tmp_path / "run", {"name": "p_tuning"}))
    code, _out, err = cli("train", path, "training.padding_free=true", "--dry-run")
    assert code == 2 and "padding_free" in err
