"""`tunewise train CONFIG`: run the fine-tune a config describes (full, LoRA, QLoRA, P-tuning)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from advisor.cli.common import (
    EXIT_INTERRUPTED,
    add_json_flag,
    add_remote_code_flag,
    allow_remote_code,
    console,
    emit,
    subparser,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "train", "run a fine-tune from a config (full, LoRA, QLoRA, P-tuning)",
        "Train with transformers + peft from a tunewise config (written by `recommend --config-out` or `ask`). "
        "Checks the model, template, data and memory before the first step; writes the adapter or model, "
        "metrics.jsonl, summary.json and loss.png to output.dir. Ctrl-C saves a checkpoint; --resume continues.",
        [
            "tunewise train train.yaml --dry-run",
            "tunewise train train.yaml",
            "tunewise train train.yaml --resume",
            "tunewise train train.yaml training.learning_rate=1e-4 method.lora_r=8 --dry-run",
            "tunewise train --print-schema > train.schema.json",
            "tunewise train --print-schema summary > summary.schema.json",
            "tunewise train train.yaml distributed.nodes=4 distributed.processes=8 --emit slurm > job.sh",
        ],
    )
    p.add_argument("config", nargs="?", metavar="CONFIG", help="training config (YAML or JSON)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="override config values by dotted key, validated like the file "
                        "(training.learning_rate=1e-4 method.lora_r=8 data.max_seq_len=2048)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate, show one formatted sample with the trained span marked and the memory estimate")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output.dir")
    p.add_argument("--force", action="store_true", help="train even if the memory estimate exceeds the device, or "
                   "the data is not worth training on (mostly empty answers, fewer than 10 distinct records)")
    p.add_argument("--print-schema", nargs="?", const="config", metavar="WHICH",
                   help="print a JSON Schema and exit: the config's (no value, or `config`) or the run summary's "
                        "(`summary`: summary.json and `train --json`)")
    p.add_argument("--emit", choices=["slurm"], help="print a Slurm batch script that runs this config on "
                   "distributed.nodes nodes x distributed.processes GPUs, instead of training")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    add_remote_code_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.errors import UserError

    if args.print_schema:
        print(json.dumps(schema_of(schema_name(args.print_schema)), indent=2))
        return 0
    if not args.config:
        raise UserError("give the training config: tunewise train CONFIG (or --print-schema)")
    from trainer.config_file import load_config
    from trainer.run import train

    allow_remote_code(args)
    cfg = load_config(args.config, args.overrides)
    if args.emit:
        from trainer.launch import slurm_script

        script = slurm_script(args.config, cfg, args.overrides)
        emit({"script": script}, args.json, lambda: print(script, end=""))
        return 0
    with contextlib.ExitStack() as stack:
        config_path = args.config
        if args.overrides:  # launched processes (several GPUs) read the file: hand them the overridden config
            import tempfile

            from core.files import write_model

            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="tunewise-"))
            config_path = str(write_model(Path(tmp) / "train.yaml", cfg))
        result = train(config_path, resume=args.resume, force=args.force, dry_run=args.dry_run, console=console,
                       progress=not (args.json or args.no_progress), cfg=cfg)
    if args.dry_run:
        emit(result.output_json(), args.json, lambda: render_dry_run(cfg, result))
        return 0
    code = EXIT_INTERRUPTED if result is not None and result.interrupted else 0
    if "LOCAL_RANK" not in os.environ:  # a launched rank: the launching process prints the summary, once
        emit(result.output_json() if result is not None else {}, args.json,
             lambda: render_summary(result, resume=f"tunewise train {args.config} --resume"))
    elif cfg.distributed.world_size > 1:
        end_rank(code)
    return code


SCHEMAS = ("config", "summary")


def schema_name(value: str) -> str:
    """`--print-schema` takes `config` or `summary`; a config file after it (`train --print-schema train.yaml`, as
    the flag was written before it took a value) is the config's schema, as it was then."""
    from pathlib import Path

    from core.errors import UserError

    if value in SCHEMAS:
        return value
    if Path(value).suffix.lower() in (".yaml", ".yml", ".json") or Path(value).is_file():
        return "config"
    raise UserError(f"--print-schema takes {' or '.join(SCHEMAS)}, not `{value}`")


def schema_of(which: str) -> dict:
    """The JSON Schema `--print-schema WHICH` prints: the training config's, or the run summary's."""
    if which == "summary":
        from trainer.run_report import RunSummary

        return RunSummary.model_json_schema()
    from core.train_config import TrainConfig

    return TrainConfig.model_json_schema()


def end_rank(code: int) -> None:
    """A launched rank whose work is written (atomically) ends without the interpreter's teardown: tearing down
    gloo's threads at exit sometimes aborted a finished CPU rank (`terminate called without an active exception`,
    SIGABRT: the launcher then reports a failed run), and destroying the process group first hung once."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def render_dry_run(cfg, r, con=None) -> None:
    from rich.markup import escape

    out = con or console
    out.print(f"[green]config OK[/]: {cfg.method.name} on `{escape(cfg.model.path)}`, data `{escape(cfg.data.path)}` "
              f"({r.format}): {r.records_train} train / {r.records_val} validation records"
              + (f", {r.truncated} truncated to {cfg.data.max_seq_len} tokens" if r.truncated else ""))
    if r.read_as:
        out.print(f"[dim]read as: {escape(r.read_as)}[/]", highlight=False)
    if r.skipped:
        out.print(f"[bold yellow]skipped {escape(r.skipped_says)}[/]", highlight=False)
    if r.copies:
        out.print(f"[yellow]{r.copies} record(s) are exact copies of others[/]: each stays on the same side of "
                  "the train/validation split as its original", highlight=False)
    if r.empty_answers:
        out.print(f"[yellow]{r.empty_answers} record(s) have an empty answer[/] (only the end token is trained)",
                  highlight=False)
    if r.truncated_replies:
        out.print(f"[bold yellow]cut replies[/]: {escape(r.truncated_replies.says)}", highlight=False)
    if r.template.system_merged_into_user:
        out.print(f"[bold]system prompt[/]: in {r.template.system_merged_into_user} record(s) the chat template "
                  "would drop or refuse the system message, so it opens the first user turn", highlight=False)
    if r.reasoning:
        out.print(f"[bold]reasoning[/]: {escape(r.reasoning.says)}", highlight=False)
    if r.data_cache:
        out.print(f"tokenised records: {escape(data_cache_says(r.data_cache))}", highlight=False)
    s = r.sample
    # colour where a terminal shows it; «…» around the trained text where it would be lost (pipes, files, NO_COLOR)
    coloured = out.is_terminal and not out.no_color
    how = "in green" if coloured else "between « and »"
    out.print(f"[bold]record {s.record}[/] as the model sees it ({s.tokens} tokens, "
              f"[green]{s.trained_tokens} trained[/] {how}, the rest masked):")
    if coloured:
        text = "".join(f"[bold green]{escape(t)}[/]" if tr else f"[dim]{escape(t)}[/]" for tr, t in s.pieces)
    else:
        text = escape("".join(f"«{t}»" if tr else t for tr, t in s.pieces))
    out.print(text, highlight=False, soft_wrap=True)
    e = r.estimate
    avail = f"{r.available_gb:g} GB available" if r.available_gb is not None else "available memory unknown"
    out.print(f"memory estimate: [bold]{e.total_gb:.2f} GB[/] on {r.device} ({avail}); "
              f"{e.trainable_params:,} trainable parameters")


def data_cache_says(c) -> str:
    """One line on where the encoded records came from (trainer/run_report.py's DataCacheUse)."""
    if c.hit:
        return f"read from the cache in {c.seconds:.2f} s ({c.path})"
    kept = f", kept in {c.path}" if c.path else " (data.cache: false, not kept)"
    return f"encoded in {c.seconds:.1f} s by {c.processes} process(es){kept}"


def render_summary(s, con=None, resume: str = "the same command with --resume") -> None:
    """The run summary (trainer/run_report.py's RunSummary) as a table, and the evaluation after it in one line."""
    from rich.markup import escape
    from rich.table import Table
    out = con or console
    if s is None:
        return
    if s.already_finished:
        out.print(f"[green]already finished[/] ({s.steps} steps): nothing to resume; the results in "
                  f"{s.output_dir} are unchanged (set another output.dir to train again)")
    if s.interrupted:
        out.print(f"[yellow]interrupted at step {s.steps}[/]: a checkpoint was saved; continue with: "
                  f"{resume}")
    t = Table(title=f"{s.method} training summary", title_justify="left")
    t.add_column("")
    t.add_column("value", justify="right")
    rows = [("train loss first → last", f"{s.train_loss_first:.4f} → {s.train_loss_last:.4f}"
             if s.train_loss_last is not None else "-"),
            ("eval loss first → last", f"{s.eval_loss_first:.4f} → {s.eval_loss_last:.4f}"
             if s.eval_loss_last is not None else "-"),
            ("steps", f"{s.steps} / {s.max_steps}" + (" (early stop)" if s.stopped_early else "")),
            ("tokens/s", f"{s.tokens_per_second:,.0f}"),
            ("peak memory", f"{s.peak_memory_gb:.2f} GB ({s.device})"),
            ("trainable parameters", f"{s.trainable_params:,} ({s.trainable_share:.3%})"),
            ("wall time", f"{s.wall_time_s:.1f} s" + (f" (start-up to the first step {s.startup_s:.1f} s)"
                                                      if s.startup_s is not None else "")),
            ("tokenised records", data_cache_says(s.data_cache) if s.data_cache else "-"),
            ("CPU threads", f"{s.cpu_threads} ({s.cpu_threads_why})" if s.cpu_threads and s.device == "cpu"
             else "-"),
            ("output", s.output_dir)]
    for k, v in rows:
        t.add_row(k, escape(str(v)))
    out.print(t)
    render_eval_line(s.eval, out)


def render_eval_line(ev, out) -> None:
    """The evaluation after training in one line (the full report: eval.json, `tunewise eval RUN_DIR`)."""
    from rich.markup import escape

    from trainer.run_report import EvalSkipped

    if ev is None:
        return
    if isinstance(ev, EvalSkipped):
        out.print(f"[yellow]eval skipped[/]: {escape(ev.skipped)}")
        return
    b, t = ev.base, ev.tuned
    parts = [f"{k} {b.metrics[k]:.2f} → {t.metrics[k]:.2f}" for k in b.metrics]
    for key, label in (("answer_loss", "answer loss"), ("general_loss", "general-text loss")):
        if getattr(b, key) is not None and getattr(t, key) is not None:
            parts.append(f"{label} {getattr(b, key):.3f} → {getattr(t, key):.3f}")
    out.print(f"[bold]base → tuned[/] on {ev.records} held-out records ({ev.metric}): " + ", ".join(parts)
              + ("; [yellow]general-text loss rose >5% (forgetting)[/]" if ev.forgetting else "")
              + f"; report {escape(ev.report)}")
