"""Pieces the exports share: HF TrainingArguments-style schedule and precision (LLaMA-Factory and TRL read those
names), the record count, whether the data carries tool calls, the data's format and columns as `train` reads
them, and the notes every tool's mapping takes (each exporter: axolotl.py, llamafactory.py, trl_sft.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.exported import Exported
from core.train_config import HF_OPTIMIZERS, TrainConfig

# the training settings every tool has, by the names transformers' TrainingArguments give them (LLaMA-Factory and
# TRL read those); a tool with other names passes its own table to `map_schedule`
HF_NAMES = {"batch_size": "per_device_train_batch_size", "eval_batch_size": "per_device_eval_batch_size",
            "grad_accum": "gradient_accumulation_steps", "learning_rate": "learning_rate",
            "epochs": "num_train_epochs", "max_steps": "max_steps",
            "warmup_ratio": "warmup_steps",  # a float below 1 is a share of the steps
            "scheduler": "lr_scheduler_type", "weight_decay": "weight_decay", "max_grad_norm": "max_grad_norm",
            "optimizer": "optim", "gradient_checkpointing": "gradient_checkpointing", "seed": "seed",
            "logging_steps": "logging_steps", "save_total_limit": "save_total_limit"}


def map_schedule(cfg: TrainConfig, out, names: dict[str, str]) -> None:
    """Batch, schedule, optimizer and logging under the tool's names (max_steps only when it overrides epochs)."""
    t = cfg.training
    for field, key in names.items():
        value = getattr(t, field)
        if field == "eval_batch_size":
            value = value or t.batch_size
        elif field == "optimizer":
            value = HF_OPTIMIZERS[value]
        elif field == "max_steps" and value <= 0:
            continue
        out.map(f"training.{field}", key, value)


def hf_schedule(cfg: TrainConfig, out) -> None:
    """Batch, schedule, checkpoints and logging in transformers' TrainingArguments names."""
    t = cfg.training
    map_schedule(cfg, out, HF_NAMES)
    save = t.save_steps or t.eval_steps
    out.map("training.save_steps", "save_strategy", "steps" if save else "epoch")
    if save:
        out.config["save_steps"] = save
    if cfg.data.val_size:
        out.map("training.eval_steps", "eval_strategy", "steps" if t.eval_steps else "epoch")
        if t.eval_steps:
            out.config["eval_steps"] = t.eval_steps
    if t.early_stopping_patience:
        out.skip("training.early_stopping_patience", "no config key for early stopping: the run trains all steps "
                 "(the best checkpoint is kept with load_best_model_at_end)")
        out.config.update(load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False)
    if not t.group_by_length:
        out.skip("training.group_by_length", "a speed setting (length-grouped batches); the tool batches its way")
    out.config["report_to"] = "none"


def hf_precision(cfg: TrainConfig, out, pure_bf16_key: str | None) -> None:
    """bf16/fp16 flags; `pure_bf16_key` names the tool's switch for 16-bit weights (None: it has none)."""
    p = cfg.training.precision
    if p in ("auto", "bf16-mixed"):
        out.map("training.precision", "bf16", True)
        if p == "auto":
            out.skip("training.precision: auto", "tunewise picks bf16 on a GPU that supports it, else fp32, at run "
                     "time; exported as bf16 (set fp16 on GPUs without bf16)")
    elif p == "bf16":
        if pure_bf16_key:
            out.map("training.precision", pure_bf16_key, True)
        else:
            out.map("training.precision", "bf16", True)
    elif p in ("fp16", "fp16-mixed"):
        out.map("training.precision", "fp16", True)
        if p == "fp16":
            out.skip("training.precision: fp16", "pure fp16 weights are not a training mode there: exported as fp16 "
                     "autocast over fp32 weights (fp16-mixed)")


def record_count(path: str) -> int:
    from core.data import iter_raw

    return sum(1 for _ in iter_raw(path))


def head_records(path: str, n: int):
    """The first `n` records of the data that parse (what the exports look at to describe the data)."""
    from itertools import islice

    from core.data import iter_raw

    return (r.obj for r in islice(iter_raw(path), n) if r.error is None)


def has_tool_calls(path: str, fmt: str, head: int = 500) -> bool:
    from core.data import normalise

    return any(normalise(obj, fmt).has_tools for obj in head_records(path, head))


def data_keys(path: str, head: int = 1000) -> set[str]:
    """The top-level keys the data's records use (tools refuse to read a declared column that is missing)."""
    return {k for obj in head_records(path, head) if isinstance(obj, dict) for k in obj}


def val_share(cfg: TrainConfig) -> float:
    """data.val_size as a share (a count of records becomes its share of the file)."""
    v = cfg.data.val_size
    return v if v < 1 else round(v / max(1, record_count(cfg.data.path)), 6)


def chat_template_text(cfg: TrainConfig) -> str | None:
    """data.chat_template's Jinja (read from its file when it names one)."""
    from pathlib import Path

    from core.train_config import template_is_path

    value = cfg.data.chat_template
    if value is None:
        return None
    return Path(value).read_text(encoding="utf-8") if template_is_path(value) else value


# the tools' switches for a loss that never builds the full logits (each needs its package installed)
LOSS_SWITCHES = {
    "axolotl": {"cut_cross_entropy": ({"plugins": ["axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"],
                                       "cut_cross_entropy": True}, "cut-cross-entropy"),
                "liger": ({"plugins": ["axolotl.integrations.liger.LigerPlugin"],
                           "liger_fused_linear_cross_entropy": True}, "liger-kernel")},
    "llamafactory": {"liger": ({"enable_liger_kernel": True}, "liger-kernel")},
    "trl": {"liger": ({"use_liger_kernel": True}, "liger-kernel")},
}
ATTENTION_SWITCHES = {
    "axolotl": {"sdpa": ("sdp_attention", True), "flash_attention_2": ("flash_attention", True),
                "eager": ("eager_attention", True)},
    "llamafactory": {"sdpa": ("flash_attn", "sdpa"), "flash_attention_2": ("flash_attn", "fa2"),
                     "eager": ("flash_attn", "disabled"), "auto": ("flash_attn", "auto")},
    "trl": {"sdpa": ("attn_implementation", "sdpa"), "flash_attention_2": ("attn_implementation", "flash_attention_2"),
            "eager": ("attn_implementation", "eager")},
}


def loss_and_attention(cfg: TrainConfig, out, tool: str) -> None:
    """training.loss and training.attention in the tool's terms. tunewise's chunked loss (auto, chunked) is plain
    torch; the tools chunk only through a kernel package, so those are listed with the switch to use, and an
    explicit kernel choice is mapped to the tool's switch for it."""
    t = cfg.training
    switches = LOSS_SWITCHES[tool]
    wanted = "liger" if t.loss == "chunked" and "cut_cross_entropy" not in switches else t.loss
    if t.loss == "plain":
        out.mapped.append(("training.loss", "(plain: the tool's default loss)"))
    elif wanted in switches and t.loss != "auto":
        settings, package = switches[wanted]
        for key, value in settings.items():
            out.config[key] = value
        out.mapped.append(("training.loss", ", ".join(settings)))
        out.skip(f"training.loss: {t.loss}", f"needs pip install {package} where the tool runs")
    else:
        hint = " or ".join(f"{', '.join(s)} (pip install {p})" for s, p in switches.values())
        out.skip(f"training.loss: {t.loss}", "tunewise's chunked loss (the full logits never built) has no "
                 f"plain-torch counterpart there: the tool builds the full logits unless you set {hint}")
    names = ATTENTION_SWITCHES[tool]
    if t.attention in names:
        key, value = names[t.attention]
        out.map("training.attention", key, value)
    else:
        out.mapped.append(("training.attention", "(auto: the tool's default, SDPA)"))


@dataclass(frozen=True)
class Target:
    name: str
    title: str
    build: Callable[[TrainConfig, str, Path], Exported]  # (config, data format, the folder written to)
    version: str  # the release the mapping is checked against (tests/data/interop/)


def data_format(cfg: TrainConfig) -> str:
    """The data's record format (data.format, else detected from the file as `train` does)."""
    if cfg.data.format != "auto" and cfg.data.columns is None:
        return cfg.data.format
    from core.data.detect import trainable_format

    return trainable_format(cfg.data.path, cfg.data.format, cfg.data.layout(), cfg.data.columns_origin)


def data_layout(cfg: TrainConfig):
    """The columns `train` maps (data.columns, or a published layout it recognises), or None."""
    from core.data.detect import trainable

    return trainable(cfg.data.path, cfg.data.format, cfg.data.layout(), cfg.data.columns_origin).layout


def preprocessing(cfg: TrainConfig, out: Exported, workers_key: str, cache_how: str | None) -> None:
    """data.num_proc under the tool's name for its tokenising processes; data.cache and data.cache_dir: what the
    tool caches instead (`cache_how`), or listed as not expressed (None: the tool tokenises on every run)."""
    d = cfg.data
    if d.num_proc:
        out.map("data.num_proc", workers_key, d.num_proc)
    else:
        out.mapped.append(("data.num_proc", f"({workers_key} left to the tool's default)"))
    for key in ("data.cache", "data.cache_dir"):
        if cache_how is None:
            out.skip(key, "the tool tokenises the data again on every run (tunewise keeps it keyed by content)")
        else:
            out.mapped.append((key, cache_how))


def abs_path(value: str) -> str:
    """A path as the tool needs it (absolute: tools read paths against their working directory), the model
    placeholder of an unfinished config left as it is."""
    from advisor.configgen import MODEL_PLACEHOLDER

    return value if value == MODEL_PLACEHOLDER else str(Path(value).expanduser().resolve())


def lora_targets(m) -> list[str] | str:
    return "all-linear" if m.target_modules == "all-linear" else list(m.target_modules)


def template_mapping(out: Exported, key: str) -> None:
    """data.chat_template unset: the tool uses the tokenizer's own template, as tunewise does."""
    out.mapped.append(("data.chat_template", key))


def padding_free_note(cfg: TrainConfig, out: Exported, closest: str) -> None:
    """training.padding_free where the tool has no padding-free batches (only packing, which changes the batches)."""
    if cfg.training.padding_free:
        out.skip("training.padding_free", f"no padding-free batches: the run pads ({closest})")
    else:
        out.mapped.append(("training.padding_free", "(padded batches, the default)"))


def refuse_unexportable(cfg: TrainConfig, tool: str) -> None:
    """The method's unit says the tools have no such method (P-tuning's prompt encoder)."""
    from core.methods import method

    what = method(cfg.method.name).export_refusal
    if what:
        raise UserError(f"{tool} has no {what} method: train it with `tunewise train`, or choose lora for the export")


refuse_p_tuning = refuse_unexportable  # the name it had before the method registry wrote the refusal
