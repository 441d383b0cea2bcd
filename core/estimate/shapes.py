"""Decoder shapes and exact parameter counts, from a local config.json or a size in billions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.errors import UserError


@dataclass(frozen=True)
class ModelShape:
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    tied_embeddings: bool = False
    gated_mlp: bool = True  # SwiGLU (Llama/Mistral/Qwen) has 3 MLP matrices, GPT-2 has 2
    attn_bias: bool = False  # bias on q/k/v (Qwen2, GPT-2)
    o_bias: bool = False  # bias on the attention output projection (GPT-2)
    mlp_bias: bool = False
    learned_positions: int = 0  # GPT-2 style position embeddings
    norm_has_bias: bool = False
    head_dim: int | None = None
    experts: int = 0  # mixture of experts: routed experts per layer (0 = a dense MLP)
    experts_per_token: int = 0
    shared_intermediate: int = 0  # an always-on shared expert (Qwen MoE, DeepSeek)
    source: str = "config.json"
    # attention the model's config asks for: `attn_implementation` when it names one; soft-capped attention scores
    # (Gemma 2) run only in eager or flash attention (SDPA cannot cap them)
    attn_implementation: str | None = field(default=None, compare=False)
    attn_softcapping: bool = field(default=False, compare=False)
    final_logit_softcapping: float | None = field(default=None, compare=False)
    exact_params: int | None = field(default=None, compare=False)  # override when given as --params-b

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.hd

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.hd

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one block, named as in Llama (targets for LoRA)."""
        h, i = self.hidden, self.intermediate
        shapes = {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }
        if self.gated_mlp:
            shapes["gate_proj"] = (h, i)
        return shapes

    @property
    def mlp_copies(self) -> int:
        """How many copies of the MLP matrices a layer holds (its experts), for parameter counts and adapters."""
        return max(1, self.experts)

    @property
    def active_mlp_copies(self) -> int:
        """How many of them each token runs through (for activations)."""
        return self.experts_per_token if self.experts else 1

    def counts(self) -> dict[str, int]:
        h = self.hidden
        attn = sum(a * b for k, (a, b) in self.linear_shapes().items() if k.endswith(("q_proj", "k_proj", "v_proj", "o_proj")))
        mlp = self.mlp_copies * sum(a * b for k, (a, b) in self.linear_shapes().items()
                                    if k in ("up_proj", "down_proj", "gate_proj"))
        if self.experts:
            mlp += h * self.experts + 3 * h * self.shared_intermediate  # router + shared expert
        if self.attn_bias:
            attn += self.q_dim + 2 * self.kv_dim
        if self.o_bias:
            attn += h
        if self.mlp_bias:
            mlp += self.intermediate + h
        norm = 2 * h * (2 if self.norm_has_bias else 1)
        per_layer = attn + mlp + norm
        embed = self.vocab * h + self.learned_positions * h
        lm_head = 0 if self.tied_embeddings else self.vocab * h
        final_norm = h * (2 if self.norm_has_bias else 1)
        total = embed + lm_head + final_norm + self.layers * per_layer
        return {
            "embeddings": embed,
            "lm_head": lm_head,
            "attention": self.layers * attn,
            "mlp": self.layers * mlp,
            "norms": self.layers * norm + final_norm,
            "total": total,
            "linear_in_blocks": self.layers * (attn + mlp),
        }

    @property
    def params(self) -> int:
        return self.exact_params or self.counts()["total"]


def _need(cfg: dict, keys: tuple[str, ...], path: str) -> int:
    for k in keys:
        if k in cfg and cfg[k] is not None:
            v = cfg[k]
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise UserError(f"{path}: key `{k}` must be a positive integer, got {v!r}")
            return v
    raise UserError(f"{path}: missing key `{keys[0]}` (also accepted: {', '.join(keys[1:]) or 'none'}); "
                    "cannot count parameters without it")


ENCODER_DECODER = {"t5", "mt5", "umt5", "bart", "mbart", "pegasus", "marian", "longt5", "switch_transformers"}
# families whose MLP is one up and one down projection (no gate), with biases and LayerNorm
UNGATED = {"gpt2", "gpt_neo", "gptj", "gpt_bigcode", "gpt_neox", "bloom", "falcon", "opt", "phi", "starcoder2"}


def _read_config(model_path: str | Path) -> tuple[dict, str]:
    p = Path(model_path)
    cfg_path = p / "config.json" if p.is_dir() else p
    if not cfg_path.is_file():
        raise UserError(f"--model: no config.json at `{cfg_path}` (give a local model folder)")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{cfg_path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{cfg_path}: expected a JSON object")
    if isinstance(cfg.get("text_config"), dict):  # multimodal wrappers keep the LM under text_config
        cfg = {**cfg, **cfg["text_config"]}
    return cfg, str(cfg_path)


def _experts(cfg: dict) -> tuple[int, int, int | None, int]:
    """(routed experts, experts per token, per-expert intermediate size, shared-expert intermediate size)."""
    n = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts") or 0
    if not n or n <= 1:
        return 0, 0, None, 0
    k = cfg.get("num_experts_per_tok") or cfg.get("top_k") or 2
    inter = cfg.get("moe_intermediate_size") or cfg.get("intermediate_size")
    shared = cfg.get("shared_expert_intermediate_size") or (
        (cfg.get("n_shared_experts") or 0) * (cfg.get("moe_intermediate_size") or 0))
    return int(n), int(k), inter, int(shared or 0)


def shape_from_config(model_path: str | Path) -> ModelShape:
    """Read a local model folder's (or a config file's) config.json: Llama, Mistral/Mixtral, Qwen2/3 (and MoE),
    Gemma, Phi, GPT-2/NeoX/J, Falcon, BLOOM, OPT, DeepSeek-style MoE keys. Encoder-decoder models (T5, BART)
    are refused with the reason: tunewise trains causal language models."""
    cfg, src = _read_config(model_path)
    return shape_from_config_dict(cfg, src)


def shape_from_config_dict(cfg: dict, src: str) -> ModelShape:
    """The shape a config.json's keys describe (`src` names where they came from, in errors and the estimate)."""
    model_type = str(cfg.get("model_type", "")).lower()
    if model_type in ENCODER_DECODER or cfg.get("is_encoder_decoder"):
        raise UserError(f"{src}: `{model_type}` is an encoder-decoder model; tunewise estimates and trains "
                        "decoder-only (causal) language models such as Llama, Qwen, Mistral, Gemma or Phi")
    gpt2_like = model_type in UNGATED or "n_embd" in cfg
    hidden = _need(cfg, ("hidden_size", "n_embd", "d_model", "n_embed"), src)
    layers = _need(cfg, ("num_hidden_layers", "n_layer", "num_layers"), src)
    heads = _need(cfg, ("num_attention_heads", "n_head", "num_heads"), src)
    vocab = _need(cfg, ("vocab_size", "padded_vocab_size"), src)
    kv = cfg.get("num_key_value_heads") or cfg.get("num_kv_heads") or (1 if cfg.get("multi_query") else heads)
    n_exp, k_exp, exp_inter, shared = _experts(cfg)
    inter = exp_inter or cfg.get("intermediate_size") or cfg.get("n_inner") or cfg.get("ffn_hidden_size") or (
        4 * hidden if gpt2_like else None)
    if inter is None:
        raise UserError(f"{src}: missing key `intermediate_size`; cannot count MLP parameters without it")
    if hidden % heads and not cfg.get("head_dim"):
        raise UserError(f"{src}: `hidden_size` ({hidden}) is not divisible by `num_attention_heads` ({heads})")
    attn = cfg.get("attn_implementation") or cfg.get("_attn_implementation")
    extra = dict(experts=n_exp, experts_per_token=k_exp, shared_intermediate=shared,
                 attn_implementation=attn if isinstance(attn, str) else None,
                 attn_softcapping=bool(cfg.get("attn_logit_softcapping")),
                 final_logit_softcapping=cfg.get("final_logit_softcapping") or None)
    if gpt2_like:
        bias = bool(cfg.get("bias", model_type not in ("falcon",)))
        tied = bool(cfg.get("tie_word_embeddings", model_type in ("gpt2", "gpt_neo", "bloom", "opt", "falcon")))
        return ModelShape(vocab, hidden, layers, heads, int(kv), int(inter), tied_embeddings=tied, gated_mlp=False,
                          attn_bias=bias, o_bias=bias, mlp_bias=bias,
                          learned_positions=int(cfg.get("n_positions", 1024)) if model_type in ("gpt2", "gpt_neo") or "n_embd" in cfg else 0,
                          norm_has_bias=True, head_dim=cfg.get("head_dim"), source=src, **extra)
    return ModelShape(
        vocab, hidden, layers, heads, int(kv), int(inter),
        tied_embeddings=bool(cfg.get("tie_word_embeddings", model_type.startswith("gemma"))),
        attn_bias=bool(cfg.get("attention_bias", cfg.get("qkv_bias", model_type in ("qwen2", "qwen2_moe")))),
        mlp_bias=bool(cfg.get("mlp_bias", False)), head_dim=cfg.get("head_dim"), source=src, **extra,
    )


def shape_from_name(name: str) -> ModelShape | None:
    """The shape of a known open model named as on the hub or in short (`Qwen/Qwen2.5-7B-Instruct`, `qwen2.5-7b`,
    `gemma-2-9b-it`), from its published config.json (core/estimate/families.py); None when unknown."""
    from core.estimate.families import lookup

    found = lookup(name)
    if found is None:
        return None
    key, _size, cfg = found
    return shape_from_config_dict(cfg, f"{key} (published config.json shape)")


def known_model_names() -> list[str]:
    from core.estimate.families import KNOWN_MODELS

    return sorted(KNOWN_MODELS)


def shape_for_model(model: str) -> ModelShape:
    """--model: a local folder (or config.json) when one exists there, else a known model's published shape."""
    p = Path(model).expanduser()
    if p.exists():
        return shape_from_config(p)
    shape = shape_from_name(model)
    if shape is not None:
        return shape
    close = _close_names(model)
    raise UserError(f"--model `{model}`: no local model folder there, and not a model tunewise knows the shape of"
                    + (f" (did you mean {', '.join(close)}?)" if close else "")
                    + "; give a local folder with config.json, --params-b B, or one of: "
                    + ", ".join(known_model_names()))


def _close_names(model: str) -> list[str]:
    import difflib

    from core.estimate.families import normalise

    return difflib.get_close_matches(normalise(model), known_model_names(), n=3, cutoff=0.6)


# Published decoder shapes (config.json of the released models) used for --params-b.
REFERENCE_SHAPES: list[tuple[str, ModelShape]] = [
    ("TinyLlama-1.1B", ModelShape(32000, 2048, 22, 32, 4, 5632)),
    ("Llama-3.2-3B", ModelShape(128256, 3072, 28, 24, 8, 8192, tied_embeddings=True)),
    ("Llama-2-7B", ModelShape(32000, 4096, 32, 32, 32, 11008)),
    ("Llama-2-13B", ModelShape(32000, 5120, 40, 40, 40, 13824)),
    ("LLaMA-33B", ModelShape(32000, 6656, 60, 52, 52, 17920)),
    ("LLaMA-65B", ModelShape(32000, 8192, 80, 64, 64, 22016)),
    ("Llama-2-70B", ModelShape(32000, 8192, 80, 64, 8, 28672)),
    ("Llama-3.1-405B", ModelShape(128256, 16384, 126, 128, 8, 53248)),
]


def _family_references(family: str) -> list[tuple[str, ModelShape]]:
    from core.estimate.families import KNOWN_MODELS, normalise

    prefix = normalise(family).rstrip("-")
    refs = [(k, shape_from_config_dict(cfg, k)) for k, (_size, cfg) in KNOWN_MODELS.items()
            if k == prefix or k.startswith(prefix + "-")]
    if not refs:
        families = sorted({k.rsplit("-", 1)[0] for k in KNOWN_MODELS})
        raise UserError(f"--family `{family}`: no known models of that family; known: {', '.join(families)}")
    return refs


def shape_from_params_b(params_b: float, family: str | None = None) -> ModelShape:
    """A standard decoder shape for a size: the nearest published shape (Llama by default; of `family` when given,
    e.g. qwen2.5, gemma-2, phi-3), layers scaled to the size. Weights use exactly params_b × 1e9; the shape drives
    activations, logits and adapter sizes, and its source says which shape was assumed (vocabulary included)."""
    if params_b <= 0:
        raise UserError(f"--params-b must be > 0, got {params_b}")
    target = params_b * 1e9
    refs = _family_references(family) if family else REFERENCE_SHAPES
    name, ref = min(refs, key=lambda r: abs(r[1].params - target) / target)
    c = ref.counts()
    per_layer = (c["total"] - c["embeddings"] - c["lm_head"] - ref.hidden) / ref.layers
    rest = c["embeddings"] + c["lm_head"] + ref.hidden
    layers = max(1, round((target - rest) / per_layer)) if target > rest else 1
    if target <= rest:  # very small: shrink width instead
        hidden = max(64, int((target / (2 * ref.vocab + 12 * 64)) // 64 * 64))
        shape = ModelShape(ref.vocab, hidden, 4, max(1, hidden // 64), max(1, hidden // 64), 4 * hidden)
    else:
        shape = replace(ref, layers=layers)
    how = f"{ref.vocab:,}-token vocabulary, hidden {shape.hidden}, {shape.layers} layers"
    hint = "" if family else "; name the model (--model qwen2.5-7b) or its family (--family qwen2.5) for its own shape"
    return replace(shape, source=f"standard decoder shape for {params_b:g}B (based on {name}: {how}){hint}",
                   exact_params=int(target))
