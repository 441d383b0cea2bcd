"""Memory/time estimator: exact parameter counts, breakdown arithmetic, published figures, CLI errors."""

from __future__ import annotations

import json

import pytest

from advisor.errors import UserError
from advisor.estimate import EstimateRequest, estimate, shape_from_config, shape_from_params_b
from advisor.estimate.shapes import REFERENCE_SHAPES
from tests.conftest import run_tunewise

LLAMA2_7B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32,
             "num_hidden_layers": 32, "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False}
LLAMA3_8B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
             "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False}
GPT2 = {"model_type": "gpt2", "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024, "vocab_size": 50257}
QWEN2_05B = {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14,
             "num_hidden_layers": 24, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True}


def _shape(tmp_path, cfg):
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return shape_from_config(tmp_path)


@pytest.mark.parametrize("cfg,expected", [
    (LLAMA2_7B, 6_738_415_616),   # Llama-2-7b-hf safetensors total
    (LLAMA3_8B, 8_030_261_248),   # Meta-Llama-3-8B, grouped KV heads
    (GPT2, 124_439_808),          # gpt2, tied embeddings, learned positions, biases
    (QWEN2_05B, 494_032_768),     # Qwen2-0.5B, tied embeddings, qkv bias
])
def test_exact_parameter_counts(tmp_path, cfg, expected):
    assert _shape(tmp_path, cfg).params == expected


def test_params_b_uses_standard_shape_and_says_so():
    s = shape_from_params_b(13)
    assert s.params == 13_000_000_000 and "Llama-2-13B" in s.source
    assert abs(s.counts()["total"] - 13e9) / 13e9 < 0.05


def test_reference_shapes_match_their_published_sizes():
    sizes = {"Llama-2-7B": 6.74e9, "Llama-2-13B": 13.0e9, "Llama-2-70B": 68.98e9, "LLaMA-65B": 65.3e9}
    for name, shape in REFERENCE_SHAPES:
        if name in sizes:
            assert abs(shape.params - sizes[name]) / sizes[name] < 0.01, name


def test_full_mixed_precision_is_16_bytes_per_param_before_activations():
    e = estimate(shape_from_params_b(7), EstimateRequest(method="full", seq_len=128))
    g = e.per_gpu_gb
    states = g["weights"] + g["gradients"] + g["master_weights"] + g["optimizer_states"]
    assert states == pytest.approx(16 * 7, rel=1e-3)


def test_sharding_divides_only_sharded_states():
    shape = shape_from_params_b(7)
    ddp = estimate(shape, EstimateRequest(method="full", gpus=8)).per_gpu_gb
    z2 = estimate(shape, EstimateRequest(method="full", gpus=8, sharding="zero2")).per_gpu_gb
    z3 = estimate(shape, EstimateRequest(method="full", gpus=8, sharding="zero3")).per_gpu_gb
    assert ddp["optimizer_states"] == pytest.approx(56, rel=1e-3)
    assert z2["optimizer_states"] == pytest.approx(7, rel=1e-3) and z2["weights"] == ddp["weights"]
    assert z3["weights"] == pytest.approx(14 / 8, rel=1e-3)
    assert z3["activations"] == ddp["activations"]


def test_gradient_checkpointing_and_batch_change_activations():
    shape = shape_from_params_b(7)
    on = estimate(shape, EstimateRequest(method="lora", gradient_checkpointing=True)).per_gpu_gb["activations"]
    off = estimate(shape, EstimateRequest(method="lora", gradient_checkpointing=False)).per_gpu_gb["activations"]
    b4 = estimate(shape, EstimateRequest(method="lora", gradient_checkpointing=False, batch_size=4)).per_gpu_gb
    assert off > 5 * on
    assert b4["activations"] == pytest.approx(4 * off, rel=1e-3)


def test_lora_trainable_share_and_qlora_weights(tmp_path):
    shape = _shape(tmp_path, LLAMA2_7B)
    lora = estimate(shape, EstimateRequest(method="lora", lora_r=8, lora_targets=("q_proj", "v_proj")))
    assert lora.trainable_params == 32 * 8 * (4096 * 2) * 2   # 4,194,304: peft's count for Llama-2-7B, q/v, r=8
    q = estimate(shape, EstimateRequest(method="qlora"))
    assert 3.5 < q.per_gpu_gb["weights"] < 4.3   # ~0.52 B/param for linear layers + 16-bit embeddings


# Published figures: (what, method, size in B, request overrides, low GB, high GB, source)
PUBLISHED = [
    ("QLoRA paper: 65B fine-tuned on one 48 GB GPU", "qlora", 65, dict(lora_r=64, optimizer="adamw_8bit", seq_len=512), 0, 48,
     "Dettmers et al. 2023, arXiv:2305.14314, abstract"),
    ("full 7B, AdamW mixed precision, does not fit 80 GB", "full", 7, dict(seq_len=512), 80, 1e9,
     "16 bytes/parameter (Rajbhandari et al. 2020, ZeRO, arXiv:1910.02054)"),
    ("LoRA paper: GPT-3 175B with LoRA needs ~350 GB", "lora", 175, dict(lora_r=4, lora_targets=("q_proj", "v_proj"), seq_len=512, precision="fp16"),
     330, 420, "Hu et al. 2021, arXiv:2106.09685, section 4.2 (1.2 TB → 350 GB)"),
    # LLaMA-Factory README hardware table (16-bit LoRA, 4-bit QLoRA, AMP full): minimum VRAM rounded up to GPU
    # sizes; seq 512, batch 1, gradient checkpointing. The estimate must lie within [0.7, 1.1] × the figure.
    ("LLaMA-Factory LoRA 7B 16 GB", "lora", 7, {}, 0.7 * 16, 1.1 * 16, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory LoRA 13B 32 GB", "lora", 13, {}, 0.7 * 32, 1.1 * 32, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory LoRA 30B 80 GB", "lora", 30, {}, 0.7 * 80, 1.1 * 80, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory LoRA 65B 160 GB", "lora", 65, {}, 0.7 * 160, 1.1 * 160, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory QLoRA-4 7B 6 GB", "qlora", 7, {}, 0.7 * 6, 1.1 * 6, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory QLoRA-4 13B 12 GB", "qlora", 13, {}, 0.7 * 12, 1.1 * 12, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory QLoRA-4 30B 24 GB", "qlora", 30, {}, 0.7 * 24, 1.1 * 24, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory QLoRA-4 65B 48 GB", "qlora", 65, {}, 0.7 * 48, 1.1 * 48, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory full AMP 7B 120 GB", "full", 7, {}, 0.7 * 120, 1.1 * 120, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory full AMP 70B 1200 GB", "full", 70, {}, 0.7 * 1200, 1.1 * 1200, "hiyouga/LLaMA-Factory README"),
]


@pytest.mark.parametrize("what,method,size,over,low,high,source", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_figures(what, method, size, over, low, high, source):
    req = EstimateRequest(method=method, gpu_memory_gb=1e6, **{"seq_len": 512, **over})
    total = estimate(shape_from_params_b(size), req).total_gb
    assert low <= total <= high, f"{what}: estimate {total:.1f} GB outside [{low:.1f}, {high:.1f}] ({source})"


def test_qlora_65b_fits_48gb_and_full_7b_does_not_fit_80gb():
    assert estimate(shape_from_params_b(65), EstimateRequest(method="qlora", gpu_memory_gb=48, seq_len=512,
                                                             optimizer="adamw_8bit")).fits
    full = estimate(shape_from_params_b(7), EstimateRequest(method="full", gpu_memory_gb=80, seq_len=512))
    assert not full.fits and full.suggestions


def test_suggestions_rank_fitting_changes_first():
    e = estimate(shape_from_params_b(13), EstimateRequest(method="lora", gpu_memory_gb=24, batch_size=4))
    assert not e.fits
    assert e.suggestions[0].fits and "qlora" in e.suggestions[0].flags
    assert [s.fits for s in e.suggestions] == sorted([s.fits for s in e.suggestions], reverse=True)


def test_time_and_cost():
    shape = shape_from_params_b(7)
    full = estimate(shape, EstimateRequest(method="full", gradient_checkpointing=False, examples=1000, avg_tokens=1000,
                                           gpu_tflops=100, utilization=0.5, price_per_gpu_hour=2.0))
    # 6 × 7e9 × 1e6 tokens / (100e12 × 0.5) s
    assert full.gpu_hours == pytest.approx(6 * 7e9 * 1e6 / 50e12 / 3600, rel=1e-3)
    assert full.cost == pytest.approx(full.gpu_hours * 2.0, abs=0.01)
    lora = estimate(shape, EstimateRequest(method="lora", gradient_checkpointing=False, examples=1000,
                                           avg_tokens=1000, gpu_tflops=100, utilization=0.5))
    assert lora.gpu_hours == pytest.approx(full.gpu_hours * 4 / 6, rel=1e-3)


def test_config_without_needed_keys(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    with pytest.raises(UserError, match="num_hidden_layers"):
        shape_from_config(tmp_path)


@pytest.mark.parametrize("args,needle", [
    (["--params-b", "-7", "--method", "lora"], "--params-b"),
    (["--params-b", "7", "--method", "adapter"], "--method"),
    (["--params-b", "7", "--method", "lora", "--seq-len", "0"], "--seq-len"),
    (["--params-b", "7", "--method", "lora", "--examples", "10"], "--avg-tokens"),
    (["--model", "/nonexistent", "--method", "lora"], "config.json"),
])
def test_cli_bad_input_exits_2_naming_the_flag(args, needle):
    p = run_tunewise("estimate", *args)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr and "Traceback" not in p.stderr


def test_cli_json_contract(cli_json, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA2_7B))
    d = cli_json("estimate", "--model", tmp_path, "--method", "qlora", "--gpu-memory-gb", "8", "--examples", "1000",
                 "--avg-tokens", "500", "--epochs", "2")
    for key in ("method", "params_b", "trainable_params", "per_gpu_gb", "total_gb", "fits", "headroom_gb",
                "suggestions", "assumptions", "gpu_hours"):
        assert key in d
    assert d["params_b"] == pytest.approx(6.7384, abs=1e-3) and d["gpu_hours"] > 0
