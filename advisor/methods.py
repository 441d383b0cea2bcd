"""The fine-tuning methods, one registry entry each (the way peft registers a tuner): what the method trains, its
estimator terms, the ladder of leaner configurations the hardware check tries, its default learning rate, the
train config's method section it writes, and the peft config it builds. Shared by the estimator, the advisor's
hardware check, config generation and the trainer (torch-free: peft is imported only when a config is built).
Next steps per method stay data in rules/next_steps.yaml."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ATTENTION_ONLY = ("q_proj", "v_proj")


@dataclass(frozen=True)
class FineTuneMethod:
    name: str
    title: str
    learning_rate: float  # the usual starting rate written into train.yaml
    trains_all_weights: bool = False  # full: gradients and optimizer states for every weight
    adapters: bool = False  # LoRA-style low-rank adapters on linear layers (peft LoraConfig)
    quantized_base: bool = False  # the frozen base is 4-bit (bitsandbytes)
    soft_prompt: bool = False  # virtual tokens before the input (peft PromptEncoder)
    flops_per_token: float = 4.0  # × parameters (forward + input gradients; 6 when weights get gradients too)
    slowdown: float = 1.0  # on the FLOPs estimate (dequantising 4-bit weights costs time)
    ladder: Callable[[int], list[dict]] = field(default=lambda gpus: [{}], repr=False)
    section: Callable[[Any], dict] = field(default=lambda req: {}, repr=False)
    # what one tuned variant stores and serves, in parameters, from (model shape, estimate request, trainable
    # parameters): a full copy of the model, the adapter, or the soft prompt's virtual-token embeddings
    stored: Callable[[Any, Any, int], int] = field(default=lambda shape, req, trainable: trainable, repr=False)

    def variant_bytes(self, shape, req, trainable: int, bytes_per_param: int = 2) -> int:
        """Bytes one tuned variant takes on disk and in serving (16-bit weights)."""
        return int(self.stored(shape, req, trainable)) * bytes_per_param

    def config_section(self, req) -> dict:
        """The train config's `method` mapping for an estimate request (the configuration that was estimated)."""
        return {"name": self.name, **self.section(req)}

    def peft_config(self, section):
        """The peft config this method trains with (None: every weight is trained directly)."""
        if self.adapters:
            from peft import LoraConfig

            return LoraConfig(r=section.lora_r, lora_alpha=section.lora_alpha, lora_dropout=section.lora_dropout,
                              target_modules=section.target_modules, task_type="CAUSAL_LM", bias="none")
        if self.soft_prompt:
            from peft import PromptEncoderConfig

            return PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=section.num_virtual_tokens,
                                       encoder_hidden_size=section.encoder_hidden_size,
                                       encoder_reparameterization_type=section.encoder_reparameterization_type)
        return None


def _shard(gpus: int) -> dict:
    return {"sharding": "zero3"} if gpus > 1 else {}


def _full_ladder(gpus: int) -> list[dict]:
    return [{"optimizer": "adamw", **_shard(gpus)}, {"optimizer": "adamw_8bit", **_shard(gpus)}]


def _adapter_ladder(quantized: bool) -> Callable[[int], list[dict]]:
    def ladder(gpus: int) -> list[dict]:
        opt = "adamw_8bit" if quantized else "adamw"  # QLoRA uses 8-bit (paged) optimizers by design
        lean = {"optimizer": "adamw_8bit", "lora_r": 8, "lora_targets": ATTENTION_ONLY}
        return [
            {"optimizer": opt, "lora_r": 16},
            {"optimizer": "adamw_8bit", "lora_r": 16},
            lean,
            *([{**lean, **_shard(gpus)}] if gpus > 1 else []),
            *([{**lean, "upcast_embeddings": False}] if quantized else []),
            # FSDP + QLoRA with the 4-bit shards offloaded to host RAM (Answer.AI / Hugging Face 2024: 70B on 2×24 GB)
            *([{"optimizer": "adamw_8bit", "lora_r": 16, **_shard(gpus), "offload_params": True}]
              if quantized and gpus > 1 else []),
        ]
    return ladder


def _adapter_section(quantized: bool) -> Callable[[Any], dict]:
    def section(req) -> dict:
        targets = list(req.lora_targets)
        out = {"lora_r": req.lora_r, "lora_alpha": 2 * req.lora_r, "lora_dropout": req.lora_dropout,
               "target_modules": "all-linear" if len(targets) >= 7 or targets == ["all-linear"] else targets}
        return {**out, "upcast_embeddings": req.upcast_embeddings} if quantized else out
    return section


FULL = FineTuneMethod("full", "Full fine-tune", 2e-5, trains_all_weights=True, flops_per_token=6.0,
                      ladder=_full_ladder, stored=lambda shape, req, trainable: shape.params)
LORA = FineTuneMethod("lora", "LoRA", 2e-4, adapters=True, ladder=_adapter_ladder(False),
                      section=_adapter_section(False))
QLORA = FineTuneMethod("qlora", "QLoRA", 2e-4, adapters=True, quantized_base=True, slowdown=1.3,
                       ladder=_adapter_ladder(True), section=_adapter_section(True))
# P-tuning trains a prompt encoder, but what is stored and served is its output: virtual tokens × hidden size
# (peft saves the encoder's output embeddings for inference; Lester et al. 2021: a prompt per task)
P_TUNING = FineTuneMethod("p_tuning", "P-tuning", 1e-3, soft_prompt=True,
                          ladder=lambda gpus: [{"optimizer": "adamw"}, *([_shard(gpus)] if gpus > 1 else [])],
                          stored=lambda shape, req, trainable: req.num_virtual_tokens * shape.hidden)

REGISTRY: dict[str, FineTuneMethod] = {m.name: m for m in (FULL, LORA, QLORA, P_TUNING)}
TITLES = {"prompting": "Prompting", "rag": "RAG (retrieval-augmented generation)",
          **{m.name: m.title for m in REGISTRY.values()}}


def method(name: str) -> FineTuneMethod:
    return REGISTRY[name]


def is_fine_tune(name: str) -> bool:
    return name in REGISTRY
