"""DoRA against LoRA at the same rank, measured on CPU: the magnitude vectors' parameters and the extra activations
DoRA keeps for backward. The estimator's DoRA terms (core/methods.py `Dora`) come from these numbers; the test
tests/test_methods.py pins the fitted constant.

    python bench/dora_memory.py            # a small random-weight Llama (hidden 256, 2 layers), fp32, no download

What is counted: every tensor autograd saves for backward during one forward pass (torch.autograd.graph
saved_tensors_hooks) and still alive when the forward pass ends, each storage once. The difference DoRA - LoRA per token, per decoder block, divided by the
summed output width of the adapted modules of a block, is the constant `DORA_SAVED_PER_OUT`: DoRA keeps that many
values per token and adapted output feature beyond LoRA (peft's DoRA scales the base output and the adapter output
by magnitude / ||W + BA||, and keeps both for the magnitude's gradient)."""

from __future__ import annotations

import json
import sys


def model(hidden: int, layers: int, intermediate: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=512, max_position_embeddings=512)
    return LlamaForCausalLM(cfg)


def adapted(hidden: int, layers: int, intermediate: int, dora: bool, r: int = 16):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = model(hidden, layers, intermediate)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM",
                     bias="none", use_dora=dora)
    return get_peft_model(base, cfg)


def kept_bytes(m, batch: int, seq: int) -> int:
    """Bytes autograd keeps for backward at the end of one forward pass, each storage once (a tensor saved and
    released during the forward pass, such as DoRA's weight-norm input, is not counted)."""
    import gc
    import weakref

    import torch

    refs: list[weakref.ref] = []

    def pack(t):
        refs.append(weakref.ref(t))
        return t

    ids = torch.randint(0, 512, (batch, seq))
    m.train()
    torch.manual_seed(1)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = m(input_ids=ids, labels=ids)
    gc.collect()
    alive = {}
    for ref in refs:
        t = ref()
        if t is not None:
            alive[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    out.loss.backward()
    return sum(alive.values())


def step_seconds(models: dict, batch: int = 8, seq: int = 128, rounds: int = 8) -> dict[str, float]:
    """Median seconds of one forward + backward pass of each model (CPU, fp32), the models' steps interleaved so
    that a busy machine slows them alike; one warm-up round first."""
    import statistics
    import time

    import torch

    ids = torch.randint(0, 512, (batch, seq))
    times: dict[str, list[float]] = {name: [] for name in models}
    for i in range(rounds + 1):
        for name, m in models.items():
            m.train()
            start = time.perf_counter()
            m(input_ids=ids, labels=ids).loss.backward()
            if i:
                times[name].append(time.perf_counter() - start)
    return {name: round(statistics.median(t), 4) for name, t in times.items()}


def trainable(m) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def measure(hidden: int = 256, layers: int = 2, intermediate: int = 688, r: int = 16) -> dict:
    kv = hidden // 4 * 2  # 2 key-value heads of hidden / 4
    outs = 2 * hidden + 2 * kv + 2 * intermediate + hidden  # q, o, k, v, gate, up, down: output widths per block
    weights = layers * (2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * intermediate)  # adapted matrices
    rows, points = [], []
    for batch, seq in ((2, 64), (4, 128), (8, 128)):
        lora, dora = adapted(hidden, layers, intermediate, False, r), adapted(hidden, layers, intermediate, True, r)
        kept_l, kept_d = kept_bytes(lora, batch, seq), kept_bytes(dora, batch, seq)
        tokens = batch * seq
        points.append((tokens, kept_d - kept_l))
        rows.append({"batch": batch, "seq": seq, "lora_kept_mb": round(kept_l / 1e6, 3),
                     "dora_kept_mb": round(kept_d / 1e6, 3), "extra_kept_mb": round((kept_d - kept_l) / 1e6, 3)})
    # least squares: extra kept bytes = slope × tokens + intercept
    n = len(points)
    mt, me = sum(t for t, _ in points) / n, sum(e for _, e in points) / n
    slope = sum((t - mt) * (e - me) for t, e in points) / sum((t - mt) ** 2 for t, _ in points)
    intercept = me - slope * mt
    fit = {"kept_values_per_token_and_adapted_output": round(slope / 4 / (layers * outs), 3),  # fp32: 4 bytes
           "kept_constant_mb": round(intercept / 1e6, 3),
           "adapted_weights_mb": round(weights * 4 / 1e6, 3)}
    lora, dora = adapted(hidden, layers, intermediate, False, r), adapted(hidden, layers, intermediate, True, r)
    return {"model": {"hidden": hidden, "layers": layers, "intermediate": intermediate, "rank": r,
                      "targets": "all-linear", "adapted_output_width_per_block": outs},
            "trainable_lora": trainable(lora), "trainable_dora": trainable(dora),
            "magnitude_params": trainable(dora) - trainable(lora),
            "magnitude_params_expected": layers * outs,  # one magnitude per output feature of each adapted module
            "activations": rows, "fit": fit,
            "step_seconds": step_seconds({"lora": lora, "dora": dora})}


if __name__ == "__main__":
    json.dump(measure(), sys.stdout, indent=2)
    print()
