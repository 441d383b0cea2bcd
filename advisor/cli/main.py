"""Entry point of `tunewise`. Builds the parser from one module per command; keeps start-up light:
no command module imports torch, transformers or other heavy libraries at import time."""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys
import traceback
from importlib import import_module

from advisor import __version__
from advisor.cli.common import EXIT_FAILURE, EXIT_USAGE, err_console
from core.errors import RuntimeFailure, UserError

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


def tolerate_output_encoding() -> None:
    """A stdout or stderr that cannot encode every character (LANG=C, a latin-1 pipe) gets replacement escapes
    instead of killing the command with UnicodeEncodeError midway (JSON output escapes to ASCII there: common.emit)."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if encoding not in ("utf8", "utf8sig") and hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):  # one that cannot be reconfigured keeps its settings
                stream.reconfigure(errors="backslashreplace")


def hoist_debug(argv: list[str]) -> list[str]:
    """`--debug` is a global flag; accept it after the command too (`tunewise train x.yaml --debug`)."""
    if "--debug" in argv[1:] and "--" not in argv:
        return ["--debug", *[a for a in argv if a != "--debug"]]
    return argv


OUTPUT_ERRNOS = {errno.EACCES: "permission denied", errno.EPERM: "not permitted", errno.EROFS: "read-only file system",
                 errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EISDIR: "it is a folder"}
FULL_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}


def os_error_says(e: OSError) -> tuple[int, str] | None:
    """(exit code, one sentence) for an OSError that names a path the user chose: exit 2 for one that cannot be
    written (permissions, a read-only disk, a file in the way), exit 1 for a full disk; None for others."""
    where = f" `{e.filename}`" if e.filename else ""
    if e.errno in FULL_ERRNOS:
        return EXIT_FAILURE, (f"{FULL_ERRNOS[e.errno]} while writing{where}: free some space (or point the output "
                              "elsewhere) and run the command again; files written atomically were left untouched")
    if e.errno in OUTPUT_ERRNOS and e.filename:
        return EXIT_USAGE, (f"cannot use{where}: {OUTPUT_ERRNOS[e.errno]}; choose a path you can write to "
                            "(or fix its permissions)")
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    tolerate_output_encoding()
    parser = build_parser()
    args = parser.parse_args(hoist_debug(list(argv)))
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
    except BrokenPipeError:  # `tunewise … | head`: the reader has what it wanted; say nothing
        return reader_gone()
    except OSError as e:
        said = os_error_says(e)
        if said is None:
            return last_resort(e, args)
        from rich.markup import escape

        if args.debug:
            traceback.print_exc()
        code, text = said
        err_console.print(f"[bold red]{'error' if code == EXIT_USAGE else 'failed'}:[/] {escape(text)}",
                          highlight=False, soft_wrap=True)
        return code
    except (RuntimeFailure, Exception) as e:  # noqa: BLE001 - the last line of defence
        return last_resort(e, args)


def reader_gone() -> int:
    """stdout's reader closed the pipe: point stdout at /dev/null so the interpreter's final flush does not fail
    again, and exit as a command killed by SIGPIPE does (128 + 13)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def last_resort(e: BaseException, args) -> int:
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
