"""Run every audit check over a dataset in one streaming pass, in named stages:

1. `open_dataset`   – reader stage: how the file holds records (container) and which format they are in, with why;
2. `record_checks`  – per-record checks on each side of a record (role order, empty turns, content) and pair checks;
3. `DatasetStats`   – what the pass accumulates: duplicates, conflicts, tokens, languages, tasks, knowledge cues;
4. `dataset_findings` and `assemble_report` – dataset-level findings and the report."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from advisor.audit.catalog import catalog
from advisor.audit.checks import answer_language, content_checks, role_checks
from advisor.audit.dedup import DuplicateIndex
from advisor.audit.language import UND, detect
from advisor.audit.report import AuditReport, Finding
from advisor.audit.tasks import TaskEstimate, TaskSampler, estimate_tasks
from advisor.audit.text import (
    asks_about_entity,
    fact_density,
    is_factual_question,
    is_structured,
    normalise,
    script_units,
)
from advisor.audit.tokens import TokenCounter
from advisor.data.formats import FORMATS, Sample, detect_format, format_reason, kind_of, majority_format
from advisor.data.formats import normalise as to_sample
from advisor.data.reader import Container, RawRecord, iter_raw, sniff
from advisor.errors import UserError

TEMPLATE_TOKENS_PER_MESSAGE = 4  # role markers and separators a chat template adds per message
MAX_LISTED_DETAILS = 50
FEW_HARD, FEW_SOFT = 10, 50
DETECT_HEAD = 200  # records read to decide the format
UNREADABLE_SHARE = 0.5  # more invalid lines than this in the head: the file is not JSON Lines at all


# ---- 1. reader stage -------------------------------------------------------------------------------------------

@dataclass
class Detection:
    container: Container
    format: str
    reason: str

    def as_dict(self) -> dict:
        return {"container": self.container.kind, "format": self.format, "kind": kind_of(self.format),
                "reason": f"{self.container.reason}; records have {self.reason}",
                **({"text_unit": self.container.text_unit} if self.container.text_unit else {})}


def open_dataset(path: Path, fmt: str = "auto") -> Detection:
    """Decide container and format from the first records; refuse (exit 2) what cannot be read, with the reason."""
    if fmt != "auto" and fmt not in FORMATS:
        raise UserError(f"--format must be one of auto, {', '.join(FORMATS)}; got {fmt!r}")
    container = sniff(path)
    head = list(islice(iter_raw(path, container), DETECT_HEAD))
    bad = [r for r in head if r.error is not None]
    if head and len(bad) > UNREADABLE_SHARE * len(head):
        first = bad[0]
        raise UserError(f"{path}:{first.line}: {len(bad)} of the first {len(head)} records do not parse "
                        f"({first.error}); this is not a {container.kind} file the audit can read")
    if fmt != "auto":
        return Detection(container, fmt, f"the format given with --format ({fmt})")
    objs = [r.obj for r in head if r.error is None]
    found = majority_format(objs)
    if found:
        share = sum(1 for o in objs if detect_format(o) == found)
        return Detection(container, found, f"{format_reason(found)} ({share} of the first {len(objs)} records)")
    if not objs:
        return Detection(container, "unknown", "no readable record")
    keys = sorted({k for o in objs[:20] if isinstance(o, dict) for k in o})[:12]
    raise UserError(f"{path}: cannot tell the format from the keys {keys}; expected alpaca (instruction/output), "
                    "sharegpt (conversations), openai (messages), prompt/completion, text, or preference data "
                    "(chosen/rejected, preferred_output, label); pass --format")


# ---- 2. per-record checks --------------------------------------------------------------------------------------

Hit = tuple[str, str, str]


def record_checks(s: Sample, fmt: str) -> list[Hit]:
    """Every record-level check on the sample, and for preference pairs on the rejected side and the pair."""
    hits = role_checks(s, fmt) + content_checks(s, fmt)
    rejected = s.rejected_sample()
    if rejected is None:
        return hits
    pair = pair_checks(s, rejected)
    side = [(code, sev, "rejected side: " + d) for code, sev, d in
            role_checks(rejected, fmt) + content_checks(rejected, fmt, side="rejected side: ")
            if code not in ("empty_output", "no_assistant")]  # an empty side is a pair finding
    return hits + side + pair


def pair_checks(chosen: Sample, rejected: Sample) -> list[Hit]:
    a, b = chosen.answer, rejected.answer
    hits: list[Hit] = []
    if not a.strip() or not b.strip():
        which = "both sides" if not (a.strip() or b.strip()) else ("chosen" if not a.strip() else "rejected")
        hits.append(("pair_empty_side", "error", f"{which} empty: the pair teaches no preference"))
        return hits
    if normalise(a) == normalise(b):
        hits.append(("pair_identical", "error", "chosen and rejected are the same text: no preference signal"))
        return hits
    la, lb = detect(a), detect(b)
    if UND not in (la, lb) and la != lb:
        hits.append(("pair_language_mismatch", "warning", f"chosen is `{la}`, rejected is `{lb}`: the model may "
                                                           "learn to prefer a language, not a better answer"))
    return hits


# ---- 3. what the pass accumulates ------------------------------------------------------------------------------

class _Acc:
    """Collects the records of one (code, severity)."""

    __slots__ = ("records", "lines", "details", "samples")

    def __init__(self) -> None:
        self.records: list[int] = []
        self.lines: list[int] = []
        self.details: dict[int, str] = {}
        self.samples: list[dict] = []


def _clip(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text[:limit] + ("…" if len(text) > limit else "")


def _short(s: Sample | None, raw: object, limit: int = 160) -> dict:
    if s is None or not s.messages:
        return {"raw": _clip(str(raw), limit)}
    out = {m.role: _clip(m.content, limit) for m in s.messages[-3:]}
    if s.rejected:
        out["rejected"] = _clip(s.rejected[-1].content, limit)
    return out


class PreferenceIndex:
    """Contradicting preferences: the same prompt with A preferred over B in one record and B over A in another
    (pairs), or the same prompt and completion labelled both desirable and undesirable (KTO)."""

    def __init__(self) -> None:
        self.first: dict[tuple, tuple[int, object]] = {}
        self.groups: dict[int, list[int]] = {}

    def add(self, index: int, s: Sample) -> None:
        prompt = normalise(s.context)
        if s.rejected is not None:
            a, b = hash(normalise(s.answer)), hash(normalise(s.rejected[-1].content if s.rejected else ""))
            key, verdict = (hash(prompt), frozenset((a, b))), a
        elif s.label is not None:
            key, verdict = (hash(prompt), hash(normalise(s.answer))), s.label
        else:
            return
        seen = self.first.setdefault(key, (index, verdict))
        if seen[0] != index and seen[1] != verdict:
            self.groups.setdefault(seen[0], [seen[0]]).append(index)

    def contradictions(self) -> list[list[int]]:
        return sorted(self.groups.values())


@dataclass
class DatasetStats:
    fmt: str
    count_tokens: TokenCounter
    max_seq_len: int
    dup: DuplicateIndex
    prefs: PreferenceIndex = field(default_factory=PreferenceIndex)
    tasks: TaskSampler = field(default_factory=TaskSampler)
    tok_prompt: list[int] = field(default_factory=list)
    tok_answer: list[int] = field(default_factory=list)
    tok_total: list[int] = field(default_factory=list)
    turns: Counter = field(default_factory=Counter)
    langs: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    knowledge: int = 0
    bigrams: set = field(default_factory=set)
    bigram_total: int = 0

    def add(self, index: int, s: Sample) -> list[Hit]:
        """Account for one valid record; returns the length findings (they need the token counts)."""
        hits = self._tokens(s)
        self.turns[sum(1 for m in s.messages if m.role in ("user", "assistant"))] += 1
        self.langs[answer_language(s) if self.fmt != "text" else detect(s.answer)] += 1
        system = next((m.content for m in s.messages if m.role == "system"), "")
        self.tasks.add(s.instruction, system, tools=s.has_tools, answer=s.answer)
        if s.label is not None:
            self.labels[s.label] += 1
        answer = s.answer
        if not is_structured(answer) and (
                (is_factual_question(s.instruction) and fact_density(answer) >= 3) or asks_about_entity(s.instruction)):
            self.knowledge += 1
        if len(self.bigrams) < 2_000_000:
            units = script_units(answer[:2000])
            self.bigrams.update(map(hash, zip(units, units[1:], strict=False)))  # ints: not tracked by the GC
            self.bigram_total += max(0, len(units) - 1)
        self._duplicates(index, s)
        self.prefs.add(index, s)
        return hits

    def _tokens(self, s: Sample) -> list[Hit]:
        per_msg = [self.count_tokens(m.content) + TEMPLATE_TOKENS_PER_MESSAGE for m in s.messages]
        if s.rejected:
            rejected = sum(self.count_tokens(m.content) + TEMPLATE_TOKENS_PER_MESSAGE for m in s.rejected)
            chosen = sum(per_msg[s.prompt_len:])
            if rejected > chosen:  # the longer side decides whether the pair fits
                per_msg = per_msg[:s.prompt_len] + [rejected]
        last = s.last_assistant()
        a_tok = per_msg[last] if last is not None and last < len(per_msg) else 0
        total = sum(per_msg)
        self.tok_prompt.append(total - a_tok)
        self.tok_answer.append(a_tok)
        self.tok_total.append(total)
        if total <= self.max_seq_len:
            return []
        first_trainable = next((i for i, m in enumerate(s.messages) if m.role == "assistant" and m.trainable), None)
        before = sum(per_msg[:first_trainable]) if first_trainable is not None else total
        if self.fmt != "text" and before >= self.max_seq_len:
            return [("too_long", "error", f"{total} tokens; the first {before} come before any answer, so truncation "
                                          f"at {self.max_seq_len} leaves no trainable tokens")]
        return [("too_long", "warning", f"{total} tokens > --max-seq-len {self.max_seq_len}: truncated")]

    def _duplicates(self, index: int, s: Sample) -> None:
        """Exact key: the whole normalised record (every message, the rejected side, the label). Near-duplicate
        text: the conversation without the system prompt; for alpaca records with a separate input, the input and
        answer only (the instruction there is the task statement shared by many records)."""
        full = "\n".join(f"{m.role}:{m.content}" for m in s.messages)
        if s.rejected is not None:
            full += "\nrejected:" + "\n".join(m.content for m in s.rejected)
        if s.label is not None:
            full += f"\nlabel:{s.label}"
        body = [m.content for m in s.messages if m.role != "system"]
        if self.fmt == "alpaca" and s.instruction and body and body[-2:-1] and \
                body[-2].startswith(s.instruction) and len(body[-2]) > len(s.instruction) + 1:
            body = body[:-2] + [body[-2][len(s.instruction):], body[-1]]
        self.dup.add(index, normalise(full), normalise("\n".join(body)), normalise(s.context), normalise(s.answer),
                     with_prompt=self.fmt != "text" and s.rejected is None and s.label is None)


# ---- the pass --------------------------------------------------------------------------------------------------

def audit_file(path: str | Path, fmt: str = "auto", max_seq_len: int = 2048, model_path: str | None = None,
               near_dup_threshold: float = 0.8, samples: int = 3,
               progress: Callable[[int, int], None] | None = None, tokenizer_path: str | None = None) -> AuditReport:
    path = Path(path)
    detection = open_dataset(path, fmt)
    stats = DatasetStats(detection.format, TokenCounter(model_path, tokenizer_path), max_seq_len,
                         DuplicateIndex(near_dup_threshold))
    acc: dict[tuple[str, str], _Acc] = defaultdict(_Acc)
    lines: dict[int, int] = {}
    n = valid = 0
    size = path.stat().st_size

    def hit(code: str, severity: str, index: int, detail: str, s: Sample | None, raw: object) -> None:
        a = acc[(code, severity)]
        a.records.append(index)
        a.lines.append(lines.get(index, 0))
        if len(a.details) < MAX_LISTED_DETAILS:
            a.details[index] = detail
        if len(a.samples) < samples:
            a.samples.append({"record": index, **_short(s, raw)})

    for rec, s in _samples(path, detection):
        n += 1
        lines[rec.index] = rec.line
        if progress and n % 2000 == 0:
            progress(n, size)
        if s is None:
            code = "invalid_json" if rec.error is not None else "schema"
            detail = rec.error or f"record does not look like `{detection.format}` ({_keys(rec.obj)})"
            hit(code, "error", rec.index, detail, None, rec.error or rec.obj)
            continue
        if s.problems:
            for code, msg in s.problems:
                hit(code, "error", rec.index, msg, s, rec.obj)
            continue
        valid += 1
        for code, sev, detail in record_checks(s, detection.format) + stats.add(rec.index, s):
            hit(code, sev, rec.index, detail, s, rec.obj)
    if progress:
        progress(n, size)
    return assemble_report(path, detection, n, valid, acc, lines, stats, samples)


def _keys(obj: object) -> str:
    return f"keys: {sorted(obj)[:8]}" if isinstance(obj, dict) else type(obj).__name__


def _samples(path: Path, detection: Detection) -> Iterator[tuple[RawRecord, Sample | None]]:
    """Each raw record with its normalised sample (None when it is not JSON or not of the detected format)."""
    fmt = detection.format
    for rec in iter_raw(path, detection.container):
        if rec.error is not None:
            yield rec, None
            continue
        own = detect_format(rec.obj)
        if own is None or (own != fmt and fmt != "text" and not _compatible(own, fmt)):
            yield rec, None
            continue
        yield rec, to_sample(rec.obj, fmt)


def _compatible(own: str, fmt: str) -> bool:
    """A record that reads as another format that `fmt` can still normalise (a sharegpt record with `messages`)."""
    return {own, fmt} <= {"sharegpt", "openai"}


# ---- 4. dataset findings and the report ------------------------------------------------------------------------

def assemble_report(path: Path, detection: Detection, n: int, valid: int, acc: dict, lines: dict[int, int],
                    stats: DatasetStats, samples: int) -> AuditReport:
    cat = catalog()
    findings = _record_findings(acc, cat)
    findings += _duplicate_findings(stats.dup, lines, samples)
    findings += _preference_findings(stats.prefs, lines)
    exact_copies = sum(len(g) - 1 for g in stats.dup.exact.groups())
    near = stats.dup.near_groups()
    examples = max(0, valid - exact_copies)
    estimate = estimate_tasks(stats.tasks, valid)
    knowledge_share = stats.knowledge / valid if valid else 0.0
    content = "knowledge" if knowledge_share >= 0.5 else ("behaviour" if knowledge_share <= 0.2 else "mixed")
    mean_sim = stats.dup.mean_similarity()
    fmt = detection.format
    unique_prompts = len(stats.dup.prompt_first) / valid if valid and fmt != "text" and kind_of(fmt) == "sft" else 1.0
    diversity = {
        "unique_prompt_ratio": round(unique_prompts, 4),
        "near_duplicate_share": round((sum(len(g) for g, _ in near) + exact_copies) / valid, 4) if valid else 0.0,
        "mean_similarity": round(mean_sim, 4),
        "distinct_2gram_answers": round(len(stats.bigrams) / stats.bigram_total, 4) if stats.bigram_total else 0.0,
    }
    low_div = valid >= 20 and (diversity["near_duplicate_share"] >= 0.3 or mean_sim >= 0.5 or unique_prompts < 0.5)
    findings += dataset_findings(examples, valid, estimate, knowledge_share, stats.knowledge, diversity, low_div)
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (order[f.severity], -f.count, f.code))
    return AuditReport(
        path=str(path), format=fmt, records=n, valid_records=valid, findings=findings,
        detection=detection.as_dict(),
        stats={
            "tokens": {"prompt": _pct(stats.tok_prompt), "answer": _pct(stats.tok_answer),
                       "total": _pct(stats.tok_total)},
            "token_counting": stats.count_tokens.how,
            "max_seq_len": stats.max_seq_len,
            "turns": {str(k): v for k, v in sorted(stats.turns.items())},
            "languages": dict(stats.langs.most_common()),
            "task_mix": estimate.mix(),
            "task_clusters": [{"label": c.label, "size": c.size, "share": c.share, "examples": c.examples}
                              for c in estimate.clusters],
            "task_method": estimate.method,
            "histograms": {"prompt": _histogram(stats.tok_prompt), "answer": _histogram(stats.tok_answer)},
            **({"labels": {"desirable": stats.labels[True], "undesirable": stats.labels[False]}}
               if stats.labels else {}),
        },
        signals={
            "examples": examples,
            "estimated_tasks": estimate.tasks,
            "content": content,
            "knowledge_share": round(knowledge_share, 4),
            "diversity": diversity,
            "low_diversity": low_div,
        },
    )


def _pct(values: list[int]) -> dict:
    a = np.asarray(values)
    if a.size == 0:
        return {"p50": 0, "p90": 0, "max": 0, "mean": 0.0}
    return {"p50": int(np.percentile(a, 50)), "p90": int(np.percentile(a, 90)), "max": int(a.max()),
            "mean": round(float(a.mean()), 1)}


def _histogram(values: list[int], bins: int = 24) -> dict:
    """Counts over log-spaced token-length bins (lengths span orders of magnitude)."""
    if not values:
        return {"edges": [], "counts": []}
    a = np.asarray(values)
    hi = max(2, int(a.max()) + 1)
    edges = np.unique(np.geomspace(1, hi, bins + 1).astype(int))
    counts, edges = np.histogram(np.clip(a, 1, None), bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def _record_findings(acc: dict, cat: dict) -> list[Finding]:
    out = []
    for (code, severity), a in acc.items():
        entry = cat.get(code)
        title = entry.title if entry else code
        out.append(Finding(code=code, severity=severity, count=len(a.records), records=a.records,
                           line=a.lines, message=f"{title}: {len(a.records)} record(s)",
                           details=a.details, samples=a.samples))
    return out


def _group_finding(code: str, groups: list[list[int]], lines: dict[int, int], message: str,
                   similarity: list[float] | None = None, samples: int = 3) -> Finding:
    records = sorted(i for g in groups for i in g[1:])
    return Finding(code=code, severity="warning", count=len(records), records=records, groups=groups[:1000],
                   similarity=similarity[:1000] if similarity is not None else None,
                   line=[lines.get(i, 0) for i in records],
                   message=f"{len(records)} record(s) in {len(groups)} group(s): {message}",
                   samples=[{"group": g[:10]} for g in groups[:samples]])


def _duplicate_findings(dup: DuplicateIndex, lines: dict[int, int], samples: int) -> list[Finding]:
    out = []
    exact = sorted(dup.exact.groups())
    if exact:
        out.append(_group_finding("exact_duplicate", exact, lines, "copies of another record (identical after "
                                  "normalising case, spaces and punctuation)", samples=samples))
    near = dup.near_groups()
    if near:
        groups, sims = [g for g, _ in near], [s for _, s in near]
        out.append(_group_finding("near_duplicate", groups, lines, f"near-identical to every other member of their "
                                  f"group (MinHash similarity ≥ {dup.threshold:.0%}; lowest pair {min(sims):.2f})",
                                  sims, samples))
    conflicts = sorted(dup.conflicts.groups())
    if conflicts:
        out.append(_group_finding("conflicting_answers", conflicts, lines, "the same prompt with a different answer",
                                  samples=samples))
    return out


def _preference_findings(prefs: PreferenceIndex, lines: dict[int, int]) -> list[Finding]:
    groups = prefs.contradictions()
    if not groups:
        return []
    return [_group_finding("pair_contradiction", groups, lines, "the same prompt with the opposite preference (or "
                           "the same completion labelled both desirable and undesirable)")]


def dataset_findings(examples: int, valid: int, estimate: TaskEstimate, knowledge_share: float, knowledge: int,
                     diversity: dict, low_div: bool) -> list[Finding]:
    out = []
    if examples < FEW_HARD:
        out.append(Finding(code="too_few_examples", severity="error", count=examples,
                           message=f"{examples} usable examples: below 10 nothing can be tuned (OpenAI's minimum); "
                                   "use them as few-shot examples in a prompt"))
    elif examples < FEW_SOFT:
        out.append(Finding(code="too_few_examples", severity="warning", count=examples,
                           message=f"{examples} usable examples: 50–100 are the least for a clear gain (OpenAI guide); "
                                   "a few dozen suit a few-shot prompt better"))
    if low_div:
        out.append(Finding(code="low_diversity", severity="warning", count=valid,
                           message=f"clustered data: {diversity['near_duplicate_share']:.0%} of records are (near-)copies, "
                                   f"mean similarity {diversity['mean_similarity']:.2f}, unique prompts "
                                   f"{diversity['unique_prompt_ratio']:.0%}: the model will memorise one structure"))
    if estimate.tasks >= 2:
        top = ", ".join(f"{c.label} {c.share:.0%}" for c in estimate.clusters[:8])
        out.append(Finding(code="mixed_tasks", severity="warning", count=estimate.tasks,
                           message=f"about {estimate.tasks} distinct tasks ({top}): one fine-tune, one task; split or "
                                   "balance them",
                           samples=[{"task": c.label, "size": c.size, "examples": c.examples}
                                    for c in estimate.clusters[:8]]))
    if knowledge_share >= 0.5:
        out.append(Finding(code="knowledge_heavy", severity="warning", count=knowledge,
                           message=f"{knowledge_share:.0%} of answers carry facts (factual questions with names and numbers) "
                                   "rather than a pattern: fine-tuning will not reliably store them; use retrieval"))
    return out
