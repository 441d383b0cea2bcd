"""Pieces the exports share: HF TrainingArguments-style schedule and precision (LLaMA-Factory and TRL read those
names), the record count, and whether the data carries tool calls."""

from __future__ import annotations

from trainer.config import HF_OPTIMIZERS, TrainConfig

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
    from advisor.data import iter_raw

    return sum(1 for _ in iter_raw(path))


def head_records(path: str, n: int):
    """The first `n` records of the data that parse (what the exports look at to describe the data)."""
    from itertools import islice

    from advisor.data import iter_raw

    return (r.obj for r in islice(iter_raw(path), n) if r.error is None)


def has_tool_calls(path: str, fmt: str, head: int = 500) -> bool:
    from advisor.data import normalise

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

    from trainer.config import template_is_path

    value = cfg.data.chat_template
    if value is None:
        return None
    return Path(value).read_text(encoding="utf-8") if template_is_path(value) else value
