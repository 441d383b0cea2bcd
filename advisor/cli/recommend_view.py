"""The rich view of a recommendation: the decision and the rule that made it, the runner-up and why it lost,
ties, answers-vs-data conflicts, the audit findings that matter, then the other options and next steps."""

from __future__ import annotations

from core.methods import TITLES as NAMES  # noqa: E402 - the registry names every method


def _decision_lines(rec, escape) -> list[str]:
    d = rec.decided_by
    lines = [f"[bold green]{NAMES[rec.method]}[/]", ""]
    if d is not None:
        where = f"decisive, precedence {d.precedence}" if d.precedence is not None else d.stage
        lines.append(f"[bold]decided by[/] [cyan]{d.rule}[/] ({where}): {escape(d.text)} [dim]({escape(d.source)})[/]")
        if len(d.candidates) > 1:
            top = rec.ranked(rec.method)
            prefs = ", ".join(f"{x.effect} {x.rule}" for x in top.reasons if x.stage == "preference") or "none"
            lines.append(f"  candidates left: {', '.join(d.candidates)}; preferences for {rec.method}: {prefs}")
    lines += _probe_lines(rec, escape)
    if rec.runner_up:
        lines.append(f"[bold]runner-up[/] {NAMES[rec.runner_up.method]}: {escape(rec.runner_up.why)}")
    for t in rec.ties:
        lines.append(f"[bold]tie[/] {', '.join(t.methods)} at {t.score:+g}, broken by {t.broken_by}")
    return lines


def _probe_lines(rec, escape) -> list[str]:
    """What `tunewise probe` measured: the best prompt's score and interval, the spread, the verdict."""
    p = rec.probe
    if p is None:
        return []
    scores = ", ".join(f"{v.name} {v.score:.0%}" for v in p.variants)
    return [f"[bold]prompting measured[/] {escape(p.summary)} [dim]({p.rule}; {p.records} held-out records, "
            f"{p.metric}: {escape(scores)})[/]"]


def _data_lines(rec, escape) -> list[str]:
    lines = []
    if rec.data:
        d = rec.data
        lines += ["", f"[bold]data[/] {d.records:,} records → {d.usable_examples:,} usable ({d.error_records:,} with "
                      f"errors, {d.exact_copies:,} exact copies), {d.tasks} task(s), {d.examples_per_task:,.0f} per task"]
    if rec.conflicts:
        lines += ["", "[bold]answers vs data[/]"]
        for c in rec.conflicts:
            lines.append(f"  [yellow]{c.key}[/] answered {c.answered} · measured {c.measured} → used {c.used}: "
                         f"{escape(c.message)}")
    if rec.audit_findings:
        lines += ["", "[bold]audit findings that matter[/]"]
        total = f" of {rec.data.records:,}" if rec.data else ""
        for f in rec.audit_findings:
            lines.append(f"  [yellow]{f.code}[/] ({f.severity}) {f.count:,}{total} records ({f.share:.1%}): "
                         f"{escape(f.effect)}")
    return lines


def _memory_line(rec, escape) -> list[str]:
    """The chosen fine-tune's memory and time, as the recommendation wrote it (facts cited: see `sentences`)."""
    line = next((x.text for x in rec.sentences if x.where == "memory"), None)
    return ["", f"[bold]memory[/] {escape(line)}"] if line else []


def _status(r) -> str:
    from core.methods import method, offered_only

    if not r.feasible:
        return "[red]ruled out[/]"
    if r.set_aside_by:
        return f"set aside ({r.set_aside_by})"
    if offered_only(r.method):  # never chosen in its own right (DoRA beside LoRA)
        return f"an option beside {NAMES[method(r.method).offered_next_to]}"
    return "candidate" if r.candidate else "feasible"


def render(rec, config_written: str | None = None, con=None) -> None:
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    from advisor.cli.common import console

    out = con or console
    lines = _decision_lines(rec, escape) + _data_lines(rec, escape) + _memory_line(rec, escape)
    out.print(Panel("\n".join(lines), title="tunewise recommends", border_style="green"))
    t = Table(title="the other options (tunewise recommend --explain METHOD for the full trace)", title_justify="left")
    for col, just in (("method", "left"), ("status", "left"), ("preference", "right"), ("deciding rule", "left")):
        t.add_column(col, justify=just)
    for r in rec.ranking[1:]:
        key = ([x for x in r.reasons if x.effect == "ruled out"] or [x for x in r.reasons if x.effect == "set aside"]
               or [x for x in r.reasons if x.stage == "preference"])
        t.add_row(NAMES[r.method], _status(r), f"{r.score:+g}", escape("; ".join(f"{x.rule} ({x.effect})" for x in key[:3])) or "-")
    out.print(t)
    for w in rec.warnings:
        out.print(f"[bold yellow]warning[/] [yellow]{w.code}[/]: {escape(w.message)} [dim]({w.rule})[/]")
    out.print("[bold]next steps[/]")
    for i, s in enumerate(rec.next_steps, 1):
        out.print(f"  {i}. {escape(s)}")
    if config_written:
        out.print(f"training config written to [bold]{config_written}[/]; run: tunewise train {config_written}")


def render_explain(ex, con=None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from advisor.cli.common import console

    out = con or console
    out.print(f"[bold]{NAMES[ex.method]}[/]: {escape(ex.verdict)}")
    t = Table(show_lines=False)
    for col in ("stage", "rule", "effect", "why", "source"):
        t.add_column(col, overflow="fold")
    for r in ex.trace:
        stage = r.stage + (f" {r.precedence}" if r.precedence is not None else "")
        t.add_row(stage, r.rule, r.effect, escape(r.text), escape(r.source))
    out.print(t)
