"""`tunewise estimate` against published, measured GPU memory (tests/data/published_memory.yaml).

Prints every row (estimated vs measured allocated peak and device reading, and the fit verdict), then the
summary the estimator is held to: mean |error| of the device reading, share within ±25 %, verdicts right —
on all rows and on the rows not used for calibration.

    python bench/estimate_vs_published.py [--json] [--code DIR]

--code DIR scores another checkout's estimator (e.g. a worktree of the commit before a change: the before/after of
issue 33). Settings an older estimator does not know are left out, and a row that names a model it has no shape
for is estimated from its size (--params-b), as a user of that version had to.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def shapes():
    from core.estimate.shapes import ModelShape

    # the released models' config.json values
    return {
        "mistral-7b": ModelShape(32000, 4096, 32, 32, 8, 14336, source="Mistral-7B-v0.1 config.json"),
        "mixtral-8x7b": ModelShape(32000, 4096, 32, 32, 8, 14336, experts=8, experts_per_token=2,
                                   source="Mixtral-8x7B-v0.1 config.json"),
        "llama-2-70b": ModelShape(32000, 8192, 80, 64, 8, 28672, source="Llama-2-70b config.json"),
        "llama-3.1-8b": ModelShape(128256, 4096, 32, 32, 8, 14336, source="Llama-3.1-8B config.json"),
        "llama-3.3-70b": ModelShape(128256, 8192, 80, 64, 8, 28672, source="Llama-3.3-70B config.json"),
    }


def shape_of(row: dict):
    """The row's model: the bench's explicit shapes, else the named model's published shape, else (an estimator
    without named shapes) the stand-in for its size."""
    if "shape" in row:
        return shapes()[row["shape"]]
    try:
        from core.estimate.shapes import shape_for_model
    except ImportError:
        from core.estimate import shape_from_params_b

        return shape_from_params_b(row["params_b"])
    return shape_for_model(row["model"])


def request(row: dict):
    from core.estimate import EstimateRequest

    attention_only = row["source"] in ("A", "C")
    fields = dict(
        method=row["method"], seq_len=row["seq_len"], batch_size=row["batch_size"], gpus=row["gpus"],
        sharding=row.get("sharding", "none"), precision=row["precision"], gpu_memory_gb=row.get("gpu_memory_gb", 80),
        lora_r=row.get("lora_r", 16), lora_dropout=0.0, lora_targets=ATTENTION if attention_only else ALL_LINEAR,
        gradient_checkpointing=True,
        # every published run here computed the plain loss (none used Liger / Cut Cross-Entropy)
        loss=row.get("loss", "plain"), attention=row.get("attention", "auto"),
        low_memory_loading=row.get("low_memory_loading", True))
    known = EstimateRequest.model_fields
    return EstimateRequest(**{k: v for k, v in fields.items() if k in known})


def score(rows: list[dict]) -> dict:
    from core.estimate import estimate

    table = []
    for row in rows:
        est = estimate(shape_of(row), request(row), suggest=False)
        measured = row.get("device")
        err = None if measured is None else (est.total_gb - measured) / measured
        alloc_err = None if row.get("allocated") is None else (est.allocated_gb - row["allocated"]) / row["allocated"]
        verdict_ok = (not est.fits) if row.get("oom") else (est.fits if measured and measured < 80 or row.get("allocated")
                                                             else abs(err) <= 0.25)
        table.append({"name": row["name"], "calibrated": row["calibrated"], "estimated_gb": est.total_gb,
                      "allocated_gb": est.allocated_gb, "peak_phase": est.peak_phase, "measured_gb": measured,
                      "measured_allocated_gb": row.get("allocated"), "error": None if err is None else round(err, 4),
                      "allocated_error": None if alloc_err is None else round(alloc_err, 4), "oom": bool(row.get("oom")),
                      "fits": est.fits, "verdict_ok": verdict_ok})
    return {"all": summary(table), "held_out": summary([r for r in table if not r["calibrated"]]), "rows": table}


def summary(rows: list[dict]) -> dict:
    errs = [abs(r["error"]) for r in rows if r["error"] is not None]
    return {"figures": len(errs), "mean_abs_error": round(sum(errs) / len(errs), 4) if errs else None,
            "within_25": round(sum(e <= 0.25 for e in errs) / len(errs), 4) if errs else None,
            "verdicts": f"{sum(r['verdict_ok'] for r in rows)}/{len(rows)}"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--code", metavar="DIR", help="score the estimator of another checkout")
    args = p.parse_args()
    if args.code:
        sys.path.insert(0, str(Path(args.code).resolve()))
        for name in [m for m in sys.modules if m == "advisor" or m.startswith(("advisor.", "trainer."))]:
            del sys.modules[name]
    rows = yaml.safe_load((ROOT / "tests" / "data" / "published_memory.yaml").read_text(encoding="utf-8"))
    result = score(rows)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{'figure':42s} {'est GB':>7s} {'meas GB':>8s} {'error':>7s} {'alloc err':>9s} {'phase':>16s} verdict")
    for r in result["rows"]:
        meas = "OOM" if r["oom"] else f"{r['measured_gb']:.1f}"
        err = "" if r["error"] is None else f"{r['error']:+.0%}"
        aerr = "" if r["allocated_error"] is None else f"{r['allocated_error']:+.0%}"
        mark = ("" if r["calibrated"] else "*")
        print(f"{r['name'] + mark:42s} {r['estimated_gb']:7.1f} {meas:>8s} {err:>7s} {aerr:>9s} {r['peak_phase']:>16s} "
              f"{'ok' if r['verdict_ok'] else 'WRONG'}")
    for k in ("all", "held_out"):
        s = result[k]
        print(f"{k}: mean |error| {s['mean_abs_error']:.1%} over {s['figures']} figures, "
              f"{s['within_25']:.0%} within ±25%, verdicts {s['verdicts']}")
    print("* = not used for calibration")


if __name__ == "__main__":
    main()
