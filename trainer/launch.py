"""Several processes: re-run `tunewise train` under torchrun (or accelerate), the engines that already
exist. gloo on CPU, NCCL on GPUs; FSDP and DeepSpeed settings come from the config's distributed section."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from advisor.errors import RuntimeFailure
from trainer.config import TrainConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(config_path: str, cfg: TrainConfig, resume: bool, force: bool) -> list[str]:
    n = cfg.distributed.processes
    args = ["train", config_path, "--no-progress", *(["--resume"] if resume else []), *(["--force"] if force else [])]
    if cfg.distributed.launcher == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n),
                "--main_process_port", str(free_port()), "-m", "advisor.cli.main", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_addr", "127.0.0.1",
            "--master_port", str(free_port()), "--module", "advisor.cli.main", *args]


def launch(config_path: str, cfg: TrainConfig, resume: bool = False, force: bool = False) -> dict:
    import json
    from pathlib import Path

    cmd = command(config_path, cfg, resume, force)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env)
    if proc.returncode == 2:
        from advisor.errors import UserError

        raise UserError("a training process rejected the config (see its message above)")
    if proc.returncode != 0:
        raise RuntimeFailure(f"distributed training failed (exit {proc.returncode}): {' '.join(cmd)}")
    summary = Path(cfg.output.dir) / "summary.json"
    return json.loads(summary.read_text()) if summary.is_file() else {}
