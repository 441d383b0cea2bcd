"""Memory/time estimator: exact parameter counts, breakdown arithmetic, published figures, CLI errors."""

from __future__ import annotations

import json

import pytest

from core.errors import UserError
from core.estimate import EstimateRequest, estimate, shape_from_config, shape_from_params_b
from core.estimate.memory import terms
from core.estimate.shapes import REFERENCE_SHAPES
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


@pytest.mark.parametrize("precision,per_param", [("bf16", 8), ("fp16", 8), ("bf16-mixed", 16), ("fp32", 16)])
def test_full_fine_tune_bytes_per_parameter_by_precision(precision, per_param):
    """Pure 16-bit: 2 (weights) + 2 (grads) + 2 × 2 (AdamW moments in the weights' dtype); AMP and fp32: 4+4+8."""
    t, _ = terms(shape_from_params_b(7), EstimateRequest(method="full", seq_len=128, precision=precision))
    assert (t.weights + t.gradients + t.optimizer_states) / 1e9 == pytest.approx(per_param * 7, rel=1e-3)


@pytest.mark.parametrize("optimizer,per_param", [("adamw", 8), ("paged_adamw", 8), ("adamw_8bit", 2),
                                                  ("paged_adamw_8bit", 2), ("sgd", 0)])
def test_optimizer_states_per_trainable_parameter(optimizer, per_param):
    t, T = terms(shape_from_params_b(7), EstimateRequest(method="lora", optimizer=optimizer))
    assert t.optimizer_states == pytest.approx(per_param * T, rel=1e-6)


def test_adafactor_keeps_factored_states_only():
    t, T = terms(shape_from_params_b(7), EstimateRequest(method="full", optimizer="adafactor"))
    assert 0 < t.optimizer_states < 0.01 * T


def test_full_fine_tune_peaks_at_the_optimizer_step_whatever_the_batch():
    """fms-acceleration a100_80gb.csv: Mistral-7B full fp16 peaks at 72.97 GB at batch 4 and at batch 8 (HF's plain
    loss over the full logits)."""
    shape = shape_from_params_b(7)
    a, b = (estimate(shape, EstimateRequest(method="full", precision="fp16", seq_len=4096, batch_size=bs,
                                            gpu_memory_gb=80, loss="plain")) for bs in (4, 8))
    assert a.peak_phase == b.peak_phase == "optimizer_step" and a.allocated_gb == b.allocated_gb
    assert a.phases["forward_backward"] < b.phases["forward_backward"] < b.phases["optimizer_step"]
    assert sum(a.per_gpu_gb.values()) == pytest.approx(a.total_gb, abs=0.01)


def test_sharding_divides_only_sharded_states():
    shape = shape_from_params_b(7)
    ddp, _ = terms(shape, EstimateRequest(method="full", gpus=8))
    z2, _ = terms(shape, EstimateRequest(method="full", gpus=8, sharding="zero2"))
    z3, _ = terms(shape, EstimateRequest(method="full", gpus=8, sharding="zero3"))
    assert ddp.optimizer_states / 1e9 == pytest.approx(28, rel=1e-3)  # pure bf16 moments: 4 B/param
    assert z2.optimizer_states / 1e9 == pytest.approx(3.5, rel=1e-3) and z2.weights == ddp.weights
    assert z3.weights / 1e9 == pytest.approx(14 / 8, rel=1e-3) and z3.gathered_params > 0 == ddp.gathered_params
    assert z3.activations == ddp.activations


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
    q, _ = terms(shape, EstimateRequest(method="qlora"))
    # ~0.52 B/param for linear layers + embeddings and lm_head upcast to fp32 by prepare_model_for_kbit_training
    assert 4.2 < q.weights / 1e9 < 4.6


# Published figures: (what, method, size in B, request overrides, low GB, high GB, source)
PUBLISHED = [
    ("QLoRA paper: 65B fine-tuned on one 48 GB GPU", "qlora", 65, dict(lora_r=64, optimizer="adamw_8bit", seq_len=512), 0, 48,
     "Dettmers et al. 2023, arXiv:2305.14314, abstract"),
    ("full 7B, AdamW mixed precision, does not fit 80 GB", "full", 7, dict(seq_len=512, precision="bf16-mixed"), 80, 1e9,
     "16 bytes/parameter (Rajbhandari et al. 2020, ZeRO, arXiv:1910.02054)"),
    ("LoRA paper: GPT-3 175B with LoRA needs ~350 GB", "lora", 175, dict(lora_r=4, lora_targets=("q_proj", "v_proj"), seq_len=512, precision="fp16"),
     330, 420, "Hu et al. 2021, arXiv:2106.09685, section 4.2 (1.2 TB → 350 GB)"),
    # LLaMA-Factory README hardware table (16-bit LoRA, 4-bit QLoRA, AMP full): minimum VRAM rounded up to GPU
    # sizes; seq 512, batch 1, gradient checkpointing. The estimate must lie within [0.7, 1.2] × the figure
    # (the table is the author's sizing, not a measurement; measured figures: tests/data/published_memory.yaml).
    ("LLaMA-Factory LoRA 7B 16 GB", "lora", 7, {}, 0.7 * 16, 1.2 * 16, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory LoRA 13B 32 GB", "lora", 13, {}, 0.7 * 32, 1.2 * 32, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory LoRA 30B 80 GB", "lora", 30, {}, 0.7 * 80, 1.2 * 80, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory LoRA 65B 160 GB", "lora", 65, {}, 0.7 * 160, 1.2 * 160, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory QLoRA-4 7B 6 GB", "qlora", 7, {}, 0.7 * 6, 1.2 * 6, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory QLoRA-4 13B 12 GB", "qlora", 13, {}, 0.7 * 12, 1.2 * 12, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory QLoRA-4 30B 24 GB", "qlora", 30, {}, 0.7 * 24, 1.2 * 24, "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory QLoRA-4 65B 48 GB", "qlora", 65, {}, 0.7 * 48, 1.2 * 48, "hiyouga/LLaMA-Factory README"),
    # AMP full: fp32 weights, grads, moments and AdamW's step temporary (1.25 × the table: the table leaves out the
    # step's temporary that fms-acceleration's measurements show)
    ("LLaMA-Factory full AMP 7B 120 GB", "full", 7, dict(precision="bf16-mixed"), 0.7 * 120, 1.3 * 120,
     "hiyouga/LLaMA-Factory README"),
    ("LLaMA-Factory full AMP 70B 1200 GB", "full", 70, dict(precision="bf16-mixed"), 0.7 * 1200, 1.3 * 1200,
     "hiyouga/LLaMA-Factory README"),
]


@pytest.mark.parametrize("what,method,size,over,low,high,source", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_figures(what, method, size, over, low, high, source):
    req = EstimateRequest(method=method, gpu_memory_gb=1e6, **{"seq_len": 512, **over})
    # the tables size the training step (what the load phase leaves cached is released under pressure)
    total = estimate(shape_from_params_b(size), req).step_gb
    assert low <= total <= high, f"{what}: estimate {total:.1f} GB outside [{low:.1f}, {high:.1f}] ({source})"


def test_qlora_65b_fits_48gb_and_full_7b_does_not_fit_80gb():
    assert estimate(shape_from_params_b(65), EstimateRequest(method="qlora", gpu_memory_gb=48, seq_len=512,
                                                             optimizer="adamw_8bit")).fits
    full = estimate(shape_from_params_b(7), EstimateRequest(method="full", gpu_memory_gb=80, seq_len=512,
                                                            precision="bf16-mixed"))
    assert not full.fits and full.suggestions
    assert estimate(shape_from_params_b(7), EstimateRequest(method="full", gpu_memory_gb=80, seq_len=512)).fits


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


# ---- published, measured figures (tests/data/published_memory.yaml; bench/estimate_vs_published.py) ----------

def test_published_measurements_within_targets():
    """Issue 15's targets on every figure and on those not used for calibration: mean |error| ≤ 15%, ≥ 85% of
    figures within ±25%, ≥ 95% of fit/no-fit verdicts right."""
    import yaml

    from bench.estimate_vs_published import score
    from tests.conftest import ROOT

    result = score(yaml.safe_load((ROOT / "tests" / "data" / "published_memory.yaml").read_text(encoding="utf-8")))
    for part in ("all", "held_out"):
        s = result[part]
        right, total = map(int, s["verdicts"].split("/"))
        assert s["mean_abs_error"] <= 0.15 and s["within_25"] >= 0.85 and right / total >= 0.95, (part, s)


def test_calibrated_constants_are_pinned():
    """Each constant fitted to a published measurement; changing one must be a conscious act."""
    from core.estimate import memory as m

    assert (m.CUDA_CONTEXT_GB, m.ALLOCATOR_RESERVE_SHARE, m.NCCL_BUFFERS_GB, m.ALLOCATOR_RESERVE_SHARE_MULTI) == (
        0.8, 0.06, 1.0, 0.12)
    assert m.LOGITS_BYTES == {2: 12.0, 4: 16.0} and m.OPTIMIZER_STEP_TEMPORARIES == 1.0 and m.GATHERED_LAYERS == 2
    assert m.CPU_PROCESS_GB == 0.6 and m.LORA_SAVED_PER_MODULE == 3
    assert abs(m.NF4_BYTES_PER_PARAM - 0.5159) < 1e-4


@pytest.mark.parametrize("name,expected_b", [
    ("mixtral", 46.70), ("qwen2_moe", 14.32), ("gpt_neox", 0.41), ("bloom", 0.56), ("falcon", 6.92),
    ("gemma", 2.51), ("phi3", 3.82)])
def test_config_readers_of_common_families(tmp_path, name, expected_b):
    cfgs = {
        "mixtral": dict(model_type="mixtral", vocab_size=32000, hidden_size=4096, num_hidden_layers=32,
                        num_attention_heads=32, num_key_value_heads=8, intermediate_size=14336, num_local_experts=8,
                        num_experts_per_tok=2),
        "qwen2_moe": dict(model_type="qwen2_moe", vocab_size=151936, hidden_size=2048, num_hidden_layers=24,
                          num_attention_heads=16, num_key_value_heads=16, intermediate_size=5632, num_experts=60,
                          num_experts_per_tok=4, moe_intermediate_size=1408, shared_expert_intermediate_size=5632),
        "gpt_neox": dict(model_type="gpt_neox", vocab_size=50304, hidden_size=1024, num_hidden_layers=24,
                         num_attention_heads=16, intermediate_size=4096, tie_word_embeddings=False),
        "bloom": dict(model_type="bloom", vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16),
        "falcon": dict(model_type="falcon", vocab_size=65024, hidden_size=4544, num_hidden_layers=32,
                       num_attention_heads=71, multi_query=True, bias=False),
        "gemma": dict(model_type="gemma", vocab_size=256000, hidden_size=2048, num_hidden_layers=18,
                      num_attention_heads=8, num_key_value_heads=1, intermediate_size=16384, head_dim=256),
        "phi3": dict(model_type="phi3", vocab_size=32064, hidden_size=3072, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=32, intermediate_size=8192),
    }
    (tmp_path / "config.json").write_text(json.dumps(cfgs[name]))
    # published sizes: Mixtral-8x7B 46.7B, Qwen1.5-MoE-A2.7B 14.3B, Pythia-410M 405M, BLOOM-560M 559M,
    # Falcon-7B 6.92B (tied embeddings), Gemma-2B 2.51B, Phi-3-mini 3.82B
    assert shape_from_config(tmp_path).params / 1e9 == pytest.approx(expected_b, rel=0.02)


def test_encoder_decoder_configs_are_refused_with_the_reason(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(dict(model_type="t5", d_model=512, num_layers=6, num_heads=8,
                                                           vocab_size=32128, d_ff=2048, is_encoder_decoder=True)))
    with pytest.raises(UserError, match="encoder-decoder"):
        shape_from_config(tmp_path)


def test_tight_fit_on_one_gpu_only():
    """70B QLoRA, lean settings, 40 GB: the device reading is above 40 GB, the allocated peak + context + 2% is not
    (one GPU: the allocator gives back its reserve first); the same margin on two GPUs is not allowed."""
    lean = dict(method="qlora", seq_len=512, lora_r=8, lora_targets=("q_proj", "v_proj"), optimizer="adamw_8bit",
                upcast_embeddings=False, gpu_memory_gb=40)
    one = estimate(shape_from_params_b(70), EstimateRequest(**lean))
    assert one.fits and one.tight and one.total_gb > 40 > one.allocated_gb * 1.02 + 0.8
    assert not estimate(shape_from_params_b(70), EstimateRequest(**{**lean, "upcast_embeddings": True})).fits
    two = estimate(shape_from_params_b(70), EstimateRequest(**{**lean, "gpus": 2, "gpu_memory_gb": 20}))
    assert not two.tight


# ---- issue 33: each failure class against a published figure (sources in the docstrings)

def test_logits_class_cut_cross_entropy_paper():
    """Wijmans et al. 2025, "Cut Your Losses in Large-Vocabulary Language Models" (arXiv:2411.09009, abstract;
    A100 measurements): Gemma 2 (2B), 8,192 tokens: the loss computation takes 24 GB and the classifier head 28 GB
    in all with the plain cross-entropy; ~1 GB for the head without materialised logits."""
    from core.estimate.shapes import shape_for_model

    shape = shape_for_model("gemma-2-2b")
    req = EstimateRequest(method="full", seq_len=8192, batch_size=1, gpu_memory_gb=80)
    plain = terms(shape, req.model_copy(update={"loss": "plain"}))[0].logits / 1e9
    chunked = terms(shape, req.model_copy(update={"loss": "chunked"}))[0].logits / 1e9
    assert 24 * 0.9 <= plain <= 28 * 1.1  # 8,192 × 256,000 × 12 B = 25.2 GB
    # the head without logits: its fp32 weight gradient (2.4 GB for a trained output matrix) plus chunks; with a
    # frozen head (LoRA) it is the paper's ~1 GB
    lora = terms(shape, req.model_copy(update={"loss": "chunked", "method": "lora"}))[0].logits / 1e9
    assert lora <= 1.0 and chunked < 0.15 * plain


def test_long_context_class_eager_attention_is_quadratic():
    """Eager attention keeps batch × heads × sequence² scores: LoRA on a 7B Llama with eager attention adds ~31 GB
    from 4k to 8k tokens (issue 33's measured figure); SDPA / flash keep none: LongLoRA (arXiv:2309.12307, Table 12,
    plain LoRA row) measured 25.7 GB per GPU for Llama-2-7B LoRA at 8,192 tokens with FlashAttention-2 and ZeRO-2
    on 8 A100s."""
    from core.estimate.shapes import shape_for_model

    shape = shape_for_model("llama-2-7b")
    eager = dict(method="lora", attention="eager", loss="plain", gpu_memory_gb=80)
    added = (estimate(shape, EstimateRequest(seq_len=8192, **eager)).total_gb
             - estimate(shape, EstimateRequest(seq_len=4096, **eager)).total_gb)
    assert 31 * 0.75 <= added <= 31 * 1.25
    flash = estimate(shape, EstimateRequest(method="lora", seq_len=8192, attention="flash", loss="plain",
                                            gpus=8, sharding="zero2", lora_r=8,
                                            lora_targets=("q_proj", "k_proj", "v_proj", "o_proj"),
                                            gpu_memory_gb=80)).total_gb
    assert abs(flash - 25.7) / 25.7 <= 0.25
    # Gemma 2 soft-caps its attention scores: auto means eager (SDPA cannot cap them), and the estimate says so
    gemma = estimate(shape_for_model("gemma-2-9b"), EstimateRequest(method="lora", seq_len=4096))
    assert gemma.assumptions["attention"].startswith("eager")


def test_shapes_class_named_models_match_their_model_cards():
    """Every shipped shape counts the size its model card states (within 2%), and names resolve the way users
    write them."""
    from core.estimate.families import KNOWN_MODELS
    from core.estimate.shapes import shape_for_model, shape_from_name

    for name, (size, _cfg) in KNOWN_MODELS.items():
        assert shape_from_name(name).params / 1e9 == pytest.approx(size, rel=0.02), name
    for spelled, key in [("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"), ("meta-llama/Llama-3.2-3B-Instruct",
                                                                       "llama-3.2-3b"),
                         ("google/gemma-2-9b-it", "gemma-2-9b"), ("mistralai/Mistral-7B-Instruct-v0.3",
                                                                  "mistral-7b-v0.3"),
                         ("microsoft/Phi-3-mini-4k-instruct", "phi-3-mini"),
                         ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseek-r1-distill-qwen-7b"),
                         ("allenai/OLMo-2-1124-7B-Instruct", "olmo-2-7b"), ("HuggingFaceTB/SmolLM2-1.7B-Instruct",
                                                                            "smollm2-1.7b"),
                         ("ibm-granite/granite-3.1-8b-instruct", "granite-3-8b")]:
        assert shape_for_model(spelled).source.startswith(key), spelled
    assert shape_for_model("qwen2.5-7b").vocab == 152064 and shape_for_model("gemma-3-4b").vocab == 262208
    with pytest.raises(UserError, match="did you mean"):
        shape_for_model("qwen2.5-8b")


def test_shapes_class_unsloth_context_limit_needs_the_real_vocabulary():
    """Unsloth's Llama 3.1 8B table (Hugging Face + FA2 column): QLoRA r=32 at 28k tokens fills an 80 GB A100.
    The 128k-vocabulary shape puts the estimate near 80 GB; the --params-b stand-in (a 32k Llama-2 shape) misses
    the logits by gigabytes, and says which shape it assumed."""
    from core.estimate.shapes import shape_for_model

    req = EstimateRequest(method="qlora", seq_len=28000, lora_r=32, loss="plain", gpu_memory_gb=80)
    named = estimate(shape_for_model("llama-3.1-8b"), req).total_gb
    stand_in = shape_from_params_b(8)
    assert abs(named - 80) / 80 <= 0.25
    assert estimate(stand_in, req).total_gb < named - 5
    assert "32,000-token vocabulary" in stand_in.source and "--model" in stand_in.source
    assert shape_from_params_b(7, "qwen2.5").vocab == 152064


def test_load_class_fsdp_loading_and_qlora_quantising():
    """ms-swift PR #9980: with FSDP2 and no rank-0 loading, every rank materialises the full bf16 model on its own
    device and a 72B model (~144 GB) runs out of memory at load. QLoRA quantising a 16-bit 7-8B checkpoint while
    loading: 9-13 GB reserved before the first step (issue 33), more than the step needs, released under pressure."""
    from core.estimate.shapes import shape_for_model

    big = shape_for_model("qwen2.5-72b")
    req = EstimateRequest(method="lora", seq_len=2048, gpus=8, sharding="fsdp", gpu_memory_gb=80)
    low = estimate(big, req)
    whole = estimate(big, req.model_copy(update={"low_memory_loading": False}))
    assert low.fits and low.load_gb is None
    assert not whole.fits and whole.peak_phase == "load" and whole.load_gb > 140
    assert any("no-low-memory-loading" in s.flags for s in whole.suggestions)
    for name in ("mistral-7b", "llama-3.1-8b", "qwen2.5-7b"):
        q = estimate(shape_for_model(name), EstimateRequest(method="qlora", seq_len=1024, gpu_memory_gb=24))
        assert 9 <= q.load_gb <= 13 and q.load_gb > q.step_gb, name


def test_a_tunewise_config_and_answers_name_a_model(tmp_path):
    """`estimate --from train.yaml` reads tunewise's own config (its loss and attention settings); the answers'
    model_name gives the size and the shape; ask's model question takes a known name."""
    from advisor.answers import Answers
    from advisor.ask.questions import QUESTIONS, parse
    from advisor.export.read import read_tool_config
    from advisor.rules.hardware import model_shape
    from tests.conftest import write_yaml

    path = write_yaml(tmp_path / "train.yaml", {
        "model": {"path": "m"}, "data": {"path": "d.jsonl", "max_seq_len": 4096}, "method": {"name": "qlora"},
        "training": {"loss": "plain", "attention": "eager", "batch_size": 2},
        "distributed": {"processes": 2, "strategy": "fsdp"}})
    job = read_tool_config(path)
    assert (job.tool, job.method, job.seq_len, job.loss, job.attention, job.gpus, job.sharding) == (
        "tunewise", "qlora", 4096, "plain", "eager", 2, "fsdp")
    a = Answers(goal="task", prompting="plateaued", examples=100, requests_per_day=10, gpu_memory_gb=24,
                gpu_count=1, model_name="Qwen/Qwen2.5-7B-Instruct")
    assert a.model_params_b == pytest.approx(7.6156, rel=1e-3) and model_shape(a).vocab == 152064
    with pytest.raises(ValueError, match="did you mean"):
        Answers(goal="task", prompting="plateaued", examples=100, requests_per_day=10, gpu_memory_gb=24,
                gpu_count=1, model_name="qwen2.5-8b")
    q = next(q for q in QUESTIONS if q.key == "model_path")
    assert parse(q, "llama-3.1-8b") == "llama-3.1-8b"
    with pytest.raises(ValueError, match="not a model name"):
        parse(q, "no-such-model-9b")
