"""A run's output folder across restarts: its newest complete checkpoint, the fingerprint of the config that
started it (a resume must use the same), and the resolved config written beside the results."""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError
from core.files import atomic_write, write_model
from core.train_config import TrainConfig

FINGERPRINT = "tunewise_fingerprint.txt"
RESOLVED = "tunewise_config.yaml"


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


def prepare_output(cfg: TrainConfig, resume: bool) -> tuple[Path, str | None]:
    """(the output folder, the checkpoint to resume from): --resume needs a checkpoint of the same config; a fresh
    run refuses a folder that holds another run's checkpoints."""
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


def record_config(cfg: TrainConfig, out: Path) -> None:
    """The config's fingerprint (checked by --resume) and the resolved config (read by eval and merge)."""
    atomic_write(out / FINGERPRINT, cfg.fingerprint() + "\n")
    write_model(out / RESOLVED, cfg, header="resolved tunewise training config of this run")
