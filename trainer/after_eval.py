"""The evaluation after a finished run (eval.enabled): base vs tuned on the held-out split, as `tunewise eval`
would, added to summary.json."""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError
from core.train_config import TrainConfig
from trainer.evaluate import after_training
from trainer.run_report import EvalEntry, EvalSkipped, RunSummary
from trainer.summary import save_summary


def attach_eval(cfg: TrainConfig, out: Path, summary: RunSummary | None, console=None, progress: bool = True,
                trainer=None) -> None:
    """Base vs tuned on the held-out split after a finished run (eval.enabled), added to `summary` and to
    summary.json. A check that cannot run (the answers do not fit eval.metric) is reported there and does not undo
    the training."""
    if summary is None or summary.interrupted or not cfg.eval.enabled:
        return
    free_training_memory(trainer)
    try:
        report = after_training(cfg, out, console, progress)
        entry = None if report is None else EvalEntry.of(report, str(out / "eval.json"))
    except UserError as e:
        entry = EvalSkipped(skipped=str(e))
        if console is not None:
            from rich.markup import escape

            console.print(f"[yellow]eval skipped[/]: {escape(str(e))}", highlight=False)
    if entry is None:
        return
    summary.eval = entry
    save_summary(out, summary)  # the file's content is the summary's (file_json: no loss plot, no resume flag)


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
