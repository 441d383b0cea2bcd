"""`tunewise train CONFIG`: one plain recipe over transformers' Trainer and peft."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import time
from pathlib import Path

from advisor.errors import RuntimeFailure, UserError
from advisor.files import atomic_write, json_text, load_model_file, write_model
from advisor.methods import method
from trainer.config import HF_OPTIMIZERS, TrainConfig, deepspeed_settings

FINGERPRINT = "tunewise_fingerprint.txt"
RESOLVED = "tunewise_config.yaml"


def quiet_libraries() -> None:
    import logging
    import warnings

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*kernels.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*requires_grad=True to a scalar.*")


def load_config(path: str, overrides: list[str] | None = None) -> TrainConfig:
    """The config, validated, with its relative paths read against the file's folder; without `data.columns`, the
    columns of the project file (tunewise.yaml) beside it, so that the mapping the audit read is the one that
    trains."""
    cfg = load_model_file(TrainConfig, path, "training config", overrides).resolve_paths(path)
    from advisor.project import columns_origin

    cfg.data._columns_origin = columns_origin(path)
    return with_project_columns(cfg, Path(path).resolve().parent)


def with_project_columns(cfg: TrainConfig, folder: Path) -> TrainConfig:
    if cfg.data.columns is not None:
        return cfg
    from advisor.project import columns_origin, find_project, load_project

    found = find_project(folder)
    if found is None:
        return cfg
    data = load_project(found)[0].data
    if data.columns is None and data.text_unit == "auto":
        return cfg
    update = {"columns": data.columns, "tags": data.tags or cfg.data.tags,
              **({"text_unit": data.text_unit} if cfg.data.text_unit == "auto" else {})}
    section = cfg.data.model_copy(update=update)
    section._columns_origin = columns_origin(found)
    return cfg.model_copy(update={"data": section})


def last_checkpoint(out: Path) -> str | None:
    """The newest complete checkpoint: a process killed mid-save leaves a folder without its trainer state."""
    if not out.is_dir():
        return None
    found = []
    for d in out.glob("checkpoint-*"):
        step = d.name.split("-")[-1]
        if step.isdigit() and (d / "trainer_state.json").is_file() and (d / "rng_state.pth").is_file():
            found.append((int(step), d))
    return str(max(found)[1]) if found else None


LOCK = ".tunewise.lock"


def lock_output(out: Path):
    """Hold `out` for this run (released when the process ends, however it ends); a second run on the same
    output.dir stops with exit 2 naming the holder's PID. Returns the open lock file (keep it alive)."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    f = (out / LOCK).open("a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise UserError(f"`{out}` is in use by another tunewise train (PID {holder}): wait for it to finish, or "
                        "set another output.dir") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def read_summary(out: Path) -> dict | None:
    """The summary.json a run in `out` left (finished or interrupted), if there is a readable one."""
    path = out / "summary.json"
    if not path.is_file():
        return None
    try:
        s = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return s if isinstance(s, dict) else None


def prepare_output(cfg: TrainConfig, resume: bool) -> tuple[Path, str | None]:
    out = Path(cfg.output.dir)
    ckpt = last_checkpoint(out)
    fp_file = out / FINGERPRINT
    if resume:
        if ckpt is None:
            raise UserError(f"--resume: no checkpoint in `{out}` to resume from")
        if fp_file.is_file() and fp_file.read_text().strip() != cfg.fingerprint():
            raise UserError(f"--resume: the config differs from the one that started the run in `{out}` "
                            f"(see {out / RESOLVED}); resume with the same config, or start a new output.dir")
        return out, ckpt
    if ckpt is not None:
        raise UserError(f"`{out}` already holds checkpoints of a run: add --resume to continue it, "
                        "or set another output.dir")
    return out, None


def build_args(cfg: TrainConfig, out: Path, device: str, plan, n_train: int, n_eval: int = 1):
    from transformers import TrainingArguments

    t = cfg.training
    per_eval = t.eval_batch_size or t.batch_size
    save_steps = t.save_steps or t.eval_steps
    save_strategy = "steps" if save_steps else "epoch"  # save_steps alone means checkpoints every N steps
    has_eval = n_eval > 0
    strategy = ("steps" if t.eval_steps else "epoch") if has_eval else "no"
    kw = {}
    multi = cfg.distributed.world_size > 1
    if cfg.distributed.strategy == "fsdp" and multi:
        kw["fsdp"] = "full_shard auto_wrap"
        # cpu_ram_efficient_loading: only the first process reads the checkpoint, the others start empty and receive
        # their shards by broadcast (no GPU holds the whole model at load; the arguments are built before loading)
        kw["fsdp_config"] = {"auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "use_orig_params": True,
                             "cpu_ram_efficient_loading": True, "sync_module_states": True}
    elif cfg.distributed.strategy.startswith("deepspeed") and multi:
        kw["deepspeed"] = str(write_deepspeed_config(cfg, out))
    return TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=per_eval,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type=t.scheduler,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=HF_OPTIMIZERS[t.optimizer],
        # PEFT methods enable checkpointing on the base model before wrapping it (trainer/model.py)
        gradient_checkpointing=t.gradient_checkpointing and method(cfg.method.name).trains_all_weights,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy=strategy if n_train else "no",
        eval_steps=t.eval_steps,
        eval_on_start=has_eval,
        save_strategy=save_strategy,
        save_steps=save_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=bool(t.early_stopping_patience) and has_eval,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        report_to="none",
        use_cpu=device == "cpu",
        bf16=plan.bf16,
        fp16=plan.fp16,
        disable_tqdm=True,
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        ddp_backend=("nccl" if device == "cuda" else "gloo") if multi else None,
        ddp_find_unused_parameters=False if multi else None,
        **kw,
    )


def write_deepspeed_config(cfg: TrainConfig, out: Path) -> Path:
    ds = deepspeed_settings(cfg.distributed.strategy)
    path = out / f"deepspeed_zero{ds['zero_optimization']['stage']}.json"
    atomic_write(path, json.dumps(ds, indent=2))
    return path


def peak_memory_gb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def train(config_path: str, *, resume: bool = False, force: bool = False, dry_run: bool = False,
          console=None, progress: bool = True, cfg: TrainConfig | None = None) -> dict:
    """Run the job a config describes; returns the summary (or the dry-run report)."""
    return fit(config_path, resume=resume, force=force, dry_run=dry_run, console=console, progress=progress,
               cfg=cfg)["summary"]


def fit(config_path: str, *, resume: bool = False, force: bool = False, dry_run: bool = False,
        console=None, progress: bool = True, cfg: TrainConfig | None = None) -> dict:
    """Like `train`, but also hands back the trainer, tokenizer and data (for tests and the demo). A dry run runs
    every check the real run runs (data, template, memory, output folder) and stops before loading weights."""
    from trainer.cpu import process_age_s

    started = time.time() - (process_age_s() or 0.0)  # when this process started (start-up time in the summary)
    cfg = cfg or load_config(config_path)
    check_launcher(cfg)
    if cfg.distributed.world_size > 1 and "LOCAL_RANK" not in os.environ and not dry_run:
        from trainer.launch import launch

        # node 0's launching process holds the output dir for the ranks (other nodes may share the folder)
        lock = lock_output(Path(cfg.output.dir)) if cfg.distributed.main_node else None
        try:
            if cfg.data.cache:  # encode once here: the ranks then read the cached tables instead of each encoding
                prepare_data(cfg, progress, force)
            summary = launch(config_path, cfg, resume=resume, force=force)
            if lock is not None:
                attach_eval(cfg, Path(cfg.output.dir), summary, console, progress)
            return {"summary": summary}
        finally:
            if lock is not None:
                lock.close()
    quiet_libraries()
    tok, prepared = prepare_data(cfg, progress and int(os.environ.get("RANK", "0")) == 0, force)
    device, plan, est, info = check_resources(cfg, prepared, force)
    out, ckpt = prepare_output(cfg, resume)
    if dry_run:
        return {"summary": {"dry_run": True, **info, "sample": render_sample(prepared, tok),
                            "samples": trained_samples(prepared, tok), "estimate": est.model_dump(mode="json")}}
    if console is not None and info["skipped"]:
        from rich.markup import escape

        console.print(f"[bold yellow]skipped {escape(info['skipped_says'])}[/]", highlight=False)
    previous = read_summary(out) if resume else None
    if previous is not None and previous.get("interrupted") is False:  # the run already ended
        return {"summary": {**previous, "already_finished": True}, "trainer": None, "tokenizer": tok,
                "prepared": prepared}
    lock = lock_output(out) if "LOCAL_RANK" not in os.environ else None
    try:
        result = _train(cfg, out, ckpt, device, tok, plan, prepared, {**info, "process_started": started}, progress,
                        console, previous or {})
        if lock is not None:  # a launched rank leaves the evaluation to the launching process
            attach_eval(cfg, out, result["summary"], console, progress, result.get("trainer"))
        return result
    finally:
        if lock is not None:
            lock.close()


def attach_eval(cfg: TrainConfig, out: Path, summary: dict, console=None, progress: bool = True,
                trainer=None) -> None:
    """Base vs tuned on the held-out split after a finished run (eval.enabled), added to summary.json. A check
    that cannot run (the answers do not fit eval.metric) is reported there and does not undo the training."""
    if not summary or summary.get("interrupted") or not cfg.eval.enabled:
        return
    from trainer.evaluate import after_training

    free_training_memory(trainer)
    try:
        entry = after_training(cfg, out, console, progress)
    except UserError as e:
        entry = {"skipped": str(e)}
        if console is not None:
            from rich.markup import escape

            console.print(f"[yellow]eval skipped[/]: {escape(str(e))}", highlight=False)
    if entry is None:
        return
    summary["eval"] = entry
    saved = read_summary(out) or {}
    atomic_write(out / "summary.json", json_text({**saved, "eval": entry}, indent=2) + "\n")


def free_training_memory(trainer) -> None:
    """Before the evaluation loads its own models: drop the optimizer state and, on a GPU, move the trained model
    off it (a 4-bit model stays where bitsandbytes put it)."""
    if trainer is None:
        return
    import gc

    import torch

    trainer.optimizer = None
    trainer.lr_scheduler = None
    if torch.cuda.is_available():
        if not getattr(trainer.model, "is_loaded_in_4bit", False):
            trainer.model.to("cpu")
        gc.collect()
        torch.cuda.empty_cache()


def check_launcher(cfg: TrainConfig) -> None:
    if cfg.distributed.strategy.startswith("deepspeed") and cfg.distributed.world_size > 1:
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise UserError(f"distributed.strategy {cfg.distributed.strategy} needs DeepSpeed: pip install deepspeed "
                            "(or use strategy fsdp, which ships with torch)")


def prepare_data(cfg: TrainConfig, progress: bool = False, force: bool = False):
    """The model folder, tokenizer and template checked, the data read, rendered and labelled, and the checks on
    the result (skipped share, end-of-sequence tokens, padding)."""
    from trainer.data import detect_format, prepare_for
    from trainer.model import check_model_folder, load_tokenizer
    from trainer.preflight import (
        check_chat_template,
        check_eos,
        check_pad_masking,
        check_skipped,
        check_worth_training,
    )

    check_model_folder(cfg.model.path, cfg.model.trust_remote_code)
    if method(cfg.method.name).quantized_base:
        from trainer.model import require_bitsandbytes

        require_bitsandbytes()
    if not Path(cfg.data.path).is_file():
        raise UserError(f"data.path `{cfg.data.path}` does not exist")
    tok = load_tokenizer(cfg)
    fmt = detect_format(cfg.data.path, cfg.data.format, cfg.data.layout(), cfg.data.columns_origin)
    check_chat_template(tok, fmt)
    prepared = prepare_for(cfg, tok, progress=progress, fmt=fmt)
    d = cfg.data
    check_skipped(prepared, d.path, d.max_skipped)
    check_worth_training(prepared, d.path, d.max_skipped, force)
    check_eos(prepared, tok, cfg.model.path, d.max_seq_len)
    check_pad_masking(prepared, tok)
    return tok, prepared


def check_resources(cfg: TrainConfig, prepared, force: bool):
    """(device, precision plan, memory estimate, run info): refuses a run that would not fit (unless --force) or
    could not write its output folder."""
    from trainer.loss import choose_loss, head_ok_from_config
    from trainer.model import choose_attention, device_kind, read_model_config, resolve_precision
    from trainer.preflight import (
        available_memory_gb,
        check_memory,
        check_output_dir,
        memory_estimate,
        skipped_counts,
    )

    device = device_kind()
    plan = resolve_precision(cfg, device)
    model_cfg = read_model_config(cfg.model.path)  # checked by check_model_folder before
    attention = choose_attention(cfg.training.attention, device, plan, model_cfg)
    loss = choose_loss(cfg.training.loss, device, sharded_weights(cfg), head_ok_from_config(model_cfg))
    avail, dev = available_memory_gb()
    est, req, shape = memory_estimate(cfg, prepared, device, plan.name, avail, loss=loss.estimate_loss,
                                      attention=attention.estimate_attention)
    check_memory(est, req, shape, avail, dev, force)
    check_output_dir(Path(cfg.output.dir))
    if cfg.eval.enabled:  # the files the evaluation after training reads, checked before training
        from trainer.evaluate import general_texts, load_schema

        load_schema(cfg.eval.json_schema)
        if cfg.eval.general_text:
            general_texts(cfg.eval.general_text)
    info = {"records_total": prepared.total, "records_train": len(prepared.train), "records_val": len(prepared.val),
            "format": prepared.fmt, "read_as": prepared.read_as, "columns": prepared.columns,
            "skipped": {k: len(v) for k, v in prepared.skipped.items()},
            "skipped_says": skipped_counts(prepared) if prepared.skipped else None,
            "truncated": prepared.truncated, "truncated_replies": cut_replies(prepared, cfg.data),
            "estimate_gb": est.total_gb, "copies": prepared.copies, "empty_answers": len(prepared.empty_answers),
            "available_gb": round(avail, 2) if math.isfinite(avail) else None, "device": dev,
            "output_dir": cfg.output.dir, "loss": loss.as_dict(), "attention": attention.as_dict(),
            "template": {"assistant_turns": prepared.template_mode, "system_merged_into_user": prepared.system_merged},
            "reasoning": None if prepared.reasoning is None else {
                **dataclasses.asdict(prepared.reasoning), "says": prepared.reasoning.describe()},
            "data_cache": dataclasses.asdict(prepared.cache) if prepared.cache else None}
    return device, plan, est, info


def sharded_weights(cfg: TrainConfig) -> bool:
    """FSDP / ZeRO-3 on several processes: the weights live in shards outside the model's forward pass."""
    return cfg.distributed.world_size > 1 and cfg.distributed.strategy in ("fsdp", "deepspeed_zero3")


def _train(cfg, out, ckpt, device, tok, plan, prepared, info, progress, console, previous: dict) -> dict:
    """Train (resuming from `ckpt` when given); `previous` is the summary an interrupted run left."""
    import torch

    from trainer.data import Collator, TokenDataset
    from trainer.model import count_trainable, load_model

    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        atomic_write(out / FINGERPRINT, cfg.fingerprint() + "\n")
        write_model(out / RESOLVED, cfg, header="resolved tunewise training config of this run")
    from trainer.loss import LossPlan, choose_loss, output_head, with_loss
    from trainer.model import AttentionPlan

    torch.manual_seed(cfg.training.seed)
    # the arguments first: with FSDP / ZeRO-3 they set up the low-memory loading that from_pretrained then follows
    args = build_args(cfg, out, device, plan, len(prepared.train), len(prepared.val))
    attention = AttentionPlan(**info["attention"])
    model = load_model(cfg, tok, plan, attention)
    loss = LossPlan(**info["loss"])
    if loss.name != "plain":  # the config predicted it; the loaded model has the last word
        why_not = output_head(model)[-1]
        if why_not:
            loss = choose_loss("auto", device, False, why_not)
    info = {**info, "loss": loss.as_dict()}
    cpu_kernels = cpu_fast_paths(model) if device == "cpu" else None
    trainable, total = count_trainable(model)
    from transformers import EarlyStoppingCallback, Trainer

    from trainer.callbacks import (
        Diverged,
        DivergenceGuard,
        FirstStep,
        GracefulStop,
        MetricsLogger,
        RankRecord,
        RichProgress,
    )
    from trainer.cpu import apply_thread_policy

    threads = apply_thread_policy(device)
    first = FirstStep()
    # rows padded to a multiple of 8 feed GPU tensor cores; a CPU gains nothing from it and computes the padding
    collator = Collator(tok.pad_token_id, multiple_of=8 if device == "cuda" else 1,
                        padding_free=cfg.training.padding_free)
    metrics = MetricsLogger(out / "metrics.jsonl", fresh=ckpt is None)
    stop = GracefulStop()
    callbacks = [metrics, RichProgress(console, enabled=progress and main), stop,
                 RankRecord(out / "ranks", collator), first, DivergenceGuard()]
    if cfg.training.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.training.early_stopping_patience))
    trainer = with_loss(length_aware(Trainer), loss)(model=model, args=args, train_dataset=TokenDataset(prepared.train),
                      eval_dataset=TokenDataset(prepared.val, track=False) if prepared.val else None,
                      data_collator=collator, processing_class=tok, callbacks=callbacks)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics.jsonl replace the raw dict prints
    trainer.remove_callback(ProgressCallback)
    stop.install()
    t0 = time.time()
    try:
        result = trainer.train(resume_from_checkpoint=ckpt)
    except torch.OutOfMemoryError as e:
        raise RuntimeFailure(f"out of memory: {e}; see `tunewise estimate` for what would fit") from None
    except Diverged as e:
        raise RuntimeFailure(diverged_says(e, cfg, plan, out)) from None
    finally:
        stop.uninstall()
    wall = time.time() - t0
    interrupted = stop.requested
    summary = {}
    if main:
        if not interrupted:
            trainer.save_model(str(out))
            tok.save_pretrained(str(out))
        startup = round(first.at - info["process_started"], 2) if first.at else None
        summary = write_summary(cfg, out, trainer.state.log_history, trainer, result,
                                wall + float(previous.get("wall_time_s") or 0.0), trainable, total, device,
                                interrupted, {**info, **threads, "startup_s": startup, "cpu_kernels": cpu_kernels})
    return {"summary": summary, "trainer": trainer, "tokenizer": tok, "prepared": prepared}


def diverged_says(e, cfg: TrainConfig, plan, out: Path) -> str:
    """One sentence on a diverged run: the step, what went non-finite, the likely cause, what was kept."""
    lr = cfg.training.learning_rate
    typical = method(cfg.method.name).diverging_lr  # the usual ceiling for the method (its registry unit)
    if plan.name.startswith("fp16"):
        cause = "fp16 overflowed (use bf16 or fp32, or a lower learning rate)"
    elif lr > typical:
        cause = f"the learning rate {lr:g} is too high for {cfg.method.name} (try {lr / 10:g} or lower)"
    else:
        cause = (f"too high a learning rate for this model and data ({lr:g}: try {lr / 10:g}) or records with "
                 "extreme token counts")
    ckpt = last_checkpoint(out)
    kept = (f"the last checkpoint, {ckpt}, holds the finite weights before it" if ckpt else
            "no checkpoint had been saved yet")
    return (f"training diverged at step {e.step}: {e.what} became {e.value} (likely cause: {cause}); nothing from "
            f"that step on was written (no adapter or model), {kept}; fix the config and train into a new output.dir")


def cpu_fast_paths(model) -> dict:
    """CPU runs: peft's LoRA linears get the fused forward (trainer/lora_cpu.py), then the remaining plain
    dropouts draw their masks as 16-bit lanes (trainer/dropout.py); how many layers got each."""
    from trainer.dropout import use_cheap_dropout
    from trainer.lora_cpu import fuse_lora_layers

    return {"fused_lora_layers": fuse_lora_layers(model), "cheap_dropouts": use_cheap_dropout(model)}


def length_aware(trainer_class):
    """HF's Trainer, handed the token count of every record for length-grouped batches (it would otherwise build
    every row of the memory-mapped table to measure it), in an order seeded per epoch (EpochSeeded); a non-finite
    loss or gradient norm stops it before the step is applied (trainer/callbacks.py's Diverged)."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from trainer.callbacks import check_finite

    class EpochSeeded(LengthGroupedSampler):
        """Length-grouped order drawn from (seed + epoch), like accelerate's seedable random sampler. HF's own
        draws from the global generator when the epoch starts, and a resumed run starts its epoch before it
        restores the checkpoint's generator: it trained the rest of that epoch on another order than the
        uninterrupted run (measured: final eval loss 0.5162 vs 0.5169 after a kill at step 40 of 300)."""

        def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
            super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            self.generator.manual_seed(self.seed + self.epoch)
            return super().__iter__()

    class LengthAwareTrainer(trainer_class):
        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            if self.args.world_size == 1:  # several processes: the gradient norm (all-reduced) is checked instead,
                check_finite(loss, self.state.global_step + 1, "the training loss")  # so that all ranks stop
            return loss

        def _get_grad_norm(self, model, grad_norm=None):
            norm = super()._get_grad_norm(model, grad_norm)
            if norm is not None:  # before optimizer.step(): a non-finite gradient never reaches the weights
                check_finite(norm, self.state.global_step + 1, "the gradient norm")
            return norm

        def _get_train_sampler(self, train_dataset=None):
            ds = train_dataset if train_dataset is not None else self.train_dataset
            if self.args.train_sampling_strategy == "group_by_length" and getattr(ds, "lengths", None) is not None:
                seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
                return EpochSeeded(self.args.train_batch_size * self.args.gradient_accumulation_steps, ds.lengths,
                                   seed)
            return super()._get_train_sampler(train_dataset)

    return LengthAwareTrainer


def write_summary(cfg, out, history, trainer, result, wall, trainable, total, device, interrupted, info) -> dict:
    from trainer.plots import plot_loss

    train = [r["loss"] for r in history if "loss" in r]
    evals = [r["eval_loss"] for r in history if "eval_loss" in r]
    tokens = trainer.state.num_input_tokens_seen
    summary = {
        "method": cfg.method.name,
        "train_loss_first": train[0] if train else None,
        "train_loss_last": train[-1] if train else None,
        "eval_loss_first": evals[0] if evals else None,
        "eval_loss_last": evals[-1] if evals else None,
        "eval_loss_best": min(evals) if evals else None,
        "steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "epochs": round(trainer.state.epoch or 0.0, 3),
        "tokens_seen": tokens,
        "tokens_per_second": round(tokens / max(result.metrics.get("train_runtime", wall), 1e-9), 1),
        "peak_memory_gb": round(peak_memory_gb(device), 3),
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": round(trainable / total, 6) if total else None,
        "wall_time_s": round(wall, 2),
        "device": device,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "stopped_early": trainer.state.global_step < trainer.state.max_steps and not interrupted,
        "interrupted": interrupted,
        "output_dir": str(out),
        **{k: info[k] for k in ("records_train", "records_val", "skipped", "truncated", "estimate_gb")},
        "startup_s": info.get("startup_s"),  # process start to the end of the first optimizer step
        "cpu_threads": info.get("cpu_threads"),
        "cpu_threads_why": info.get("cpu_threads_why"),
        "padding_free": cfg.training.padding_free,
        "cpu_kernels": info.get("cpu_kernels"),  # CPU runs: layers given the fused LoRA / lane-drawn dropout
        "loss": info.get("loss"),  # which loss ran (chunked, a fused kernel or plain) and why
        "attention": info.get("attention"),  # which attention kernel the model was loaded with and why
        "data_cache": info.get("data_cache"),  # key, hit, path, seconds to prepare the records, processes
    }
    atomic_write(out / "summary.json", json_text(summary, indent=2) + "\n")
    png = plot_loss(history, out / "loss.png", f"{cfg.method.name}: loss")
    summary["loss_plot"] = str(png) if png else None
    return summary


def trained_samples(prepared, tok, n: int = 5) -> list[dict]:
    """The first records in file order, each with the decoded text of every run of loss-bearing tokens: anyone
    can check it is exactly each assistant reply plus its end-of-turn token."""
    from trainer.data import trained_runs

    first = sorted([*_first_records(prepared.train, n), *_first_records(prepared.val, n)], key=lambda e: e.record)[:n]
    return [{"record": e.record, "trained": trained_runs(e, tok)} for e in first]


def _first_records(items, n: int) -> list:
    """The `n` items with the lowest record numbers (read from the record column, not by building every row)."""
    records = getattr(items, "records", None)
    if records is None:
        return sorted(items, key=lambda e: e.record)[:n]
    return [items[i] for i in sorted(range(len(records)), key=records.__getitem__)[:n]]


def cut_replies(prepared, d) -> dict | None:
    """Records cut at max_seq_len inside a trained reply: the reply trains without its end token, so the model
    learns not to stop; what data.truncated_replies did with them."""
    n = prepared.cut_replies
    if not n:
        return None
    done = ("skipped" if d.truncated_replies == "skip" else
            "kept: their replies train without an end token (data.truncated_replies: skip drops them)")
    return {"records": n, "action": d.truncated_replies,
            "says": f"{n} record(s) are cut at data.max_seq_len {d.max_seq_len} inside a reply; {done}; or raise "
                    "data.max_seq_len"}


def render_sample(prepared, tok, context: int = 600) -> dict:
    """One formatted training sample; the trained (unmasked) span is returned separately and marked. Every trained
    piece is shown whole; only an untrained stretch longer than `context` characters (a long default system
    prompt) is shortened, its middle replaced by a count of the characters left out."""
    from trainer.data import label_runs

    e = prepared.train[0]
    pieces = [(trained, tok.decode(ids)) for trained, ids in label_runs(e)]
    marked = "".join(f"«{t}»" if tr else elide(t, context) for tr, t in pieces)
    return {"record": e.record, "tokens": len(e.input_ids), "trained_tokens": sum(lab != -100 for lab in e.labels),
            "marked": marked, "pieces": [(tr, t) for tr, t in pieces]}


def elide(text: str, keep: int) -> str:
    """`text`, or its first third and last two thirds of `keep` characters around `[… N characters …]`."""
    if len(text) <= keep:
        return text
    head, tail = keep // 3, keep - keep // 3
    return f"{text[:head]}[… {len(text) - head - tail} characters …]{text[-tail:]}"
