"""Stage 3 of the audit, in the parent process: add up each record's facts, in record order. Record findings are
collected per (code, variant); duplicates, conflicts, contradicting preferences, tokens, languages, tasks and
diversity are accumulated for the dataset-level checks (dataset_checks.py)."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable

import numpy as np

from advisor.audit.catalog import catalog
from advisor.audit.dedup import DuplicateIndex, sorted_distinct
from advisor.audit.record import FactsBatch
from advisor.audit.report import Finding
from advisor.audit.tasks import TaskSampler

MAX_LISTED_DETAILS = 50
MAX_BIGRAMS = 2_000_000


class RecordFindings:
    """The records of each (code, variant), with their lines, the first details and a few shortened samples."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.by_key: dict[tuple[str, str | None], _Acc] = {}

    def add(self, batch: FactsBatch) -> None:
        """A record counts once per (code, variant): a preference pair whose chosen and rejected sides both have a
        finding is one record, its details joined."""
        for index, line, found, shown in batch.found:
            details: dict[tuple[str, str | None], str] = {}
            for code, variant, detail in found:
                k = (code, variant)
                details[k] = f"{details[k]}; {detail}" if k in details else detail
            for k, detail in details.items():
                a = self.by_key.get(k)
                if a is None:
                    a = self.by_key[k] = _Acc()
                a.records.append(index)
                a.lines.append(line)
                if len(a.details) < MAX_LISTED_DETAILS:
                    a.details[index] = detail
                if len(a.samples) < self.samples and shown is not None:
                    a.samples.append({"record": index, **shown})

    def findings(self) -> list[Finding]:
        """One finding per (code, severity): variants of the same severity are merged, in record order."""
        cat = catalog()
        merged: dict[tuple[str, str], _Acc] = {}
        for (code, variant), a in sorted(self.by_key.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            sev = cat[code].severity_of(variant)
            into = merged.setdefault((code, sev), _Acc())
            into.extend(a, self.samples)
        out = []
        for (code, sev), a in merged.items():
            first: dict[int, int] = {}  # a record in two variants of one severity counts once
            for i, r in enumerate(a.records):
                first.setdefault(r, i)
            order = sorted(first.values(), key=a.records.__getitem__)
            records = [a.records[i] for i in order]
            out.append(Finding(code=code, severity=sev, count=len(records), records=records,
                               line=[a.lines[i] for i in order],
                               message=f"{cat[code].title}: {len(records)} record(s)",
                               details=dict(sorted(a.details.items())[:MAX_LISTED_DETAILS]),
                               samples=list({s["record"]: s for s in sorted(
                                   a.samples, key=lambda s: s["record"])}.values())[:self.samples]))
        return out


class _Acc:
    __slots__ = ("records", "lines", "details", "samples")

    def __init__(self) -> None:
        self.records: list[int] = []
        self.lines: list[int] = []
        self.details: dict[int, str] = {}
        self.samples: list[dict] = []

    def extend(self, other: _Acc, samples: int) -> None:
        self.records += other.records
        self.lines += other.lines
        self.details.update(other.details)
        self.samples += other.samples


class PreferenceIndex:
    """Contradicting preferences: the same prompt with A preferred over B in one record and B over A in another
    (pairs), or the same prompt and completion labelled both desirable and undesirable (KTO)."""

    def __init__(self) -> None:
        self.first: dict[int, tuple[int, int]] = {}
        self.groups: dict[int, list[int]] = {}

    def add(self, index: int, judged: int, verdict: int) -> None:
        seen = self.first.setdefault(judged, (index, verdict))
        if seen[0] != index and seen[1] != verdict:
            self.groups.setdefault(seen[0], [seen[0]]).append(index)

    def contradictions(self) -> list[list[int]]:
        return sorted(self.groups.values())


class DatasetStats:
    """What the pass accumulates over the valid records."""

    def __init__(self, fmt: str, max_seq_len: int, threshold: float, token_counting: str) -> None:
        self.fmt, self.max_seq_len, self.token_counting = fmt, max_seq_len, token_counting
        self.records = self.valid = 0
        self.lines = array("q")  # line of each record index
        self.dup = DuplicateIndex(threshold)
        self.prefs = PreferenceIndex()
        self.tasks = TaskSampler()
        self.tok_prompt, self.tok_answer, self.tok_total = array("q"), array("q"), array("q")
        self.turns: Counter = Counter()
        self.langs: Counter = Counter()
        self.labels: Counter = Counter()
        self.knowledge = 0
        self.bigram_blocks: list[np.ndarray] = []
        self.bigram_total = 0

    def add(self, b: FactsBatch) -> None:
        """Add a batch of records' facts (in record order)."""
        self.records += len(b)
        self.lines.frombytes(b.line.astype(np.int64).tobytes())
        n = len(b.valid_index)
        if not n:
            return
        self.valid += n
        for column, values in ((self.tok_prompt, b.tokens[:, 0]), (self.tok_answer, b.tokens[:, 1]),
                               (self.tok_total, b.tokens[:, 2])):
            column.frombytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())
        self.turns.update(b.turns)
        self.langs.update(b.language)
        self.labels.update(x for x in b.label if x is not None)
        self.knowledge += b.knowledge
        self.tasks.add_batch(b.system_key, b.instruction_key, b.intent, b.head, b.answer_shape)
        self.dup.add_batch(b.valid_index, b.exact, b.prompt, b.answer, b.signatures, b.wording, b.numbers, b.result)
        for index, judged, verdict in b.preference:
            self.prefs.add(index, judged, verdict)
        for bigrams in b.bigrams:
            if self.bigram_total < MAX_BIGRAMS:
                self.bigram_blocks.append(bigrams)
                self.bigram_total += len(bigrams)

    def finish(self, map_blocks: Callable = map) -> None:
        self.dup.finish(map_blocks)

    def distinct_bigrams(self) -> float:
        if not self.bigram_total:
            return 0.0
        return len(sorted_distinct(np.concatenate(self.bigram_blocks))) / self.bigram_total

    def line_of(self, index: int) -> int:
        return self.lines[index] if 0 <= index < len(self.lines) else 0
