"""Estimated vs measured peak memory of real training runs on this CPU.

Builds a tiny Llama and a ~110M-parameter Llama locally, trains each for a few steps with tunewise's trainer
in full, LoRA, QLoRA and P-tuning, with and without gradient checkpointing (batch 4 × 256 tokens, fp32), and
compares the process's peak resident memory with `tunewise estimate` for the same settings (device cpu).
Targets (issue #4): every row within 25 %, mean absolute error within 15 %.

`--gpu` (when a CUDA GPU is lent): the same rows on the GPU in bf16, measuring the allocator's peak
(torch.cuda.max_memory_allocated) and the device reading (nvidia-smi's memory of the process, which adds the CUDA
context and the allocator's reserve), against the estimate's `allocated_gb` and `total_gb`."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = {
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=176, model_vocab_size=1024),
    "llama-110m": dict(hidden=768, layers=12, heads=12, kv_heads=12, intermediate=2048, model_vocab_size=32000),
}
METHODS = {"full": {"name": "full"}, "lora": {"name": "lora"}, "qlora": {"name": "qlora"},
           "p_tuning": {"name": "p_tuning", "num_virtual_tokens": 20, "encoder_hidden_size": 128}}
SEQ, BATCH, STEPS = 256, 4, 3


def device_reading_gb() -> float | None:
    """nvidia-smi's memory of this process (reserved + CUDA context), in GB."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        pid, mib = (x.strip() for x in line.split(","))
        if pid == str(os.getpid()):
            return int(mib) * 2**20 / 1e9
    return None


def one_row(model_dir: str, data: str, method: str, gc: bool, out: str, gpu: bool = False) -> None:
    """Runs in its own process: train a few steps, print the peak memory in GB (RSS on CPU; allocated and the
    device reading on a GPU)."""
    from trainer.run import train
    from trainer.tiny import general_corpus  # noqa: F401  (imports counted like a real run)

    cfg = {"model": {"path": model_dir, "dtype": "bfloat16" if gpu else "float32"},
           "data": {"path": data, "format": "text", "max_seq_len": SEQ, "val_size": 4},
           "method": METHODS[method],
           "training": {"max_steps": STEPS, "batch_size": BATCH, "eval_batch_size": 1, "gradient_checkpointing": gc,
                        "logging_steps": 1, "group_by_length": False, "save_steps": 1000, "eval_steps": 1000},
           "output": {"dir": out}}
    path = Path(out).with_suffix(".yaml")
    path.write_text(json.dumps(cfg))
    train(str(path), progress=False, force=True)
    if gpu:
        import torch

        print(json.dumps({"peak_gb": torch.cuda.max_memory_allocated() / 1e9, "device_gb": device_reading_gb()}))
        return
    print(json.dumps({"peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}))


def estimate_row(model_dir: str, method: str, gc: bool, gpu: bool = False):
    """The estimate for a row: total GB on CPU; (allocated, device reading) on a GPU."""
    from core.estimate import EstimateRequest, estimate, shape_from_config

    m = METHODS[method]
    req = EstimateRequest(method=method, seq_len=SEQ, batch_size=BATCH, gradient_checkpointing=gc,
                          precision="bf16" if gpu else "fp32", device="cuda" if gpu else "cpu", gpu_memory_gb=1e9,
                          num_virtual_tokens=m.get("num_virtual_tokens", 20),
                          encoder_hidden_size=m.get("encoder_hidden_size"))
    est = estimate(shape_from_config(model_dir), req, suggest=False)
    return (est.allocated_gb, est.total_gb) if gpu else est.total_gb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--row", nargs=5, metavar=("MODEL_DIR", "DATA", "METHOD", "GC", "OUT"))
    ap.add_argument("--models", default="tiny,llama-110m")
    ap.add_argument("--gpu", action="store_true", help="run on the CUDA GPU in bf16 (allocated peak and device reading)")
    args = ap.parse_args()
    if args.row:
        one_row(args.row[0], args.row[1], args.row[2], args.row[3] == "1", args.row[4], gpu=args.gpu)
        return
    from trainer.tiny import build_tiny_model, general_corpus

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "text.jsonl"
        corpus = " ".join(general_corpus())
        data.write_text("".join(json.dumps({"text": (corpus[i:] + corpus)[:6000]}) + "\n" for i in range(0, 4000, 100)))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for name in args.models.split(","):
            model_dir = build_tiny_model(tmp / name, pretrain_steps=0, **MODELS[name])
            for method in METHODS:
                for gc in (False, True):
                    out = tmp / f"run-{name}-{method}-{int(gc)}"
                    p = subprocess.run([sys.executable, __file__, "--row", str(model_dir), str(data), method,
                                        str(int(gc)), str(out), *(["--gpu"] if args.gpu else [])],
                                       capture_output=True, text=True, env=env)
                    if p.returncode != 0:
                        print(f"{name} {method} gc={gc}: FAILED\n{p.stderr[-2000:]}")
                        continue
                    got = json.loads(p.stdout.strip().splitlines()[-1])
                    measured = got["peak_gb"]
                    est = estimate_row(str(model_dir), method, gc, gpu=args.gpu)
                    if args.gpu:
                        (est, device_est), device = est, got.get("device_gb")
                        if device:
                            print(f"{name:11s} {method:9s} gc={'on ' if gc else 'off'} device reading: estimate "
                                  f"{device_est:6.3f} GB, measured {device:6.3f} GB ({(device_est - device) / device:+.1%})")
                    rows.append((name, method, gc, est, measured, (est - measured) / measured))
                    print(f"{name:11s} {method:9s} gc={'on ' if gc else 'off'} estimate {est:6.3f} GB  "
                          f"measured {measured:6.3f} GB  error {rows[-1][-1]:+6.1%}", flush=True)
    errs = [abs(r[-1]) for r in rows]
    worst = max(errs)
    mean = sum(errs) / len(errs)
    print(f"\nrows {len(rows)}  worst |error| {worst:.1%} (target <= 25%)  mean |error| {mean:.1%} (target <= 15%)  "
          f"{'OK' if worst <= 0.25 and mean <= 0.15 else 'OUTSIDE TARGET'}")


if __name__ == "__main__":
    main()
