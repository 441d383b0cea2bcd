"""The message of a run that diverged (trainer/callbacks.py's Diverged): the step, the cause, what was kept."""

from __future__ import annotations

from pathlib import Path

from core.methods import method
from core.train_config import TrainConfig
from trainer.checkpoints import last_checkpoint


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
