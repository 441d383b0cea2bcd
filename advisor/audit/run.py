"""The audit of one file in one streaming pass, in named stages:

1. `open_dataset`      – reader stage: how the file holds records (container), which format and columns, and why
                         (core/data/detect.py, shared with `train`);
2. `RecordAuditor`     – per record: parse, normalise, record and pair checks, measurements (record.py; in worker
                         processes for big files, parallel.py);
3. `DatasetStats`      – the parent adds up each record's facts in record order (stats.py);
4. `DATASET_CHECKS`    – dataset-level findings: duplicates, size, diversity, tasks, knowledge (dataset_checks.py);
5. `assemble_report`   – the report and the typed signals for the advisor (here)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from advisor.audit.catalog import Selection
from advisor.audit.dataset_checks import BEHAVIOUR_AT_MOST, DATASET_CHECKS, KNOWLEDGE_HEAVY, DatasetView
from advisor.audit.parallel import Background, Progress, audit_records, default_workers, fork_map
from advisor.audit.record import RecordAuditor
from advisor.audit.report import SEVERITY_ORDER, AuditReport, Diversity, FindingSignal, Signals, TokenSignal
from advisor.audit.stats import DatasetStats, RecordFindings
from advisor.audit.tasks import TaskEstimate, estimate_tasks, load_clustering
from core.data.detect import Detection, open_dataset  # noqa: F401 - open_dataset: the reader stage, re-exported
from core.data.formats import kind_of
from core.data.layout import DataLayout

# ---- 1. reader stage: core/data/detect.py (shared with `train`) ---------------------------------------------

# ---- the pass --------------------------------------------------------------------------------------------------

def audit_file(path: str | Path, fmt: str = "auto", max_seq_len: int = 2048, model_path: str | None = None,
               near_dup_threshold: float = 0.8, samples: int = 3, progress: Callable[[Progress], None] | None = None,
               tokenizer_path: str | None = None, selection: Selection | None = None,
               workers: int | None = None, layout: DataLayout | None = None,
               layout_origin: str = "--columns") -> AuditReport:
    """Audit one file. `workers`: processes for the per-record stage (None: one per core for files over a few MB;
    1: in this process); the findings are the same either way. `selection`: the finding codes to report."""
    path = Path(path)
    selection = selection or Selection()
    detection = open_dataset(path, fmt, layout, layout_origin)
    auditor = RecordAuditor(detection.format, max_seq_len, selection, model_path, tokenizer_path, detection.layout)  # a bad tokenizer
    stats = DatasetStats(detection.format, max_seq_len, near_dup_threshold, auditor.count_tokens.how)  # exits 2 here
    found = RecordFindings(samples)
    n = default_workers(path) if workers is None else max(1, workers)
    clustering_loaded = n == 1  # the task estimate's imports, done here while the workers audit
    for batch in audit_records(path, detection.container, auditor, n, progress):
        stats.add(batch)
        found.add(batch)
        if not clustering_loaded:
            load_clustering()
            clustering_loaded = True
    # 4. the dataset stage, on every core the pass used: the task estimate in a forked process while the
    # duplicate groups are found (their candidate blocks spread over the cores too)
    tasks = Background(partial(estimate_tasks, stats.tasks, stats.valid), fork=n > 1)
    stats.finish(partial(fork_map, workers=n))
    return assemble_report(path, detection, stats, found, selection, samples, tasks.result())


# ---- 5. the report -----------------------------------------------------------------------------------------------

def dataset_view(stats: DatasetStats, samples: int, tasks: TaskEstimate) -> DatasetView:
    valid = stats.valid
    exact_copies = sum(len(g) - 1 for g in stats.dup.exact.groups())
    near = stats.dup.near_groups()
    sft = stats.fmt != "text" and kind_of(stats.fmt) == "sft"
    unique_prompts = stats.dup.unique_prompts / valid if valid and sft else 1.0
    diversity = Diversity(
        unique_prompt_ratio=round(unique_prompts, 4),
        near_duplicate_share=round((sum(len(g) for g, _ in near) + exact_copies) / valid, 4) if valid else 0.0,
        mean_similarity=round(stats.dup.mean_similarity(), 4),
        distinct_2gram_answers=round(stats.distinct_bigrams(), 4),
    )
    return DatasetView(stats, tasks, max(0, valid - exact_copies), exact_copies, near,
                       diversity, samples)


def assemble_report(path: Path, detection: Detection, stats: DatasetStats, found: RecordFindings,
                    selection: Selection, samples: int, tasks: TaskEstimate) -> AuditReport:
    view = dataset_view(stats, samples, tasks)
    findings = [f for f in found.findings() if selection(f.code)]
    view.usable = usable_examples(stats, findings)
    for code, check in DATASET_CHECKS.items():
        if selection(code):
            findings += check(view)
    findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], -f.count, f.code))
    return AuditReport(path=str(path), format=detection.format, records=stats.records, valid_records=stats.valid,
                       findings=findings, detection=detection.as_dict(), stats=dataset_stats(stats, view),
                       signals=signals(stats, view, findings),
                       selection=None if selection.all() else sorted(selection.codes))


def dataset_stats(stats: DatasetStats, view: DatasetView) -> dict:
    est = view.tasks
    return {
        "tokens": {"prompt": _pct(stats.tok_prompt), "answer": _pct(stats.tok_answer), "total": _pct(stats.tok_total)},
        "token_counting": stats.token_counting,
        "max_seq_len": stats.max_seq_len,
        "turns": {str(k): v for k, v in sorted(stats.turns.items())},
        "languages": dict(stats.langs.most_common()),
        "task_mix": est.mix(),
        "task_clusters": [{"label": c.label, "size": c.size, "share": c.share, "examples": c.examples}
                          for c in est.clusters],
        "task_method": est.method,
        "histograms": {"prompt": _histogram(stats.tok_prompt), "answer": _histogram(stats.tok_answer)},
        **({"labels": {"desirable": stats.labels[True], "undesirable": stats.labels[False]}} if stats.labels else {}),
    }


def usable_examples(stats: DatasetStats, findings: list) -> int:
    """Valid records that carry no error-level finding and are not a later exact copy."""
    errors = {i for f in findings if f.severity == "error" for i in f.records}
    copies = {i for group in stats.dup.exact.groups() for i in group[1:]}
    # invalid records carry an error finding (invalid_json, schema, unknown_role, ...): the rest are valid ones
    errors_on_valid = max(0, len(errors) - (stats.records - stats.valid))
    return max(0, stats.valid - len(copies - errors) - errors_on_valid)


def signals(stats: DatasetStats, view: DatasetView, findings: list) -> Signals:
    share = view.knowledge_share
    errors: set[int] = set()
    by_code: dict[str, FindingSignal] = {}
    for f in findings:
        if f.severity == "error":
            errors.update(f.records)
        seen = by_code.get(f.code)
        worst = f.severity if seen is None or SEVERITY_ORDER[f.severity] < SEVERITY_ORDER[seen.severity] else seen.severity
        count = f.count + (seen.count if seen else 0)
        by_code[f.code] = FindingSignal(severity=worst, count=count,
                                        share=round(count / stats.records, 4) if stats.records else 0.0)
    total = _pct(stats.tok_total)
    return Signals(
        records=stats.records, valid_records=stats.valid, examples=view.examples, estimated_tasks=view.tasks.tasks,
        usable_examples=view.usable, exact_copies=view.exact_copies,
        content="knowledge" if share >= KNOWLEDGE_HEAVY else ("behaviour" if share <= BEHAVIOUR_AT_MOST else "mixed"),
        knowledge_share=round(share, 4), diversity=view.diversity, low_diversity=view.low_diversity,
        error_records=len(errors), error_share=round(len(errors) / stats.records, 4) if stats.records else 0.0,
        tokens=TokenSignal(p90_total=total["p90"], mean_total=total["mean"],
                           mean_prompt=_pct(stats.tok_prompt)["mean"]), findings=by_code)


def _pct(values) -> dict:
    a = np.asarray(values)
    if a.size == 0:
        return {"p50": 0, "p90": 0, "max": 0, "mean": 0.0}
    return {"p50": int(np.percentile(a, 50)), "p90": int(np.percentile(a, 90)), "max": int(a.max()),
            "mean": round(float(a.mean()), 1)}


LOG_BINS_SPAN = 20  # lengths spanning more than this factor get log-spaced bins ...
LOG_BULK_SPAN = 2  # ... when their middle 80% spans more than this factor too (else a few outliers set the scale)


def _histogram(values, bins: int = 24) -> dict:
    """Counts over token-length bins that cover the lengths there are: log-spaced when the lengths span more than
    LOG_BINS_SPAN times (orders of magnitude) and their middle 80% more than LOG_BULK_SPAN times, else of equal
    width from the shortest to the longest (a narrow range on a log axis from 1 is one bar). `scale` says which."""
    if not len(values):
        return {"edges": [], "counts": [], "scale": "linear"}
    a = np.clip(np.asarray(values), 1, None)
    lo, hi = int(a.min()), int(a.max()) + 1
    p10, p90 = np.percentile(a, [10, 90])
    if hi / lo > LOG_BINS_SPAN and p90 / p10 > LOG_BULK_SPAN:
        scale, edges = "log", np.unique(np.geomspace(lo, hi, bins + 1).astype(int))
    else:
        width = max(1, -(-(hi - lo) // bins))
        scale, edges = "linear", np.arange(lo, hi + width, width)
    counts, edges = np.histogram(a, bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist(), "scale": scale}
