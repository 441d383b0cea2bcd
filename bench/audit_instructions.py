"""Work per record of the audit's per-record stage, in CPU instructions counted by valgrind's cachegrind.

Wall-clock throughput on a shared VM drifts by 15-20% within minutes (bench/audit_speed.py says so), so a change of a
few percent in the per-record work cannot be seen in records/s. The number of instructions executed is the same on
every run: this bench audits the same records of the bench's data (unique messages, or --multilingual) in one
process, in batches of 256 as a worker does, once for `--records` and once for 4x as many, and prints the
instructions per record as the difference divided by the extra records (start-up, imports and compiled patterns
cancel out; the task-intent cues of every language are compiled in the warm-up, or a language first met among the
extra records would count its 20-60 ms compile as per-record work). It counts instructions, not time: cache misses and the regex engine's memory traffic are not in it.
Needs `valgrind` on the PATH; runs for 2-4 minutes."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.audit_speed import EXTERNAL, make_multilingual_records, make_records  # noqa: E402

BATCH = 256
# OpenBLAS's idle threads spin, and cachegrind counts their instructions: 37k a record that came and went between
# runs of the same code (blas_thread_server). The per-record stage does no work on them.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# what runs under cachegrind: the first `n` records of FILE audited in batches, after a warm-up batch
DRIVER = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from advisor.audit.catalog import Selection
from advisor.audit.record import RecordAuditor
from advisor.audit.run import open_dataset
from core.data.reader import iter_raw
path, n, batch = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
d = open_dataset(path, "auto", None, "--columns")
auditor = RecordAuditor(d.format, 2048, Selection(), None, None, d.layout)
records = list(iter_raw(path, d.container, parse=False))
auditor.batch(records[:batch])  # warm-up: caches and compiled patterns
try:  # the task-intent cues of every language, compiled when a language is first met: not per-record work
    from advisor.audit.intents import languages, rules, searched
    for piece in {p for lang in languages() for p in searched((lang,))}:
        rules(piece)
except ImportError:  # a tree from before the cues (for comparisons)
    pass
work = records[batch:batch + n]
for i in range(0, len(work), batch):
    auditor.batch(work[i:i + batch])
"""


def instructions(path: Path, n: int) -> int:
    """Instructions executed by the driver auditing `n` records of `path` (cachegrind, no cache simulation)."""
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={d}/cg.out",
                              sys.executable, "-c", DRIVER, str(ROOT), str(path), str(n), str(BATCH)],
                             capture_output=True, text=True, check=True, env={**os.environ, **ONE_THREAD})
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if found is None:
        sys.exit(f"cachegrind printed no instruction count:\n{out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300, help="records of the small run (the large one: 4x as many)")
    ap.add_argument("--multilingual", action="store_true", help="records in 17 languages (bench/audit_speed.py)")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind on the PATH (apt install valgrind)")
    small, large = args.records, 4 * args.records
    total = BATCH + large
    if args.multilingual:
        lines, source = make_multilingual_records(total), "17 languages (tests/labelled, recombined)"
    elif EXTERNAL.is_dir():
        lines, source = make_records(total, unique_messages=True), "unique messages (external/, recombined)"
    else:
        sys.exit(f"needs the real files in {EXTERNAL} (or --multilingual)")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "records.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        a, b = instructions(path, small), instructions(path, large)
    per_record = (b - a) / (large - small)
    print(f"input          {source}; records {small:,} and {large:,} after a warm-up batch of {BATCH}")
    print(f"instructions   {a:,} and {b:,}")
    print(f"per record     {per_record / 1e6:.3f}M instructions (the difference over {large - small:,} records)")


if __name__ == "__main__":
    main()
