"""How many CPU threads a training process uses: the cores it may actually run on (affinity), capped by the
container's CPU quota (cgroup v2 `cpu.max`, v1 `cfs_quota_us`), shared among the processes of this machine — not
torch's default (every core of the host), which oversubscribes a loaded or shared machine."""

from __future__ import annotations

import math
import os
from pathlib import Path


def cgroup_cpus() -> float | None:
    """The CPU quota of this process's cgroup, in cores (None: no limit)."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        q, p = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        if q.is_file() and p.is_file():
            quota, period = int(q.read_text()), int(p.read_text())
            return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
    return None


def available_cores() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpus()
    return max(1, min(cores, math.floor(quota))) if quota else cores


def thread_count(local_processes: int = 1) -> tuple[int, str]:
    """(threads per process, why): OMP_NUM_THREADS when the user set it, else the available cores shared among
    this machine's processes."""
    given = os.environ.get("OMP_NUM_THREADS")
    if given and given.isdigit() and int(given) > 0:
        return int(given), "OMP_NUM_THREADS"
    cores = available_cores()
    return max(1, cores // max(1, local_processes)), f"{cores} available core(s) / {local_processes} process(es)"


def apply_thread_policy(device: str) -> dict:
    """Set torch's intra-op threads for a CPU run; returns what was chosen (for the summary)."""
    import torch

    if device != "cpu":
        return {"cpu_threads": torch.get_num_threads(), "cpu_threads_why": "GPU run: torch's default"}
    n, why = thread_count(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(n)
    return {"cpu_threads": n, "cpu_threads_why": why}


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), for the start-up time in the summary."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
