"""The questionnaire's flow: dataset first (audit pre-fills examples and tasks), detected GPUs confirmed
instead of asked, then every remaining key in branching order; finally the recommendation."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from advisor.answers import Answers
from advisor.ask.hardware import detect_gpus, detect_host_memory_gb
from advisor.ask.questions import QUESTIONS, Question
from core.errors import UserError
from core.files import format_validation_error


@dataclass
class AskResult:
    answers: Answers
    recommendation: Any
    signals: dict | None
    asked: list[str] = field(default_factory=list)
    probe: Any = None  # core.probe_report.ProbeReport when the probe step ran


DATASET_Q = Question("dataset", "Training data file, JSONL/JSON/CSV (empty if you have none yet)", "text",
                     "With data, tunewise audits it and fills in the example and task counts from what it measures.",
                     default="")


def check_prefill(prefill: dict, source: str) -> dict:
    known = set(Answers.model_fields)
    for key in prefill:
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            raise UserError(f"{source}: unknown key `{key}`" + (f", did you mean `{hint[0]}`?" if hint else ""))
    return dict(prefill)


def _ask_dataset(prompter, answers: dict, defaults: bool) -> str | None:
    if "dataset" in answers:
        return answers["dataset"] or None
    if defaults:
        return None
    while True:
        path = str(prompter.ask(DATASET_Q) or "").strip()
        if not path or Path(path).expanduser().is_file():
            return str(Path(path).expanduser()) if path else None
        prompter.say(f"[red]invalid:[/] no file at `{path}`")


def _probe_step(prompter, final: Answers, mode: str, defaults: bool, progress=None, measure=None):
    """With a dataset and a local model: measure prompting on the data (`tunewise probe`) before the decision.
    mode: yes, no, or ask (a question; no with --defaults). `measure(dataset, model_path, say, progress)` runs the
    probe: the command line hands it in (the measurement is the trainer's; the questionnaire does not import it)."""
    if mode == "no" or measure is None or not final.dataset or not final.model_path:
        return None
    if mode == "ask" and (defaults or not prompter.confirm(
            f"Measure prompting on your data with `{final.model_path}` now (zero-shot, few-shot and reworded "
            "instructions on up to 100 held-out records)?", True)):
        return None
    probe = measure(final.dataset, final.model_path, prompter.say, progress)
    prompter.say(f"prompting measured: [bold]{probe.summary}[/] ({probe.rule})")
    return probe


def run_ask(prompter, prefill: dict | None = None, *, defaults: bool = False, source: str = "--answers",
            lines: dict | None = None, probe: str = "no", progress=None, measure_prompting=None) -> AskResult:
    """`probe`: yes, no or ask: measure prompting with the local model before the decision (`_probe_step`, with
    `measure_prompting`; without one nothing is measured)."""
    from advisor.recommend import recommend

    answers = check_prefill(prefill or {}, source)
    asked: list[str] = []
    dataset = _ask_dataset(prompter, answers, defaults)
    signals = None
    prefilled_by_audit: dict[str, int] = {}
    if dataset:
        answers["dataset"] = dataset
        from advisor.audit import audit_file

        prompter.say(f"auditing `{dataset}` …")
        from core.project import project_layout

        layout, origin = project_layout()
        report = audit_file(dataset, model_path=answers.get("model_path") or None, layout=layout, layout_origin=origin)
        signals = report.signals
        from advisor.reconcile import usable_examples

        usable = usable_examples(signals)
        top = ", ".join(f"{f.code} {f.count}" for f in report.worst_first()[:5]) or "no findings"
        prompter.say(f"found [bold]{usable}[/] usable examples ({report.records} records, {report.format}; "
                     f"without errors and exact copies), "
                     f"about [bold]{signals.estimated_tasks}[/] task(s), content: {signals.content}; "
                     f"findings: {top}")
        prefilled_by_audit = {"examples": usable, "tasks": max(1, signals.estimated_tasks)}
    if "gpu_count" not in answers:
        gpus = detect_gpus()
        if gpus:
            name, mem = gpus[0]
            if defaults or prompter.confirm(f"Detected {len(gpus)} × {name} ({mem:g} GB). Train on these?", True):
                answers.setdefault("gpu_count", len(gpus))
                answers.setdefault("gpu_memory_gb", min(m for _n, m in gpus))
    host = detect_host_memory_gb()
    if host:  # the question's default is this machine's RAM, not a guess
        prefilled_by_audit.setdefault("cpu_memory_gb", host)
    for q in QUESTIONS:
        if q.key in answers or not q.when(answers):
            continue
        default = prefilled_by_audit.get(q.key, q.default_for(answers))
        answers[q.key] = default if defaults else prompter.ask(q, default)
        asked.append(q.key)
    if answers.get("gpu_count", 0) == 0:
        answers["gpu_memory_gb"] = 0.0
    named = answers.get("model_path")
    if named and not (Path(named).expanduser() / "config.json").is_file():
        answers["model_name"] = answers.pop("model_path")  # a known model's name (questions.parse checked it)
    if not answers.get("model_path"):
        answers.pop("model_path", None)
    elif "model_params_b" not in answers:
        from core.estimate import shape_from_config

        answers["model_params_b"] = round(shape_from_config(answers["model_path"]).params / 1e9, 6)
    try:
        final = Answers.model_validate({k: v for k, v in answers.items() if v is not None or k == "budget_gpu_hours"})
    except ValidationError as e:
        raise UserError(format_validation_error(e, Answers, source, lines or {})) from None
    measured = _probe_step(prompter, final, probe, defaults, progress, measure_prompting)
    return AskResult(final, recommend(final, signals, probe=measured), signals, asked, measured)
