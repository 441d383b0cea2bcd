"""Entry point of `tunewise`. Builds the parser from one module per command; keeps start-up light:
no command module imports torch, transformers or other heavy libraries at import time."""

from __future__ import annotations

import argparse
import sys
import traceback
from importlib import import_module

from advisor import __version__
from advisor.cli.common import EXIT_FAILURE, EXIT_USAGE, err_console
from advisor.errors import RuntimeFailure, UserError

COMMANDS = ["ask", "audit", "probe", "recommend", "estimate", "train", "eval", "export", "merge", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunewise",
        description="Decide how to adapt an LLM (prompting, RAG, full fine-tune, LoRA, QLoRA, P-tuning), "
        "audit the dataset, estimate memory, and run the training.",
        epilog="Run `tunewise COMMAND --help` for each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"tunewise {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"advisor.cli.{name}_cmd").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        from rich.markup import escape

        if args.debug:
            traceback.print_exc()
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)  # one line
        return EXIT_USAGE
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130
    except (RuntimeFailure, Exception) as e:  # noqa: BLE001 - the last line of defence
        from rich.markup import escape

        if args.debug:
            traceback.print_exc()
        kind = "" if isinstance(e, RuntimeFailure) else f"{type(e).__name__}: "
        err_console.print(f"[bold red]failed:[/] {escape(kind + str(e))}", highlight=False, soft_wrap=True)
        if not args.debug:
            err_console.print("[dim](run with --debug for the traceback)[/]")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
