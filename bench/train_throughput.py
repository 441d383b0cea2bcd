"""Training throughput, like for like: tunewise against TRL's SFTTrainer in its best configuration and, when
installed in their own environments (`make bench-peers` creates .interop/llamafactory and .interop/axolotl),
LLaMA-Factory and Axolotl (both run from tunewise's export of the same job).

Same locally built Llama, same records and held-out split, LoRA r16 / alpha 32 / dropout 0.05 on all linear
layers, assistant-only loss, batch 8, the same steps and seed, one CPU thread per process, interleaved rounds.
Each trainer in its best setting here: tunewise and TRL with length-grouped batches, each with and without its
padding-free mode; LLaMA-Factory with its defaults (its length grouping is not exposed in 0.9.5 with
transformers 5); Axolotl with `group_by_length` and its CPU-incompatible Triton LoRA kernels off (a wrapper has its
HF Trainer count non-padding tokens like the others: Axolotl's own setting counts all or none). Reports non-padding input tokens per second of training (the loss-bearing share is the same for
all: the same assistant spans), wall time of the whole command including start-up, its peak RSS, final train loss, and the
loss on the same held-out answers computed by this script for every result.

    python bench/train_throughput.py [--model tiny|wide|both] [--steps 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from interop import TRAIN  # bench/interop.py: how each peer is run

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BATCH, SEQ = 8, 512
SIZES = {"tiny": dict(hidden=256, layers=4, heads=8, kv_heads=4, intermediate=688),
         "wide": dict(hidden=512, layers=8, heads=8, kv_heads=4, intermediate=1376)}
LF_PY = ROOT / ".interop" / "llamafactory" / "bin" / "python"
AXOLOTL_PY = ROOT / ".interop" / "axolotl" / "bin" / "python"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": "",
       "DISABLE_VERSION_CHECK": "1", "PYTHONPATH": str(ROOT)}


def run_measured(cmd: list[str], env: dict, cwd: Path | None = None) -> dict:
    """Run a trainer's command to the end: its wall time (start-up included) and its peak RSS in MB (os.wait4: the
    largest resident set of that process and the children it waited for)."""
    with tempfile.TemporaryFile() as log:
        t = time.time()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.time() - t
        if os.waitstatus_to_exitcode(status):
            log.seek(0)
            raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} failed:\n{log.read()[-3000:].decode(errors='replace')}")
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024}


def dataset(path: Path, n: int = 600) -> list[dict]:
    rng = random.Random(0)
    words = ["order", "parcel", "refund", "invoice", "screen", "battery", "delay", "charge", "account", "login",
             "password", "warranty"]
    recs = []
    for i in range(n):
        ask = " ".join(rng.choice(words) for _ in range(rng.randint(8, 120)))
        ans = json.dumps({"id": i, "category": rng.choice(words),
                          "summary": " ".join(rng.choice(words) for _ in range(rng.randint(4, 60)))})
        recs.append({"messages": [{"role": "system", "content": "Turn the message into a JSON ticket."},
                                  {"role": "user", "content": ask}, {"role": "assistant", "content": ans}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return recs


def tunewise_config(model: Path, data: Path, out: Path, steps: int, padding_free: bool) -> dict:
    return {"model": {"path": str(model)}, "data": {"path": str(data), "max_seq_len": SEQ, "val_size": 0},
            "method": {"name": "lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05},
            "training": {"max_steps": steps, "batch_size": BATCH, "logging_steps": 5, "save_steps": 10_000,
                         "group_by_length": True, "padding_free": padding_free, "learning_rate": 2e-4,
                         "warmup_ratio": 0.0, "scheduler": "constant", "precision": "fp32"},
            "output": {"dir": str(out)}, "eval": {"enabled": False}}


def run_tunewise(model: Path, train: Path, out: Path, steps: int, padding_free: bool) -> dict:
    cfg = out.with_suffix(".yaml")
    cfg.write_text(json.dumps(tunewise_config(model, train, out, steps, padding_free)))
    measured = run_measured([sys.executable, "-m", "advisor.cli.main", "train", str(cfg), "--no-progress", "--force",
                             "--json"], ENV)
    s = json.loads((out / "summary.json").read_text())
    runtime = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][-1]["train_runtime"]
    return {"tokens_per_s": s["tokens_seen"] / runtime, **measured, "train_loss": s["train_loss_last"],
            "adapter": out}


TRL_SCRIPT = """
import json, sys, time
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
model, data, out, steps, padding_free = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
recs = [json.loads(x) for x in open(data)]
tok = AutoTokenizer.from_pretrained(model, local_files_only=True)
m = AutoModelForCausalLM.from_pretrained(model, local_files_only=True)
# TRL's padding-free mode does not cut records (max_length None); none of these records reaches 512 tokens
args = SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=8,
                 max_length=None if padding_free else 512,
                 assistant_only_loss=True, logging_steps=5, save_strategy="no", report_to="none", use_cpu=True,
                 include_num_input_tokens_seen="non_padding", disable_tqdm=True, learning_rate=2e-4,
                 lr_scheduler_type="constant", warmup_steps=0, seed=42, padding_free=padding_free,
                 bf16=False, fp16=False,  # fp32 like the others (TRL turns bf16 on by default: autocast is slow on CPU)
                 train_sampling_strategy="group_by_length")
trainer = SFTTrainer(model=m, args=args, train_dataset=Dataset.from_list(recs), processing_class=tok,
                     peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
result = trainer.train()
trainer.save_model(out)
losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
json.dump({"tokens_per_s": trainer.state.num_input_tokens_seen / result.metrics["train_runtime"],
           "train_loss": losses[-1]}, open(out + "/bench.json", "w"))
"""


def run_trl(model: Path, train: Path, out: Path, steps: int, padding_free: bool) -> dict:
    measured = run_measured([sys.executable, "-c", TRL_SCRIPT, str(model), str(train), str(out), str(steps),
                             "1" if padding_free else "0"], ENV)
    return {**json.loads((out / "bench.json").read_text()), **measured, "adapter": out}


def run_llamafactory(model: Path, train: Path, out: Path, steps: int) -> dict:
    from advisor.export import export, write_export
    from core.train_config import TrainConfig

    cfg = TrainConfig.model_validate(tunewise_config(model, train, out, steps, False))
    path = out.with_suffix(".lf.yaml")
    exported = export(cfg, "llamafactory", path)
    # count non-padding tokens like the others (True counts padding too)
    exported.config.update(include_num_input_tokens_seen="non_padding", save_strategy="no", val_size=0.0)
    exported.config.pop("eval_strategy", None)
    write_export(exported, path)
    measured = run_measured([str(LF_PY), "-c", LF_SCRIPT, str(path)], ENV, cwd=path.parent)
    res = json.loads((out / "train_results.json").read_text())
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [r["loss"] for r in state["log_history"] if "loss" in r]
    return {"tokens_per_s": res.get("num_input_tokens_seen", state.get("num_input_tokens_seen", 0)) /
            res["train_runtime"], **measured, "train_loss": losses[-1], "adapter": out}


LF_SCRIPT = TRAIN["llamafactory"][1]  # LLaMA-Factory's CLI, with torchaudio stubbed where it does not import

AXOLOTL_SCRIPT = """
import json, runpy, sys
from transformers import Trainer, TrainingArguments
config, result_file = sys.argv[1], sys.argv[2]
post_init = TrainingArguments.__post_init__
def counting(self):  # count like the other trainers: non-padding input tokens (Axolotl can only say all or none)
    self.include_num_input_tokens_seen = "non_padding"
    post_init(self)
TrainingArguments.__post_init__ = counting
train = Trainer.train
def train_and_report(self, *a, **k):
    result = train(self, *a, **k)
    losses = [r["loss"] for r in self.state.log_history if "loss" in r]
    json.dump({"tokens_per_s": self.state.num_input_tokens_seen / result.metrics["train_runtime"],
               "train_loss": losses[-1] if losses else result.metrics.get("train_loss")}, open(result_file, "w"))
    return result
Trainer.train = train_and_report
sys.argv = ["axolotl.cli.train", config]
runpy.run_module("axolotl.cli.train", run_name="__main__")
"""


def run_axolotl(model: Path, train: Path, out: Path, steps: int) -> dict:
    """Axolotl with tunewise's export of the same job (length-grouped, padded like the others), run through its
    own CLI; a wrapper reads the tokens it saw and its runtime from its HF Trainer."""
    from advisor.export import export, write_export
    from core.train_config import TrainConfig

    cfg = TrainConfig.model_validate(tunewise_config(model, train, out, steps, False))
    path = out.with_suffix(".axolotl.yaml")
    exported = export(cfg, "axolotl", path)
    # on a CPU: Axolotl's Triton LoRA kernels need CUDA; no checkpoints or evaluation inside the timed run
    exported.config.update(lora_mlp_kernel=False, lora_qkv_kernel=False, lora_o_kernel=False, save_strategy="no",
                           val_set_size=0.0)
    for key in ("eval_strategy", "save_steps", "eval_steps"):
        exported.config.pop(key, None)
    write_export(exported, path)
    env = {**ENV, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "AXOLOTL_DO_NOT_TRACK": "1", "WANDB_MODE": "disabled"}
    env.pop("PYTHONPATH")  # its own environment's packages, not tunewise's
    result = out.with_suffix(".axolotl.json")
    measured = run_measured([str(AXOLOTL_PY), "-c", AXOLOTL_SCRIPT, str(path), str(result)], env, cwd=path.parent)
    return {**json.loads(result.read_text()), **measured, "adapter": out}


def held_out_loss(model: Path, adapter: Path, held_out: Path) -> float:
    """The same answers' loss for every trainer's adapter (tunewise's encoder: assistant spans only)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.data import Collator, prepare

    tok = AutoTokenizer.from_pretrained(model, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(model, local_files_only=True)
    m = PeftModel.from_pretrained(base, adapter, local_files_only=True).eval()
    prepared = prepare(held_out, tok, max_seq_len=SEQ, val_size=0)
    collate = Collator(tok.pad_token_id)
    total = n = 0
    with torch.no_grad():
        for e in prepared.train:
            k = sum(x != -100 for x in e.labels[1:])
            total += float(m(**collate([{"input_ids": e.input_ids, "labels": e.labels}])).loss) * k
            n += k
    return total / n


def bench(size: str, steps: int, rounds: int, d: Path) -> list[dict]:
    from trainer.tiny import build_tiny_model

    recs = dataset(d / "all.jsonl")
    train, held = d / "train.jsonl", d / "held.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in recs[100:]))
    held.write_text("".join(json.dumps(r) + "\n" for r in recs[:100]))
    texts = [m["content"] for r in recs[:200] for m in r["messages"]]
    model = build_tiny_model(d / "model", texts, **SIZES[size], pretrain_steps=0)
    runners = {"tunewise (grouped)": lambda o: run_tunewise(model, train, o, steps, False),
               "tunewise (grouped, padding-free)": lambda o: run_tunewise(model, train, o, steps, True),
               "TRL SFTTrainer (grouped)": lambda o: run_trl(model, train, o, steps, False),
               "TRL SFTTrainer (grouped, padding-free)": lambda o: run_trl(model, train, o, steps, True)}
    if LF_PY.is_file():
        runners["LLaMA-Factory 0.9.5 (defaults)"] = lambda o: run_llamafactory(model, train, o, steps)
    if AXOLOTL_PY.is_file():
        runners["Axolotl 0.19.0 (grouped)"] = lambda o: run_axolotl(model, train, o, steps)
    results: dict[str, list[dict]] = {k: [] for k in runners}
    for r in range(rounds):  # interleaved: every trainer once per round
        for i, (name, run) in enumerate(runners.items()):
            results[name].append(run(d / f"r{r}-{i}"))
    rows = []
    for name, runs in results.items():
        rows.append({"model": size, "trainer": name,
                     "tokens_per_s": statistics.median(x["tokens_per_s"] for x in runs),
                     "wall_s": statistics.median(x["wall_s"] for x in runs),
                     "peak_mb": max(x["peak_mb"] for x in runs),
                     "train_loss": runs[-1]["train_loss"],
                     "held_out_loss": held_out_loss(model, runs[-1]["adapter"], held)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["tiny", "wide", "both"], default="tiny")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for size in (["tiny", "wide"] if args.model == "both" else [args.model]):
        with tempfile.TemporaryDirectory() as d:
            rows += bench(size, args.steps, args.rounds, Path(d))
    print(f"{'model':6s} {'trainer':40s} {'tokens/s':>9s} {'vs best peer':>12s} {'wall s':>7s} {'peak MB':>8s} "
          f"{'train loss':>10s} {'held-out loss':>13s}")
    for size in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == size]
        peer = max(r["tokens_per_s"] for r in group if not r["trainer"].startswith("tunewise"))
        for r in group:
            print(f"{size:6s} {r['trainer']:40s} {r['tokens_per_s']:9,.0f} {r['tokens_per_s'] / peer:11.2f}x "
                  f"{r['wall_s']:7.1f} {r['peak_mb']:8,.0f} {r['train_loss']:10.4f} {r['held_out_loss']:13.4f}")


if __name__ == "__main__":
    main()
