"""Conventions every command shares: --json output, rich rendering for people, exit codes."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT): a training run saved a checkpoint and can be resumed


class _LazyConsole:
    """A rich Console created on first use: `--json` runs and `--help` never import rich."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console = None

    def real(self):
        """The rich Console itself (for rich objects that use it as a context manager)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return self._console

    def __getattr__(self, name: str):
        return getattr(self.real(), name)


console = _LazyConsole()
err_console = _LazyConsole(stderr=True)


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print `data` as JSON for scripts, or call `render` for people."""
    if as_json:
        from core.files import json_text

        utf = (sys.stdout.encoding or "").lower().replace("-", "").startswith("utf")
        sys.stdout.write(json_text(data, indent=2, ensure_ascii=not utf, default=str) + "\n")
        sys.stdout.flush()
    else:
        render()


def subparser(
    sub: argparse._SubParsersAction, name: str, help: str, description: str, examples: list[str]
) -> argparse.ArgumentParser:
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def positive(kind: type, name: str, allow_zero: bool = False) -> Callable[[str], Any]:
    """argparse type: a number > 0 (or >= 0), with a message naming the flag."""

    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number, got {text!r}")
        if v < 0 or (v == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {text}")
        return v

    return parse


def add_remote_code_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model that needs the Python code it ships (auto_map) to run it; without this flag "
                        "tunewise asks on a terminal and refuses elsewhere, whatever a config file says")


def allow_remote_code(args: argparse.Namespace) -> None:
    """Only the command line (or a yes typed on a terminal) may let a model's shipped Python run."""
    from trainer.model import RemoteCodePolicy, set_remote_code_policy

    interactive = sys.stdin.isatty() and sys.stderr.isatty() and not getattr(args, "json", False)
    set_remote_code_policy(RemoteCodePolicy(flag=bool(getattr(args, "trust_remote_code", False)),
                                            ask=terminal_yes if interactive else None))


def terminal_yes(question: str) -> bool:
    from rich.markup import escape

    try:
        answer = err_console.input(f"[bold yellow]{escape(question)}[/] \\[y/N]: ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
