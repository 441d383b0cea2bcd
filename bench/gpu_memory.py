"""Issue 33's GPU measurements, each against the estimate, for when a CUDA device is available:

1. the loss: plain vs tunewise's chunked loss (vs liger-kernel / cut-cross-entropy when installed), a model with
   Llama 3's 128k vocabulary (bench/chunked_loss.py --device cuda);
2. attention: eager vs SDPA peak at growing sequence lengths (the quadratic scores);
3. loading: a 16-bit checkpoint quantised to 4 bits while loading (QLoRA): allocated and reserved peaks during the
   load, and after the cache is emptied.

Every model is randomly initialised and saved locally (no download). Prints a table per part; --json for scripts.

    python bench/gpu_memory.py [--json] [--skip loss,attention,load]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GB = 1e9


def part_loss() -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "chunked_loss.py"), "--device", "cuda", "--hidden",
                          "2048", "--layers", "4", "--batch", "2", "--seq", "4096", "--steps", "5", "--json"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def _llama(vocab=128256, hidden=2048, layers=8, heads=16, kv=8, inter=8192):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                       num_key_value_heads=kv, intermediate_size=inter, tie_word_embeddings=False)


def _shape(cfg):
    from core.estimate.shapes import shape_from_config_dict

    return shape_from_config_dict(cfg.to_dict(), "bench model")


def part_attention(seqs=(1024, 2048, 4096)) -> list[dict]:
    """Full forward + backward in bf16 with gradient checkpointing, batch 1, eager vs SDPA: measured peaks and the
    estimate's (allocated, full fine-tune without optimizer states: SGD)."""
    import torch
    from transformers import LlamaForCausalLM

    from core.estimate import EstimateRequest, estimate

    cfg = _llama(vocab=32000, layers=8)
    rows = []
    for impl in ("sdpa", "eager"):
        torch.manual_seed(0)
        model = LlamaForCausalLM._from_config(cfg, attn_implementation=impl, dtype=torch.bfloat16).cuda()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        for seq in seqs:
            ids = torch.randint(0, cfg.vocab_size, (1, seq), device="cuda")
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            model(input_ids=ids, labels=ids).loss.backward()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            model.zero_grad(set_to_none=True)
            est = estimate(_shape(cfg), EstimateRequest(method="full", seq_len=seq, attention=impl, loss="plain",
                                                        optimizer="sgd", precision="bf16", gpu_memory_gb=1e6))
            rows.append({"attention": impl, "seq_len": seq, "measured_allocated_gb": round(peak / GB, 3),
                         "above_weights_gb": round((peak - base) / GB, 3),
                         "estimated_allocated_gb": est.phases["forward_backward"]})
        del model
        torch.cuda.empty_cache()
    return rows


def part_load() -> dict:
    """Save a 16-bit Llama, load it with bitsandbytes NF4 (what tunewise's QLoRA does), and read the peaks."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaForCausalLM

    from core.estimate import EstimateRequest, estimate

    cfg = _llama(layers=16)
    with tempfile.TemporaryDirectory() as tmp:
        LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(tmp, max_shard_size="5GB")
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=q, dtype=torch.bfloat16,
                                                     device_map={"": 0})
        torch.cuda.synchronize()
        measured = {"allocated_peak_gb": torch.cuda.max_memory_allocated() / GB,
                    "reserved_peak_gb": torch.cuda.max_memory_reserved() / GB,
                    "allocated_after_gb": torch.cuda.memory_allocated() / GB}
        torch.cuda.empty_cache()
        measured["reserved_after_empty_cache_gb"] = torch.cuda.memory_reserved() / GB
        del model
    est = estimate(_shape(cfg), EstimateRequest(method="qlora", seq_len=512, gpu_memory_gb=1e6))
    return {"measured": {k: round(v, 3) for k, v in measured.items()},
            "estimated": {"load_allocated_gb": est.phases.get("load"), "load_reading_gb": est.load_gb,
                          "step_reading_gb": est.step_gb}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: loss, attention, load")
    args = p.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("bench/gpu_memory.py: no CUDA GPU here, nothing measured (bench/chunked_loss.py measures the loss on a "
              "CPU)")
        return
    skip = set(filter(None, args.skip.split(",")))
    result = {"device": torch.cuda.get_device_name(0)}
    for name, fn in (("loss", part_loss), ("attention", part_attention), ("load", part_load)):
        if name not in skip:
            try:
                result[name] = fn()
            except Exception as e:  # noqa: BLE001 - one part failing must not hide the others' numbers
                result[name] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result, indent=1) if args.json else _render(result))


def _render(r: dict) -> str:
    lines = [f"device: {r['device']}"]
    loss = r.get("loss")
    if isinstance(loss, dict) and "rows" in loss:
        lines.append(f"loss ({loss['tokens']} tokens, vocabulary {loss['vocab']:,}):")
        for row in loss["rows"]:
            lines.append(f"  {row['variant']:18s} peak above model {row['peak_above_model_gb']:7.3f} GB "
                         f"(x{row['memory_vs_plain']:.2f})  {row['s_per_step']:.4f} s/step (x{row['time_vs_plain']:.2f})")
    elif loss:
        lines.append(f"loss: {loss}")
    att = r.get("attention")
    if isinstance(att, list):
        lines.append("attention (bf16, checkpointing, batch 1): measured vs estimated allocated GB")
        for row in att:
            lines.append(f"  {row['attention']:6s} {row['seq_len']:6d}  {row['measured_allocated_gb']:8.3f}  "
                         f"{row['estimated_allocated_gb']:8.3f}")
    elif att:
        lines.append(f"attention: {att}")
    if r.get("load"):
        lines.append(f"load: {r['load']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
