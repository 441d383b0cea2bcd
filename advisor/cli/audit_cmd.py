"""`tunewise audit DATA`: what is wrong with a dataset, record by record, before any training."""

from __future__ import annotations

import argparse
import sys

from advisor.cli.common import add_json_flag, console, emit, err_console, positive, subparser
from core.data.formats import FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "audit", "inspect a dataset before training",
        "Check a fine-tuning dataset (JSONL, JSON array, one JSON object, CSV/TSV, Parquet or plain text; alpaca, "
        "sharegpt, OpenAI chat, prompt/completion, text, or preference data: DPO pairs, OpenAI preference, KTO) for "
        "format errors, duplicates, conflicts, placeholders, personal data, template leaks, refusals, languages, "
        "length, diversity, task mixture and knowledge-heavy content. Settings may also come from a project file "
        "(tunewise.yaml, `audit:` section); flags win.",
        [
            "tunewise audit data.jsonl",
            "tunewise audit data.json --max-seq-len 1024 --model ./my-model --report audit-report/",
            "tunewise audit data.jsonl --ignore pii,near_duplicate --fail-on error",
            "tunewise audit data.jsonl --select 'pair_*' --json | jq '.findings[] | {code, count}'",
            "tunewise audit faq.csv --columns prompt=Q,response=A",
            "tunewise audit corpus.txt.gz --text-unit paragraph",
            "tunewise audit --list-checks",
        ],
    )
    p.add_argument("data", nargs="?", metavar="DATA", help="dataset file")
    p.add_argument("--from", dest="from_config", metavar="CONFIG",
                   help="audit the data an Axolotl, LLaMA-Factory or TRL config trains on, with its model's "
                        "tokenizer and sequence length (DATA, --model and --max-seq-len override it)")
    p.add_argument("--format", default="auto", choices=["auto", *FORMATS],
                   help="record format (default: detected from the first records, and the reason is reported)")
    p.add_argument("--columns", metavar="MAP",
                   help="which column holds what, as ROLE=COLUMN pairs (prompt=Q,response=A; roles: prompt, query, "
                        "response, system, history, messages, tools, chosen, rejected, kto_tag, text) or a YAML/JSON "
                        "file with `columns` and `tags` (LLaMA-Factory's names); also the `data:` section of "
                        "tunewise.yaml, which `train` reads too")
    p.add_argument("--text-unit", choices=["auto", "line", "paragraph", "document"], default=None,
                   help="plain-text files: one record per line, paragraph or whole document (default auto: decided "
                        "from the text; the report says which was used)")
    p.add_argument("--max-seq-len", type=positive(int, "--max-seq-len"), default=None,
                   help=f"training window in tokens (records beyond it are truncated; default {DEFAULTS['max_seq_len']})")
    p.add_argument("--model", metavar="PATH", help="count tokens with this local model's tokenizer.json")
    p.add_argument("--tokenizer", metavar="PATH",
                   help="count tokens exactly with this tokenizer.json (or a folder holding one)")
    p.add_argument("--near-dup-threshold", type=positive(float, "--near-dup-threshold"), default=None,
                   help="MinHash similarity above which two records are near-duplicates (0-1, default 0.8)")
    p.add_argument("--select", action="append", metavar="CODES",
                   help="report only these finding codes (comma-separated; shell patterns such as 'pair_*'; ALL)")
    p.add_argument("--ignore", action="append", metavar="CODES", help="never report these finding codes")
    p.add_argument("--workers", type=positive(int, "--workers"), default=None,
                   help="processes for the per-record checks (default: one per core for files over 4 MB; 1: none)")
    p.add_argument("--project", metavar="FILE", help="project file to read (default: the nearest tunewise.yaml)")
    p.add_argument("--no-project", action="store_true", help="ignore any tunewise.yaml")
    p.add_argument("--report", metavar="DIR", help="also write an HTML report with length histograms here")
    p.add_argument("--samples", type=positive(int, "--samples", allow_zero=True), default=None,
                   help="sample records shown per finding (default 3)")
    p.add_argument("--fail-on", choices=["never", "error", "warning"], default=None,
                   help="exit 1 when findings of this severity (or worse) exist, for CI pipelines (default never)")
    p.add_argument("--list-checks", action="store_true",
                   help="print the catalogue of findings (severity, why, source, examples, known problems) and exit")
    p.add_argument("--print-schema", choices=["project", "report", "columns"],
                   help="print the JSON Schema of the project file, of the --json report or of a --columns file, "
                        "and exit")
    add_json_flag(p)
    p.set_defaults(func=run)


DEFAULTS = {"max_seq_len": 2048, "near_dup_threshold": 0.8, "samples": 3, "fail_on": "never"}


def _codes(values: list[str] | None) -> list[str]:
    return [c.strip() for v in values or [] for c in v.split(",") if c.strip()]


def settings(args: argparse.Namespace):
    """Flags over the project file over the defaults; returns the settings, the selection and the file used."""
    from advisor.audit.catalog import Selection
    from core.project import load_project

    project, path = load_project(args.project, search=not args.no_project)
    s = project.audit
    merged = {k: getattr(args, k) if getattr(args, k) is not None else (getattr(s, k) if getattr(s, k) is not None
              else DEFAULTS.get(k)) for k in ("max_seq_len", "near_dup_threshold", "samples", "fail_on", "workers")}
    merged["tokenizer"] = args.tokenizer or s.tokenizer
    where = f"{path}: audit." if path else ""
    select = _codes(args.select) or s.select
    selection = Selection(select, list(s.ignore) + _codes(args.ignore),
                          where=("--select/--ignore" if args.select or args.ignore else f"{where}select/ignore"))
    merged["layout"], merged["layout_origin"] = data_layout(args, project.data, path)
    return merged, selection, path


def data_layout(args: argparse.Namespace, project_data, project_path):
    """The columns, tags and text unit: --columns / --text-unit over the project file's `data:` section; and where
    the columns came from (named in errors)."""
    from core.data.layout import parse_columns_flag
    from core.project import columns_origin

    layout, origin = project_data, columns_origin(project_path) if project_path else "--columns"
    if getattr(args, "tool_layout", None):
        layout, origin = args.tool_layout
    if getattr(args, "columns", None):
        given = parse_columns_flag(args.columns)
        layout = layout.model_copy(update={"columns": given.columns, "tags": given.tags or layout.tags,
                                           **({"format": given.format} if given.format != "auto" else {}),
                                           **({"text_unit": given.text_unit} if given.text_unit != "auto" else {})})
        origin = "--columns"
    if getattr(args, "text_unit", None):
        layout = layout.model_copy(update={"text_unit": args.text_unit})
    return layout, origin


def run(args: argparse.Namespace) -> int:
    from advisor.audit.catalog import catalog
    from core.errors import UserError

    if args.print_schema:
        import json

        from advisor.audit.report import AuditReport
        from core.data.layout import DataLayout
        from core.project import ProjectFile

        model = {"project": ProjectFile, "report": AuditReport, "columns": DataLayout}[args.print_schema]
        print(json.dumps(model.model_json_schema(), indent=2))
        return 0
    if args.list_checks:
        entries = [e.model_dump(mode="json", exclude_none=True) for e in catalog().values()]
        emit(entries, args.json, lambda: render_catalog(entries))
        return 0
    if args.from_config:
        from_tool_config(args)
    if not args.data:
        raise UserError("give the dataset to audit: tunewise audit DATA (or --list-checks, or --from CONFIG)")
    opts, selection, _project = settings(args)
    if not 0 < opts["near_dup_threshold"] <= 1:
        raise UserError(f"--near-dup-threshold must be between 0 and 1, got {opts['near_dup_threshold']}")
    report = run_audit(args.data, args.format, opts["max_seq_len"], args.model, opts["near_dup_threshold"],
                       opts["samples"], show_progress=not args.json, tokenizer=opts["tokenizer"], selection=selection,
                       workers=opts["workers"], layout=opts["layout"], layout_origin=opts["layout_origin"])
    data = report.model_dump(mode="json", exclude_none=True)
    if args.report:
        from advisor.audit.html import write_report

        data["report"] = str(write_report(report, args.report))
    emit(data, args.json, lambda: render(report, data.get("report")))
    worst = {f.severity for f in report.findings}
    failing = {"never": set(), "error": {"error"}, "warning": {"error", "warning"}}[opts["fail_on"]]
    return 1 if worst & failing else 0


def from_tool_config(args: argparse.Namespace) -> None:
    """DATA, the model (when it is a local folder) and the sequence length from a tool's config."""
    from advisor.export.read import read_tool_config
    from core.errors import UserError

    job = read_tool_config(args.from_config)
    if args.data is None:
        if not job.data:
            raise UserError(f"{args.from_config}: no local data file in the config ({'; '.join(job.notes) or 'none named'})")
        if len(job.data) > 1:
            err_console.print(f"[yellow]{args.from_config} trains on {len(job.data)} files: auditing the first, "
                              f"{job.data[0]} (give DATA for another)[/]")
        args.data = job.data[0]
    if args.columns is None and args.data in job.layouts:  # dataset_info.json's columns / tags for this file
        args.tool_layout = (job.layouts[args.data], f"{args.from_config}: dataset_info columns")
    if args.model is None and args.tokenizer is None and job.local_model:
        args.model = job.local_model
    if args.max_seq_len is None:
        args.max_seq_len = job.seq_len


def run_audit(path, fmt="auto", max_seq_len=2048, model=None, threshold=0.8, samples=3, show_progress=True,
              tokenizer=None, selection=None, workers=None, layout=None, layout_origin="--columns"):
    from advisor.audit import audit_file

    kwargs = dict(tokenizer_path=tokenizer, selection=selection, workers=workers, layout=layout,
                  layout_origin=layout_origin)
    if not (show_progress and sys.stderr.isatty()):
        return audit_file(path, fmt, max_seq_len, model, threshold, samples, **kwargs)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("auditing"), BarColumn(), TextColumn("{task.fields[n]:,} records · {task.fields[rate]:,.0f}/s"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err_console.real(), transient=True) as bar:
        task = bar.add_task("audit", total=None, n=0, rate=0.0)

        def show(p) -> None:
            bar.update(task, total=p.total_bytes, completed=p.bytes_read, n=p.records, rate=p.rate)

        return audit_file(path, fmt, max_seq_len, model, threshold, samples, progress=show, **kwargs)


SEV = {"error": "[bold red]error[/]", "warning": "[yellow]warning[/]", "info": "[blue]info[/]"}


def render(report, html_path: str | None = None, con=None) -> None:
    from rich.markup import escape
    from rich.table import Table
    out = con or console
    sig = report.signals
    out.print(f"[bold]{escape(report.path)}[/]: {report.format}, {report.records} records, "
              f"{report.valid_records} valid, {sig.usable_examples} usable examples")
    if report.detection:
        out.print(f"[dim]read as {report.detection['container']} / {report.detection['format']} "
                  f"({report.detection['kind']}): {escape(report.detection['reason'])}[/]")
    if not report.findings:
        out.print("[green]no findings[/]")
    else:
        t = Table(title="findings, worst first", title_justify="left")
        t.add_column("severity")
        t.add_column("code", style="bold")
        t.add_column("count", justify="right")
        t.add_column("message")
        t.add_column("first records (line)")
        for f in report.worst_first():
            where = ", ".join(f"{r}" + (f" (l.{ln})" if ln else "") for r, ln in
                              zip(f.records[:4], (f.line or [0] * 4)[:4], strict=False))
            t.add_row(SEV[f.severity], f.code, str(f.count), escape(f.message), where + (" …" if f.count > 4 else ""))
        out.print(t)
        for f in report.worst_first()[:4]:
            detail = next(iter((f.details or {}).items()), None)
            if detail:
                out.print(f"[bold]{f.code}[/] e.g. record {detail[0]}: {escape(detail[1])}")
            elif f.samples:
                out.print(f"[bold]{f.code}[/] e.g.:")
            for s in f.samples[:1]:
                out.print("   [dim]" + escape(sample_text(s))[:300] + "[/]")
    tk = report.stats["tokens"]
    out.print(f"tokens ({escape(report.stats['token_counting'])}): prompt p50 {tk['prompt']['p50']} "
              f"p90 {tk['prompt']['p90']} max {tk['prompt']['max']}; answer p50 {tk['answer']['p50']} "
              f"p90 {tk['answer']['p90']} max {tk['answer']['max']}")
    langs = ", ".join(f"{k} {v}" for k, v in list(report.stats["languages"].items())[:5])
    mix = ", ".join(f"{k} {v:.0%}" for k, v in list(report.stats["task_mix"].items())[:6])
    out.print(f"languages: {langs or '-'} · tasks ≈ {sig.estimated_tasks} ({mix or '-'})")
    for c in report.stats.get("task_clusters", [])[:8] if sig.estimated_tasks >= 2 else []:
        shown = " | ".join(escape(e[:60]) for e in c["examples"])
        out.print(f"   task [bold]{escape(c['label'])}[/]: {c['size']} records ({c['share']:.0%}), e.g. {shown}")
    d = sig.diversity
    out.print(f"content: [bold]{sig.content}[/] (knowledge share {sig.knowledge_share:.0%}) · diversity: "
              f"unique prompts {d.unique_prompt_ratio:.0%}, (near-)copies {d.near_duplicate_share:.0%}, "
              f"mean similarity {d.mean_similarity:.2f}")
    if html_path:
        out.print(f"report: {html_path}")


def render_catalog(entries: list[dict]) -> None:
    from rich.markup import escape
    from rich.table import Table
    t = Table(title="tunewise audit checks (rules/audit_findings.yaml)", title_justify="left", show_lines=True)
    for col in ("code", "severity", "why", "known problems", "bad example"):
        t.add_column(col)
    for e in entries:
        sev = e["severity"] + "".join(f"\n{name}: {v['severity']}" for name, v in e.get("variants", {}).items())
        t.add_row(e["code"], sev, escape(e["rationale"]) + f"\n[dim]{escape(e['source'])}[/]",
                  escape(e["known_problems"]), escape(e["example"][:300]))
    console.print(t)


def sample_text(sample: object) -> str:
    """A finding's sample as a person reads it: a duplicate group as its record numbers, a record's last messages
    as `role: text` pairs, anything else as it is."""
    if not isinstance(sample, dict):
        return str(sample)
    if "group" in sample and isinstance(sample["group"], list):
        return "records " + ", ".join(map(str, sample["group"]))
    return " · ".join(f"{k}: {v}" for k, v in sample.items())
