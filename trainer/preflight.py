"""Checks before the first step: each failure is one clear sentence and exit code 2."""

from __future__ import annotations

import math
import os
from pathlib import Path

from core.errors import UserError
from core.train_config import TrainConfig
from trainer.data import Collator, Prepared


def check_chat_template(tokenizer, fmt: str) -> None:
    if fmt != "text" and not tokenizer.chat_template:
        raise UserError("the tokenizer has no chat template and none is named: set data.chat_template "
                        "(inline Jinja or a .jinja file) to the template the model was trained with")


def eos_ids(tokenizer, model_path: str) -> set[int]:
    from trainer.spans import END_OF_TURN, generation_eos_ids

    ids = {tokenizer.eos_token_id, *generation_eos_ids(model_path)}
    # the families' end-of-turn markers the tokenizer knows (Phi-3 ends a turn with <|end|>, GLM with <|user|>)

    vocab = tokenizer.get_vocab()
    ids |= {vocab[t] for t in END_OF_TURN if t in vocab}
    return {i for i in ids if i is not None}


SKIP_REASONS = {"invalid_json": "not valid JSON", "schema": "not the detected format",
                "no_assistant": "no assistant reply", "no_trainable_tokens": "no answer left after truncation",
                "cut_reply": "reply cut at data.max_seq_len (data.truncated_replies: skip)"}


def skipped_counts(prepared: Prepared) -> str:
    """`3 of 60 records (5.0%): 2 not the detected format (records 4, 9), 1 not valid JSON (record 7)`."""
    n = sum(len(v) for v in prepared.skipped.values())
    parts = []
    for reason, idx in sorted(prepared.skipped.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(map(str, idx[:3])) + (", …" if len(idx) > 3 else "")
        parts.append(f"{len(idx)} {SKIP_REASONS.get(reason, reason)} (record{'s' if len(idx) > 1 else ''} {shown})")
    share = n / prepared.total if prepared.total else 0.0
    return f"{n} of {prepared.total} records ({share:.1%}): " + ", ".join(parts)


def check_skipped(prepared: Prepared, path: str, max_share: float) -> None:
    """Training on a fraction of the file must not pass silently: above `data.max_skipped` of the records skipped
    for being unreadable, off-format or answerless, stop (records dropped by data.drop_untrainable, the user's own
    choice, are reported but not counted)."""
    counted = sum(len(v) for k, v in prepared.skipped.items() if k not in ("no_trainable_tokens", "cut_reply"))
    if prepared.total and counted / prepared.total > max_share:
        raise UserError(f"{path}: {skipped_counts(prepared)} would be skipped, more than data.max_skipped "
                        f"({max_share:.0%}): fix the records (`tunewise audit {path}` lists each), set data.format if "
                        "the detected one is wrong, or raise data.max_skipped")


MIN_DISTINCT = 10  # the audit's too_few_examples/below_minimum: fewer distinct usable examples, nothing is tuned


def check_worth_training(prepared: Prepared, path: str, max_share: float, force: bool) -> None:
    """What the audit calls errors that make training pointless stops the run as skipped records do (--force
    trains anyway): more than `data.max_skipped` of the records with only empty answers (nothing but the end token
    would be learned), or fewer than MIN_DISTINCT distinct records once exact copies are counted once."""
    if force:
        return
    usable = len(prepared.train) + len(prepared.val)
    empty = prepared.empty_answers
    if usable and len(empty) / usable > max_share:
        raise UserError(f"{path}: {len(empty)} of {usable} records ({len(empty) / usable:.0%}) have an empty answer "
                        f"(first: record {empty[0]}): only the end-of-turn token would be trained, teaching the model "
                        "to answer nothing; fill or remove them (`tunewise audit` lists them as empty_output), or "
                        "pass --force to train anyway")
    if prepared.distinct and prepared.distinct < MIN_DISTINCT and prepared.copies:
        raise UserError(f"{path}: {usable} records but only {prepared.distinct} distinct ({prepared.copies} exact "
                        f"copies): fewer than {MIN_DISTINCT} different examples, nothing can be tuned; add distinct "
                        "examples (`tunewise audit` lists the copies as exact_duplicate), or pass --force to train "
                        "anyway")


def check_eos(prepared: Prepared, tokenizer, model_path: str, max_seq_len: int) -> None:
    """Every answer must end with an end-of-sequence token, or the model never learns to stop."""
    ends = eos_ids(tokenizer, model_path)
    for e in prepared.train[:200]:
        trained = [t for t, lab in zip(e.input_ids, e.labels, strict=True) if lab != -100]
        if len(e.input_ids) >= max_seq_len:
            continue  # truncated: the end is cut anyway (the audit reports it)
        if trained and not (set(trained) & ends):
            raise UserError(f"EOS is not appended: record {e.record}'s trained tokens contain no end-of-sequence "
                            f"token ({tokenizer.eos_token!r}); use a chat template that closes assistant turns with it")


def check_pad_masking(prepared: Prepared, tokenizer) -> None:
    """Padding must be masked by position; when pad == EOS, real EOS tokens must keep their labels."""
    items = prepared.train[:8]
    batch = Collator(tokenizer.pad_token_id)([{"input_ids": e.input_ids, "labels": e.labels} for e in items])
    ends = {tokenizer.eos_token_id}
    for row, e in enumerate(items):
        for pos, (tid, lab) in enumerate(zip(e.input_ids, e.labels, strict=True)):
            if tid in ends and lab != -100 and int(batch["labels"][row, pos]) == -100:
                raise UserError("the pad token equals EOS and padding masking would also hide real EOS labels")
        if int(batch["attention_mask"][row].sum()) != len(e.input_ids):
            raise UserError("padding is not masked in the attention mask")


def available_memory_gb() -> tuple[float, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / 1e9, "cuda"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / 1e9, "cpu"
    except OSError:
        pass
    return float("inf"), "cpu"


def memory_estimate(cfg: TrainConfig, prepared: Prepared, device: str, precision: str, available_gb: float,
                    loss: str = "chunked", attention: str = "auto"):
    """The estimate of the run as it will train (`loss` / `attention`: the kernels the run chose)."""
    from core.estimate import EstimateRequest, estimate, shape_from_config
    from trainer.data import lengths_of

    lengths = lengths_of(prepared.train)
    seq = max(lengths) if lengths else cfg.data.max_seq_len
    m = cfg.method
    req = EstimateRequest(
        method=m.name, seq_len=seq, batch_size=cfg.training.batch_size, grad_accum=cfg.training.grad_accum,
        gradient_checkpointing=cfg.training.gradient_checkpointing, optimizer=cfg.training.optimizer,
        precision=precision, device=device,
        lora_r=getattr(m, "lora_r", 16), lora_dropout=getattr(m, "lora_dropout", 0.05),
        lora_targets=lora_targets(m), upcast_embeddings=getattr(m, "upcast_embeddings", True),
        num_virtual_tokens=getattr(m, "num_virtual_tokens", 20),
        encoder_hidden_size=getattr(m, "encoder_hidden_size", None),
        gpus=cfg.distributed.world_size if device == "cuda" else 1,
        gpu_memory_gb=available_gb if math.isfinite(available_gb) else 0.0,
        sharding={"ddp": "none", "fsdp": "fsdp", "deepspeed_zero2": "zero2", "deepspeed_zero3": "zero3"}[cfg.distributed.strategy],
        loss=loss, attention=attention,
    )
    shape = shape_from_config(cfg.model.path)
    return estimate(shape, req, suggest=False), req, shape


def lora_targets(m) -> tuple[str, ...]:
    """The method's LoRA targets as the estimate reads them (the same modules the trainer adapts)."""
    targets = getattr(m, "target_modules", "all-linear")
    return ("all-linear",) if targets == "all-linear" else tuple(targets)


def check_output_dir(out: Path) -> None:
    """The run can create and write `out` (checked before training, and by --dry-run): a read-only place would
    otherwise fail at the first checkpoint, after the model is loaded and steps are spent."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        what = "is a file" if probe == out else f"is inside `{probe}`, which is a file"
        raise UserError(f"output.dir `{out}` {what}, not a folder: set output.dir to a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "it" if probe == out else f"its parent `{probe}`"
        raise UserError(f"output.dir `{out}` cannot be written ({where} is read-only for this user): set "
                        "output.dir to a writable folder")


def check_memory(est, req, shape, available_gb: float, device: str, force: bool) -> None:
    """Refuse a run the estimate says does not fit (the same verdict `tunewise estimate` gives, tight fits
    included); --force trains anyway."""
    from core.estimate.memory import suggestions

    if force or est.fits or not math.isfinite(available_gb):  # memory that cannot be read is not a refusal
        return

    tips = suggestions(shape, req)
    fixes = "; ".join(f"{s.change} ({s.total_gb:.1f} GB)" for s in tips if s.fits)[:300]
    raise UserError(f"estimated {est.total_gb:.1f} GB per {device.upper()} but only {available_gb:.1f} GB is available"
                    + (f"; try: {fixes}" if fixes else "") + "; --force trains anyway")
