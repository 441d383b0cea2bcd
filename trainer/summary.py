"""summary.json: built from the trainer's state when a run ends, written atomically, read back by --resume and by
the evaluation after training (trainer/run_report.py's RunSummary is its contract)."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

from pydantic import ValidationError

from core.files import atomic_write, json_text
from trainer.run_report import Choice, CpuKernels, RunInfo, RunSummary

SUMMARY = "summary.json"


def read_summary(out: Path) -> RunSummary | None:
    """The summary.json a run in `out` left (finished or interrupted), if there is a readable one."""
    path = out / SUMMARY
    if not path.is_file():
        return None
    try:
        return RunSummary.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError):
        return None


def save_summary(out: Path, summary: RunSummary) -> None:
    atomic_write(out / SUMMARY, json_text(summary.file_json(), indent=2) + "\n")


def peak_memory_gb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def build_summary(cfg, out: Path, trainer, result, wall: float, params: tuple[int, int], device: str,
                  interrupted: bool, info: RunInfo, *, threads: dict, startup_s: float | None,
                  cpu_kernels: CpuKernels | None, loss: Choice) -> RunSummary:
    """What the run did, from the trainer's log history and state (`wall`: the training time of every part of a
    resumed run; `params`: trainable and total parameters)."""
    history = trainer.state.log_history
    train = [r["loss"] for r in history if "loss" in r]
    evals = [r["eval_loss"] for r in history if "eval_loss" in r]
    tokens = trainer.state.num_input_tokens_seen
    trainable, total = params
    return RunSummary(
        method=cfg.method.name,
        train_loss_first=train[0] if train else None,
        train_loss_last=train[-1] if train else None,
        eval_loss_first=evals[0] if evals else None,
        eval_loss_last=evals[-1] if evals else None,
        eval_loss_best=min(evals) if evals else None,
        steps=trainer.state.global_step,
        max_steps=trainer.state.max_steps,
        epochs=round(trainer.state.epoch or 0.0, 3),
        tokens_seen=tokens,
        tokens_per_second=round(tokens / max(result.metrics.get("train_runtime", wall), 1e-9), 1),
        peak_memory_gb=round(peak_memory_gb(device), 3),
        trainable_params=trainable,
        total_params=total,
        trainable_share=round(trainable / total, 6) if total else None,
        wall_time_s=round(wall, 2),
        device=device,
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        stopped_early=trainer.state.global_step < trainer.state.max_steps and not interrupted,
        interrupted=interrupted,
        output_dir=str(out),
        records_train=info.records_train, records_val=info.records_val, skipped=info.skipped,
        truncated=info.truncated, estimate_gb=info.estimate_gb,
        startup_s=startup_s,
        cpu_threads=threads.get("cpu_threads"),
        cpu_threads_why=threads.get("cpu_threads_why"),
        padding_free=cfg.training.padding_free,
        cpu_kernels=cpu_kernels,
        loss=loss,
        attention=info.attention,
        data_cache=info.data_cache,
    )


def finish_summary(summary: RunSummary, cfg, out: Path, history: list[dict]) -> RunSummary:
    """summary.json written, then the loss plot drawn (its path is in `train --json`, not in the file)."""
    from trainer.plots import plot_loss

    save_summary(out, summary)
    png = plot_loss(history, out / "loss.png", f"{cfg.method.name}: loss")
    summary.loss_plot = str(png) if png else None
    return summary
