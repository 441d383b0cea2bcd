"""The trainer for real on a tiny local model: every method learns, outputs reload to the same logits."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_yaml
from tests.trainer_fixtures import train_config, write_dataset

METHODS = {
    "full": {"name": "full"},
    "lora": {"name": "lora", "lora_r": 8, "lora_alpha": 16},
    "qlora": {"name": "qlora", "lora_r": 8, "lora_alpha": 16},
    "p_tuning": {"name": "p_tuning", "num_virtual_tokens": 8, "encoder_hidden_size": 64},
    "dora": {"name": "dora", "lora_r": 8, "lora_alpha": 16},
    "lora+checkpointing": {"name": "lora", "lora_r": 8, "lora_alpha": 16},
    "qlora+checkpointing": {"name": "qlora", "lora_r": 8, "lora_alpha": 16},
}


def logits_of(model, batch):
    import torch

    model.eval()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()


def reload_output(method: str, out, base_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if method == "full":
        return AutoModelForCausalLM.from_pretrained(out, local_files_only=True, use_safetensors=True)
    kw = {}
    if method == "qlora":
        import torch

        kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                       bnb_4bit_use_double_quant=True,
                                                       bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(base_path, local_files_only=True, **kw)
    model = PeftModel.from_pretrained(base, out, local_files_only=True)
    if method == "qlora":
        from trainer.model import disable_avx512_repack

        disable_avx512_repack(model)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_method_learns_and_output_reloads(tmp_path, tiny_model, method):
    from trainer.data import Collator
    from trainer.run import fit

    data = write_dataset(tmp_path / "d.jsonl")
    out = tmp_path / "out"
    extra = {"gradient_checkpointing": True} if method.endswith("+checkpointing") else {}
    cfg = write_yaml(tmp_path / "train.yaml", train_config(tiny_model, data, out, METHODS[method], **extra))
    r = fit(str(cfg), progress=False)
    s = r.summary
    assert s.eval_loss_last < 0.9 * s.eval_loss_first, s
    history = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [h for h in history if "eval_loss" in h]
    assert len(evals) >= 3  # at start, mid-training, end
    # loss keeps falling after a mid-training evaluation (guards bitsandbytes' CPU repack pitfall)
    after_mid = [h["loss"] for h in history if "loss" in h and h["step"] > evals[1]["step"]]
    assert after_mid and after_mid[-1] < evals[1]["eval_loss"] * 1.05 and min(after_mid) < max(after_mid)
    for f in ("summary.json", "loss.png", "tunewise_config.yaml", "tokenizer.json"):
        assert (out / f).is_file(), f
    method = method.split("+")[0]
    # CPU: every LoRA linear (q, k, v, o, gate, up, down of 2 layers) trains through the fused forward
    assert s.cpu_kernels.fused_lora_layers == (14 if method == "lora" else 0)
    assert (out / ("model.safetensors" if method == "full" else "adapter_model.safetensors")).is_file()
    assert "chat_template" in (out / "tokenizer_config.json").read_text() or (out / "chat_template.jinja").is_file()
    val = r.prepared.val
    batch = Collator(r.tokenizer.pad_token_id)([{"input_ids": e.input_ids, "labels": e.labels} for e in val[:4]])
    before = logits_of(r.trainer.model, batch)
    after = logits_of(reload_output(method, out, tiny_model), batch)
    assert (before - after).abs().max().item() < 1e-4
    assert s.trainable_params > 0 and s.tokens_per_second > 0 and s.peak_memory_gb > 0


@pytest.mark.parametrize("size,method,limit", [
    # ~110M Llama with the LoRA paper's setting (r=8 on q_proj and v_proj): ~0.27%
    (dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12),
     dict(lora_r=8, target_modules=["q_proj", "v_proj"]), 0.01),
    # Llama-2-7B with tunewise's default (r=16 on every linear layer): ~0.6%
    (dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32), {}, 0.01),
])
def test_lora_trainable_share(size, method, limit):
    from accelerate import init_empty_weights
    from peft import get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.train_config import LoraMethod
    from trainer.model import peft_config

    cfg = LlamaConfig(vocab_size=32000, num_key_value_heads=size["num_attention_heads"], **size)
    with init_empty_weights():
        model = get_peft_model(LlamaForCausalLM(cfg), peft_config(LoraMethod(**method)))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert trainable / total < limit, f"{trainable:,} / {total:,} = {trainable / total:.3%}"


@pytest.mark.slow
def test_merge_lora(tmp_path, tiny_model):
    from trainer.merge import merge
    from trainer.run import train

    data = write_dataset(tmp_path / "d.jsonl")
    cfg = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, data, tmp_path / "out", METHODS["lora"], max_steps=10))
    train(str(cfg), progress=False)
    r = merge(str(tmp_path / "out"))
    assert r["ok"] and r["max_abs_logit_diff"] < 1e-3 and r["reload_max_abs_logit_diff"] < 1e-5
    assert (tmp_path / "out" / "merged" / "model.safetensors").is_file()
