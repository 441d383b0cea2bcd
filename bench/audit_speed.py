"""Audit throughput and peak memory on a generated 100,000-record chat dataset (every check on).

Targets (issue #6): >= 3,000 records/s on a 2-core machine, peak memory < 2 GB. Prints both numbers."""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOPICS = ["billing", "shipping", "login", "refund", "warranty", "upgrade", "cancellation", "invoice", "password", "delivery"]
WORDS = ["account", "order", "package", "card", "invoice", "screen", "app", "update", "email", "payment", "delay", "damaged", "replacement", "tracking", "number", "weekend", "support", "agent", "manager", "store", "online", "mobile", "laptop", "phone", "charger", "cable", "box", "label"]


def make_dataset(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            topic = rng.choice(TOPICS)
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 60)))
            msg = f"Hi, I have a problem with my {topic}: {body}. Order {rng.randint(10000, 99999)}."
            if i % 997 == 0:
                msg += " Reach me at someone.real@gmail.com"
            answer = json.dumps({"category": topic, "priority": rng.choice(["low", "medium", "high"]),
                                 "summary": " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 25)))})
            rec = {"messages": [{"role": "system", "content": "Turn the customer message into a JSON ticket."},
                                {"role": "user", "content": msg}, {"role": "assistant", "content": answer}]}
            if i % 500 == 0:
                rec = json.loads(json.dumps(rec))
                rec["messages"][2]["content"] = ""
            f.write(json.dumps(rec) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    from advisor.audit import audit_file

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "chat.jsonl"
        make_dataset(path, args.records)
        size_mb = path.stat().st_size / 1e6
        t = time.perf_counter()
        report = audit_file(path)
        dt = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = report.records / dt
    print(f"records            {report.records:,} ({size_mb:.1f} MB)")
    print(f"findings           {', '.join(f'{f.code}={f.count}' for f in report.findings)}")
    print(f"wall time          {dt:.1f} s")
    print(f"throughput         {rate:,.0f} records/s   (target >= 3,000)  {'OK' if rate >= 3000 else 'BELOW TARGET'}")
    print(f"peak memory (RSS)  {peak_mb:,.0f} MB   (target < 2,000)  {'OK' if peak_mb < 2000 else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main()
