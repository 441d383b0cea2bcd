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


def detect_host_memory_gb(meminfo: str = "/proc/meminfo") -> float | None:
    """Total host RAM in GB (Linux /proc/meminfo; POSIX sysconf elsewhere), None when unknown."""
    import os

    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) * 1024 / 1e9, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        return None
