"""Wall time of advisor commands, as a user runs them (new process each time). Target: < 0.3 s each."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ANSWERS = """goal: format
prompting: unstable
examples: 3000
tasks: 1
needs_citations: false
private_data: false
requests_per_day: 1000
gpu_memory_gb: 24
gpu_count: 1
model_params_b: 7
"""


def wall(args: list[str], runs: int = 10) -> float:
    exe = [sys.executable, "-m", "advisor.cli.main"]
    subprocess.run(exe + args, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(exe + args, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with tempfile.TemporaryDirectory() as d:
        answers = Path(d) / "answers.yaml"
        answers.write_text(ANSWERS)
        cases = {
            "tunewise --help": ["--help"],
            "tunewise recommend --help": ["recommend", "--help"],
            "tunewise recommend --answers F --json": ["recommend", "--answers", str(answers), "--json"],
            "tunewise estimate --params-b 7 --method qlora --json": ["estimate", "--params-b", "7", "--method", "qlora", "--json"],
        }
        for name, args in cases.items():
            t = wall(args)
            print(f"{name:55s} {t * 1000:6.0f} ms  (target < 300 ms) {'OK' if t < 0.3 else 'SLOW'}")


if __name__ == "__main__":
    main()
