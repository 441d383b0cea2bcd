"""`tunewise eval RUN_DIR`: the base model and the tuned output on the same held-out records."""

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
from core.metric_names import METRICS


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "eval", "did the fine-tune work? base vs tuned on held-out records",
        "Compare the base model and a run's output (adapter or full model) on the same records: loss on the "
        "answers, a task metric on greedy answers generated with the model's own template (JSON validity and "
        "match, plus schema match with --schema; accuracy and macro-F1 for labels; chrF and ROUGE-L for free "
        "text; exact match always), and the forgetting check (loss on general text before and after). Writes "
        "eval.json and eval.png into RUN_DIR.",
        ["tunewise eval runs/tunewise",
         "tunewise eval runs/tunewise --data test.jsonl --schema ticket.schema.json",
         "tunewise eval runs/tunewise --metric chrf --general my_domain_text.txt --json"],
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="output.dir of a finished tunewise run")
    p.add_argument("--data", metavar="TEST", help="test records (any format train reads; default: the run's "
                   "held-out split)")
    p.add_argument("--general", metavar="TEXT", help="general text, one passage per line, for the forgetting "
                   "check (default: the sample shipped with tunewise)")
    p.add_argument("--metric", choices=METRICS, help="task metric (default: chosen from the answers)")
    p.add_argument("--schema", metavar="FILE", help="JSON Schema the answers must match (JSON answers)")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="evaluate at most N records (default 100)")
    p.add_argument("--max-new-tokens", type=int, metavar="N", help="answer length limit (default: 1.5 x the "
                   "longest expected answer)")
    add_remote_code_flag(p)
    p.add_argument("--probe", metavar="PROBE_JSON", help="compare against this probe result's best prompt "
                   "(`tunewise probe --out`) instead of few-shot with the data's own instruction")
    p.add_argument("--no-prompting", action="store_true", help="skip the prompting baseline (the base model with "
                   "worked examples from the training side)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.errors import UserError

    for flag, value in (("--limit", args.limit), ("--max-new-tokens", args.max_new_tokens)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    from trainer.evaluate import AnswerProgress, evaluate_run

    allow_remote_code(args)

    progress = AnswerProgress(console.real(), enabled=not args.json)
    try:
        report = evaluate_run(args.run_dir, data=args.data, general=args.general, metric=args.metric,
                              schema_path=args.schema, limit=args.limit, max_new_tokens=args.max_new_tokens,
                              progress=progress, prompting=not args.no_prompting, probe_path=args.probe)
    finally:
        progress.stop()
    emit(report.model_dump(mode="json"), args.json, lambda: render(report))
    return 0


def render(r, con=None) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = con or console
    out.print(f"[bold]{r.method}[/] run `{escape(r.run_dir)}` vs its base, on {r.records} records of "
              f"{escape(r.data)}; metric [bold]{r.metric}[/] ({escape(r.metric_why)})")
    p = r.prompting
    t = Table(title="base vs tuned" + (" vs the best prompt" if p else ""), title_justify="left")
    cols = [("", "left"), ("base", "right"), ("tuned", "right"), ("change", "right")]
    cols += [("best prompt", "right"), ("tuned vs prompt", "right")] if p else []
    for col, justify in cols:
        t.add_column(col, justify=justify)

    def change(d: float) -> str:
        return f"[{'green' if d > 0 else 'red' if d < 0 else 'dim'}]{d:+.3f}[/]"

    for k in r.base.metrics:
        row = [k, f"{r.base.metrics[k]:.3f}", f"{r.tuned.metrics[k]:.3f}", change(r.diff[k])]
        t.add_row(*row, *([f"{p.metrics[k]:.3f}", change(r.diff_prompting[k])] if p else []))
    for k, label in (("answer_loss", "loss on answers"), ("general_loss", "loss on general text")):
        b, tu = getattr(r.base, k), getattr(r.tuned, k)
        if b is not None and tu is not None:
            d = tu - b
            t.add_row(label, f"{b:.3f}", f"{tu:.3f}", f"[{'green' if d < 0 else 'red' if d > 0 else 'dim'}]{d:+.3f}[/]",
                      *(["", ""] if p else []))
    out.print(t)
    if p:
        out.print(f"best prompt: {escape(r.prompting_prompt or '')}, the base model on the same records")
    if r.forgetting:
        out.print("[bold yellow]forgetting[/]: the loss on general text rose by more than 5%: lower the learning "
                  "rate or epochs, use LoRA with a smaller rank, or mix general data into training")
    for title, rows in (("worst regressions", r.regressions), ("best wins", r.wins)):
        if not rows:
            continue
        s = Table(title=title, title_justify="left", show_lines=True)
        for col in ("record", "prompt", "expected", "base", "tuned"):
            s.add_column(col, overflow="fold", max_width=40)
        for e in rows:
            s.add_row(str(e.record), escape(e.prompt[:200]), escape(e.expected[:200]),
                      escape(f"{e.base[:200]} ({e.base_score:.2f})"), escape(f"{e.tuned[:200]} ({e.tuned_score:.2f})"))
        out.print(s)
    if r.plot:
        out.print(f"picture: {escape(r.plot)}")
