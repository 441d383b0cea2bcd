"""`tunewise ask`: the guided questionnaire, from the first question to a launched job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from advisor.cli.common import add_json_flag, console, emit, err_console, subparser


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "ask", "guided questions → recommendation, answers.yaml, train.yaml (and a run)",
        "Ask what matters for the decision (branching: freshness only for knowledge goals, GPU questions skipped "
        "when a GPU is detected and confirmed), audit the dataset if there is one, show the recommendation and "
        "write answers.yaml plus train.yaml (fine-tune), prompt.md (prompting) or rag_plan.md (RAG). Type ? at any "
        "question for why it matters. Works on a terminal (arrow keys) and piped (plain lines from stdin).",
        [
            "tunewise ask",
            "tunewise ask --answers answers.yaml          # ask only what is missing",
            "tunewise ask --defaults --answers partial.yaml --out plan/",
            "printf 'data.jsonl\\n2\\n...' | tunewise ask --out plan/",
        ],
    )
    p.add_argument("--answers", metavar="FILE", help="pre-fill from an answers file (may be partial)")
    p.add_argument("--dataset", metavar="DATA", help="the training data (skips that question)")
    p.add_argument("--defaults", action="store_true", help="accept every default instead of asking")
    p.add_argument("--out", default=".", metavar="DIR", help="where to write answers.yaml and the rest (default .)")
    p.add_argument("--plain", action="store_true", help="plain prompts even on a terminal")
    p.add_argument("--force", action="store_true", help="replace answers.yaml, train.yaml, prompt.md or rag_plan.md "
                   "in --out when they exist with other content (default: ask on a terminal, refuse elsewhere)")
    p.add_argument("--train", choices=["ask", "yes", "no"], default="ask",
                   help="start training at the end: ask (default), yes, or no")
    p.add_argument("--probe", choices=["ask", "yes", "no"], default="ask",
                   help="with a dataset and a local model, measure prompting on the data first (tunewise probe): "
                        "ask (default; not asked with --defaults), yes, or no")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from advisor.ask.flow import run_ask
    from advisor.ask.prompter import PlainPrompter, TerminalPrompter
    from core.files import read_structured

    prefill, lines = {}, {}
    if args.answers:
        data, lines = read_structured(args.answers, "answers file")
        if not isinstance(data, dict):
            from core.errors import UserError

            raise UserError(f"{args.answers}: expected a mapping of answers keys")
        prefill = data
        if isinstance(prefill.get("dataset"), str):  # relative to the answers file's folder
            from advisor.answers import dataset_from_file

            prefill["dataset"] = dataset_from_file(prefill["dataset"], args.answers)
    if args.dataset:
        prefill["dataset"] = args.dataset
    out_console = err_console if args.json else console
    terminal = sys.stdin.isatty() and sys.stdout.isatty() and not args.plain and not args.json
    prompter = (TerminalPrompter if terminal else PlainPrompter)(out_console)
    from trainer.probe import Progress

    result = run_ask(prompter, prefill, defaults=args.defaults, source=args.answers or "answers", lines=lines,
                     probe=args.probe, progress=Progress(None if args.json else out_console.real()),
                     measure_prompting=_measure_prompting)
    from core.files import Replace

    files = write_outputs(result, Path(args.out), Replace(
        force=args.force, ask=(lambda q: prompter.confirm(q, False)) if terminal else None,
        hint="pass --force to replace it, or --out another folder"))
    rec = result.recommendation
    data = {"answers": result.answers.model_dump(mode="json", exclude_none=True), "recommendation": rec.model_dump(mode="json"),
            "files": files}
    from advisor.cli.recommend_cmd import render

    if not args.json:
        render(rec)
        for kind, path in files.items():
            console.print(f"wrote {kind}: [bold]{path}[/]")
    train_yaml = files.get("train_config")
    summary = None
    if train_yaml:
        start = decide_start(args, prompter, result)
        if start:
            from trainer.run import train

            summary = train(train_yaml, console=out_console, progress=not args.json)
            data["training"] = summary.output_json() if summary is not None else {}
            if not args.json:
                from advisor.cli.train_cmd import render_summary

                render_summary(summary, resume=f"tunewise train {train_yaml} --resume")
    if args.json:
        emit(data, True, lambda: None)
    from advisor.cli.common import EXIT_INTERRUPTED

    return EXIT_INTERRUPTED if summary is not None and summary.interrupted else 0


def decide_start(args, prompter, result) -> bool:
    from advisor.configgen import MODEL_PLACEHOLDER

    if args.train == "no":
        return False
    model = result.answers.model_path
    if not model or model == MODEL_PLACEHOLDER:
        prompter.say("[yellow]no local base model was given:[/] set model.path in train.yaml, then run "
                     "`tunewise train train.yaml`")
        return False
    if args.train == "yes":
        return True
    if args.defaults:
        return False
    return prompter.confirm("Start training now?", False)


def write_outputs(result, out: Path, replace=None) -> dict[str, str]:
    """answers.yaml and the method's file in `out`; an existing file with other content (the answers file the run
    was pre-filled from, a hand-written train.yaml) is replaced only as `replace` allows (core.files.Replace).
    The saved answers name the dataset relative to the answers file's folder."""
    from advisor.answers import dataset_for_file
    from core.files import atomic_write, check_replace, model_text, write_model

    out.mkdir(parents=True, exist_ok=True)
    rec, answers = result.recommendation, result.answers
    saved = answers.model_copy(update={"dataset": dataset_for_file(answers.dataset, out / "answers.yaml")})
    if replace is not None:  # the answers file first: nothing is written when it may not be replaced
        check_replace(out / "answers.yaml", model_text(out / "answers.yaml", saved, "tunewise answers"), replace)
    from core.methods import is_fine_tune

    files = {}
    if is_fine_tune(rec.method):
        from advisor.cli.recommend_cmd import write_config

        files["train_config"] = write_config(rec, answers, answers.dataset, str(out / "train.yaml"), str(out / "run"),
                                             replace)
    elif rec.method == "prompting":
        from advisor.ask.starter import starter_prompt

        files["starter_prompt"] = str(atomic_write(out / "prompt.md", starter_prompt(answers, answers.dataset),
                                                   replace))
    else:
        from advisor.ask.starter import rag_plan

        files["rag_plan"] = str(atomic_write(out / "rag_plan.md", rag_plan(answers, answers.dataset), replace))
    return {"answers": str(write_model(out / "answers.yaml", saved, header="tunewise answers", replace=replace)),
            **files}


def _measure_prompting(dataset: str, model_path: str, say, progress):
    """`tunewise probe` with its defaults, for the questionnaire's probe step."""
    from trainer.probe import ProbeOptions, run_probe

    return run_probe(dataset, model_path, ProbeOptions(), say=say, progress=progress)
