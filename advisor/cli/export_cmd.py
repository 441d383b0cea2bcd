"""`tunewise export CONFIG --to TOOL`: the same job as a config for Axolotl, LLaMA-Factory or TRL."""

from __future__ import annotations

import argparse

from advisor.cli.common import add_json_flag, console, emit, subparser
from advisor.export import TOOLS


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "export", "write a tunewise training config as an Axolotl, LLaMA-Factory or TRL config",
        "Translate a tunewise train.yaml into the config of the trainer you already run — model, data in that "
        "tool's dataset format with the model's template, method and its settings, sequence length, batch, "
        "schedule, precision, checkpointing, distributed settings, output folder. What the tool cannot express "
        "is listed (and written as comments at the top of the file), never dropped silently. LLaMA-Factory also "
        "gets its dataset_info.json entry.",
        ["tunewise export train.yaml --to axolotl",
         "tunewise export train.yaml --to llamafactory --out lf/train.yaml",
         "tunewise export train.yaml --to trl --json"],
    )
    p.add_argument("config", metavar="CONFIG", help="tunewise training config")
    p.add_argument("--to", required=True, choices=TOOLS, help="the tool to write a config for")
    p.add_argument("--out", metavar="PATH", help="where to write it (default: TOOL.yaml beside CONFIG)")
    p.add_argument("--force", action="store_true", help="replace a file at --out that exists with other content "
                   "(never the config being exported)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from advisor.export import export, write_export
    from core.errors import UserError
    from core.files import Replace, load_model_file
    from core.train_config import TrainConfig

    cfg = load_model_file(TrainConfig, args.config, "training config").resolve_paths(args.config)
    path = Path(args.out) if args.out else Path(args.config).with_name(f"{args.to}.yaml")
    if path.resolve() == Path(args.config).resolve():
        raise UserError(f"--out {args.out} is the config being exported: it would be replaced by the {args.to} "
                        "config; give another path")
    out = export(cfg, args.to, path)
    written = write_export(out, path, Replace(force=args.force,
                                              hint="pass --force to replace it, or --out another path"))
    result = export_result(out, path, written)
    emit(result, args.json, lambda: render(result))
    return 0


def export_result(out, path, written: list[str]) -> dict:
    return {"tool": out.tool, "config": str(path), "files": written,
            "command": out.command.format(config=path),
            "mapped": [{"tunewise": a, "tool": b} for a, b in out.mapped],
            "not_expressed": [{"tunewise": a, "why": b} for a, b in out.not_expressed]}


def render(r: dict, con=None) -> None:
    from rich.markup import escape

    c = con or console
    c.print(f"[green]wrote[/] {escape(', '.join(r['files']))}: {len(r['mapped'])} settings mapped to {r['tool']}")
    for item in r["not_expressed"]:
        c.print(f"  [yellow]not expressed[/] {escape(item['tunewise'])}: {escape(item['why'])}")
    c.print(f"run: [bold]{escape(r['command'])}[/]")
