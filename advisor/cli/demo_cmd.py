"""`tunewise demo`: the whole product on the built-in example, on this machine, in a few minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

from advisor.cli.common import add_json_flag, console, emit, err_console, subparser


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "demo", "audit → recommend → config → train → evaluate, on a built-in example",
        "Run the main job end to end on the built-in example (support messages → strict JSON tickets): build a "
        "tiny local base model (cached), audit the data, recommend a method, write train.yaml, train, and compare "
        "base vs tuned on held-out records (eval loss, valid-ticket rate, general-text loss for forgetting).",
        ["tunewise demo", "tunewise demo --out /tmp/tunewise-demo --json"],
    )
    p.add_argument("--out", default="tunewise-demo", metavar="DIR", help="where everything is written")
    p.add_argument("--quick", action="store_true", help="a much smaller run (seconds), for smoke tests")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from advisor.cli.audit_cmd import render as render_audit
    from advisor.cli.demo.pipeline import DemoView, run_demo
    from advisor.cli.probe_cmd import render as render_probe
    from advisor.cli.recommend_cmd import render as render_rec
    from advisor.cli.train_cmd import render_summary

    out_console = err_console if args.json else console
    view = DemoView(say=lambda s: out_console.print(s, highlight=False),
                    audit=lambda report, html: render_audit(report, html, con=out_console),
                    recommendation=lambda rec: render_rec(rec, con=out_console),
                    probe=lambda probe: render_probe(probe, con=out_console),
                    summary=lambda summary: render_summary(summary, con=out_console))
    r = run_demo(Path(args.out), view, console=out_console.real(), progress=not args.json, quick=args.quick)
    emit(r, args.json, lambda: render(r))
    return 0


def render(r: dict) -> None:
    from rich.markup import escape
    from rich.table import Table
    if "base" not in r:
        return
    b, t = r["base"], r["tuned"]
    table = Table(title=f"demo result: {r['method']} on {b['test_records']} held-out records", title_justify="left")
    table.add_column("")
    table.add_column("base", justify="right")
    table.add_column("tuned", justify="right")
    table.add_row("eval loss (answers)", f"{b['eval_loss']:.3f}", f"{t['eval_loss']:.3f}")
    table.add_row("valid JSON tickets", f"{b['valid_ticket_rate']:.0%}", f"{t['valid_ticket_rate']:.0%}")
    table.add_row("exact ticket match", f"{b['exact_match']:.0%}", f"{t['exact_match']:.0%}")
    table.add_row("general-text loss (forgetting check)", f"{b['general_text_loss']:.3f}", f"{t['general_text_loss']:.3f}")
    console.print(table)
    for s in t["samples"][:2]:
        console.print(f"[dim]{escape(s['message'])}[/] → [green]{escape(s['output'])}[/]")
    drift = t["general_text_loss"] - b["general_text_loss"]
    console.print(f"forgetting check: general-text loss {'rose' if drift > 0 else 'fell'} by {abs(drift):.3f} "
                  f"({drift / b['general_text_loss']:+.1%}); keep general data in the mix if it rises much")
    files = Table(title="where everything is", title_justify="left")
    files.add_column("what")
    files.add_column("path")
    for k, v in r["files"].items():
        files.add_row(k.replace("_", " "), escape(v))
    console.print(files)
    console.print(f"total time {r['wall_time_s']:.0f} s")
