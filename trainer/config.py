"""The training config (public contract, written by `recommend --config-out`, read by `train`).

Torch-free on purpose: the advisor writes it without importing the training stack."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelSection(_Section):
    path: str = Field(description="local folder of the base model (config.json + safetensors); never downloaded")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype; auto = bfloat16 on a GPU that supports it, else float32")
    trust_remote_code: bool = Field(False, description="run Python shipped with the model (off: never execute inputs)")


class DataSection(_Section):
    path: str = Field(description="training data: JSONL, JSON array or CSV")
    format: Literal["auto", "alpaca", "sharegpt", "openai", "prompt_completion", "text"] = "auto"
    chat_template: str | None = Field(
        None, description="Jinja chat template (inline, or a path to a .jinja file); default: the tokenizer's own")
    system_prompt: str | None = Field(None, description="system message added to records that have none")
    max_seq_len: int = Field(1024, gt=8, validation_alias=AliasChoices("max_seq_len", "max_length", "max_seq_length"))
    val_size: float = Field(0.1, ge=0, description="validation share (<1) or record count (>=1)")
    assistant_only_loss: bool = Field(True, description="train only on assistant tokens (prompt tokens masked)")
    drop_untrainable: bool = Field(False, description="skip records left without answer tokens by truncation "
                                   "(default: stop and say which)")


class _LoraFields(_Section):
    lora_r: int = Field(16, gt=0, validation_alias=AliasChoices("lora_r", "r"))
    lora_alpha: int = Field(32, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class FullMethod(_Section):
    name: Literal["full"] = "full"


class LoraMethod(_LoraFields):
    name: Literal["lora"] = "lora"


class QLoraMethod(_LoraFields):
    name: Literal["qlora"] = "qlora"
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    upcast_embeddings: bool = Field(True, description="keep peft's fp32 upcast of the embeddings and lm_head "
                                    "(stable; false saves 4 bytes x vocabulary x hidden twice and fp32 logits)")


class PTuningMethod(_Section):
    name: Literal["p_tuning"] = "p_tuning"
    num_virtual_tokens: int = Field(20, gt=0)
    encoder_hidden_size: int = Field(128, gt=0)
    encoder_reparameterization_type: Literal["MLP", "LSTM"] = "MLP"


Method = Annotated[FullMethod | LoraMethod | QLoraMethod | PTuningMethod, Field(discriminator="name")]


class TrainingSection(_Section):
    learning_rate: float = Field(2e-4, gt=0, validation_alias=AliasChoices("learning_rate", "lr"))
    epochs: float = Field(3.0, gt=0, validation_alias=AliasChoices("epochs", "num_train_epochs"))
    max_steps: int = Field(-1, ge=-1, description="overrides epochs when > 0")
    batch_size: int = Field(4, gt=0, validation_alias=AliasChoices("batch_size", "per_device_train_batch_size"))
    eval_batch_size: int | None = Field(None, gt=0, validation_alias=AliasChoices("eval_batch_size", "per_device_eval_batch_size"))
    grad_accum: int = Field(1, gt=0, validation_alias=AliasChoices("grad_accum", "gradient_accumulation_steps"))
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "cosine", validation_alias=AliasChoices("scheduler", "lr_scheduler_type"))
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    optimizer: Literal["adamw", "adamw_8bit", "paged_adamw", "paged_adamw_8bit", "adafactor", "sgd"] = Field(
        "adamw", validation_alias=AliasChoices("optimizer", "optim"),
        description="adamw (torch), adamw_8bit / paged_adamw / paged_adamw_8bit (bitsandbytes), adafactor, sgd")
    precision: Literal["auto", "bf16", "fp16", "bf16-mixed", "fp16-mixed", "fp32"] = Field(
        "auto", description="bf16/fp16: pure 16-bit weights, gradients and optimizer states; *-mixed: fp32 weights "
        "with 16-bit autocast (AMP); fp32; auto: model.dtype if set, else bf16 on a GPU that supports it, else fp32")
    gradient_checkpointing: bool = False
    seed: int = 42
    logging_steps: int = Field(5, gt=0)
    eval_steps: int | None = Field(None, gt=0, description="evaluate every N steps (default: once per epoch)")
    save_steps: int | None = Field(None, gt=0, description="checkpoint every N steps (default: once per epoch)")
    save_total_limit: int = Field(2, gt=0)
    early_stopping_patience: int | None = Field(None, gt=0, description="stop after N evaluations without improvement")
    group_by_length: bool = Field(True, description="batch similar lengths together: less padding, faster")

    @model_validator(mode="after")
    def _steps_align(self) -> TrainingSection:
        if self.early_stopping_patience and self.eval_steps and self.save_steps and self.save_steps % self.eval_steps:
            raise ValueError("with early stopping, `save_steps` must be a multiple of `eval_steps`")
        return self


class OutputSection(_Section):
    dir: str = Field("runs/tunewise", validation_alias=AliasChoices("dir", "output_dir"))


class DistributedSection(_Section):
    processes: int = Field(1, gt=0, validation_alias=AliasChoices("processes", "nproc_per_node", "num_processes"))
    strategy: Literal["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"] = "ddp"
    launcher: Literal["torchrun", "accelerate"] = "torchrun"


class TrainConfig(_Section):
    """Everything `tunewise train` needs. Sections: model, data, method, training, output, distributed."""

    model: ModelSection
    data: DataSection
    method: Method = Field(default_factory=LoraMethod)
    training: TrainingSection = Field(default_factory=TrainingSection)
    output: OutputSection = Field(default_factory=OutputSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)

    @model_validator(mode="after")
    def _precision_matches_dtype(self) -> TrainConfig:
        want = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "bf16-mixed": "float32",
                "fp16-mixed": "float32"}.get(self.training.precision)
        if want and self.model.dtype not in ("auto", want):
            raise ValueError(f"`training.precision: {self.training.precision}` trains {want} weights but "
                             f"`model.dtype` is {self.model.dtype}: remove model.dtype (precision decides) or make "
                             "them agree")
        return self

    def to_file_dict(self) -> dict:
        """As written to train.yaml: `method.name` first, unset optional keys left out."""
        d = self.model_dump(mode="json", exclude_none=True)
        d["method"] = {"name": d["method"].pop("name"), **d["method"]}
        return d

    def fingerprint(self) -> str:
        """Hash of everything that changes the result (not where it is written, nor how many processes run it)."""
        d = self.model_dump(mode="json")
        d.pop("output", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
