"""`tunewise train CONFIG`: one plain recipe over transformers' Trainer and peft. Each step lives in a module named
for what it does: the inputs checked (inputs.py), the device and memory (resources.py), the output folder
(checkpoints.py, lock.py), the arguments (training_args.py), the Trainer (hf_trainer.py), the summary (summary.py)
and the evaluation after training (after_eval.py)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import RuntimeFailure
from core.train_config import TrainConfig
from trainer.after_eval import attach_eval
from trainer.checkpoints import prepare_output, record_config
from trainer.config_file import load_config
from trainer.deepspeed import check_launcher
from trainer.inputs import prepare_data
from trainer.lock import lock_output
from trainer.quiet import quiet_libraries
from trainer.resources import Resources, check_resources
from trainer.run_report import Choice, DryRunReport, RunSummary
from trainer.samples import render_sample, trained_samples
from trainer.summary import build_summary, finish_summary, read_summary


@dataclass
class Fitted:
    """What `fit` hands back: the summary (None on a launched rank other than the first), or the dry run's report;
    and, after a run in this process, the trainer, tokenizer and prepared records (for tests and the demo)."""
    summary: RunSummary | DryRunReport | None
    trainer: object = None
    tokenizer: object = None
    prepared: object = None


def train(config_path: str, *, resume: bool = False, force: bool = False, dry_run: bool = False,
          console=None, progress: bool = True, cfg: TrainConfig | None = None) -> RunSummary | DryRunReport | None:
    """Run the job a config describes; returns the summary (or the dry-run report)."""
    return fit(config_path, resume=resume, force=force, dry_run=dry_run, console=console, progress=progress,
               cfg=cfg).summary


def fit(config_path: str, *, resume: bool = False, force: bool = False, dry_run: bool = False,
        console=None, progress: bool = True, cfg: TrainConfig | None = None) -> Fitted:
    """Like `train`, but also hands back the trainer, tokenizer and data. A dry run runs every check the real run
    runs (data, template, memory, output folder) and stops before loading weights."""
    from trainer.cpu import process_age_s

    started = time.time() - (process_age_s() or 0.0)  # when this process started (start-up time in the summary)
    cfg = cfg or load_config(config_path)
    check_launcher(cfg)
    if cfg.distributed.world_size > 1 and "LOCAL_RANK" not in os.environ and not dry_run:
        return Fitted(launch_ranks(config_path, cfg, resume, force, console, progress))
    quiet_libraries()
    tok, prepared = prepare_data(cfg, progress and is_main(), force)
    res = check_resources(cfg, prepared, force)
    out, ckpt = prepare_output(cfg, resume)
    if dry_run:
        return Fitted(DryRunReport(**dict(res.info), sample=render_sample(prepared, tok),
                                   samples=trained_samples(prepared, tok), estimate=res.estimate))
    say_skipped(console, res)
    previous = read_summary(out) if resume else None
    if previous is not None and not previous.interrupted:  # the run already ended
        previous.already_finished = True
        return Fitted(previous, tokenizer=tok, prepared=prepared)
    lock = lock_output(out) if "LOCAL_RANK" not in os.environ else None
    try:
        result = _train(cfg, out, ckpt, res, tok, prepared, started, progress, console, previous)
        if lock is not None:  # a launched rank leaves the evaluation to the launching process
            attach_eval(cfg, out, result.summary, console, progress, result.trainer)
        return result
    finally:
        if lock is not None:
            lock.close()


def launch_ranks(config_path: str, cfg: TrainConfig, resume: bool, force: bool, console, progress: bool
                 ) -> RunSummary | None:
    """Several processes: this one launches them (torchrun / accelerate), then evaluates what they trained."""
    from trainer.launch import launch

    # node 0's launching process holds the output dir for the ranks (other nodes may share the folder)
    lock = lock_output(Path(cfg.output.dir)) if cfg.distributed.main_node else None
    try:
        if cfg.data.cache:  # encode once here: the ranks then read the cached tables instead of each encoding
            prepare_data(cfg, progress, force)
        summary = launch(config_path, cfg, resume=resume, force=force)
        if lock is not None:
            attach_eval(cfg, Path(cfg.output.dir), summary, console, progress)
        return summary
    finally:
        if lock is not None:
            lock.close()


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def say_skipped(console, res: Resources) -> None:
    if console is not None and res.info.skipped:
        from rich.markup import escape

        console.print(f"[bold yellow]skipped {escape(res.info.skipped_says)}[/]", highlight=False)


def _train(cfg: TrainConfig, out: Path, ckpt: str | None, res: Resources, tok, prepared, started: float,
           progress: bool, console, previous: RunSummary | None) -> Fitted:
    """Train (resuming from `ckpt` when given); `previous` is the summary an interrupted run left."""
    import torch

    from trainer.cpu import apply_thread_policy
    from trainer.cpu_kernels import cpu_fast_paths
    from trainer.hf_trainer import build_trainer
    from trainer.model import count_trainable
    from trainer.training_args import build_args

    main = is_main()
    if main:
        record_config(cfg, out)
    torch.manual_seed(cfg.training.seed)
    # the arguments first: with FSDP / ZeRO-3 they set up the low-memory loading that from_pretrained then follows
    args = build_args(cfg, out, res.device, res.plan, len(prepared.train), len(prepared.val))
    model, loss = load_for_training(cfg, tok, res)
    cpu_kernels = cpu_fast_paths(model) if res.device == "cpu" else None
    params = count_trainable(model)
    threads = apply_thread_policy(res.device)
    trainer, stop, first = build_trainer(cfg, out, ckpt, res.device, model, tok, args, prepared, loss, console,
                                         progress, main)
    result, wall = run_steps(trainer, stop, ckpt, cfg, res, out)
    if not main:
        return Fitted(None, trainer, tok, prepared)
    if not stop.requested:
        trainer.save_model(str(out))
        tok.save_pretrained(str(out))
    summary = build_summary(cfg, out, trainer, result, wall + (previous.wall_time_s if previous else 0.0), params,
                            res.device, stop.requested, res.info, threads=threads,
                            startup_s=round(first.at - started, 2) if first.at else None, cpu_kernels=cpu_kernels,
                            loss=Choice(**loss.as_dict()))
    return Fitted(finish_summary(summary, cfg, out, trainer.state.log_history), trainer, tok, prepared)


def load_for_training(cfg: TrainConfig, tok, res: Resources):
    """(the model as it trains, the loss plan): the config predicted the loss; the loaded model has the last word."""
    from trainer.loss import choose_loss, output_head
    from trainer.model import load_model

    model = load_model(cfg, tok, res.plan, res.attention)
    loss = res.loss
    if loss.name != "plain":
        why_not = output_head(model)[-1]
        if why_not:
            loss = choose_loss("auto", res.device, False, why_not)
    return model, loss


def run_steps(trainer, stop, ckpt: str | None, cfg: TrainConfig, res: Resources, out: Path):
    """(the train result, seconds trained): Ctrl-C stops at a checkpoint; running out of memory or diverging is a
    runtime failure with one clear sentence."""
    import torch

    from trainer.callbacks import Diverged
    from trainer.diverged import diverged_says

    stop.install()
    t0 = time.time()
    try:
        result = trainer.train(resume_from_checkpoint=ckpt)
    except torch.OutOfMemoryError as e:
        raise RuntimeFailure(f"out of memory: {e}; see `tunewise estimate` for what would fit") from None
    except Diverged as e:
        raise RuntimeFailure(diverged_says(e, cfg, res.plan, out)) from None
    finally:
        stop.uninstall()
    return result, time.time() - t0
