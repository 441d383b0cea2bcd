"""Trainer callbacks: a rich progress bar, metrics.jsonl, graceful stop on Ctrl-C/SIGTERM, and a
per-rank record of which examples each process trained on."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from transformers import TrainerCallback

from core.files import json_text


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class MetricsLogger(TrainerCallback):
    """Appends every logged step to OUTPUT/metrics.jsonl (the summary reads the trainer's own log history,
    which a resumed run restores from its checkpoint)."""

    def __init__(self, path: Path, fresh: bool = True) -> None:
        self.path = path
        if fresh and path.is_file():  # a new run never appends to the rows of an earlier, killed one
            path.unlink()
        self.t0 = time.time()

    def on_log(self, args, state, control, logs=None, **kw):
        if not logs or not state.is_world_process_zero:
            return
        row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
               "time_s": round(time.time() - self.t0, 3), **logs}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json_text(row) + "\n")


class RichProgress(TrainerCallback):
    """Step, loss, eval loss, tokens/s and ETA on one rich progress bar (main process only)."""

    def __init__(self, console=None, enabled: bool = True) -> None:
        self.console = console.real() if hasattr(console, "real") else console
        self.enabled = enabled
        self.bar = None
        self.task = None
        self.loss = float("nan")
        self.eval_loss = float("nan")
        self.t0 = 0.0
        self.tokens0 = 0

    def on_train_begin(self, args, state, control, **kw):
        if not (self.enabled and state.is_world_process_zero):
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("[bold]training[/]"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]:.4f} · eval {task.fields[eval]:.4f} · "
                                       "{task.fields[tps]:,.0f} tok/s"), TimeRemainingColumn(),
                            console=self.console, transient=False)
        self.bar.start()
        self.task = self.bar.add_task("train", total=state.max_steps, completed=state.global_step,
                                      loss=self.loss, eval=self.eval_loss, tps=0.0)
        self.t0, self.tokens0 = time.time(), state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kw):
        if self.bar is None:
            return
        dt = max(time.time() - self.t0, 1e-6)
        tps = (state.num_input_tokens_seen - self.tokens0) / dt
        self.bar.update(self.task, completed=state.global_step, loss=self.loss, eval=self.eval_loss, tps=tps)

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        if "loss" in logs:
            self.loss = logs["loss"]
        if "eval_loss" in logs:
            self.eval_loss = logs["eval_loss"]

    def on_train_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.update(self.task, completed=state.global_step, loss=self.loss, eval=self.eval_loss)
            self.bar.stop()
            self.bar = None


class GracefulStop(TrainerCallback):
    """First Ctrl-C (or SIGTERM): save a checkpoint at the end of the current step and stop.
    A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def on_step_end(self, args, state, control, **kw):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True


class RankRecord(TrainerCallback):
    """Each process writes OUTPUT/ranks/rank{N}.json: how many examples it trained on and which."""

    def __init__(self, out: Path, collator) -> None:
        self.out = out
        self.collator = collator

    def on_train_end(self, args, state, control, **kw):
        rank = int(os.environ.get("RANK", "0"))
        self.out.mkdir(parents=True, exist_ok=True)
        seen = sorted(self.collator.records_seen)
        (self.out / f"rank{rank}.json").write_text(json.dumps({
            "rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", "1")), "pid": os.getpid(),
            "steps": state.global_step, "examples_seen": len(self.collator.records_seen_list),
            "distinct_records": len(seen), "records": seen[:1000]}))


class FirstStep(TrainerCallback):
    """When the first optimizer step of this process ended (the start-up time in the summary ends there)."""

    def __init__(self) -> None:
        self.at: float | None = None

    def on_step_end(self, args, state, control, **kw):
        if self.at is None:
            self.at = time.time()


class Diverged(Exception):
    """Training produced a non-finite loss, gradient norm or eval loss: raised before the optimizer applies the
    step (and before a checkpoint of it is saved), so no NaN weights are ever written."""

    def __init__(self, step: int, what: str, value: float) -> None:
        super().__init__(f"{what} {value} at step {step}")
        self.step, self.what, self.value = step, what, value


def check_finite(value, step: int, what: str) -> None:
    """Raise Diverged when `value` (a float or a 0-d tensor) is NaN or infinite."""
    import math

    v = float(value.detach().float().item() if hasattr(value, "detach") else value)
    if not math.isfinite(v):
        raise Diverged(step, what, v)


class DivergenceGuard(TrainerCallback):
    """A non-finite evaluation loss stops the run before the checkpoint of that step is saved."""

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        if metrics and "eval_loss" in metrics:
            check_finite(metrics["eval_loss"], state.global_step, "the validation loss")
