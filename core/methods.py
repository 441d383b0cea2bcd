"""The fine-tuning methods, one unit each, registered once (the way peft registers a tuner: `register`). A unit holds
every fact about its method: what it trains, its memory terms (the estimator calls them: trainable parameters,
weights, the activations it keeps, its optimizer-state shape, its notes), the ladder of leaner configurations the
hardware check tries, its default learning rate, the train config's method section (its pydantic model and what the
advisor writes into it), the peft config it builds, how each exporter writes it and how a tool's config is read
back as it, its size on disk, the facts its generated feasibility rules cite (rules/decide_50_methods.yaml
`for_each_fine_tune`), its demo settings, and where the advisor may offer it. Everything else (the estimator, the
rules, the exporters, the docs, the demo, the trainer) reads these units; nothing else names a method.
Torch-free: peft is imported only when a config is built. Next steps per method stay data in rules/next_steps.yaml.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the estimator imports this module: its types are named, not imported, here
    from core.estimate.memory import EstimateRequest
    from core.estimate.shapes import ModelShape
    from core.exported import Exported

ATTENTION_ONLY = ("q_proj", "v_proj")
TOOLS = ("axolotl", "llamafactory", "trl")  # the exporters a unit writes itself into (advisor/export)

# --- the train config's method sections (core/train_config.py builds its `method` union from the registry) ----------


class MethodSection(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class LoraFields(MethodSection):
    lora_r: int = Field(16, gt=0, validation_alias=AliasChoices("lora_r", "r"),
                        description="adapter rank: trainable parameters grow linearly with it")
    lora_alpha: int = Field(32, gt=0, description="adapter scale (the update is multiplied by alpha / r)")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="dropout on each adapted layer's input")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names to adapt (q_proj, v_proj, ...) or all-linear (every linear layer "
        "but the output head)")


class FullMethod(MethodSection):
    name: Literal["full"] = Field("full", description="update every weight")


class LoraMethod(LoraFields):
    name: Literal["lora"] = Field("lora", description="low-rank adapters on a 16-bit base (peft)")


class QLoraMethod(LoraFields):
    name: Literal["qlora"] = Field("qlora", description="low-rank adapters on a 4-bit base (bitsandbytes)")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type (NF4: the QLoRA paper's)")
    bnb_4bit_use_double_quant: bool = Field(True, description="quantise the quantisation constants too (saves "
                                            "~0.4 bits per parameter)")
    bnb_4bit_compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="dtype the 4-bit weights are dequantised to for each matmul; auto = the run's precision")
    upcast_embeddings: bool = Field(True, description="keep peft's fp32 upcast of the embeddings and lm_head "
                                    "(stable; false saves 4 bytes x vocabulary x hidden twice and fp32 logits)")


class PTuningMethod(MethodSection):
    name: Literal["p_tuning"] = Field("p_tuning", description="a trained soft prompt; no model weight changes")
    num_virtual_tokens: int = Field(20, gt=0, description="length of the soft prompt in tokens")
    encoder_hidden_size: int = Field(128, gt=0, description="hidden size of the prompt encoder")
    encoder_reparameterization_type: Literal["MLP", "LSTM"] = Field("MLP", description="prompt encoder kind")


class DoraMethod(LoraFields):
    name: Literal["dora"] = Field("dora", description="weight-decomposed low-rank adapters (peft use_dora; Liu et al. "
                                  "2024): LoRA's update as the direction plus a trained magnitude per output feature")


# --- LoRA's shape arithmetic: which linear layers an adapter covers -------------------------------------------------

MLP_NAMES = ("gate_proj", "up_proj", "down_proj")
# other families' names for the same projections (Mixtral experts, GPT-NeoX/BLOOM/Falcon, GPT-2, Phi, OPT)
TARGET_ALIASES: dict[str, tuple[str, ...]] = {
    "w1": ("gate_proj",), "w3": ("up_proj",), "w2": ("down_proj",),
    "query_key_value": ("q_proj", "k_proj", "v_proj"), "qkv_proj": ("q_proj", "k_proj", "v_proj"),
    "c_attn": ("q_proj", "k_proj", "v_proj"), "Wqkv": ("q_proj", "k_proj", "v_proj"),
    "dense": ("o_proj",), "out_proj": ("o_proj",), "c_proj": ("o_proj", "down_proj"),
    "dense_h_to_4h": ("up_proj",), "dense_4h_to_h": ("down_proj",), "fc1": ("up_proj",), "fc2": ("down_proj",),
    "c_fc": ("up_proj",), "gate_up_proj": ("gate_proj", "up_proj"), "all-linear": (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}
LORA_SAVED_PER_MODULE = 3  # × hidden, per adapted module, per token and layer (measured: bench/estimate_vs_measured.py)
NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit + 8-bit absmax per 64 + fp32 per 256 blocks


def canonical_targets(targets) -> set[str]:
    """LoRA target names as the estimate's Llama names (aliases and `all-linear` expanded)."""
    out: set[str] = set()
    for t in targets:
        out.update(TARGET_ALIASES.get(t, (t,)))
    return out


def adapted_per_layer(shape: ModelShape, req: EstimateRequest, per) -> float:
    """Sum of per(in, out) over the adapted linear layers of one block (MLP ones once per expert)."""
    targets = canonical_targets(req.lora_targets)
    return sum(per(i, o) * (shape.mlp_copies if name in MLP_NAMES else 1)
               for name, (i, o) in shape.linear_shapes().items() if name in targets)


def adapted_modules_per_layer(shape: ModelShape, req: EstimateRequest, per) -> float:
    """Sum of per(in, out) over the adapted modules one token passes through in a block (active experts only)."""
    targets = canonical_targets(req.lora_targets)
    return sum(per(i, o) * (shape.active_mlp_copies if name in MLP_NAMES else 1)
               for name, (i, o) in shape.linear_shapes().items() if name in targets)


def _shard(gpus: int) -> dict:
    return {"sharding": "zero3"} if gpus > 1 else {}


# --- the unit ---------------------------------------------------------------------------------------------------


class FineTuneMethod(ABC):
    """One fine-tuning method. Subclass it, set the class facts, override the terms that differ (and
    `trainable_params`, which every method has its own of), `register` it."""

    name: ClassVar[str]
    title: ClassVar[str]
    learning_rate: ClassVar[float]  # the usual starting rate written into train.yaml
    section_model: ClassVar[type[MethodSection]]  # the train config's `method` section
    cost_rank: ClassVar[int]  # the advisor's tie-break: cheapest first
    run_phrase: ClassVar[str]  # the method's run in a sentence ("the LoRA run"), for the generated rules
    variant_unit: ClassVar[str] = "adapter"  # what one tuned variant is, in words
    trains_all_weights: ClassVar[bool] = False  # full: gradients and optimizer states for every weight
    adapters: ClassVar[bool] = False  # LoRA-style low-rank adapters on linear layers (peft LoraConfig)
    quantized_base: ClassVar[bool] = False  # the frozen base is 4-bit (bitsandbytes)
    soft_prompt: ClassVar[bool] = False  # virtual tokens before the input (peft PromptEncoder)
    flops_per_token: ClassVar[float] = 4.0  # × parameters (forward + input gradients; 6 when weights get gradients)
    slowdown: ClassVar[float] = 1.0  # on the FLOPs estimate (dequantising 4-bit weights costs time)
    diverging_lr: ClassVar[float] = 1e-3  # a learning rate above this is the likely cause of a diverged run
    demo_training: ClassVar[dict | None] = None  # `tunewise demo`: the training settings of its tiny run
    export_refusal: ClassVar[str | None] = None  # the exporters cannot write it: the method, in words
    # the advisor offers it only next to this method (never a candidate on its own; see advisor/rules/engine.py)
    offered_next_to: ClassVar[str | None] = None
    offer_text: ClassVar[str | None] = None  # the next step that offers it, when `offered_next_to` is chosen
    # leaner methods `tunewise estimate` suggests when this one does not fit: (the change in words, the method)
    leaner: ClassVar[tuple[tuple[str, str], ...]] = ()
    # what the method's generated feasibility rules cite (rules/decide_50_methods.yaml, `for_each_fine_tune`)
    rule_facts: ClassVar[dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"<fine-tune method {self.name}>"

    def rule_template_facts(self) -> dict[str, Any]:
        """The unit's rule facts over the defaults every method shares (its generated rules' sources and examples)."""
        return {"budget_example": {"budget_gpu_hours": 0.0001, "examples": 100000},
                "budget_counter_example": {"budget_gpu_hours": 100000}, **self.rule_facts}

    # -- what the advisor writes and the trainer builds
    def ladder(self, gpus: int) -> list[dict]:
        """Estimate-request updates from the standard configuration to leaner ones (the hardware check's rungs)."""
        return [{}]

    def section(self, req: EstimateRequest) -> dict:
        """The method section's settings for an estimate request (besides `name`)."""
        return {}

    def config_section(self, req: EstimateRequest) -> dict:
        """The train config's `method` mapping for an estimate request (the configuration that was estimated)."""
        return {"name": self.name, **self.section(req)}

    def peft_config(self, section):
        """The peft config this method trains with (None: every weight is trained directly)."""
        return None

    # -- size on disk
    def stored(self, shape: ModelShape, req: EstimateRequest, trainable: int) -> int:
        """Parameters one tuned variant stores and serves."""
        return trainable

    def variant_bytes(self, shape, req, trainable: int, bytes_per_param: int = 2) -> int:
        """Bytes one tuned variant takes on disk and in serving (16-bit weights)."""
        return int(self.stored(shape, req, trainable)) * bytes_per_param

    # -- the estimator's terms (core/estimate/memory.py calls them)
    @abstractmethod
    def trainable_params(self, shape: ModelShape, req: EstimateRequest) -> int:
        """Parameters the method trains (a unit without this term cannot be instantiated, so not registered)."""

    def weight_bytes(self, shape: ModelShape, req: EstimateRequest, linear_in_blocks: float, weight_bytes: int) -> float:
        """The frozen (or trained) base weights, unsharded: every parameter at the precision's weight bytes."""
        return shape.params * weight_bytes

    def extra_tokens(self, req: EstimateRequest) -> int:
        """Tokens the method adds to every sequence (a soft prompt's virtual tokens)."""
        return 0

    def kept_elems_per_token_layer(self, shape: ModelShape, req: EstimateRequest) -> float:
        """Values the method's own modules keep for backward, per token and decoder block (beyond the block's own)."""
        return 0

    def adafactor_bytes(self, shape: ModelShape, req: EstimateRequest, trainable: int) -> float:
        """Adafactor's state: vectors in full (matrices are factored by the methods that train them)."""
        return 4.0 * trainable

    def assumptions(self, req: EstimateRequest) -> dict[str, str]:
        """The estimate's stated assumptions about the method."""
        return {}

    # -- the exporters (advisor/export): the method's own keys, after the shared adapter settings
    def export_keys(self, tool: str, section, out: Exported) -> None:
        return None

    def axolotl_adapter(self) -> str:
        """Axolotl's `adapter` value for this method."""
        return "lora"

    def reads_as(self, tool: str, config: dict) -> bool:
        """A tool's adapter config (advisor/export/read.py) trains this method rather than plain LoRA."""
        return False


class FullFineTune(FineTuneMethod):
    name, title, learning_rate, section_model = "full", "Full fine-tune", 2e-5, FullMethod
    cost_rank, run_phrase, variant_unit = 3, "a full fine-tune", "tuned copy"
    trains_all_weights, flops_per_token, diverging_lr = True, 6.0, 2e-5
    leaner = (("LoRA instead of a full fine-tune", "lora"), ("QLoRA: LoRA on a 4-bit base", "qlora"))
    demo_training = {"learning_rate": 1e-3, "epochs": 8}
    rule_facts = {
        "memory_source": "tunewise estimate (16 bytes per parameter with AdamW in mixed precision, plus activations)",
        "fit_example": {"gpu_memory_gb": 24, "gpu_count": 1, "model_params_b": 7},
        "fit_counter_example": {"gpu_memory_gb": 80, "gpu_count": 8, "model_params_b": 7},
        "compute_source": "tunewise estimate (training FLOPs ≈ 6 × params × tokens; Kaplan et al. 2020, "
                          "arXiv:2001.08361)",
        "budget_example": {"budget_gpu_hours": 0.001, "examples": 100000, "gpu_memory_gb": 80, "gpu_count": 8},
    }

    def ladder(self, gpus: int) -> list[dict]:
        return [{"optimizer": "adamw", **_shard(gpus)}, {"optimizer": "adamw_8bit", **_shard(gpus)}]

    def stored(self, shape, req, trainable: int) -> int:
        return shape.params

    def trainable_params(self, shape, req) -> int:
        return shape.params

    def adafactor_bytes(self, shape, req, trainable: int) -> float:
        """Factored second moments: rows + columns per matrix (fp32), vectors in full."""
        per_layer = sum((i + o) * (shape.mlp_copies if name in MLP_NAMES else 1)
                        for name, (i, o) in shape.linear_shapes().items())
        return 4.0 * (shape.layers * per_layer + 2 * (shape.vocab + shape.hidden))


class Lora(FineTuneMethod):
    name, title, learning_rate, section_model = "lora", "LoRA", 2e-4, LoraMethod
    cost_rank, run_phrase = 0, "the LoRA run"
    adapters = True
    leaner = (("QLoRA: LoRA on a 4-bit base", "qlora"),)
    demo_training = {"learning_rate": 3e-3, "epochs": 12}
    rule_facts = {
        "memory_source": "tunewise estimate (bf16 weights: 2 bytes per parameter, plus adapters and activations)",
        "fit_example": {"gpu_memory_gb": 24, "gpu_count": 1, "model_params_b": 70},
        "fit_counter_example": {"gpu_memory_gb": 24, "gpu_count": 1, "model_params_b": 7},
        "compute_source": "tunewise estimate (frozen weights: ≈ 4 × params × tokens)",
    }

    def ladder(self, gpus: int) -> list[dict]:
        opt = "adamw_8bit" if self.quantized_base else "adamw"  # QLoRA uses 8-bit (paged) optimizers by design
        lean = {"optimizer": "adamw_8bit", "lora_r": 8, "lora_targets": ATTENTION_ONLY}
        return [
            {"optimizer": opt, "lora_r": 16},
            {"optimizer": "adamw_8bit", "lora_r": 16},
            lean,
            *([{**lean, **_shard(gpus)}] if gpus > 1 else []),
            *self.quantized_rungs(lean, gpus),
        ]

    def quantized_rungs(self, lean: dict, gpus: int) -> list[dict]:
        return []

    def section(self, req) -> dict:
        targets = list(req.lora_targets)
        return {"lora_r": req.lora_r, "lora_alpha": 2 * req.lora_r, "lora_dropout": req.lora_dropout,
                "target_modules": "all-linear" if len(targets) >= 7 or targets == ["all-linear"] else targets}

    def lora_kwargs(self, section) -> dict:
        return dict(r=section.lora_r, lora_alpha=section.lora_alpha, lora_dropout=section.lora_dropout,
                    target_modules=section.target_modules, task_type="CAUSAL_LM", bias="none")

    def peft_config(self, section):
        from peft import LoraConfig

        return LoraConfig(**self.lora_kwargs(section))

    def trainable_params(self, shape, req) -> int:
        return adapted_per_layer(shape, req, lambda i, o: req.lora_r * (i + o)) * shape.layers

    def kept_elems_per_token_layer(self, shape, req) -> float:
        """peft applies dropout to each adapted layer's input separately and keeps that copy for backward; beyond
        it, each adapted module keeps about 3 × hidden values per token (measured with peft 0.21 on a 110M Llama:
        +0.14 GB for q_proj alone, +0.88 GB for all seven, batch 4 × 256)."""
        dropout = adapted_modules_per_layer(shape, req, lambda i, o: i) if req.lora_dropout else 0
        return dropout + LORA_SAVED_PER_MODULE * shape.hidden * adapted_modules_per_layer(shape, req, lambda i, o: 1)

    def adafactor_bytes(self, shape, req, trainable: int) -> float:
        return 4.0 * shape.layers * adapted_per_layer(shape, req, lambda i, o: 2 * req.lora_r + i + o)

    def assumptions(self, req) -> dict[str, str]:
        return {"lora": f"r={req.lora_r} on {', '.join(req.lora_targets)}, dropout {req.lora_dropout:g}; "
                        f"adapters in {req.adapter_dtype}"}


class QLora(Lora):
    name, title, learning_rate, section_model = "qlora", "QLoRA", 2e-4, QLoraMethod
    cost_rank, run_phrase = 1, "the QLoRA run"
    quantized_base, slowdown = True, 1.3
    leaner = ()
    rule_facts = {
        "memory_source": "tunewise estimate (NF4: ~0.52 bytes per parameter with double quantisation)",
        "fit_example": {"gpu_memory_gb": 8, "gpu_count": 1, "model_params_b": 70},
        "fit_counter_example": {"gpu_memory_gb": 48, "gpu_count": 1, "model_params_b": 65},
        "compute_source": "tunewise estimate (frozen weights: ≈ 4 × params × tokens, plus 4-bit dequantisation)",
    }

    def quantized_rungs(self, lean: dict, gpus: int) -> list[dict]:
        # FSDP + QLoRA with the 4-bit shards offloaded to host RAM (Answer.AI / Hugging Face 2024: 70B on 2×24 GB)
        return [{**lean, "upcast_embeddings": False},
                *([{"optimizer": "adamw_8bit", "lora_r": 16, **_shard(gpus), "offload_params": True}]
                  if gpus > 1 else [])]

    def section(self, req) -> dict:
        return {**super().section(req), "upcast_embeddings": req.upcast_embeddings}

    def weight_bytes(self, shape, req, linear_in_blocks: float, weight_bytes: int) -> float:
        """NF4 linear layers; the rest upcast to fp32 by prepare_model_for_kbit_training (unless told not to)."""
        rest_bytes = 4 if req.upcast_embeddings else weight_bytes
        return linear_in_blocks * NF4_BYTES_PER_PARAM + (shape.params - linear_in_blocks) * rest_bytes

    def assumptions(self, req) -> dict[str, str]:
        return {**super().assumptions(req),
                "quantisation": (f"NF4 with double quantisation: {NF4_BYTES_PER_PARAM:.4f} bytes per linear-layer "
                                 "parameter; embeddings and lm_head "
                                 + ("upcast to fp32 (peft's k-bit preparation)" if req.upcast_embeddings
                                    else "kept in the compute dtype"))}

    def export_keys(self, tool: str, m, out) -> None:
        if tool == "axolotl":
            out.config["load_in_4bit"] = True
            kwargs = {"bnb_4bit_quant_type": m.bnb_4bit_quant_type,
                      "bnb_4bit_use_double_quant": m.bnb_4bit_use_double_quant}
            if m.bnb_4bit_compute_dtype != "auto":
                kwargs["bnb_4bit_compute_dtype"] = m.bnb_4bit_compute_dtype
            out.map("method.bnb_4bit_quant_type", "bnb_config_kwargs", kwargs)
            out.mapped.append(("method.bnb_4bit_use_double_quant", "bnb_config_kwargs"))
            self.quantization_notes(m, out, "bnb_config_kwargs")
        elif tool == "llamafactory":
            out.map("method.name: qlora", "quantization_bit", 4)
            out.config["quantization_method"] = "bnb"
            out.map("method.bnb_4bit_quant_type", "quantization_type", m.bnb_4bit_quant_type)
            out.map("method.bnb_4bit_use_double_quant", "double_quantization", m.bnb_4bit_use_double_quant)
            self.quantization_notes(m, out, None)
        elif tool == "trl":
            out.config["load_in_4bit"] = True
            out.map("method.bnb_4bit_quant_type", "bnb_4bit_quant_type", m.bnb_4bit_quant_type)
            out.map("method.bnb_4bit_use_double_quant", "use_bnb_nested_quant", m.bnb_4bit_use_double_quant)
            self.quantization_notes(m, out, None)

    @staticmethod
    def quantization_notes(m, out: Exported, compute_key: str | None) -> None:
        """QLoRA settings every tool handles the same way: the compute dtype (the run's precision unless set; the
        tool's key for it, or a note), and the fp32 upcast of embeddings and head (peft's prepare_model_for_kbit_training,
        which these tools call)."""
        if m.bnb_4bit_compute_dtype == "auto":
            out.mapped.append(("method.bnb_4bit_compute_dtype", "(the run's precision, the tools' default)"))
        elif compute_key:
            out.mapped.append(("method.bnb_4bit_compute_dtype", compute_key))
        else:
            out.skip("method.bnb_4bit_compute_dtype", f"no key for it: the compute dtype follows the precision, not "
                     f"{m.bnb_4bit_compute_dtype}")
        if m.upcast_embeddings:
            out.mapped.append(("method.upcast_embeddings", "(peft's prepare_model_for_kbit_training, the default)"))
        else:
            out.skip("method.upcast_embeddings", "the tool keeps peft's fp32 upcast of the embeddings and the head")

    def axolotl_adapter(self) -> str:
        return "qlora"

    def reads_as(self, tool: str, d: dict) -> bool:
        if tool == "axolotl":
            return d.get("adapter") == "qlora" or bool(d.get("load_in_4bit"))
        if tool == "llamafactory":
            return d.get("quantization_bit") == 4
        return bool(d.get("load_in_4bit"))


class PTuning(FineTuneMethod):
    name, title, learning_rate, section_model = "p_tuning", "P-tuning", 1e-3, PTuningMethod
    cost_rank, run_phrase, variant_unit = 2, "the P-tuning run", "soft prompt"
    soft_prompt, diverging_lr = True, 3e-1
    demo_training = {"learning_rate": 1e-2, "epochs": 20}
    export_refusal = "P-tuning (prompt encoder)"
    rule_facts = {
        "memory_source": "tunewise estimate (bf16 weights: 2 bytes per parameter, plus activations)",
        "fit_example": {"gpu_memory_gb": 24, "gpu_count": 1, "model_params_b": 70},
        "fit_counter_example": {"gpu_memory_gb": 24, "gpu_count": 1, "model_params_b": 7},
        "compute_source": "tunewise estimate (frozen weights: ≈ 4 × params × tokens)",
    }

    def ladder(self, gpus: int) -> list[dict]:
        return [{"optimizer": "adamw"}, *([_shard(gpus)] if gpus > 1 else [])]

    def peft_config(self, section):
        from peft import PromptEncoderConfig

        return PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=section.num_virtual_tokens,
                                   encoder_hidden_size=section.encoder_hidden_size,
                                   encoder_reparameterization_type=section.encoder_reparameterization_type)

    def stored(self, shape, req, trainable: int) -> int:
        # P-tuning trains a prompt encoder, but what is stored and served is its output: virtual tokens × hidden
        # (peft saves the encoder's output embeddings for inference; Lester et al. 2021: a prompt per task)
        return req.num_virtual_tokens * shape.hidden

    def trainable_params(self, shape, req) -> int:
        h, eh = shape.hidden, req.encoder_hidden_size or shape.hidden
        # peft PromptEncoder (MLP): virtual-token embedding + Linear(h,eh) + Linear(eh,eh) + Linear(eh,h)
        return req.num_virtual_tokens * h + (h * eh + eh) + (eh * eh + eh) + (eh * h + h)

    def extra_tokens(self, req) -> int:
        return req.num_virtual_tokens

    def assumptions(self, req) -> dict[str, str]:
        return {"p_tuning": f"{req.num_virtual_tokens} virtual tokens, MLP prompt encoder"}


# DoRA keeps, per token and output feature of each adapted module, the base layer's output and the adapter's output
# for the magnitude's gradient: 2 values beyond LoRA (measured: bench/dora_memory.py, peft 0.21, fp32 CPU, 2.000 at
# 128-1,024 tokens, intercept 0.06 MB; the weight norm's input W + BA is built and released module by module)
DORA_KEPT_PER_OUTPUT = 2


class Dora(Lora):
    """DoRA (Liu et al. 2024, arXiv:2402.09353): W' = m · (W + BA) / ||W + BA||, the magnitude m trained per output
    feature. Offered next to LoRA (the paper reports gains over LoRA at the same rank, at extra training cost),
    never in its place."""

    name, title, learning_rate, section_model = "dora", "DoRA", 2e-4, DoraMethod
    cost_rank, run_phrase = 4, "the DoRA run"
    offered_next_to = "lora"
    offer_text = ("Option: DoRA (`method.name: dora`, peft's use_dora) trains the same adapter at the same rank plus "
                  "one magnitude per output feature; Liu et al. 2024 (arXiv:2402.09353) report higher accuracy than "
                  "LoRA at the same rank, for more activation memory and slower steps. Try it if the LoRA run falls "
                  "short on the held-out set.")
    leaner = (("LoRA: the same adapter without DoRA's magnitude vectors and their kept activations", "lora"),
              ("QLoRA: LoRA on a 4-bit base", "qlora"))
    rule_facts = {
        **Lora.rule_facts,
        "memory_source": "tunewise estimate (LoRA's terms, one magnitude per adapted output feature, and 2 values "
                         "per token and adapted output feature kept for backward: bench/dora_memory.py)",
    }

    def lora_kwargs(self, section) -> dict:
        return {**super().lora_kwargs(section), "use_dora": True}

    def magnitudes(self, shape, req) -> int:
        """One trained magnitude per output feature of every adapted linear layer."""
        return int(adapted_per_layer(shape, req, lambda i, o: o) * shape.layers)

    def trainable_params(self, shape, req) -> int:
        return super().trainable_params(shape, req) + self.magnitudes(shape, req)

    def kept_elems_per_token_layer(self, shape, req) -> float:
        return super().kept_elems_per_token_layer(shape, req) + DORA_KEPT_PER_OUTPUT * adapted_modules_per_layer(
            shape, req, lambda i, o: o)

    def adafactor_bytes(self, shape, req, trainable: int) -> float:
        return super().adafactor_bytes(shape, req, trainable) + 4.0 * self.magnitudes(shape, req)

    def assumptions(self, req) -> dict[str, str]:
        return {**super().assumptions(req),
                "dora": f"a magnitude per adapted output feature; {DORA_KEPT_PER_OUTPUT} more values per token and "
                        "adapted output feature kept for backward than LoRA (bench/dora_memory.py); not counted: the "
                        "dense W + BA peft builds per adapted layer for its norm (two out × in matrices, freed "
                        "after that layer); time as LoRA's FLOPs (that norm and the elementwise rescaling make "
                        "the steps slower than the estimate says)"}

    def export_keys(self, tool: str, m, out) -> None:
        out.map("method.name: dora", "peft_use_dora" if tool == "axolotl" else "use_dora", True)

    def reads_as(self, tool: str, d: dict) -> bool:
        return bool(d.get("peft_use_dora" if tool == "axolotl" else "use_dora"))


# --- the registry -----------------------------------------------------------------------------------------------

REGISTRY: dict[str, FineTuneMethod] = {}
ADVISOR_ONLY = {"prompting": "Prompting", "rag": "RAG (retrieval-augmented generation)"}  # no training: no unit


def register(unit: FineTuneMethod) -> FineTuneMethod:
    """Add a method (once; its name is a public contract: config `method.name`, rule ids, CLI choices)."""
    if unit.name in REGISTRY or unit.name in ADVISOR_ONLY:
        raise ValueError(f"method `{unit.name}` is registered already")
    if unit.offered_next_to is not None and unit.offered_next_to not in REGISTRY:
        raise ValueError(f"`{unit.name}` is offered next to `{unit.offered_next_to}`, which is not registered")
    REGISTRY[unit.name] = unit
    TITLES[unit.name] = unit.title
    return unit


TITLES: dict[str, str] = dict(ADVISOR_ONLY)
FULL, LORA, QLORA, P_TUNING, DORA = (register(u) for u in (FullFineTune(), Lora(), QLora(), PTuning(), Dora()))


def method(name: str) -> FineTuneMethod:
    return REGISTRY[name]


def is_fine_tune(name: str) -> bool:
    return name in REGISTRY


def decision_methods() -> tuple[str, ...]:
    """The methods the advisor decides between, cheapest first (its tie-break): prompting, RAG, then the
    fine-tunes by cost; a method offered only next to another comes after them (never a candidate on its own)."""
    tunes = sorted(REGISTRY.values(), key=lambda u: (offered_only(u.name), u.cost_rank))
    return (*ADVISOR_ONLY, *(u.name for u in tunes))


def offered_only(name: str) -> bool:
    """A method offered only beside another (DoRA beside LoRA): never a candidate of its own, ranked after the
    methods the advisor decides between, ruled out with the one it sits beside."""
    unit = REGISTRY.get(name)
    return unit is not None and unit.offered_next_to is not None


def offered_next_to(chosen: str) -> list[FineTuneMethod]:
    """The methods the advisor offers beside the chosen one."""
    return [u for u in REGISTRY.values() if u.offered_next_to == chosen]


def weight_tune(unit: FineTuneMethod) -> bool:
    """The method changes the served model (its weights, or layers added to it), unlike a soft prompt."""
    return not unit.soft_prompt


def read_method(tool: str, config: dict, adapter: bool) -> str:
    """The method a tool's config trains: every weight without an adapter, else the adapter unit that claims the
    config (QLoRA: 4-bit; DoRA: use_dora), else plain LoRA."""
    if not adapter:
        return FULL.name
    return next((u.name for u in REGISTRY.values() if u.adapters and u.reads_as(tool, config)), LORA.name)
