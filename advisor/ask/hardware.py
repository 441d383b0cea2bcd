"""Detect GPUs with nvidia-smi when it is there (never by importing torch: ask must start instantly)."""

from __future__ import annotations

import shutil
import subprocess


def detect_gpus() -> list[tuple[str, float]]:
    """[(name, memory in GB)] of the visible NVIDIA GPUs; [] when none or nvidia-smi is missing."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, mib = line.rpartition(",")
        try:
            gpus.append((name.strip(), round(float(mib) * 1024 * 1024 / 1e9, 1)))
        except ValueError:
            continue
    return gpus
