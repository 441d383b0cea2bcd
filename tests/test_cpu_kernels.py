"""CPU fast paths of the trainer: the fused LoRA linear (trainer/lora_cpu.py) computes what peft computes, forwards
and backwards, and falls back to peft wherever it would not; lane-drawn dropout (trainer/dropout.py) drops at the
stated rate and keeps every activation's expectation."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")


def tiny_peft_model(dropout: float, arch: str = "llama", **lora):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    size = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2)
    base = LlamaForCausalLM(LlamaConfig(**size)) if arch == "llama" else Qwen2ForCausalLM(Qwen2Config(**size))
    # init_lora_weights=False: B is not zero, so the adapter's path shows in outputs and gradients
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules="all-linear", init_lora_weights=False,
                     **lora)
    return get_peft_model(base, cfg)


def pair(dropout: float, **kw):
    """The same peft model twice, the second fused; both draw dropout masks as lanes (CheapDropout)."""
    from trainer.dropout import use_cheap_dropout
    from trainer.lora_cpu import fuse_lora_layers

    plain = tiny_peft_model(dropout, **kw)
    fused = copy.deepcopy(plain)
    n = fuse_lora_layers(fused)
    use_cheap_dropout(plain)
    use_cheap_dropout(fused)
    return plain, fused, n


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 96, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def loss_and_grads(model, seed: int = 5, **kw):
    model.zero_grad()
    torch.manual_seed(seed)  # the same dropout masks for both models
    out = model(**batch(), **kw)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def assert_same(a, b, tol=1e-5):
    (la, ga), (lb, gb) = a, b
    assert torch.allclose(la, lb, atol=tol), (la, lb)
    assert ga.keys() == gb.keys()
    for name in ga:
        assert torch.allclose(ga[name], gb[name], atol=tol, rtol=1e-4), name


@pytest.mark.parametrize("arch", ["llama", "qwen2"])  # qwen2: q/k/v with a bias
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_fused_lora_matches_peft_forward_and_backward(arch, dropout, monkeypatch):
    from trainer import lora_cpu

    plain, fused, n = pair(dropout, arch=arch)
    assert n == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 layers
    plain.train(), fused.train()
    calls = []
    real = lora_cpu._LoraLinear.apply
    monkeypatch.setattr(lora_cpu._LoraLinear, "apply", lambda *a: calls.append(1) or real(*a))
    expected = loss_and_grads(plain)
    assert not calls  # the reference is peft's own forward
    assert_same(expected, loss_and_grads(fused))
    assert len(calls) == n  # ... and every layer of the compared model took the fused path
    # a different seed gives different masks, so a different loss: the masks are drawn, not skipped
    if dropout:
        assert not torch.allclose(loss_and_grads(fused)[0], loss_and_grads(fused, seed=6)[0])


def test_fused_lora_eval_has_no_dropout_and_matches_peft():
    plain, fused, _ = pair(0.3)
    plain.eval(), fused.eval()
    with torch.no_grad():
        a, b = plain(**batch()).logits, fused(**batch()).logits
        torch.manual_seed(99)
        c = fused(**batch()).logits
    assert torch.allclose(a, b, atol=1e-6) and torch.equal(b, c)


def test_fused_lora_under_reentrant_checkpointing_recomputes_the_same_masks():
    plain, fused, _ = pair(0.1)
    for m in (plain, fused):
        m.base_model.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        m.base_model.model.enable_input_require_grads()
        m.train()
    reference, _, _ = pair(0.1)
    reference.train()
    assert_same(loss_and_grads(reference), loss_and_grads(fused))
    assert_same(loss_and_grads(plain), loss_and_grads(fused))


def test_fused_lora_falls_back_to_peft_where_it_would_differ(monkeypatch):
    from trainer import lora_cpu

    plain, fused, _ = pair(0.0)
    calls = []
    real = lora_cpu._LoraLinear.apply
    monkeypatch.setattr(lora_cpu._LoraLinear, "apply", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        fused(**batch())
        assert len(calls) == 14
        calls.clear()
        with fused.disable_adapter():  # adapters off: the base model's logits
            off = fused(**batch()).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused(**batch())
        assert not calls
        with plain.disable_adapter():
            assert torch.equal(off, plain(**batch()).logits)
        fused.merge_adapter()
        merged = fused(**batch()).logits
        assert not calls and torch.allclose(merged, plain(**batch()).logits, atol=1e-5)


def test_layers_fusing_cannot_compute_are_left_alone():
    from trainer.lora_cpu import fuse_lora_layers

    assert fuse_lora_layers(tiny_peft_model(0.0, use_dora=True)) == 0  # DoRA: a weight-norm variant
    assert fuse_lora_layers(tiny_peft_model(0.0, lora_bias=True)) == 0  # LoRA's B with a bias
    half = tiny_peft_model(0.0)
    half.base_model.model.model.to(torch.bfloat16)  # a bf16 base under fp32 adapters (peft's default upcast)
    for m in half.modules():
        if hasattr(m, "lora_A"):
            m.base_layer.to(torch.bfloat16)
            m.lora_A.to(torch.float32), m.lora_B.to(torch.float32)
    assert fuse_lora_layers(half) == 0


def test_adapter_files_are_the_same_after_fusing(tmp_path):
    from safetensors.torch import load_file

    plain, fused, _ = pair(0.05)
    plain.save_pretrained(tmp_path / "a")
    fused.save_pretrained(tmp_path / "b")
    a, b = load_file(tmp_path / "a" / "adapter_model.safetensors"), load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lane_constants():
    from trainer.dropout import drop_count, keep_scale

    assert drop_count(0.05) == 3277 and drop_count(0.1) == 6554 and drop_count(1e-6) == 0
    assert keep_scale(0.05) == 65536 / (65536 - 3277)


@pytest.mark.parametrize("p", [0.05, 0.5])
def test_lane_drawn_dropout_rate_and_expectation(p):
    from trainer.dropout import CheapDropout, drop_count

    torch.manual_seed(0)
    d = CheapDropout(p).train()
    x = torch.ones(1000, 1000)
    y = d(x)
    share = (y == 0).float().mean().item()
    assert abs(share - drop_count(p) / 65536) < 0.002  # 1M Bernoulli draws: 4+ standard deviations
    assert abs(y.mean().item() - 1.0) < 0.005  # kept elements scaled by the exact keep rate
    x.requires_grad_(True)
    torch.manual_seed(0)
    d(x).sum().backward()
    assert torch.equal(x.grad, y)  # the gradient: 0 where dropped, the keep scale elsewhere (same seed, same mask)
    assert torch.equal(d.eval()(x), x)


def test_lanes_are_independent_of_their_neighbours():
    """The four 16-bit lanes of one 64-bit draw drop independently (no lane copies another)."""
    from trainer.dropout import draw_drops

    torch.manual_seed(0)
    drops = draw_drops(torch.Size([400_000, 4]), 0.5, "cpu").float()
    both = (drops[:, 0] * drops[:, 1]).mean().item()
    assert abs(both - 0.25) < 0.005 and abs(drops[:, 3].mean().item() - 0.5) < 0.005


def test_use_cheap_dropout_swaps_only_plain_dropouts():
    from trainer.dropout import CheapDropout, use_cheap_dropout

    model = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Dropout(0.0), torch.nn.Linear(2, 2),
                                torch.nn.Sequential(torch.nn.Dropout(0.2)))
    assert use_cheap_dropout(model) == 2
    assert type(model[0]) is CheapDropout and model[0].p == 0.1 and type(model[1]) is torch.nn.Dropout
    assert type(model[3][0]) is CheapDropout
