"""The shapes of common open model families, as their released config.json files give them, so a model can be named
(`--model qwen2.5-7b`, `model: Qwen/Qwen2.5-7B-Instruct` in a tool config) and estimated offline. Each entry holds
only the config.json keys the estimate reads; instruct / chat / base variants of a size share the shape.

Sources: the config.json of each model on the Hugging Face hub (checked against public copies in the code corpus
where one was found) and transformers' config classes. `params_b` is the size the model card states; the tests
check every shape's exact count against it."""

from __future__ import annotations

# name: (model card size in billions, config.json keys). Names are lower case; see ALIASES for other spellings.
_LLAMA = {"model_type": "llama"}
_QWEN2 = {"model_type": "qwen2"}
_QWEN3 = {"model_type": "qwen3", "head_dim": 128}
_GEMMA2 = {"model_type": "gemma2", "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}
_GEMMA3 = {"model_type": "gemma3_text"}
_PHI3 = {"model_type": "phi3"}
_OLMO2 = {"model_type": "olmo2", "vocab_size": 100352}
_GRANITE = {"model_type": "granite", "vocab_size": 49159, "tie_word_embeddings": True}


def _c(base: dict, vocab, hidden, layers, heads, kv, inter, **kw) -> dict:
    return {**base, "vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv, "intermediate_size": inter, **kw}


KNOWN_MODELS: dict[str, tuple[float, dict]] = {
    # Llama 2 (meta-llama/Llama-2-*-hf) and Llama 3.x (meta-llama/Llama-3.*)
    "llama-2-7b": (6.74, _c(_LLAMA, 32000, 4096, 32, 32, 32, 11008)),
    "llama-2-13b": (13.0, _c(_LLAMA, 32000, 5120, 40, 40, 40, 13824)),
    "llama-2-70b": (69.0, _c(_LLAMA, 32000, 8192, 80, 64, 8, 28672)),
    "llama-3-8b": (8.03, _c(_LLAMA, 128256, 4096, 32, 32, 8, 14336)),
    "llama-3-70b": (70.6, _c(_LLAMA, 128256, 8192, 80, 64, 8, 28672)),
    "llama-3.1-8b": (8.03, _c(_LLAMA, 128256, 4096, 32, 32, 8, 14336)),
    "llama-3.1-70b": (70.6, _c(_LLAMA, 128256, 8192, 80, 64, 8, 28672)),
    "llama-3.1-405b": (406.0, _c(_LLAMA, 128256, 16384, 126, 128, 8, 53248)),
    "llama-3.2-1b": (1.24, _c(_LLAMA, 128256, 2048, 16, 32, 8, 8192, head_dim=64, tie_word_embeddings=True)),
    "llama-3.2-3b": (3.21, _c(_LLAMA, 128256, 3072, 28, 24, 8, 8192, head_dim=128, tie_word_embeddings=True)),
    "llama-3.3-70b": (70.6, _c(_LLAMA, 128256, 8192, 80, 64, 8, 28672)),
    "tinyllama-1.1b": (1.1, _c(_LLAMA, 32000, 2048, 22, 32, 4, 5632)),
    # Qwen 2.5 (Qwen/Qwen2.5-*): q/k/v biases; the small ones tie their embeddings
    "qwen2.5-0.5b": (0.49, _c(_QWEN2, 151936, 896, 24, 14, 2, 4864, tie_word_embeddings=True)),
    "qwen2.5-1.5b": (1.54, _c(_QWEN2, 151936, 1536, 28, 12, 2, 8960, tie_word_embeddings=True)),
    "qwen2.5-3b": (3.09, _c(_QWEN2, 151936, 2048, 36, 16, 2, 11008, tie_word_embeddings=True)),
    "qwen2.5-7b": (7.61, _c(_QWEN2, 152064, 3584, 28, 28, 4, 18944)),
    "qwen2.5-14b": (14.7, _c(_QWEN2, 152064, 5120, 48, 40, 8, 13824)),
    "qwen2.5-32b": (32.5, _c(_QWEN2, 152064, 5120, 64, 40, 8, 27648)),
    "qwen2.5-72b": (72.7, _c(_QWEN2, 152064, 8192, 80, 64, 8, 29568)),
    # Qwen 3 (Qwen/Qwen3-*): head_dim 128 whatever the width, no q/k/v biases
    "qwen3-0.6b": (0.6, _c(_QWEN3, 151936, 1024, 28, 16, 8, 3072, tie_word_embeddings=True)),
    "qwen3-1.7b": (1.7, _c(_QWEN3, 151936, 2048, 28, 16, 8, 6144, tie_word_embeddings=True)),
    "qwen3-4b": (4.0, _c(_QWEN3, 151936, 2560, 36, 32, 8, 9728, tie_word_embeddings=True)),
    "qwen3-8b": (8.2, _c(_QWEN3, 151936, 4096, 36, 32, 8, 12288)),
    "qwen3-14b": (14.8, _c(_QWEN3, 151936, 5120, 40, 40, 8, 17408)),
    "qwen3-32b": (32.8, _c(_QWEN3, 151936, 5120, 64, 64, 8, 25600)),
    "qwen3-30b-a3b": (30.5, {"model_type": "qwen3_moe", **_c({}, 151936, 2048, 48, 32, 4, 6144), "head_dim": 128,
                             "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768}),
    # Gemma 2 (google/gemma-2-*): attention and final logit soft-capping (eager or flash attention only)
    "gemma-2-2b": (2.61, _c(_GEMMA2, 256000, 2304, 26, 8, 4, 9216, head_dim=256)),
    "gemma-2-9b": (9.24, _c(_GEMMA2, 256000, 3584, 42, 16, 8, 14336, head_dim=256)),
    "gemma-2-27b": (27.2, _c(_GEMMA2, 256000, 4608, 46, 32, 16, 36864, head_dim=128)),
    # Gemma 3 (google/gemma-3-*; the 4B-27B checkpoints are multimodal, their language model counted here)
    "gemma-3-1b": (1.0, _c(_GEMMA3, 262144, 1152, 26, 4, 1, 6912, head_dim=256)),
    "gemma-3-4b": (3.9, _c(_GEMMA3, 262208, 2560, 34, 8, 4, 10240, head_dim=256)),
    "gemma-3-12b": (11.8, _c(_GEMMA3, 262208, 3840, 48, 16, 8, 15360, head_dim=256)),
    "gemma-3-27b": (27.0, _c(_GEMMA3, 262208, 5376, 62, 32, 16, 21504, head_dim=128)),
    # Mistral / Mixtral (mistralai/*)
    "mistral-7b": (7.24, _c({"model_type": "mistral"}, 32000, 4096, 32, 32, 8, 14336)),
    "mistral-7b-v0.3": (7.25, _c({"model_type": "mistral"}, 32768, 4096, 32, 32, 8, 14336)),
    "mistral-nemo-12b": (12.2, _c({"model_type": "mistral"}, 131072, 5120, 40, 32, 8, 14336, head_dim=128)),
    "mistral-small-24b": (23.6, _c({"model_type": "mistral"}, 131072, 5120, 40, 32, 8, 32768, head_dim=128)),
    "mixtral-8x7b": (46.7, _c({"model_type": "mixtral"}, 32000, 4096, 32, 32, 8, 14336, num_local_experts=8,
                              num_experts_per_tok=2)),
    "mixtral-8x22b": (141.0, _c({"model_type": "mixtral"}, 32768, 6144, 56, 48, 8, 16384, num_local_experts=8,
                                num_experts_per_tok=2)),
    # Phi-3 / Phi-4 (microsoft/*)
    "phi-3-mini": (3.82, _c(_PHI3, 32064, 3072, 32, 32, 32, 8192)),
    "phi-3-medium": (14.0, _c(_PHI3, 32064, 5120, 40, 40, 10, 17920)),
    "phi-4": (14.7, _c(_PHI3, 100352, 5120, 40, 40, 10, 17920)),
    "phi-4-mini": (3.84, _c(_PHI3, 200064, 3072, 32, 24, 8, 8192, tie_word_embeddings=True)),
    # DeepSeek-R1 distills (deepseek-ai/DeepSeek-R1-Distill-*): the Qwen 2.5 / Llama 3 bases they were tuned from
    "deepseek-r1-distill-qwen-1.5b": (1.78, _c(_QWEN2, 151936, 1536, 28, 12, 2, 8960)),
    "deepseek-r1-distill-qwen-7b": (7.62, _c(_QWEN2, 152064, 3584, 28, 28, 4, 18944)),
    "deepseek-r1-distill-qwen-14b": (14.8, _c(_QWEN2, 152064, 5120, 48, 40, 8, 13824)),
    "deepseek-r1-distill-qwen-32b": (32.8, _c(_QWEN2, 152064, 5120, 64, 40, 8, 27648)),
    "deepseek-r1-distill-llama-8b": (8.03, _c(_LLAMA, 128256, 4096, 32, 32, 8, 14336)),
    "deepseek-r1-distill-llama-70b": (70.6, _c(_LLAMA, 128256, 8192, 80, 64, 8, 28672)),
    # OLMo (allenai/OLMo-2-*, allenai/OLMo-7B-hf)
    "olmo-7b": (6.89, _c({"model_type": "olmo"}, 50304, 4096, 32, 32, 32, 11008)),
    "olmo-2-1b": (1.48, _c(_OLMO2, 100352, 2048, 16, 16, 16, 8192)),
    "olmo-2-7b": (7.3, _c(_OLMO2, 100352, 4096, 32, 32, 32, 11008)),
    "olmo-2-13b": (13.7, _c(_OLMO2, 100352, 5120, 40, 40, 40, 13824)),
    "olmo-2-32b": (32.2, _c(_OLMO2, 100352, 5120, 64, 40, 8, 27648)),
    # SmolLM (HuggingFaceTB/SmolLM2-*, SmolLM3-3B)
    "smollm2-135m": (0.135, _c(_LLAMA, 49152, 576, 30, 9, 3, 1536, tie_word_embeddings=True)),
    "smollm2-360m": (0.362, _c(_LLAMA, 49152, 960, 32, 15, 5, 2560, tie_word_embeddings=True)),
    "smollm2-1.7b": (1.71, _c(_LLAMA, 49152, 2048, 24, 32, 32, 8192, tie_word_embeddings=True)),
    "smollm3-3b": (3.08, _c({"model_type": "smollm3"}, 128256, 2048, 36, 16, 4, 11008, tie_word_embeddings=True)),
    # Granite (ibm-granite/granite-3.3-*)
    "granite-3-2b": (2.53, _c(_GRANITE, 49159, 2048, 40, 32, 8, 8192)),
    "granite-3-8b": (8.17, _c(_GRANITE, 49159, 4096, 40, 32, 8, 12800)),
}

# other names of the same shapes (the normalised name is tried first: lower case, organisation and suffixes dropped)
ALIASES = {
    "llama-2-7b-chat": "llama-2-7b", "llama2-7b": "llama-2-7b", "llama2-13b": "llama-2-13b", "llama2-70b": "llama-2-70b",
    "meta-llama-3-8b": "llama-3-8b", "meta-llama-3-70b": "llama-3-70b", "meta-llama-3.1-8b": "llama-3.1-8b",
    "meta-llama-3.1-70b": "llama-3.1-70b", "meta-llama-3.1-405b": "llama-3.1-405b", "llama3-8b": "llama-3-8b",
    "llama3-70b": "llama-3-70b", "llama3.1-8b": "llama-3.1-8b", "llama3.1-70b": "llama-3.1-70b",
    "llama3.2-1b": "llama-3.2-1b", "llama3.2-3b": "llama-3.2-3b", "llama3.3-70b": "llama-3.3-70b",
    "tinyllama-1.1b-chat-v1.0": "tinyllama-1.1b", "tinyllama": "tinyllama-1.1b",
    "mistral-7b-v0.1": "mistral-7b", "mistral-7b-v0.2": "mistral-7b", "mistral-nemo": "mistral-nemo-12b",
    "mistral-nemo-base-2407": "mistral-nemo-12b", "mistral-small-24b-base-2501": "mistral-small-24b",
    "mistral-small-3.1-24b": "mistral-small-24b", "mixtral-8x7b-v0.1": "mixtral-8x7b",
    "mixtral-8x22b-v0.1": "mixtral-8x22b", "phi-3-mini-4k": "phi-3-mini", "phi-3-mini-128k": "phi-3-mini",
    "phi-3.5-mini": "phi-3-mini", "phi-3-medium-4k": "phi-3-medium", "phi-3-medium-128k": "phi-3-medium",
    "olmo-2-1124-7b": "olmo-2-7b", "olmo-2-1124-13b": "olmo-2-13b", "olmo-2-0425-1b": "olmo-2-1b",
    "olmo-2-0325-32b": "olmo-2-32b", "olmo-7b-hf": "olmo-7b", "olmo-7b-0424-hf": "olmo-7b",
    "granite-3.0-2b": "granite-3-2b", "granite-3.1-2b": "granite-3-2b", "granite-3.2-2b": "granite-3-2b",
    "granite-3.3-2b": "granite-3-2b", "granite-3.0-8b": "granite-3-8b", "granite-3.1-8b": "granite-3-8b",
    "granite-3.2-8b": "granite-3-8b", "granite-3.3-8b": "granite-3-8b", "gemma-3-1b-pt": "gemma-3-1b",
    "qwen2-7b": "qwen2.5-7b", "qwen2-1.5b": "qwen2.5-1.5b", "qwen2-0.5b": "qwen2.5-0.5b",
    "qwen2.5-coder-7b": "qwen2.5-7b", "qwen2.5-coder-14b": "qwen2.5-14b", "qwen2.5-coder-32b": "qwen2.5-32b",
    "qwen2.5-math-7b": "qwen2.5-7b",
}

# name parts of released variants that share the base shape (instruct / chat tunes, quantised uploads, dates)
_VARIANT_PARTS = {"instruct", "chat", "it", "hf", "base", "pt", "sft", "dpo", "bnb", "4bit", "unsloth", "awq", "gptq",
                  "fp8", "4k", "8k", "128k"}


def normalise(name: str) -> str:
    """`Qwen/Qwen2.5-7B-Instruct` → `qwen2.5-7b`: the organisation, variant parts, release dates and case dropped."""
    n = name.strip().rstrip("/").split("/")[-1].lower().replace("_", "-")
    parts = [p for p in n.split("-") if p not in _VARIANT_PARTS and not (len(p) == 4 and p.isdigit())]
    return "-".join(parts)


def lookup(name: str) -> tuple[str, float, dict] | None:
    """(canonical name, model card size, config keys) of a named model, or None."""
    for candidate in (name.strip().lower(), normalise(name)):
        key = ALIASES.get(candidate, candidate)
        if key in KNOWN_MODELS:
            size, cfg = KNOWN_MODELS[key]
            return key, size, cfg
    return None
