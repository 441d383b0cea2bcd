"""The chunked loss equals the plain one (value and gradients), the trainer uses it and says so, and the estimator
models it. Tolerances: fp32 1e-5 relative (different summation order only); bf16 loss 1e-3 and gradients 2e-2
relative in norm (bf16 has 8 bits of mantissa: the plain path rounds the logits, the chunked path the same
chunk by chunk)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from trainer.loss import (  # noqa: E402
    IGNORE,
    choose_loss,
    chunk_rows,
    chunked_lm_loss,
    compute_lm_loss,
    head_ok_from_config,
    output_head,
)

FP32 = dict(rtol=1e-5, atol=1e-6)


def plain_loss(hidden, weight, labels, num_items=None, softcap=None):
    """transformers' own causal-LM loss over the full logits."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    logits = hidden @ weight.t()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return ForCausalLMLoss(logits, labels, weight.shape[0], num_items_in_batch=num_items)


def _case(dtype=torch.float32, batch=3, seq=37, hidden=48, vocab=3001, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, seq, hidden, generator=g).to(dtype)
    w = (torch.randn(vocab, hidden, generator=g) * 0.2).to(dtype)
    labels = torch.randint(0, vocab, (batch, seq), generator=g)
    labels[:, :5] = IGNORE  # a prompt
    labels[1, 20:] = IGNORE  # padding
    return h, w, labels


def _both(dtype, num_items=None, softcap=None, chunk=None):
    h, w, labels = _case(dtype)
    results = []
    for fn in (lambda a, b: plain_loss(a, b, labels, num_items, softcap),
               lambda a, b: chunked_lm_loss(a, b, labels, num_items, softcap, chunk=chunk)):
        a, b = h.clone().requires_grad_(), w.clone().requires_grad_()
        loss = fn(a, b)
        (loss * 1.7).backward()  # a scaled loss: backward must pass the incoming gradient on
        results.append((loss.detach().float(), a.grad.float(), b.grad.float()))
    return results


@pytest.mark.parametrize("num_items,softcap,chunk", [(None, None, None), (57, None, 16), (None, 30.0, 7),
                                                     (None, None, 10_000)])
def test_fp32_value_and_gradients_equal_the_plain_loss(num_items, softcap, chunk):
    (l0, gh0, gw0), (l1, gh1, gw1) = _both(torch.float32, num_items, softcap, chunk)
    torch.testing.assert_close(l1, l0, **FP32)
    torch.testing.assert_close(gh1, gh0, **FP32)
    torch.testing.assert_close(gw1, gw0, **FP32)


def test_bf16_matches_within_its_rounding():
    (l0, gh0, gw0), (l1, gh1, gw1) = _both(torch.bfloat16)
    assert abs(l1 - l0) / l0 < 1e-3
    assert (gh1 - gh0).norm() / gh0.norm() < 2e-2
    assert (gw1 - gw0).norm() / gw0.norm() < 2e-2


def test_no_grad_and_all_masked():
    h, w, labels = _case()
    with torch.no_grad():
        torch.testing.assert_close(chunked_lm_loss(h, w, labels), plain_loss(h, w, labels), **FP32)
    masked = torch.full_like(labels, IGNORE)
    a = h.clone().requires_grad_()
    loss = chunked_lm_loss(a, w, masked)
    loss.backward()
    assert loss.item() == 0.0 and a.grad.abs().sum() == 0


def test_chunk_rows_follows_the_vocabulary_to_hidden_ratio():
    """Liger's rule: a chunk's logits about the size of all the hidden states, a power of two, at least 64."""
    assert chunk_rows(8192, 128256, 3072) == 256  # 8192 / ceil(41.75) = 195.0 → 256
    assert chunk_rows(8192, 32000, 4096) == 1024  # 8192 / 8
    assert chunk_rows(100, 262144, 1152) == 64
    assert chunk_rows(10, 32000, 4096) == 10


def test_loss_choice_and_its_reasons():
    assert choose_loss("auto", "cpu", False, None).name == "chunked"
    assert choose_loss("plain", "cpu", False, None).name == "plain"
    sharded = choose_loss("auto", "cuda", True, None)
    assert sharded.name == "plain" and "sharded" in sharded.why
    assert choose_loss("auto", "cpu", False, "its logits are scaled (config.logit_scale)").name == "plain"
    from core.errors import UserError

    with pytest.raises(UserError, match="needs a CUDA GPU"):
        choose_loss("liger", "cpu", False, None)
    with pytest.raises(UserError, match="cannot be used here"):
        choose_loss("chunked", "cuda", True, None)
    assert head_ok_from_config({"logits_scaling": 16.0}) and head_ok_from_config({}) is None


def _tiny_llama(vocab=2048, tie=False):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tie)
    return LlamaForCausalLM(cfg)


def _batch(vocab=2048):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (2, 24), generator=g)
    labels = ids.clone()
    labels[:, :6] = IGNORE
    mask = torch.ones_like(ids)
    mask[1, 18:] = 0
    labels[1, 18:] = IGNORE
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("tie", [False, True])
def test_a_model_trains_the_same_with_the_chunked_loss(tie):
    """Full fine-tune of a tiny Llama: the chunked loss through the model gives the model's own loss and the same
    gradient on every parameter (the output matrix, tied or not, included)."""
    from trainer.loss import LossPlan

    model = _tiny_llama(tie=tie)
    batch = _batch()
    plain = model(**batch).loss
    plain.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    chunked = compute_lm_loss(LossPlan("chunked", "test"), model, batch, None)
    chunked.backward()
    torch.testing.assert_close(chunked, plain, **FP32)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize("kind", ["lora", "p_tuning"])
def test_peft_models_take_the_chunked_loss(kind):
    """LoRA (frozen output matrix) and P-tuning (virtual tokens before the labels) through peft."""
    from peft import LoraConfig, PromptEncoderConfig, get_peft_model

    from trainer.loss import LossPlan

    cfg = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0) if kind == "lora" else \
        PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=5, encoder_hidden_size=16)
    model = get_peft_model(_tiny_llama(), cfg)
    if kind == "lora":  # B starts at zero: give it weights so the adapters have a gradient path through A too
        for n, p in model.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1)
    batch = _batch()
    plain = model(**batch).loss
    plain.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    chunked = compute_lm_loss(LossPlan("chunked", "test"), model, batch, None)
    chunked.backward()
    torch.testing.assert_close(chunked, plain, **FP32)
    for n, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, want[n], rtol=1e-4, atol=1e-6, msg=n)
    assert output_head(model)[-1] is None


def test_the_estimator_models_the_loss():
    """Llama-3.2-3B, 2 × 4,096 tokens (the figure in Liger's and torchtune's write-ups: a 128k vocabulary makes the
    logits the largest tensor): plain 12 bytes per logit, chunked_logits 6, chunked none of them."""
    from core.estimate import EstimateRequest, estimate
    from core.estimate.memory import terms
    from core.estimate.shapes import shape_for_model

    shape = shape_for_model("llama-3.2-3b")
    req = EstimateRequest(method="lora", seq_len=4096, batch_size=2, gpu_memory_gb=80)
    by = {loss: terms(shape, req.model_copy(update={"loss": loss}))[0].logits / 1e9
          for loss in ("plain", "chunked_logits", "chunked")}
    logits = 2 * 4096 * 128256
    assert by["plain"] == pytest.approx(logits * 12 / 1e9) and by["chunked_logits"] == pytest.approx(logits * 6 / 1e9)
    assert by["chunked"] < 0.1 * by["chunked_logits"]
    saved = estimate(shape, req.model_copy(update={"loss": "plain"})).total_gb - estimate(shape, req).total_gb
    assert saved > 10


def test_train_uses_the_chunked_loss_by_default_and_says_so(tmp_path, tiny_model):
    """The same run with training.loss chunked (the default) and plain: the same losses step by step (the chunked
    loss changes how the loss is computed, not what is trained), and summary.json says which loss and attention
    ran and why."""
    import json

    from tests.conftest import write_yaml
    from tests.trainer_fixtures import train_config, write_dataset
    from trainer.run import train

    data = write_dataset(tmp_path / "d.jsonl", n=40)
    lora = {"name": "lora", "lora_r": 4, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    runs = {}
    for loss in ("auto", "plain"):
        cfg = write_yaml(tmp_path / f"{loss}.yaml", train_config(tiny_model, data, tmp_path / loss, lora, max_steps=6,
                                                                 logging_steps=1, eval_steps=6, loss=loss))
        runs[loss] = train(str(cfg), progress=False)
    assert runs["auto"].loss.name == "chunked" and "never built" in runs["auto"].loss.why
    assert runs["plain"].loss.model_dump() == {"name": "plain", "why": "training.loss: plain"}
    assert runs["auto"].attention.name == "sdpa"
    rows = {k: [json.loads(x) for x in (tmp_path / k / "metrics.jsonl").read_text().splitlines()] for k in runs}
    losses = {k: [r["loss"] for r in v if "loss" in r] for k, v in rows.items()}
    assert len(losses["auto"]) >= 6
    assert losses["auto"] == pytest.approx(losses["plain"], rel=1e-4)
    assert runs["auto"].eval_loss_last == pytest.approx(runs["plain"].eval_loss_last, rel=1e-4)
