"""Training throughput: tunewise vs a plain TRL SFTTrainer script, same model, data and LoRA settings.

Both train a locally built Llama (hidden 256, 4 layers) with LoRA r=16 on all linear layers, assistant-only loss,
batch 8, for the same number of steps on CPU, and count the non-padding tokens processed per second of training.
Target (issue #7): ratio tunewise / TRL >= 1.0."""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STEPS, BATCH, SEQ = 40, 8, 512


def dataset(path: Path, n: int = 600) -> list[dict]:
    rng = random.Random(0)
    words = ["order", "parcel", "refund", "invoice", "screen", "battery", "delay", "charge", "account", "login", "password", "warranty"]
    recs = []
    for i in range(n):
        ask = " ".join(rng.choice(words) for _ in range(rng.randint(8, 120)))
        ans = json.dumps({"id": i, "category": rng.choice(words), "summary": " ".join(rng.choice(words)
                                                                                      for _ in range(rng.randint(4, 60)))})
        recs.append({"messages": [{"role": "system", "content": "Turn the message into a JSON ticket."},
                                  {"role": "user", "content": ask}, {"role": "assistant", "content": ans}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return recs


def run_tunewise(model: Path, data: Path, out: Path) -> float:
    from trainer.run import train

    cfg = {"model": {"path": str(model)}, "data": {"path": str(data), "max_seq_len": SEQ, "val_size": 8},
           "method": {"name": "lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05},
           "training": {"max_steps": STEPS, "batch_size": BATCH, "logging_steps": 10, "eval_steps": 10_000,
                        "save_steps": 10_000, "group_by_length": True},
           "output": {"dir": str(out)}}
    (out.parent / "tw.yaml").write_text(json.dumps(cfg))
    s = train(str(out.parent / "tw.yaml"), progress=False, force=True)
    return s["tokens_seen"] / train_seconds(out)


def train_seconds(out: Path) -> float:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["train_runtime"] for r in rows if "train_runtime" in r][-1]  # the final row holds the total


def run_trl(model: Path, recs: list[dict], out: Path) -> float:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model, local_files_only=True)
    m = AutoModelForCausalLM.from_pretrained(model, local_files_only=True)
    args = SFTConfig(output_dir=str(out), max_steps=STEPS, per_device_train_batch_size=BATCH, max_length=SEQ,
                     assistant_only_loss=True, logging_steps=10, save_strategy="no", report_to="none", use_cpu=True,
                     include_num_input_tokens_seen="non_padding", disable_tqdm=True)
    trainer = SFTTrainer(model=m, args=args, train_dataset=Dataset.from_list(recs[8:]), processing_class=tok,
                         peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                                task_type="CAUSAL_LM"))
    t = time.perf_counter()
    result = trainer.train()
    runtime = result.metrics.get("train_runtime", time.perf_counter() - t)
    return trainer.state.num_input_tokens_seen / runtime


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from trainer.run import quiet_libraries
    from trainer.tiny import build_tiny_model

    quiet_libraries()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        recs = dataset(d / "data.jsonl")
        texts = [m["content"] for r in recs[:200] for m in r["messages"]]
        model = build_tiny_model(d / "model", texts, hidden=256, layers=4, heads=8, kv_heads=4, intermediate=688,
                                 pretrain_steps=0)
        trl_tps = run_trl(model, recs, d / "trl")
        tw_tps = run_tunewise(model, d / "data.jsonl", d / "tw")
    print(f"TRL SFTTrainer   {trl_tps:10,.0f} tokens/s (non-padding)")
    print(f"tunewise         {tw_tps:10,.0f} tokens/s (non-padding)")
    print(f"ratio            {tw_tps / trl_tps:10.2f}   (target >= 1.0)  {'OK' if tw_tps >= trl_tps else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
