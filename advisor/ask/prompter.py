"""Two ways to ask: arrow-key menus on a real terminal (questionary), plain prompts read from stdin when
piped (scriptable). Both re-ask with the reason on invalid input and explain a question on `?`."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from advisor.ask.questions import OPTIONAL_NUMBERS, Question, parse, show_default
from core.errors import UserError

WHY = "__why__"


class PlainPrompter:
    def __init__(self, console: Console, stream: TextIO | None = None) -> None:
        self.console = console
        self.stream = stream or sys.stdin

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def _readline(self, prompt: str) -> str:
        self.console.print(prompt, end="", highlight=False)
        self.console.file.flush()
        line = self.stream.readline()
        if line == "":
            raise UserError("input ended before all questions were answered (use --defaults or --answers FILE)")
        return line.rstrip("\n")

    def ask(self, q: Question, default: Any = None) -> Any:
        default = q.default_for({}) if default is None else default
        shown = show_default(Question(q.key, q.text, q.kind, q.why, default=default))
        if q.kind == "choice":
            for i, (_v, label) in enumerate(q.choices, 1):
                self.console.print(f"  {i}. {escape(label)}", highlight=False)
        suffix = r" \[y/n]" if q.kind == "bool" else ""
        while True:
            text = self._readline(f"[bold]{escape(q.text)}[/]{suffix}" + (f" [dim]({escape(shown)})[/]" if shown else "")
                                  + " [dim]? for why[/]: ")
            if text.strip() == "?":
                self.say(f"[cyan]why:[/] {escape(q.why)}")
                continue
            if not text.strip() and (shown or q.kind in (*OPTIONAL_NUMBERS, "path", "text")):
                return default if q.kind not in ("path", "text") else (default or "")
            try:
                return parse(q, text)
            except ValueError as e:
                self.say(f"[red]invalid:[/] {escape(str(e))}")

    def confirm(self, text: str, default: bool = False) -> bool:
        while True:
            hint = "Y/n" if default else "y/N"
            t = self._readline(f"[bold]{escape(text)}[/] \\[{hint}]: ").strip().lower()
            if not t:
                return default
            if t in ("y", "yes", "n", "no"):
                return t.startswith("y")
            self.say("[red]invalid:[/] answer y or n")


class TerminalPrompter(PlainPrompter):
    """questionary menus (arrow keys, colours). Ctrl-C aborts cleanly: nothing has been written yet."""

    def _done(self, value: Any) -> Any:
        if value is None:
            raise KeyboardInterrupt
        return value

    def ask(self, q: Question, default: Any = None) -> Any:
        import questionary

        default = q.default_for({}) if default is None else default
        while True:
            if q.kind in ("choice", "bool"):
                options = q.choices if q.kind == "choice" else [(True, "yes"), (False, "no")]
                choices = [questionary.Choice(label, value=v) for v, label in options]
                choices.append(questionary.Choice("? why this matters", value=WHY))
                picked = next((c for c in choices if c.value == default), None)
                value = self._done(questionary.select(q.text, choices=choices, default=picked).ask())
                if value == WHY:
                    self.say(f"[cyan]why:[/] {escape(q.why)}")
                    continue
                return value

            shown = show_default(Question(q.key, q.text, q.kind, q.why, default=default))

            def check(text: str, shown: str = shown) -> bool | str:
                if text.strip() == "?" or (not text.strip() and (shown or q.kind in (*OPTIONAL_NUMBERS, "path",
                                                                                       "text"))):
                    return True
                try:
                    parse(q, text)
                    return True
                except ValueError as e:
                    return str(e)

            # the default is shown beside the question, not typed into the edit box: what the person types
            # replaces it (a pre-filled "242" plus a typed "500" was saved as 242500); Enter alone keeps it
            hint = f" [{shown}, Enter keeps it; ? for why]" if shown else " (? for why)"
            text = self._done(questionary.text(f"{q.text}{hint}", validate=check).ask())
            if text.strip() == "?":
                self.say(f"[cyan]why:[/] {escape(q.why)}")
                continue
            if not text.strip():
                if shown:
                    return parse(q, shown)
                return None if q.kind in OPTIONAL_NUMBERS else ""
            return parse(q, text)

    def confirm(self, text: str, default: bool = False) -> bool:
        import questionary

        return bool(self._done(questionary.confirm(text, default=default).ask()))
