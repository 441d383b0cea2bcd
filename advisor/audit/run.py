"""Run every audit check over a dataset in one streaming pass."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import numpy as np

from advisor.audit.catalog import catalog
from advisor.audit.checks import content_checks, role_checks
from advisor.audit.dedup import DuplicateIndex
from advisor.audit.report import AuditReport, Finding
from advisor.audit.text import (
    approx_tokens,
    asks_about_entity,
    fact_density,
    intent,
    is_factual_question,
    is_structured,
    language,
    normalise,
    script_units,
)
from advisor.data.formats import FORMATS, Sample, detect_format, majority_format
from advisor.data.formats import normalise as to_sample
from advisor.data.reader import iter_raw
from advisor.errors import UserError

TEMPLATE_TOKENS_PER_MESSAGE = 4  # role markers and separators a chat template adds per message
MAX_LISTED_DETAILS = 50
FEW_HARD, FEW_SOFT = 10, 50


class _Acc:
    """Collects the records of one (code, severity)."""

    __slots__ = ("records", "lines", "details", "samples")

    def __init__(self) -> None:
        self.records: list[int] = []
        self.lines: list[int] = []
        self.details: dict[int, str] = {}
        self.samples: list[dict] = []


def _short(s: Sample | None, raw: object, limit: int = 160) -> dict:
    if s is None or not s.messages:
        text = str(raw)
        return {"raw": text[:limit] + ("…" if len(text) > limit else "")}
    out = {}
    for m in s.messages[-3:]:
        c = m.content.replace("\n", " ")
        out[m.role] = c[:limit] + ("…" if len(c) > limit else "")
    return out


class TokenCounter:
    def __init__(self, model_path: str | None) -> None:
        self.tok = None
        self.how = "approximation: 4 ASCII characters or 1 other character per token"
        if model_path:
            path = Path(model_path) / "tokenizer.json"
            if not path.is_file():
                raise UserError(f"--model: no tokenizer.json in `{model_path}` (a fast tokenizer is needed)")
            from tokenizers import Tokenizer  # light (Rust), no torch

            self.tok = Tokenizer.from_file(str(path))
            self.how = f"tokenizer of {model_path}"

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        if self.tok is None:
            return approx_tokens(text)
        return len(self.tok.encode(text, add_special_tokens=False).ids)


def _pct(a: np.ndarray) -> dict:
    if a.size == 0:
        return {"p50": 0, "p90": 0, "max": 0, "mean": 0.0}
    return {"p50": int(np.percentile(a, 50)), "p90": int(np.percentile(a, 90)), "max": int(a.max()),
            "mean": round(float(a.mean()), 1)}


def audit_file(path: str | Path, fmt: str = "auto", max_seq_len: int = 2048, model_path: str | None = None,
               near_dup_threshold: float = 0.8, samples: int = 3,
               progress: Callable[[int, int], None] | None = None) -> AuditReport:
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise UserError(f"--format must be one of auto, {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "auto":
        head = [r.obj for r in islice(iter_raw(path), 200) if r.error is None]
        fmt = majority_format(head) or ""
        if not fmt:
            if not head:
                fmt = "unknown"
            else:
                keys = sorted({k for o in head[:20] if isinstance(o, dict) for k in o})[:12]
                raise UserError(f"{path}: cannot tell the format from the keys {keys}; expected alpaca "
                                "(instruction/output), sharegpt (conversations), openai (messages), "
                                "prompt/completion or text; pass --format")
    count_tokens = TokenCounter(model_path)
    size = path.stat().st_size
    acc: dict[tuple[str, str], _Acc] = defaultdict(_Acc)
    dup = DuplicateIndex(near_dup_threshold)
    lines: dict[int, int] = {}
    tok_prompt: list[int] = []
    tok_answer: list[int] = []
    tok_total: list[int] = []
    turns: Counter = Counter()
    langs: Counter = Counter()
    intents: Counter = Counter()
    instr_counts: Counter = Counter()
    system_counts: Counter = Counter()
    knowledge = 0
    bigrams: set = set()
    bigram_total = 0
    n = valid = 0

    def hit(code: str, severity: str, index: int, detail: str, s: Sample | None, raw: object) -> None:
        a = acc[(code, severity)]
        a.records.append(index)
        a.lines.append(lines.get(index, 0))
        if len(a.details) < MAX_LISTED_DETAILS:
            a.details[index] = detail
        if len(a.samples) < samples:
            a.samples.append({"record": index, **_short(s, raw)})

    for rec in iter_raw(path):
        n += 1
        lines[rec.index] = rec.line
        if progress and n % 2000 == 0:
            progress(n, size)
        if rec.error is not None:
            hit("invalid_json", "error", rec.index, rec.error, None, rec.error)
            continue
        obj = rec.obj
        own = detect_format(obj)
        if own is None or (own != fmt and fmt != "text"):
            keys = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
            hit("schema", "error", rec.index, f"record does not look like `{fmt}` (keys: {keys})", None, obj)
            continue
        s = to_sample(obj, fmt)
        schema_error = False
        for code, msg in s.problems:
            hit(code, "error", rec.index, msg, s, obj)
            schema_error = True
        if schema_error:
            continue
        valid += 1
        for code, sev, detail in role_checks(s, fmt):
            hit(code, sev, rec.index, detail, s, obj)
        prompt, answer = s.prompt, s.answer
        lp, la = language(prompt), language(answer)
        for code, sev, detail in content_checks(s, fmt, lp, la):
            hit(code, sev, rec.index, detail, s, obj)
        # tokens: message contents plus the template's per-message markers
        per_msg = [count_tokens(m.content) + TEMPLATE_TOKENS_PER_MESSAGE for m in s.messages]
        last = s.last_assistant()
        a_tok = per_msg[last] if last is not None else 0
        total = sum(per_msg)
        tok_prompt.append(total - a_tok)
        tok_answer.append(a_tok)
        tok_total.append(total)
        first_trainable = next((i for i, m in enumerate(s.messages) if m.role == "assistant" and m.trainable), None)
        if total > max_seq_len:
            before = sum(per_msg[:first_trainable]) if first_trainable is not None else total
            if fmt != "text" and before >= max_seq_len:
                hit("too_long", "error", rec.index, f"{total} tokens; the first {before} come before any answer, "
                    f"so truncation at {max_seq_len} leaves no trainable tokens", s, obj)
            else:
                hit("too_long", "warning", rec.index, f"{total} tokens > --max-seq-len {max_seq_len}: truncated", s, obj)
        turns[sum(1 for m in s.messages if m.role in ("user", "assistant"))] += 1
        langs[la if la != "und" else lp] += 1
        task_intent = "tool_use" if s.has_tools else intent(s.instruction)
        intents[task_intent] += 1
        system = next((m.content for m in s.messages if m.role == "system"), "")
        skey, ikey = hash(system[:500].strip()), hash(s.instruction[:300].strip().lower())
        system_counts[skey] += 1
        instr_counts[ikey] += 1
        if not is_structured(answer) and (
                (is_factual_question(s.instruction) and fact_density(answer) >= 3) or asks_about_entity(s.instruction)):
            knowledge += 1
        if len(bigrams) < 2_000_000:
            units = script_units(answer[:2000])
            bigrams.update(map(hash, zip(units, units[1:], strict=False)))  # ints: not tracked by the GC
            bigram_total += max(0, len(units) - 1)
        # near-duplicate text: without the system prompt, and without an instruction that is a shared template
        instr_text = s.instruction if instr_counts[ikey] >= 3 else ""
        body = "\n".join(m.content for m in s.messages if m.role != "system")
        if instr_text and body.startswith(instr_text):
            body = body[len(instr_text):]
        norm_prompt = normalise(prompt)  # everything before the last answer
        dup.add(rec.index, normalise(body), norm_prompt, normalise(answer), with_prompt=fmt != "text")
    if progress:
        progress(n, size)

    findings = _record_findings(acc, catalog())
    findings += _duplicate_findings(dup, lines, samples)
    stats_tokens = {"prompt": _pct(np.array(tok_prompt)), "answer": _pct(np.array(tok_answer)),
                    "total": _pct(np.array(tok_total))}
    exact_copies = sum(len(g) - 1 for g in dup.exact.groups())
    near_members = sum(len(g) for g in dup.near.groups())
    examples = max(0, valid - exact_copies)
    tasks, task_mix = _estimate_tasks(valid, intents, system_counts, instr_counts)
    knowledge_share = knowledge / valid if valid else 0.0
    content = "knowledge" if knowledge_share >= 0.5 else ("behaviour" if knowledge_share <= 0.2 else "mixed")
    mean_sim = dup.mean_similarity()
    unique_prompts = len(dup.prompt_first) / valid if valid and fmt != "text" else 1.0
    diversity = {
        "unique_prompt_ratio": round(unique_prompts, 4),
        "near_duplicate_share": round((near_members + exact_copies) / valid, 4) if valid else 0.0,
        "mean_similarity": round(mean_sim, 4),
        "distinct_2gram_answers": round(len(bigrams) / bigram_total, 4) if bigram_total else 0.0,
    }
    low_div = valid >= 20 and (diversity["near_duplicate_share"] >= 0.3 or mean_sim >= 0.5 or unique_prompts < 0.5)
    findings += _dataset_findings(examples, valid, tasks, task_mix, knowledge_share, knowledge, diversity, low_div)
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (order[f.severity], -f.count, f.code))
    return AuditReport(
        path=str(path), format=fmt, records=n, valid_records=valid, findings=findings,
        stats={
            "tokens": stats_tokens,
            "token_counting": count_tokens.how,
            "max_seq_len": max_seq_len,
            "turns": {str(k): v for k, v in sorted(turns.items())},
            "languages": dict(langs.most_common()),
            "task_mix": task_mix,
            "histograms": {"prompt": _histogram(tok_prompt), "answer": _histogram(tok_answer)},
        },
        signals={
            "examples": examples,
            "estimated_tasks": tasks,
            "content": content,
            "knowledge_share": round(knowledge_share, 4),
            "diversity": diversity,
            "low_diversity": low_div,
        },
    )


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


def _duplicate_findings(dup: DuplicateIndex, lines: dict[int, int], samples: int) -> list[Finding]:
    out = []
    for code, uf, severity, what in (
        ("exact_duplicate", dup.exact, "warning", "copies of another record (after normalising case, spaces, punctuation)"),
        ("near_duplicate", dup.near, "warning", "near-identical to another record (MinHash similarity ≥ {t:.0%})"),
        ("conflicting_answers", dup.conflicts, "warning", "the same prompt with a different answer"),
    ):
        groups = uf.groups()
        if not groups:
            continue
        groups.sort(key=lambda g: g[0])
        records = sorted(i for g in groups for i in g[1:])
        out.append(Finding(code=code, severity=severity, count=len(records), records=records,
                           groups=groups[:1000], line=[lines.get(i, 0) for i in records],
                           message=f"{len(records)} record(s) in {len(groups)} group(s): " + what.format(t=dup.threshold),
                           samples=[{"group": g[:10]} for g in groups[:samples]]))
    return out


EMPTY = hash("")


def _estimate_tasks(valid: int, intents: Counter, system_counts: Counter, instr_counts: Counter) -> tuple[int, dict]:
    """Distinct tasks: shared task statements (system prompt or instruction) if the data is templated,
    otherwise the intents of the instructions. Each counts when it covers ≥ 5% and ≥ 3 records."""
    if not valid:
        return 0, {}
    floor = max(3, 0.05 * valid)
    for counts, kind in ((system_counts, "system prompt"), (instr_counts, "instruction")):
        shared = {k: c for k, c in counts.items() if c >= floor and k != EMPTY}
        if sum(shared.values()) >= 0.5 * valid:
            mix = {f"{kind} #{i + 1}": round(c / valid, 4) for i, (_k, c) in
                   enumerate(sorted(shared.items(), key=lambda kv: -kv[1]))}
            return len(shared), mix
    mix = {k: round(c / valid, 4) for k, c in intents.most_common()}
    tasks = sum(1 for k, c in intents.items() if c >= floor and k != "other")
    return max(1, tasks), mix


def _dataset_findings(examples: int, valid: int, tasks: int, task_mix: dict, knowledge_share: float, knowledge: int,
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
    if tasks >= 2:
        top = ", ".join(f"{k} {v:.0%}" for k, v in list(task_mix.items())[:8])
        out.append(Finding(code="mixed_tasks", severity="warning", count=tasks,
                           message=f"about {tasks} distinct tasks ({top}): one fine-tune, one task; split or balance them"))
    if knowledge_share >= 0.5:
        out.append(Finding(code="knowledge_heavy", severity="warning", count=knowledge,
                           message=f"{knowledge_share:.0%} of answers carry facts (factual questions with names and numbers) "
                                   "rather than a pattern: fine-tuning will not reliably store them; use retrieval"))
    return out
