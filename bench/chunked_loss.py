"""The chunked loss against the plain one: peak memory and speed of a training step (forward + backward) of a
large-vocabulary model, each variant in a fresh process.

On the CPU the peak is the process's resident memory (ru_maxrss) minus its reading once the model and batch exist;
on CUDA (--device cuda) the allocator's peak (max_memory_allocated) minus the same baseline. The model is a small
Llama with a real 128k vocabulary (Llama 3's 128,256 by default), randomly initialised: memory and speed do not
depend on the weights.

    python bench/chunked_loss.py [--vocab 128256] [--hidden 256] [--layers 2] [--batch 4] [--seq 512]
                                 [--steps 5] [--device cpu|cuda] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("plain", "chunked", "liger", "cut_cross_entropy")


def one(args) -> dict:
    """Run one variant in this process and return its numbers."""
    import resource
    import statistics
    import time

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.loss import LossPlan, compute_lm_loss

    torch.manual_seed(0)
    dev = torch.device(args.device)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.hidden * 3,
                      num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
                      num_key_value_heads=max(1, args.hidden // 128), tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).to(dev, dtype)
    model.train()
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), device=dev)
    labels = ids.clone()
    labels[:, : args.seq // 4] = -100  # a prompt: a quarter of each row carries no loss
    batch = {"input_ids": ids, "labels": labels}

    def rss() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9

    def step():
        if args.variant == "plain":
            loss = model(**batch).loss
        else:
            loss = compute_lm_loss(LossPlan(args.variant, "bench"), model, batch)
        loss.backward()
        model.zero_grad(set_to_none=False)  # gradients stay allocated: each step measures the same state
        return float(loss)

    if args.device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated() / 1e9
        torch.cuda.reset_peak_memory_stats()
    else:
        # the parameter gradients exist in both variants: allocate them first so the baseline holds them
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        base = rss()
    times, loss = [], None
    for _ in range(args.steps + 1):
        t0 = time.perf_counter()
        loss = step()
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 1e9 if args.device == "cuda" else rss()
    return {"variant": args.variant, "peak_above_model_gb": round(peak - base, 3),
            "s_per_step": round(statistics.median(times[1:]), 4), "loss": round(loss, 5)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=128256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # internal: run one variant here
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.variant:
        print(json.dumps(one(args)))
        return
    import importlib.util

    variants = ["plain", "chunked"]
    if args.device == "cuda":
        variants += [v for v, m in (("liger", "liger_kernel"), ("cut_cross_entropy", "cut_cross_entropy"))
                     if importlib.util.find_spec(m)]
    rows = []
    for v in variants:
        cmd = [sys.executable, __file__, "--variant", v, *[f"--{k}={getattr(args, k)}" for k in
                                                           ("vocab", "hidden", "layers", "batch", "seq", "steps",
                                                            "device")]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    plain = rows[0]
    for r in rows:
        r["memory_vs_plain"] = round(r["peak_above_model_gb"] / plain["peak_above_model_gb"], 3)
        r["time_vs_plain"] = round(r["s_per_step"] / plain["s_per_step"], 3)
    logits_gb = args.batch * args.seq * args.vocab * (2 if args.device == "cuda" else 4) / 1e9
    result = {"device": args.device, "vocab": args.vocab, "tokens": args.batch * args.seq,
              "one_logits_tensor_gb": round(logits_gb, 3), "rows": rows}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{args.device}: vocabulary {args.vocab:,}, {args.batch} x {args.seq} tokens (one logits tensor "
          f"{logits_gb:.2f} GB), hidden {args.hidden}, {args.layers} layers; forward + backward")
    print(f"{'loss':20s} {'peak above model GB':>20s} {'x plain':>8s} {'s/step':>8s} {'x plain':>8s} {'loss':>9s}")
    for r in rows:
        print(f"{r['variant']:20s} {r['peak_above_model_gb']:20.3f} {r['memory_vs_plain']:8.2f} "
              f"{r['s_per_step']:8.3f} {r['time_vs_plain']:8.2f} {r['loss']:9.4f}")


if __name__ == "__main__":
    main()
