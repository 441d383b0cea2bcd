"""`tunewise probe DATA --model PATH`: measure whether prompting already works on the user's own records."""

from __future__ import annotations

import argparse

from advisor.cli.common import add_json_flag, console, emit, err_console, positive, subparser


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "probe", "measure prompting on your records: zero-shot, few-shot, reworded → works/unstable/plateaued",
        "On a held-out sample of DATA (the split `tunewise train` holds out, or --test), the base model answers "
        "zero-shot (the data's own system prompt, if any), few-shot (k examples from the training side, as many "
        "as fit the context) and with the instruction reworded a few ways. Each is scored with the metric "
        "`tunewise eval` would choose, with a 95% confidence interval (Wilson for shares of right answers, "
        "bootstrap for chrF), and the numbers set `prompting` (works / unstable / plateaued) by the rules in "
        "rules/probe_prompting.yaml. Use the result with `tunewise recommend --probe FILE`.",
        ["tunewise probe data.jsonl --model ./base-model",
         "tunewise probe train.jsonl --test test.jsonl --model ./base-model --schema ticket.schema.json",
         "tunewise probe data.jsonl --model ./base-model --limit 30 --max-new-tokens 64 --out probe.json --json"],
    )
    p.add_argument("data", metavar="DATA", nargs="?", help="your records (any format `tunewise train` reads)")
    p.add_argument("--model", metavar="PATH", help="local base model folder (required)")
    add_probe_options(p)
    p.add_argument("--out", metavar="FILE", help="also write the result here (JSON; refuses to overwrite a file "
                   "without --force)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--print-schema", action="store_true", help="print the result's JSON Schema and exit")
    add_json_flag(p)
    p.set_defaults(func=run)


def add_probe_options(p: argparse.ArgumentParser) -> None:
    from core.metric_names import METRICS
    from trainer.probe_plan import DEFAULT_LIMIT, DEFAULT_SHOTS, REWORDINGS

    p.add_argument("--test", metavar="TEST", help="held-out records to score (default: the records `tunewise train` "
                   "holds out of DATA, seed 42, 10%%, then more of the same shuffled order up to --limit)")
    p.add_argument("--limit", type=positive(int, "--limit"), default=DEFAULT_LIMIT, metavar="N",
                   help=f"score at most N held-out records (default {DEFAULT_LIMIT})")
    p.add_argument("--max-new-tokens", type=positive(int, "--max-new-tokens"), metavar="N",
                   help="answer length limit (default: 1.5 x the longest expected answer, at most 512)")
    p.add_argument("--shots", type=positive(int, "--shots", allow_zero=True), default=DEFAULT_SHOTS, metavar="K",
                   help=f"at most K few-shot examples (default {DEFAULT_SHOTS}; fewer when the context is short)")
    p.add_argument("--rewordings", type=int, choices=range(len(REWORDINGS) + 1), default=len(REWORDINGS),
                   metavar="N", help=f"instruction rewordings to try, 0-{len(REWORDINGS)} (default {len(REWORDINGS)})")
    p.add_argument("--metric", choices=METRICS, help="task metric (default: chosen from the answers, as eval does)")
    p.add_argument("--schema", metavar="FILE", help="JSON Schema the answers must match (JSON answers)")
    p.add_argument("--batch-size", type=positive(int, "--batch-size"), metavar="N",
                   help="prompts generated together (default 16 on CPU, 32 on a GPU)")
    p.add_argument("--chat-template", metavar="TEMPLATE", help="chat template (inline Jinja or a .jinja file) for a "
                   "tokenizer without one")
    p.add_argument("--trust-remote-code", action="store_true", help="run the model folder's own Python code")


def options_from(args: argparse.Namespace):
    from trainer.probe import ProbeOptions

    return ProbeOptions(test=args.test, limit=args.limit, max_new_tokens=args.max_new_tokens, shots=args.shots,
                        rewordings=args.rewordings, metric=args.metric, schema_path=args.schema,
                        batch_size=args.batch_size, chat_template=args.chat_template,
                        trust_remote_code=args.trust_remote_code)


def measure(data: str, model: str, args: argparse.Namespace, quiet: bool):
    """Run the probe with the command's options, its progress bar and time estimate on stderr."""
    from trainer.probe import Progress, run_probe

    bar = Progress(None if quiet else err_console.real())
    return run_probe(data, model, options_from(args), progress=bar,
                     say=(lambda s: None) if quiet else (lambda s: err_console.print(s, highlight=False)))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.errors import UserError

    if args.print_schema:
        import json
        import sys

        from core.probe_report import ProbeReport

        sys.stdout.write(json.dumps(ProbeReport.model_json_schema(), indent=2) + "\n")
        return 0
    if not args.data or not args.model:
        raise UserError("give the data and the model: tunewise probe DATA --model PATH")
    if args.out and Path(args.out).exists() and not args.force:
        raise UserError(f"--out `{args.out}` exists: add --force to overwrite it")
    report = measure(args.data, args.model, args, quiet=args.json)
    if args.out:
        from core.files import atomic_write

        atomic_write(args.out, report.model_dump_json(indent=2) + "\n")
    emit(report.model_dump(mode="json"), args.json, lambda: render(report))
    return 0


def render(r, con=None) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = con or console
    out.print(f"probe of `{escape(r.model)}` on {r.records} held-out records of {escape(r.test)}; metric "
              f"[bold]{r.metric}[/] ({escape(r.metric_why)}); judged by [bold]{r.headline}[/]")
    out.print(f"few-shot examples: {escape(r.shots_why)}")
    t = Table(title="prompting, measured", title_justify="left")
    for col, justify in (("prompt", "left"), ("examples", "right"), (r.headline, "right"), ("95% interval", "right"),
                         ("instruction", "left")):
        t.add_column(col, justify=justify, overflow="fold")
    for v in r.variants:
        mark = " [green]← best[/]" if v.name == r.best else ""
        where = " (in the user turn)" if v.instruction_in_user_turn else ""
        t.add_row(escape(v.name) + mark, str(v.shots), f"{v.score:.0%}",
                  f"{v.interval.low:.0%}-{v.interval.high:.0%} ({v.interval.method})",
                  escape((v.instruction or "none")[:90]) + where)
    out.print(t)
    colour = {"works": "green", "unstable": "yellow", "plateaued": "red"}[r.prompting]
    out.print(f"[bold]prompting: [{colour}]{r.prompting}[/][/] — {escape(r.summary)}")
    out.print(f"  [cyan]{r.rule}[/]: {escape(r.why)} [dim]({escape(r.rule_source)})[/]")
    best = r.variant(r.best)
    for s in best.samples[:2]:
        out.print(f"  [dim]{escape(s.prompt[:100])}[/] → {escape(s.output[:100])} [dim](expected "
                  f"{escape(s.expected[:60])}, {s.score:.2f})[/]")
    out.print(f"{r.generations} answers in {r.generation_time_s:.0f} s on {r.device} (total {r.wall_time_s:.0f} s)")
