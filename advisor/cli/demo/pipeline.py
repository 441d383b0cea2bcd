"""`tunewise demo`: audit → recommend → config → train → evaluate base vs tuned, on the built-in example."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from core.files import atomic_write, json_text, write_model
from core.methods import REGISTRY

BASE = dict(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=344, vocab_size=1024, pretrain_steps=400)
# the tiny demo run's settings, per method (its registry unit's `demo_training`: core/methods.py)
DEMO_TRAINING = {m: dict(u.demo_training) for m, u in REGISTRY.items() if u.demo_training}


def asset(name: str) -> Path:
    return Path(str(resources.files("advisor.cli.demo").joinpath(f"assets/{name}")))


def build_base(out: Path, texts: list[str], say, size: dict | None = None) -> Path:
    """The tiny base model, cached: rebuilt only when its recipe changes."""
    from trainer.tiny import build_tiny_model

    size = {**BASE, **(size or {})}
    marker = out / "tunewise_base.json"
    if marker.is_file() and json.loads(marker.read_text()) == size:
        say(f"base model: reusing [bold]{out}[/] (cached)")
        return out
    say(f"base model: building a {size['layers']}-layer Llama (hidden {size['hidden']}) and pre-training it "
        f"{size['pretrain_steps']} steps on the general-text corpus …")
    t = time.time()
    build_tiny_model(out, texts, **size, log=lambda s, loss: say(f"  pre-train step {s:4d}  loss {loss:.3f}")
                     if s % 100 == 0 else None)
    atomic_write(marker, json.dumps(size))
    say(f"  done in {time.time() - t:.0f} s")
    return out


KEPT_FINDINGS = ("near_duplicate",)  # near-copies word the same ticket differently: still examples, kept
WHOLE_GROUPS = ("conflicting_answers", "pair_contradiction")  # which answer is right is unknown: every side dropped


@dataclass
class Cleaning:
    """What `clean_split` dropped and why: records per finding code (a record can carry several codes)."""
    records: int
    dropped: dict[str, int]
    kept: dict[str, int]
    bad: set[int]

    def describe(self) -> str:
        from advisor.audit.catalog import catalog

        notes = {"exact_duplicate": " (the first of each group kept)",
                 "conflicting_answers": " (every side: which is right is unknown)",
                 "near_duplicate": " (reworded examples)"}

        def listed(counts: dict[str, int]) -> str:
            return " · ".join(f"{catalog()[c].title}: {n}{notes.get(c, '')}" for c, n in counts.items())

        kept = f"; kept {listed(self.kept)}" if self.kept else ""
        return f"dropped {len(self.bad)} of {self.records} records — {listed(self.dropped) or 'none flagged'}{kept}"

    def summary(self, train: Path, test: Path) -> dict:
        """The demo's `cleaning` section: records in, dropped (by finding), kept although flagged, train and test."""
        return {"records": self.records, "dropped": len(self.bad), "dropped_by_finding": self.dropped,
                "kept_flagged": self.kept, "train_records": _lines(train), "test_records": _lines(test)}


def _lines(path: Path) -> int:
    with path.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def flagged(report) -> Cleaning:
    """The records a training set must not hold: every record an error- or warning-level finding lists (the later
    copies of exact duplicates, every side of a conflict), near-copies excepted."""
    bad: set[int] = set()
    dropped: dict[str, int] = {}
    kept: dict[str, int] = {}
    for f in report.worst_first():
        if f.code in KEPT_FINDINGS or f.severity == "info":
            if f.records:
                kept[f.code] = len(f.records)
            continue
        records = {i for g in f.groups for i in g} if f.code in WHOLE_GROUPS and f.groups else set(f.records)
        if records:
            dropped[f.code] = len(records)
            bad |= records
    return Cleaning(report.records, dropped, kept, bad)


def clean_split(report, src: Path, out: Path, test_share: float = 0.1, seed: int = 0) -> tuple[Path, Path, Cleaning]:
    """Drop the flagged records (`flagged`); hold out a test set. Near-copies stay on one side of the split, so that
    no held-out record is a reworded training record."""
    cleaning = flagged(report)
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    units = kept_units(report, len(rows), cleaning.bad)
    random.Random(seed).shuffle(units)
    n_test = max(10, int(sum(map(len, units)) * test_share))
    test_ids: list[int] = []
    for unit in units:
        if len(test_ids) + len(unit) <= n_test:
            test_ids += unit
    held = set(test_ids)
    train_ids = [i for unit in units for i in unit if i not in held]
    out.mkdir(parents=True, exist_ok=True)
    train, test = out / "train.jsonl", out / "test.jsonl"
    atomic_write(train, "".join(json.dumps(rows[i]) + "\n" for i in train_ids))
    atomic_write(test, "".join(json.dumps(rows[i]) + "\n" for i in test_ids))
    return train, test, cleaning


def kept_units(report, n: int, bad: set[int]) -> list[list[int]]:
    """The kept records in units that go to one side of the split together: near-copy groups (joined where they
    share a record), else one record."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for f in report.findings:
        if f.code == "near_duplicate":
            for g in f.groups or []:
                for i in g[1:]:
                    parent[root(i)] = root(g[0])
    units: dict[int, list[int]] = {}
    for i in range(n):
        if i not in bad:
            units.setdefault(root(i), []).append(i)
    return list(units.values())


@dataclass
class DemoView:
    """How the demo shows its steps (the CLI passes its renderers: the library never imports the CLI)."""
    say: Callable[[str], None]
    audit: Callable[[object, str], None] = lambda report, html: None
    recommendation: Callable[[object], None] = lambda rec: None
    probe: Callable[[object], None] = lambda probe: None
    summary: Callable[[object], None] = lambda summary: None  # trainer/run_report.py's RunSummary


def demo_scores(report) -> tuple[dict, dict]:
    """The demo's base and tuned sections from the eval report (eval loss on answers, valid tickets = schema match,
    exact ticket match = JSON equal to the expected ticket, general-text loss)."""
    def side(scores, outputs: str) -> dict:
        shown = (report.wins + report.regressions)[:3]
        return {"eval_loss": scores.answer_loss, "valid_ticket_rate": scores.metrics["schema_match"],
                "exact_match": scores.metrics["json_match"], "general_text_loss": scores.general_loss,
                "test_records": report.records,
                "samples": [{"message": e.prompt, "output": getattr(e, outputs), "expected": e.expected}
                            for e in shown]}
    return side(report.base, "base"), side(report.tuned, "tuned")


def run_demo(out: Path, view: DemoView, console=None, progress: bool = True, quick: bool = False) -> dict:
    """The whole product on the built-in example. `quick` shrinks everything (for tests)."""
    from trainer.quiet import quiet_libraries

    quiet_libraries()
    t0 = time.time()
    out = writable_out(out)
    say = view.say
    data_src = asset("tickets.jsonl")
    say("\n[bold]1. audit[/] the built-in dataset (support messages → JSON tickets)")
    train_path, test_path, cleaning = step_audit(data_src, out, view)
    say("\n[bold]2. base model[/] (local, no download)")
    ticket_texts = [m["content"] for line in data_src.read_text().splitlines() if line.strip()
                    for m in json.loads(line)["messages"]]
    base = build_base(out / "base-model", ticket_texts, say,
                      dict(pretrain_steps=120, hidden=64, layers=2, intermediate=176) if quick else {})
    probe = step_probe(base, train_path, test_path, out, view, console if progress else None, quick)
    say("\n[bold]3. recommend[/]")
    rec, answers = step_recommend(base, train_path, out, view, probe)
    if rec.method not in DEMO_TRAINING:
        say(f"[red]the recommendation is {rec.method}: the demo stops here[/]")
        return {"method": rec.method}
    say("\n[bold]4. training config[/]")
    cfg = step_config(rec, answers, train_path, base, out, quick, say)
    say("\n[bold]5. train[/]")
    from trainer.run import fit

    summary = fit(str(out / "train.yaml"), cfg=cfg, console=console, progress=progress).summary
    view.summary(summary)
    say("\n[bold]6. evaluate[/] base vs tuned on held-out records")
    from trainer.evaluate import AnswerProgress, evaluate_run

    bar = AnswerProgress(console, enabled=progress)
    try:
        report = evaluate_run(str(out / "run"), data=str(test_path), schema_path=str(asset("ticket.schema.json")),
                              max_new_tokens=8 if quick else 24, progress=bar)
    finally:
        bar.stop()
    before, after = demo_scores(report)
    files = {"audit_report": out / "audit" / "index.html", "clean_train_data": train_path,
             "held_out_test_data": test_path, "answers": out / "answers.yaml", "train_config": out / "train.yaml",
             "base_model": base, "tuned_output": out / "run", "loss_plot": out / "run" / "loss.png",
             "eval_report": out / "run" / "eval.json", "eval_plot": out / "run" / "eval.png",
             "summary": out / "demo_summary.json"}
    files["probe_result"] = out / "probe.json"
    result = {"method": rec.method, "probe": demo_probe(probe), "cleaning": cleaning.summary(train_path, test_path),
              "base": before, "tuned": after, "training": summary.output_json(),
              "wall_time_s": round(time.time() - t0, 1), "files": {k: str(v) for k, v in files.items()}}
    atomic_write(out / "demo_summary.json", json_text(result, indent=2) + "\n")
    return result


def writable_out(out: Path) -> Path:
    out = out.resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".tunewise-write-test").touch()
        (out / ".tunewise-write-test").unlink()
    except OSError as e:
        from core.errors import UserError

        raise UserError(f"--out: cannot write to `{out}` ({e.strerror}); choose another folder") from None
    return out


def step_audit(data_src: Path, out: Path, view: DemoView) -> tuple[Path, Path, Cleaning]:
    from advisor.audit import audit_file
    from advisor.audit.html import write_report

    report = audit_file(data_src)
    view.audit(report, str(write_report(report, out / "audit")))
    train_path, test_path, cleaning = clean_split(report, data_src, out / "data")
    view.say(f"{cleaning.describe()}; held out {sum(1 for _ in test_path.open())} records for evaluation")
    return train_path, test_path, cleaning


def step_probe(base: Path, train_path: Path, test_path: Path, out: Path, view: DemoView, console, quick: bool):
    """Measure prompting with the base model on the held-out tickets before the advice (`tunewise probe`)."""
    from trainer.probe import ProbeOptions, Progress, run_probe

    view.say("\n[bold]2b. probe[/] does prompting the base model already work? (zero-shot, few-shot, reworded)")
    opts = ProbeOptions(test=str(test_path), limit=10 if quick else 30, max_new_tokens=8 if quick else 24,
                        schema_path=str(asset("ticket.schema.json")), rewordings=1 if quick else 3)
    probe = run_probe(str(train_path), str(base), opts, say=view.say, progress=Progress(console))
    atomic_write(out / "probe.json", probe.model_dump_json(indent=2) + "\n")
    view.probe(probe)
    return probe


def demo_probe(probe) -> dict:
    """The demo summary's probe section: each prompt's headline score and the measured verdict."""
    return {"prompting": probe.prompting, "rule": probe.rule, "summary": probe.summary, "metric": probe.headline,
            "records": probe.records, "scores": {v.name: v.score for v in probe.variants},
            "best": probe.best, "few_shot": probe.variant("few-shot").score}


def step_recommend(base: Path, train_path: Path, out: Path, view: DemoView, probe=None):
    from advisor.answers import Answers
    from advisor.audit import audit_file
    from advisor.recommend import recommend
    from core.files import load_model_file

    answers = load_model_file(Answers, asset("answers.yaml"), "demo answers")
    answers = answers.model_copy(update={"model_path": str(base), "dataset": str(train_path)})
    rec = recommend(answers, audit_file(train_path).signals, probe=probe)
    view.recommendation(rec)
    write_model(out / "answers.yaml", answers, header="tunewise demo answers")
    return rec, answers


def step_config(rec, answers, train_path: Path, base: Path, out: Path, quick: bool, say):
    import shutil

    from advisor.configgen import build_config

    cfg = build_config(rec, answers, str(train_path), str(base), str(out / "run"))
    demo = DEMO_TRAINING[rec.method]
    cfg = cfg.model_copy(update={
        "data": cfg.data.model_copy(update={"max_seq_len": 160, "val_size": 0.1}),
        "training": cfg.training.model_copy(update={**demo, "epochs": 2 if quick else demo["epochs"],
                                                    "early_stopping_patience": None, "logging_steps": 5,
                                                    "save_total_limit": 1}),
        # step 6 evaluates on the demo's own held-out test records instead of the run's validation split
        "eval": cfg.eval.model_copy(update={"enabled": False})})
    write_model(out / "train.yaml", cfg, header="written by tunewise demo: the recommended method, with a learning "
                "rate and epochs raised for a tiny model")
    say(f"wrote {out / 'train.yaml'} ({rec.method}; learning rate {demo['learning_rate']:g} and "
        f"{cfg.training.epochs:g} epochs, raised from the defaults because the base model is tiny)")
    shutil.rmtree(out / "run", ignore_errors=True)  # a fresh run each time the demo runs
    return cfg
