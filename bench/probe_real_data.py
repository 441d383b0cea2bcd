"""`tunewise probe` on real public datasets (../shared/data/external): each prompt's score with its 95% interval,
the measured `prompting`, and the time each probe took. Prints one block per (model, dataset).

  python bench/probe_real_data.py                                  # the demo's base model (built and cached)
  python bench/probe_real_data.py --model PATH --model PATH2 --limit 30 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXTERNAL = ROOT.parent / "shared" / "data" / "external"
DATASETS = ("llamafactory_identity.json", "stanford_alpaca_sample_1727.json")


def demo_base() -> Path:
    """The demo's tiny base model, built as `tunewise demo` builds it (cached under tunewise-demo/)."""
    from advisor.cli.demo.pipeline import asset, build_base

    src = asset("tickets.jsonl")
    texts = [m["content"] for line in src.read_text().splitlines() if line.strip()
             for m in json.loads(line)["messages"]]
    return build_base(ROOT / "tunewise-demo" / "base-model", texts, print)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="local model folder (default: the demo's base model)")
    ap.add_argument("--data", action="append", help=f"dataset file (default: {', '.join(DATASETS)})")
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--json", metavar="FILE", help="also write every report here")
    args = ap.parse_args()
    from trainer.probe import ProbeOptions, run_probe

    models = args.model or [str(demo_base())]
    data = args.data or [str(EXTERNAL / d) for d in DATASETS]
    reports = []
    for model in models:
        for path in data:
            t = time.time()
            r = run_probe(path, model, ProbeOptions(limit=args.limit, max_new_tokens=args.max_new_tokens),
                          say=lambda s: None)
            wall = time.time() - t
            reports.append(r.model_dump(mode="json"))
            print(f"== {Path(model).name} on {Path(path).name}: {r.records} records, metric {r.metric} "
                  f"({r.headline}), k={r.shots}, {r.generations} answers in {wall:.0f} s ({r.device})")
            for v in r.variants:
                print(f"   {v.name:32s} {v.score:6.1%}  [{v.interval.low:.1%}, {v.interval.high:.1%}] "
                      f"{v.interval.method}")
            print(f"   → prompting {r.prompting} ({r.rule}): {r.summary}")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
