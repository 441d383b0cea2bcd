"""`tunewise recommend`: answers (+ dataset audit) → the method to use, why, and what to do next."""

from __future__ import annotations

import argparse
from pathlib import Path

from advisor.cli.common import add_json_flag, console, emit, subparser


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "recommend", "answers (+ dataset audit) → prompting, RAG, full, LoRA, QLoRA or P-tuning",
        "Rank prompting, RAG, full fine-tuning, LoRA, QLoRA and P-tuning for your case. Every reason names the rule "
        "in rules/ that produced it and that rule's source. With --dataset, the audit's measured facts override "
        "your estimates.",
        [
            "tunewise recommend --answers answers.yaml",
            "tunewise recommend --answers answers.yaml --dataset data.jsonl --config-out train.yaml",
            "tunewise recommend --answers answers.json --json | jq .method",
        ],
    )
    p.add_argument("--answers", required=True, metavar="FILE", help="answers file (YAML or JSON; see `tunewise ask`)")
    p.add_argument("--dataset", metavar="DATA", help="audit this dataset and use its measured signals")
    p.add_argument("--model", metavar="PATH", help="local base model folder (exact parameter count; written to the config)")
    p.add_argument("--config-out", metavar="FILE", help="for a fine-tune, write the training config here")
    p.add_argument("--output-dir", default="runs/tunewise", help="training output folder written into the config")
    add_json_flag(p)
    p.set_defaults(func=run)


def load_answers(path: str):
    from advisor.answers import Answers
    from advisor.files import load_model_file

    return load_model_file(Answers, path, "answers file")


def run(args: argparse.Namespace) -> int:
    from advisor.recommend import recommend

    answers = load_answers(args.answers)
    if args.model:
        answers = answers.model_copy(update={"model_path": args.model})
    dataset = args.dataset or answers.dataset
    signals = None
    if dataset:
        from advisor.audit import audit_file

        signals = audit_file(dataset, model_path=answers.model_path).signals
    rec = recommend(answers, signals)
    out = rec.model_dump(mode="json")
    if args.config_out:
        out["config_written"] = write_config(rec, answers, dataset, args.config_out, args.output_dir)
    emit(out, args.json, lambda: render(rec, out.get("config_written")))
    return 0


def write_config(rec, answers, dataset: str | None, path: str, output_dir: str) -> str | None:
    from advisor.configgen import MODEL_PLACEHOLDER, build_config
    from advisor.files import write_model

    if rec.method in ("prompting", "rag"):
        return None
    cfg = build_config(rec, answers, dataset, answers.model_path, output_dir)
    header = f"tunewise training config for {rec.method}; run: tunewise train {path}"
    if cfg.model.path == MODEL_PLACEHOLDER:
        header += "\n# set model.path to your local base model folder before training"
    write_model(path, cfg, header=header)
    return str(Path(path))


NAMES = {"prompting": "Prompting", "rag": "RAG (retrieval-augmented generation)", "full": "Full fine-tune",
         "lora": "LoRA", "qlora": "QLoRA", "p_tuning": "P-tuning"}


def render(rec, config_written: str | None = None, con=None) -> None:
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table
    out = con or console
    top = rec.ranking[0]
    lines = [f"[bold green]{NAMES[rec.method]}[/]  (score {top.score:+g})", ""]
    if rec.overrides:
        lines.append("[bold]measured by the audit (overrides your answers):[/] " + ", ".join(
            f"{o.key} {o.answered} → {o.measured}" for o in rec.overrides))
        lines.append("")
    lines.append("[bold]why[/]")
    for r in top.reasons:
        lines.append(f"  [cyan]{r.effect:>9}[/] {escape(r.text)} [dim]({r.rule}; {escape(r.source)})[/]")
    if rec.method in rec.estimate:
        e = rec.estimate[rec.method]
        lines += ["", f"[bold]memory[/] {e['total_gb']:.1f} GB of {e['gpu_memory_gb']:g} GB "
                      f"({e['assumptions']['device']}, {e['trainable_params']:,} trainable parameters)"
                      + (f", ≈ {e['gpu_hours']:.2f} GPU-hours" if e.get("gpu_hours") is not None else "")]
    out.print(Panel("\n".join(lines), title="tunewise recommends", border_style="green"))

    t = Table(title="the other options", title_justify="left")
    t.add_column("method")
    t.add_column("score", justify="right")
    t.add_column("status")
    t.add_column("deciding reasons")
    for r in rec.ranking[1:]:
        status = "feasible" if r.feasible else "[red]ruled out[/]"
        key = [x for x in r.reasons if x.effect == "ruled out"] or sorted(r.reasons, key=lambda x: float(x.effect))[:2]
        t.add_row(NAMES[r.method], f"{r.score:+g}", status,
                  escape("; ".join(f"{x.rule} ({x.effect})" for x in key)) or "-")
    out.print(t)
    for w in rec.warnings:
        out.print(f"[bold yellow]warning[/] [yellow]{w.code}[/]: {escape(w.message)} [dim]({w.rule})[/]")
    out.print("[bold]next steps[/]")
    for i, s in enumerate(rec.next_steps, 1):
        out.print(f"  {i}. {escape(s)}")
    if config_written:
        out.print(f"training config written to [bold]{config_written}[/]; run: tunewise train {config_written}")
