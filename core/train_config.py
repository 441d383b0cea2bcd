"""The training config (public contract, written by `recommend --config-out`, read by `train`).

Torch-free on purpose: the advisor writes it without importing the training stack."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from core.data.layout import ColumnMap, DataLayout, TagMap
from core.metric_names import METRICS

# transformers' optimizer names. adamw stays torch's foreach AdamW (what the estimate's step temporaries model and
# what the published measurements used); adamw_8bit keeps its first meaning (bitsandbytes paged 8-bit)
HF_OPTIMIZERS = {"adamw": "adamw_torch", "adamw_8bit": "paged_adamw_8bit", "paged_adamw": "paged_adamw_32bit",
                 "paged_adamw_8bit": "paged_adamw_8bit", "adafactor": "adafactor", "sgd": "sgd"}


# the largest peak learning rate a config may ask for: P-tuning's soft prompts train at up to 0.3 (Lester et al.
# 2021 used 0.3 with Adafactor); 1.0 leaves room for that and refuses the typos (2e4 for 2e-4) that diverge at once
MAX_LEARNING_RATE = 1.0


def deepspeed_settings(strategy: str) -> dict:
    """The DeepSpeed JSON of a `deepspeed_zero2` / `deepspeed_zero3` strategy (batch sizes from the trainer)."""
    stage = 3 if strategy == "deepspeed_zero3" else 2
    return {"zero_optimization": {"stage": stage, "overlap_comm": True, "contiguous_gradients": True,
                                  **({"stage3_gather_16bit_weights_on_model_save": True} if stage == 3 else {})},
            "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
            "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto", "train_batch_size": "auto"}


def template_is_path(value: str) -> bool:
    """data.chat_template names a file (no Jinja markup, and a file suffix or a slash), else it is the template."""
    return "{" not in value and (value.endswith((".jinja", ".j2", ".txt", ".tmpl")) or "/" in value or "\\" in value)


def _against(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return os.path.abspath(p if p.is_absolute() else base / p)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class ModelSection(_Section):
    path: str = Field(description="local folder of the base model (config.json + safetensors; relative to this "
                      "file's folder); never downloaded")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype; auto = bfloat16 on a GPU that supports it, else float32")
    trust_remote_code: bool = Field(False, description="the model needs the Python it ships (auto_map); it runs only "
                                    "with --trust-remote-code on the command line or a yes on a terminal, never "
                                    "because a file says so")


class DataSection(_Section):
    path: str = Field(description="training data: JSONL, JSON array, one JSON object, CSV/TSV, Parquet or text, "
                      "also gzip/bzip2/xz/zstd-compressed (relative to this file's folder)")
    format: Literal["auto", "alpaca", "sharegpt", "openai", "prompt_completion", "text"] = Field(
        "auto", description="record format; auto = detected from the first 200 records (as `tunewise audit` does)")
    chat_template: str | None = Field(
        None, description="Jinja chat template (inline, or a path to a .jinja file); default: the tokenizer's own")
    system_prompt: str | None = Field(None, description="system message added to records that have none")
    max_seq_len: int = Field(1024, gt=8, validation_alias=AliasChoices("max_seq_len", "max_length", "max_seq_length"),
                             description="tokens per record after the chat template; longer records are cut")
    val_size: float = Field(0.1, ge=0, description="validation share (<1) or record count (>=1)")
    assistant_only_loss: bool = Field(True, description="train only on assistant tokens (prompt tokens masked)")
    drop_untrainable: bool = Field(False, description="skip records left without answer tokens by truncation "
                                   "(default: stop and say which)")
    max_skipped: float = Field(0.05, ge=0, le=1, description="largest share of records that may be skipped as "
                               "unreadable, off-format or without an answer before train and --dry-run stop (exit 2)")
    truncated_replies: Literal["keep", "skip"] = Field(
        "keep", description="records whose reply is cut at max_seq_len before its end token (the model would learn "
        "not to stop): keep them (counted and reported by --dry-run) or skip them")
    reasoning: Literal["train", "drop"] = Field(
        "train", description="replies that reason first (<think>…</think> or a reasoning_content field): train the "
        "reasoning with the answer (rendered back where the chat template strips it), or drop it and train answers only")
    cache: bool = Field(True, description="keep the tokenised records on disk, keyed by a hash of the data file, "
                        "tokenizer and these settings: the next run of the same data starts without re-encoding")
    cache_dir: str | None = Field(None, description="where the tokenised records are kept (relative to this file's "
                                  "folder); default $TUNEWISE_CACHE, else ~/.cache/tunewise")
    num_proc: int | None = Field(None, ge=1, description="processes that tokenise the records; default one per "
                                 "available core from 20,000 records (at least 10,000 each), else one")
    columns: ColumnMap | None = Field(None, description="which column holds what (prompt, query, response, system, "
                                      "history, messages, tools, text; LLaMA-Factory's names), as `tunewise audit "
                                      "--columns` reads them; default: the project file's data.columns, else detected")
    tags: TagMap | None = Field(None, description="the keys and role names inside each turn of the `messages` column")
    text_unit: Literal["auto", "line", "paragraph", "document"] = Field(
        "auto", description="plain-text files: one record per line, paragraph or document (auto: as the audit decides)")

    _columns_origin: str = PrivateAttr("data.columns")  # the file and field the columns came from (for errors)

    @property
    def columns_origin(self) -> str:
        return self._columns_origin

    def layout(self) -> DataLayout:
        """The reading settings the audit takes (core/data/layout.py)."""
        return DataLayout(format=self.format, columns=self.columns, tags=self.tags, text_unit=self.text_unit)


# the method sections live with their methods (core/methods.py); the union is every registered one
from core.methods import (  # noqa: E402,F401 - named here as before (advisor/docs.py, tests)
    REGISTRY,
    FullMethod,
    LoraMethod,
    PTuningMethod,
    QLoraMethod,
)

_NAMES = list(REGISTRY)
METHOD_NAMES = ", ".join(_NAMES[:-1]) + " or " + _NAMES[-1]  # full, lora, qlora or p_tuning
Method = Annotated[Union[tuple(u.section_model for u in REGISTRY.values())],  # noqa: UP007 - built from a tuple
                   Field(discriminator="name")]


class TrainingSection(_Section):
    learning_rate: float = Field(2e-4, gt=0, validation_alias=AliasChoices("learning_rate", "lr"),
                                 description="peak learning rate (LoRA 1e-4 to 3e-4; full 1e-5 to 2e-5)")
    epochs: float = Field(3.0, gt=0, validation_alias=AliasChoices("epochs", "num_train_epochs"),
                          description="passes over the training records")
    max_steps: int = Field(-1, ge=-1, description="overrides epochs when > 0")
    batch_size: int = Field(4, gt=0, validation_alias=AliasChoices("batch_size", "per_device_train_batch_size"),
                            description="records per step on each device")
    eval_batch_size: int | None = Field(None, gt=0, validation_alias=AliasChoices("eval_batch_size", "per_device_eval_batch_size"),
                                        description="records per evaluation step (default: batch_size)")
    grad_accum: int = Field(1, gt=0, validation_alias=AliasChoices("grad_accum", "gradient_accumulation_steps"),
                            description="steps whose gradients are summed before an update (effective batch = "
                                        "batch_size × grad_accum × processes)")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="share of the steps spent raising the learning rate")
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "cosine", validation_alias=AliasChoices("scheduler", "lr_scheduler_type"),
        description="learning-rate schedule after warm-up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradients are clipped to this norm")
    optimizer: Literal["adamw", "adamw_8bit", "paged_adamw", "paged_adamw_8bit", "adafactor", "sgd"] = Field(
        "adamw", validation_alias=AliasChoices("optimizer", "optim"),
        description="adamw (torch), adamw_8bit / paged_adamw / paged_adamw_8bit (bitsandbytes), adafactor, sgd")
    precision: Literal["auto", "bf16", "fp16", "bf16-mixed", "fp16-mixed", "fp32"] = Field(
        "auto", description="bf16/fp16: pure 16-bit weights, gradients and optimizer states; *-mixed: fp32 weights "
        "with 16-bit autocast (AMP); fp32; auto: model.dtype if set, else bf16 on a GPU that supports it, else fp32")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward: much less memory, "
                                         "~30% slower")
    loss: Literal["auto", "chunked", "plain", "liger", "cut_cross_entropy"] = Field(
        "auto", description="how the loss meets the vocabulary. chunked: the logits are never built whole (one chunk "
        "at a time, plain torch, same value and gradients); liger / cut_cross_entropy: those packages' fused CUDA "
        "kernels; plain: the model's own loss over the full logits; auto: liger or cut_cross_entropy when installed "
        "on CUDA, else chunked, else plain where the model or the sharding does not allow it (the run says which)")
    attention: Literal["auto", "sdpa", "flash_attention_2", "eager"] = Field(
        "auto", description="attention kernel. auto: flash_attention_2 when flash-attn is installed on CUDA with a "
        "16-bit run, else sdpa, else eager (models whose attention scores are soft-capped, Gemma 2, get eager "
        "without flash-attn: SDPA cannot cap them); eager keeps batch × heads × sequence² scores per layer")
    seed: int = Field(42, description="seed of the data shuffle, the split and the initialisation")
    logging_steps: int = Field(5, gt=0, description="a metrics row (loss, learning rate, tokens/s) every N steps")
    eval_steps: int | None = Field(None, gt=0, description="evaluate every N steps (default: once per epoch)")
    save_steps: int | None = Field(None, gt=0, description="checkpoint every N steps (default: once per epoch)")
    save_total_limit: int = Field(2, gt=0, description="checkpoints kept (older ones are deleted)")
    early_stopping_patience: int | None = Field(None, gt=0, description="stop after N evaluations without improvement")
    group_by_length: bool = Field(True, description="batch similar lengths together: less padding, faster")
    padding_free: bool = Field(False, description="concatenate each batch into one row with position ids restarting "
                               "per record: no compute on padding, attention kept within each record (transformers' "
                               "packed-sequence mask); for GPUs with flash attention: on a CPU the mask costs more than "
                               "the padding saved (0.57-0.68x, bench/train_throughput.py)")

    @field_validator("learning_rate")
    @classmethod
    def _sane_learning_rate(cls, v: float) -> float:
        if v > MAX_LEARNING_RATE:
            typo = f"; did you mean {v:.0e}".replace("e+", "e-").replace("e-0", "e-") + "?" if v >= 10 else ""
            raise ValueError(f"{v:g} is far above any fine-tuning learning rate (LoRA 1e-4 to 3e-4, full 1e-5 to "
                             f"2e-5, P-tuning up to 3e-1): such a run diverges at once{typo}")
        return v

    @model_validator(mode="after")
    def _steps_align(self) -> TrainingSection:
        if self.early_stopping_patience and self.eval_steps and self.save_steps and self.save_steps % self.eval_steps:
            raise ValueError("with early stopping, `save_steps` must be a multiple of `eval_steps`")
        if self.early_stopping_patience and bool(self.eval_steps) != bool(self.save_steps or self.eval_steps):
            raise ValueError("with early stopping, evaluation and checkpoints must use the same schedule: set "
                             "`eval_steps` too (or neither, for once per epoch)")
        return self


class OutputSection(_Section):
    dir: str = Field("runs/tunewise", validation_alias=AliasChoices("dir", "output_dir"),
                     description="where checkpoints, the adapter or model, metrics and the summary are written "
                     "(relative to this file's folder)")


class DistributedSection(_Section):
    processes: int = Field(1, gt=0, validation_alias=AliasChoices("processes", "nproc_per_node", "num_processes"),
                           description="processes (GPUs) on this machine")
    strategy: Literal["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"] = Field(
        "ddp", description="ddp: a full copy per GPU; fsdp / deepspeed_zero3: weights, gradients and optimizer "
        "sharded; deepspeed_zero2: gradients and optimizer sharded")
    launcher: Literal["torchrun", "accelerate"] = Field("torchrun", description="how the processes are started")
    nodes: int = Field(1, gt=0, validation_alias=AliasChoices("nodes", "nnodes", "num_machines"),
                       description="machines in the job (each runs `tunewise train` with its node_rank)")
    node_rank: int = Field(0, ge=0, validation_alias=AliasChoices("node_rank", "machine_rank"),
                           description="this machine's index; node 0 holds the output folder and writes the results")
    master_addr: str = Field("127.0.0.1", description="address of node 0, reachable from every node")
    master_port: int | None = Field(None, gt=0, lt=65536, description="port on node 0 for the rendezvous (default: a "
                                    "free port on one node; 29500 across nodes)")

    @model_validator(mode="after")
    def _node_rank_in_range(self) -> DistributedSection:
        if self.node_rank >= self.nodes:
            raise ValueError(f"`distributed.node_rank` {self.node_rank} must be below `distributed.nodes` "
                             f"({self.nodes})")
        return self

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes

    @property
    def node_port(self) -> int:
        """The rendezvous port every node dials: master_port, else torchrun's usual 29500 (one machine picks a
        free port instead)."""
        return self.master_port or 29500

    @property
    def main_node(self) -> bool:
        return self.node_rank == 0


class EvalSection(_Section):
    enabled: bool = Field(True, description="after training, compare the base model and the result on the held-out "
                          "split (what `tunewise eval RUN_DIR` does): answer loss, task metric, forgetting")
    max_records: int = Field(50, gt=0, description="held-out records evaluated at most")
    metric: Literal[METRICS] | None = Field(
        None, description="task metric (default: chosen from the answers: JSON, labels or free text)")
    json_schema: str | None = Field(None, description="JSON Schema file the answers must match (relative to this "
                                    "file's folder)")
    general_text: str | None = Field(None, description="general text for the forgetting check, one passage per line "
                                     "(default: the sample shipped with tunewise)")
    max_new_tokens: int | None = Field(None, gt=0, description="answer length limit (default: 1.5 x the longest "
                                       "expected answer)")


class TrainConfig(_Section):
    """Everything `tunewise train` needs. Sections: model, data, method, training, output, distributed, eval."""

    model: ModelSection = Field(description="the base model")
    data: DataSection = Field(description="the training data and how it is rendered")
    method: Method = Field(default_factory=LoraMethod, description=f"{METHOD_NAMES}, with its settings")
    training: TrainingSection = Field(default_factory=TrainingSection, description="optimisation and checkpoints")
    output: OutputSection = Field(default_factory=OutputSection, description="where results go")
    distributed: DistributedSection = Field(default_factory=DistributedSection, description="several GPUs")
    eval: EvalSection = Field(default_factory=EvalSection, description="base vs tuned after training")

    @model_validator(mode="after")
    def _evaluation_needs_data(self) -> TrainConfig:
        if self.data.val_size == 0 and self.training.early_stopping_patience:
            raise ValueError("`training.early_stopping_patience` needs evaluation, but `data.val_size` is 0: set a "
                             "validation share (e.g. 0.1) or remove early stopping")
        return self

    @model_validator(mode="after")
    def _padding_free_needs_positions(self) -> TrainConfig:
        if self.training.padding_free and REGISTRY[self.method.name].soft_prompt:
            raise ValueError("`training.padding_free` restarts position ids per record, which P-tuning's virtual "
                             "tokens do not follow: turn it off for p_tuning")
        return self

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

    def map_paths(self, fn) -> TrainConfig:
        """The config with `fn` applied to every path in it: model.path, data.path, a data.chat_template file,
        output.dir and the eval files (the one list of which settings are paths)."""
        data = {"path": fn(self.data.path)}
        if self.data.cache_dir:
            data["cache_dir"] = fn(self.data.cache_dir)
        if self.data.chat_template and template_is_path(self.data.chat_template):
            data["chat_template"] = fn(self.data.chat_template)
        ev = {k: fn(v) for k in ("json_schema", "general_text") if (v := getattr(self.eval, k))}
        return self.model_copy(update={
            "model": self.model.model_copy(update={"path": fn(self.model.path)}),
            "data": self.data.model_copy(update=data),
            "output": self.output.model_copy(update={"dir": fn(self.output.dir)}),
            "eval": self.eval.model_copy(update=ev)})

    def resolve_paths(self, config_file: str | Path) -> TrainConfig:
        """The config with its relative paths read against the config file's folder, made absolute: a config runs
        the same from any working directory, and launched processes read the same paths."""
        base = Path(config_file).expanduser().parent
        return self.map_paths(lambda value: _against(base, value))

    def fingerprint(self) -> str:
        """Hash of everything that changes the result (not where it is written, how many processes run it, or how
        it is evaluated afterwards)."""
        d = self.model_dump(mode="json")
        d.pop("output", None)
        d.pop("eval", None)  # checking the result does not change it
        for key in ("cache", "cache_dir", "num_proc"):  # where and how the records are tokenised, not what they are
            d["data"].pop(key, None)
        for key, default in (("columns", None), ("tags", None), ("text_unit", "auto")):  # unset: as before they were
            if d["data"].get(key) == default:
                d["data"].pop(key)
        for key in ("loss", "attention"):  # how the same loss and attention are computed (equal results)
            d["training"].pop(key, None)
        for key in ("node_rank", "master_addr", "master_port"):  # where this copy runs, not what it trains
            d["distributed"].pop(key, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
