"""`tunewise merge OUT_DIR`: merge a trained LoRA/QLoRA adapter into its base model."""

from __future__ import annotations

import argparse

from advisor.cli.common import (
    add_json_flag,
    add_remote_code_flag,
    allow_remote_code,
    console,
    emit,
    subparser,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "merge", "merge a LoRA/QLoRA adapter into its base model",
        "Load the base model (for QLoRA the 16-bit, de-quantised base), apply the adapter from OUT_DIR, merge it "
        "into the weights, check that the merged model's logits match the adapter model's, and save it.",
        ["tunewise merge runs/tunewise", "tunewise merge runs/tunewise --out serving/model --json"],
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder of a finished LoRA/QLoRA run")
    p.add_argument("--out", metavar="DIR", help="where to write the merged model (default OUT_DIR/merged)")
    p.add_argument("--force", action="store_true", help="write over a folder that already holds files (an "
                   "earlier merge); default: refuse, exit 2")
    add_remote_code_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trainer.merge import merge

    allow_remote_code(args)

    r = merge(args.out_dir, args.out, force=args.force)
    emit(r, args.json, lambda: console.print(
        f"[green]merged[/] into {r['merged_dir']} ({r['dtype']}): logits match the adapter model "
        f"(max |Δ| {r['max_abs_logit_diff']:.2e}, tolerance {r['tolerance']:.1e}; after reload {r['reload_max_abs_logit_diff']:.1e})"))
    return 0
