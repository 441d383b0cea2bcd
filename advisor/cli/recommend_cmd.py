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
            "tunewise recommend --answers answers.yaml --explain p_tuning",
        ],
    )
    p.add_argument("--answers", required=True, metavar="FILE", help="answers file (YAML or JSON; see `tunewise ask`)")
    p.add_argument("--dataset", metavar="DATA", help="audit this dataset and use its measured signals")
    p.add_argument("--model", metavar="PATH|NAME", help="local base model folder (exact parameter count; written to the "
                   "config), or a known model's name (qwen2.5-7b: its published shape, offline)")
    p.add_argument("--config-out", metavar="FILE", help="for a fine-tune, write the training config here")
    p.add_argument("--force", action="store_true", help="with --config-out: replace a file there that exists with "
                   "other content (default: refuse, exit 2)")
    from advisor.export import TOOLS

    p.add_argument("--export", choices=TOOLS, metavar="TOOL",
                   help="with --config-out: write the config for axolotl, llamafactory or trl instead of tunewise's "
                        "(the same job; what the tool cannot express is listed)")
    p.add_argument("--output-dir", default="runs/tunewise", help="training output folder written into the config (relative to the working directory; written relative to the config file)")
    from core.methods import TITLES

    p.add_argument("--explain", metavar="METHOD", choices=list(TITLES),
                   help="show the full trace for one method: every constraint, decisive rule and preference that "
                        "touched it, and why it was or was not chosen")
    p.add_argument("--probe", nargs="?", const="run", metavar="PROBE_JSON",
                   help="measure prompting on the dataset with the local model first (`tunewise probe`): the "
                        "measured works / unstable / plateaued replaces an `untried` answer and is shown against any "
                        "other; or give a saved `tunewise probe --out` file")
    p.add_argument("--probe-limit", type=int, default=None, metavar="N",
                   help="with --probe: score at most N held-out records (default 100)")
    add_json_flag(p)
    p.set_defaults(func=run)


def probe_for(args: argparse.Namespace, answers, dataset: str | None):
    """The probe result --probe asks for: a saved file, or measured now on the dataset with the model."""
    from core.errors import UserError

    if not args.probe:
        return None
    if args.probe != "run":
        from core.probe_report import load_probe

        return load_probe(args.probe)
    if not dataset or not answers.model_path:
        raise UserError("--probe measures prompting on your data with your base model: give --dataset DATA and "
                        "--model PATH (or dataset and model_path in the answers)")
    from advisor.cli.common import err_console
    from trainer.probe import DEFAULT_LIMIT, ProbeOptions, Progress, run_probe

    limit = args.probe_limit or DEFAULT_LIMIT
    if limit < 1:
        raise UserError(f"--probe-limit must be at least 1, got {limit}")
    quiet = args.json
    return run_probe(dataset, answers.model_path, ProbeOptions(limit=limit),
                     progress=Progress(None if quiet else err_console.real()),
                     say=(lambda s: None) if quiet else (lambda s: err_console.print(s, highlight=False)))


def load_answers(path: str):
    """The answers file, its `dataset` read against the file's folder."""
    from advisor.answers import Answers, dataset_from_file
    from core.files import load_model_file

    answers = load_model_file(Answers, path, "answers file")
    return answers.model_copy(update={"dataset": dataset_from_file(answers.dataset, path)})


def run(args: argparse.Namespace) -> int:
    from advisor.recommend import recommend

    answers = load_answers(args.answers)
    if args.model:
        if (Path(args.model).expanduser() / "config.json").is_file():
            answers = answers.model_copy(update={"model_path": args.model})
        else:  # a known model's name: validated (and its size taken) like the answers file's model_name
            from pydantic import ValidationError

            from advisor.answers import Answers
            from core.errors import UserError

            try:
                answers = Answers.model_validate({**answers.model_dump(exclude={"model_params_b"}),
                                                  "model_name": args.model})
            except ValidationError as e:
                raise UserError(f"--model {args.model}: {e.errors()[0]['msg']}") from None
    dataset = args.dataset or answers.dataset
    signals = None
    if dataset:
        from advisor.audit import audit_file
        from core.project import project_layout

        layout, origin = project_layout()
        signals = audit_file(dataset, model_path=answers.model_path, layout=layout, layout_origin=origin).signals
    if args.export and not args.config_out:
        from core.errors import UserError

        raise UserError("--export writes a config: add --config-out PATH")
    rec = recommend(answers, signals, probe=probe_for(args, answers, dataset))
    out = rec.model_dump(mode="json")
    from core.files import Replace

    replace = Replace(force=args.force, hint="pass --force to replace it, or --config-out another path")
    if args.config_out and Path(args.config_out).resolve() == Path(args.answers).resolve():
        from core.errors import UserError

        raise UserError(f"--config-out {args.config_out} is the answers file itself: give another path")
    if args.config_out and args.export and rec.method not in ("prompting", "rag"):
        out["export"] = write_export_config(rec, answers, dataset, args.config_out, args.output_dir, args.export,
                                            replace)
        out["config_written"] = out["export"]["config"]
    elif args.config_out:
        out["config_written"] = write_config(rec, answers, dataset, args.config_out, args.output_dir, replace)
        if out["config_written"] is None:  # no fine-tune: hand over what to do instead, next to where it was asked
            out["plan_written"], out["config_note"] = write_plan(rec, answers, dataset, args.config_out, replace)
    if args.explain:
        from advisor.recommendation import explain

        ex = explain(rec, args.explain)
        out["explain"] = ex.model_dump(mode="json")
        emit(out, args.json, lambda: render_explain(ex))
        return 0
    emit(out, args.json, lambda: (render(rec, out.get("config_written")),
                                  out.get("config_note") and console.print(f"[bold]{out['config_note']}[/]")))
    return 0


def write_plan(rec, answers, dataset: str | None, config_out: str, replace=None) -> tuple[str, str]:
    """For prompting or RAG: a starter prompt or a RAG plan beside the requested config path, and why."""
    from advisor.ask.starter import rag_plan, starter_prompt
    from core.files import atomic_write

    if rec.method == "prompting":
        path = atomic_write(Path(config_out).with_name("prompt.md"), starter_prompt(answers, dataset), replace)
        return str(path), (f"no training config: the decision is prompting ({rec.decided_by.rule}); a starter "
                           f"prompt was written to {path} instead")
    path = atomic_write(Path(config_out).with_name("rag_plan.md"), rag_plan(answers, dataset), replace)
    return str(path), (f"no training config: the decision is retrieval ({rec.decided_by.rule}); a RAG plan was "
                       f"written to {path} instead")


def write_export_config(rec, answers, dataset: str | None, path: str, output_dir: str, tool: str,
                        replace=None) -> dict:
    """The recommended job as a config for another trainer (`tunewise export`'s mapping)."""
    from advisor.cli.export_cmd import export_result
    from advisor.configgen import build_config
    from advisor.export import export, write_export

    cfg = build_config(rec, answers, dataset, answers.model_path, output_dir)  # paths as given (working directory)
    out = export(cfg, tool, path)
    return export_result(out, Path(path), write_export(out, path, replace))


def write_config(rec, answers, dataset: str | None, path: str, output_dir: str, replace=None) -> str | None:
    from advisor.configgen import MODEL_PLACEHOLDER, build_config, config_comments, paths_for_file
    from core.files import write_model

    if rec.method in ("prompting", "rag"):
        return None
    cfg = paths_for_file(build_config(rec, answers, dataset, answers.model_path, output_dir), path)
    header = f"tunewise training config for {rec.method}; run: tunewise train {path}"
    if cfg.model.path == MODEL_PLACEHOLDER:
        header += "\n# set model.path to your local base model folder before training"
    write_model(path, cfg, header=header, comments=config_comments(rec, cfg), replace=replace)
    return str(Path(path))


from advisor.cli.recommend_view import NAMES, render, render_explain  # noqa: E402,F401 - re-exported
