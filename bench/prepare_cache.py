"""Tokenise once (trainer/data_cache.py): how long preparing the training records takes cold (one process and
one per core) and warm (a second run of the same config), and the peak memory, against encoding into Python lists
as `prepare` did before the cache. Every mode is checked to give the same train / validation records.

Input: realistic chat records built from the real files in ../shared/data/external (bench/audit_speed.py's
recombination: 1-2 KB OpenAI chats, English and Chinese), a tiny local model's tokenizer and ChatML template.

    python bench/prepare_cache.py [--records 50000]"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MEASURE = """
import hashlib, json, resource, sys, time
sys.path.insert(0, sys.argv[1])
mode, data, model, cache = sys.argv[2:6]
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(model, local_files_only=True)
t = time.perf_counter()
if mode == "lists":  # the pre-cache way: every conversation and every encoding a Python object
    import random
    from trainer.data import load_conversations
    from trainer.encoding import Encoder
    convs, fmt, skipped, total = load_conversations(data)
    enc = Encoder(tok, 1024, True, model)
    items = [enc.encode(i, m, fmt)[0] for i, m in convs]
    items = [e for e in items if any(x != -100 for x in e.labels)]
    random.Random(42).shuffle(items)
    n_val = max(1, round(len(items) * 0.1))
    train, val = items[n_val:], items[:n_val]
else:
    from trainer.data import prepare
    p = prepare(data, tok, max_seq_len=1024, val_size=0.1, model_path=model, cache_dir=cache, drop_untrainable=True,
                num_proc=None if mode == "auto" else int(mode) if mode.isdigit() else None)
    train, val = p.train, p.val
dt = time.perf_counter() - t
h = hashlib.blake2b(digest_size=8)
for part in (train, val):
    for e in part:
        h.update(json.dumps([e.record, e.input_ids, e.labels]).encode())
status = open("/proc/self/status").read()
me = int(status.split("VmHWM:")[1].split()[0]) / 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "records": len(train) + len(val), "digest": h.hexdigest(), "peak_mb": me,
                  "worker_mb": kids}))
"""


def measure(mode: str, data: Path, model: Path, cache: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(ROOT), mode, str(data), str(model), str(cache)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50_000)
    args = ap.parse_args()
    from audit_speed import make_records

    from trainer.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        data = d / "chat.jsonl"
        data.write_text("\n".join(make_records(args.records)) + "\n", encoding="utf-8")
        model = build_tiny_model(d / "model", None, pretrain_steps=0)
        print(f"input      {args.records:,} chat records, {data.stat().st_size / 1e6:.0f} MB; tiny model's tokenizer")
        rows = [("lists (before the cache)", "lists", d / "unused"), ("cold, 1 process", "1", d / "c1"),
                ("cold, 1 per core", "auto", d / "c2"), ("warm (same config again)", "auto", d / "c2")]
        digests = set()
        for label, mode, cache in rows:
            r = measure(mode, data, Path(model), cache)
            digests.add(r["digest"])
            print(f"{label:<26} {r['seconds']:7.2f} s  {r['records'] / r['seconds']:>9,.0f} records/s  "
                  f"peak RSS {r['peak_mb']:,.0f} MB (+ largest worker {r['worker_mb']:,.0f} MB)")
        print("same records" if len(digests) == 1 else f"DIFFERENT RECORDS ({len(digests)} digests)")


if __name__ == "__main__":
    main()
