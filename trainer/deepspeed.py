"""DeepSpeed for runs on several processes: the installed package checked before anything starts, and the ZeRO
settings of distributed.strategy written as the JSON file transformers reads."""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import UserError
from core.files import atomic_write
from core.train_config import TrainConfig, deepspeed_settings


def check_launcher(cfg: TrainConfig) -> None:
    if cfg.distributed.strategy.startswith("deepspeed") and cfg.distributed.world_size > 1:
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise UserError(f"distributed.strategy {cfg.distributed.strategy} needs DeepSpeed: pip install deepspeed "
                            "(or use strategy fsdp, which ships with torch)")


def write_deepspeed_config(cfg: TrainConfig, out: Path) -> Path:
    ds = deepspeed_settings(cfg.distributed.strategy)
    path = out / f"deepspeed_zero{ds['zero_optimization']['stage']}.json"
    atomic_write(path, json.dumps(ds, indent=2))
    return path
