"""Several processes: re-run `tunewise train` under torchrun (or accelerate), the engines that already
exist. gloo on CPU, NCCL on GPUs; FSDP and DeepSpeed settings come from the config's distributed section."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from core.errors import RuntimeFailure
from core.train_config import TrainConfig
from trainer.run_report import RunSummary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(config_path: str, cfg: TrainConfig, resume: bool, force: bool) -> list[str]:
    d = cfg.distributed
    port = (d.master_port or free_port()) if d.nodes == 1 else d.node_port
    args = ["train", config_path]
    if d.nodes > 1:  # every node reads the same config; its rank comes from here (overrides before the flags)
        args += [f"distributed.node_rank={d.node_rank}", f"distributed.master_addr={d.master_addr}",
                 f"distributed.master_port={port}"]
    from trainer.model import remote_code_granted

    args += ["--no-progress", *(["--resume"] if resume else []), *(["--force"] if force else []),
             *(["--trust-remote-code"] if remote_code_granted() else [])]  # the person allowed it for this run
    if d.launcher == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                str(d.world_size), "--num_machines", str(d.nodes), "--machine_rank", str(d.node_rank),
                "--main_process_ip", d.master_addr, "--main_process_port", str(port), "-m", "advisor.cli.main", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(d.nodes), "--node_rank", str(d.node_rank),
            "--nproc_per_node", str(d.processes), "--master_addr", d.master_addr, "--master_port", str(port),
            "--module", "advisor.cli.main", *args]


def launch(config_path: str, cfg: TrainConfig, resume: bool = False, force: bool = False) -> RunSummary | None:
    """Run the processes; the summary the first one wrote (None when none did)."""
    from pathlib import Path

    from trainer.summary import read_summary

    cmd = command(config_path, cfg, resume, force)
    from trainer.cpu import thread_count

    # each process gets its share of the cores this one may use (not 1, not every core of the host)
    env = {**os.environ, "OMP_NUM_THREADS": str(thread_count(cfg.distributed.processes)[0]), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env)
    if proc.returncode == 2:
        from core.errors import UserError

        raise UserError("a training process rejected the config (see its message above)")
    if proc.returncode != 0:
        raise RuntimeFailure(f"distributed training failed (exit {proc.returncode}): {' '.join(cmd)}")
    return read_summary(Path(cfg.output.dir))


def slurm_script(config_path: str, cfg: TrainConfig, overrides: list[str] | None = None) -> str:
    """A Slurm batch script that runs this config on distributed.nodes nodes x distributed.processes GPUs: one
    `tunewise train` per node (each launches its GPU processes with torchrun), node 0's address as the rendezvous.
    The FSDP / DeepSpeed settings come from the config as on one machine."""
    import shlex
    from pathlib import Path

    d = cfg.distributed
    config = Path(config_path).resolve()
    port = d.node_port
    placed = ("distributed.nodes", "distributed.node_rank", "distributed.processes", "distributed.master_addr",
              "distributed.master_port")
    kept = " ".join(shlex.quote(o) for o in overrides or [] if o.split("=", 1)[0].strip() not in placed)
    return f"""#!/bin/bash
# written by `tunewise train {config_path} --emit slurm`: {d.nodes} node(s) x {d.processes} GPU(s), {d.strategy}
#SBATCH --job-name=tunewise
#SBATCH --nodes={d.nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={d.processes}
#SBATCH --output=tunewise-%j.log
set -euo pipefail
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export OMP_NUM_THREADS=${{OMP_NUM_THREADS:-1}}
# one tunewise per node; SLURM_NODEID is read inside each task. Add --resume to continue a stopped job.
srun --kill-on-bad-exit=1 bash -c 'exec tunewise train {config} {kept} \\
    distributed.nodes=$SLURM_NNODES distributed.node_rank=$SLURM_NODEID \\
    distributed.processes={d.processes} distributed.master_addr=$MASTER_ADDR distributed.master_port={port} \\
    --no-progress "$@"' tunewise "$@"
"""
