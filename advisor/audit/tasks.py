"""How many distinct tasks a dataset mixes.

1. Shared task statements: one system prompt or one instruction repeated over most records (any language).
2. Task templates, in any language: TF-IDF over character n-grams of the instruction head, then average-linkage
   agglomerative clustering with a cosine-distance cut (scipy, imported here only, so the advisor starts
   without it). A cluster is a task when its members state the task the same way (distance < DISTANCE_CUT) and it
   holds ≥ MIN_SHARE of the records; the templates decide when such clusters cover ≥ half of the records.
3. Free-form instructions (general instruction data such as alpaca) have no templates: their task intents
   (translation, summarisation, code, ...: advisor/audit/intents.py, cues in 17 languages) count them.
Each cluster is reported with its size, share and two example instructions."""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from advisor.audit.intents import languages as intent_languages
from advisor.audit.text import key
from advisor.audit.tfidf import char_tfidf

HEAD_CHARS = 48  # the instruction head: where the task is stated ("Translate…", "Fasse … zusammen")
SAMPLE = 2000  # instruction heads kept (fixed-seed reservoir) for clustering: O(n²) memory in the linkage
MIN_RECORDS = 20  # below this, no clustering
DISTANCE_CUT = 0.5  # average cosine distance inside a task cluster; measured: planted tasks 0.2-0.4, free-form 0.8+
MIN_SHARE = 0.05  # a cluster is a task when it holds ≥ 5% of the records (and ≥ 3)
TEMPLATE_COVERAGE = 0.5  # templates decide when their clusters cover at least this share
SAME_ANSWERS = 0.8  # clusters whose answers look alike (cosine of answer-head centroids) are one task stated
# in several ways (greetings, phrasings), not several tasks
_WORDS = re.compile(r"\w+", re.UNICODE)


@dataclass
class TaskCluster:
    label: str
    size: int
    share: float
    examples: list[str]


@dataclass
class TaskEstimate:
    tasks: int
    method: str
    clusters: list[TaskCluster] = field(default_factory=list)

    def mix(self) -> dict[str, float]:
        return {c.label: c.share for c in self.clusters}


class TaskSampler:
    """Collects instruction heads as records stream by (a fixed-seed reservoir: the same file, the same sample),
    the keys of system prompts and instructions (counted at the end) and each record's task intent."""

    def __init__(self, seed: int = 0) -> None:
        from advisor.audit.dedup import _Column

        self.heads: list[str] = []
        self.full: list[str] = []
        self.answers: list[str] = []
        self.tags: list[tuple] = []  # each sampled row's (system key, instruction key, intent): clusters' examples
        self.seen = 0
        self.rng = random.Random(seed)
        self.system_keys = _Column(np.uint64)
        self.instruction_keys = _Column(np.uint64)
        self.intents: Counter = Counter()

    def add_batch(self, system_keys, instruction_keys, intents: list[str], heads: list[str],
                  shapes: list[str]) -> None:
        """Columns of consecutive records. `heads`: each instruction's first 100 characters, whitespace collapsed;
        `shapes`: each answer's first HEAD_CHARS characters; keys: advisor.audit.text.key of the stripped system
        prompt and instruction."""
        self.system_keys.extend(system_keys)
        self.instruction_keys.extend(instruction_keys)
        self.intents.update(intents)
        for row in zip(heads, shapes, system_keys, instruction_keys, intents, strict=True):
            self._sample(*row)

    def _sample(self, head: str, answer_shape: str, system_key, instruction_key, intent: str) -> None:
        self.seen += 1
        tag = (system_key, instruction_key, intent)
        if len(self.heads) < SAMPLE:
            self.heads.append(head[:HEAD_CHARS])
            self.full.append(head)
            self.answers.append(answer_shape)
            self.tags.append(tag)
        else:
            j = self.rng.randrange(self.seen)
            if j < SAMPLE:
                self.heads[j], self.full[j], self.answers[j] = head[:HEAD_CHARS], head, answer_shape
                self.tags[j] = tag

    def examples(self, which: int, value) -> list[str]:
        """Two distinct sampled instructions whose tag `which` (0 system key, 1 instruction key, 2 intent) is
        `value`."""
        return list(dict.fromkeys(h for h, t in zip(self.full, self.tags, strict=True) if t[which] == value))[:2]

    def counts(self, which: str) -> dict[int, int]:
        keys = (self.system_keys if which == "system" else self.instruction_keys).array()
        values, counts = np.unique(keys, return_counts=True)
        return dict(zip(values.tolist(), counts.tolist(), strict=True))


EMPTY = key("")


def estimate_tasks(sampler: TaskSampler, valid: int) -> TaskEstimate:
    if not valid:
        return TaskEstimate(0, "no valid records")
    shared = _shared_statements(sampler, valid)
    if shared is not None:
        return shared
    if valid < MIN_RECORDS:
        return _intents(sampler, valid, f"fewer than {MIN_RECORDS} records: task intents")
    templates = _templates(sampler)
    if templates is not None:
        return templates
    return _intents(sampler, valid, "free-form instructions (no shared task templates): task intents in "
                                    f"{len(intent_languages())} languages")


def _shared_statements(sampler: TaskSampler, valid: int) -> TaskEstimate | None:
    floor = max(3, MIN_SHARE * valid)
    for which, kind in (("system", "system prompt"), ("instruction", "instruction")):
        shared = {k: c for k, c in sampler.counts(which).items() if c >= floor and k != EMPTY}
        if sum(shared.values()) >= 0.5 * valid:
            which_tag = 0 if which == "system" else 1
            clusters = [TaskCluster(f"{kind} #{i + 1}", c, round(c / valid, 4), sampler.examples(which_tag, k))
                        for i, (k, c) in enumerate(sorted(shared.items(), key=lambda kv: -kv[1]))]
            return TaskEstimate(len(shared), f"shared {kind}s (each on ≥ {MIN_SHARE:.0%} of records)", clusters)
    return None


def load_clustering() -> None:
    """Import the clustering `estimate_tasks` uses (0.2-0.3 s, scipy.cluster), imported where it is used so that an
    audit that never clusters, and every other command, starts without it. A parallel audit calls this in its main
    process while the workers read the records: the task estimate, forked after the pass, then starts with it
    instead of importing it while the duplicate stage takes both cores."""
    import scipy.cluster.hierarchy  # noqa: F401
    import scipy.spatial.distance  # noqa: F401


def _templates(sampler: TaskSampler) -> TaskEstimate | None:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    heads = sampler.heads
    try:
        x = char_tfidf(heads, min_df=2)
    except ValueError:  # empty vocabulary: instructions too short or all different characters
        return None
    keep = np.flatnonzero(x.getnnz(axis=1) > 0)
    if len(keep) < MIN_RECORDS:
        return None
    rows = x[keep]  # rows are L2-normalised: cosine distance is 1 - the dot product (sparse, fast)
    dist = np.clip(1.0 - (rows @ rows.T).toarray(), 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")  # UPGMA, as AgglomerativeClustering(average)
    labels = fcluster(tree, t=DISTANCE_CUT, criterion="distance")
    n = len(heads)
    groups: dict[int, list[int]] = {}
    for row, lab in zip(keep, labels, strict=True):
        groups.setdefault(int(lab), []).append(int(row))
    big = _merge_same_answers(sampler, [g for g in groups.values() if len(g) >= max(3, MIN_SHARE * n)])
    covered = sum(map(len, big)) / n
    if len(big) < 2 or covered < TEMPLATE_COVERAGE:
        if len(big) == 1 and covered >= TEMPLATE_COVERAGE:
            return TaskEstimate(1, "one task template covers most instructions", _clusters(sampler, big, n))
        return None
    return TaskEstimate(len(big), f"task templates: character n-grams of the first {HEAD_CHARS} characters, "
                                  f"clusters within cosine distance {DISTANCE_CUT} covering {covered:.0%}",
                        _clusters(sampler, big, n))


def _merge_same_answers(sampler: TaskSampler, groups: list[list[int]]) -> list[list[int]]:
    """Clusters of instructions whose answers have the same form (all JSON tickets, all one-word labels) are one
    task whose instructions start differently; merge them."""
    if len(groups) < 2:
        return groups
    rows = [r for g in groups for r in g]
    try:
        x = char_tfidf([sampler.answers[r] for r in rows])
    except ValueError:
        return groups
    starts = np.cumsum([0] + [len(g) for g in groups])
    cents = np.vstack([np.asarray(x[a:b].mean(axis=0)) for a, b in zip(starts, starts[1:], strict=False)])
    cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    sim = cents @ cents.T
    parent = list(range(len(groups)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            if sim[i, j] >= SAME_ANSWERS:
                parent[find(j)] = find(i)
    merged: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        merged.setdefault(find(i), []).extend(g)
    return list(merged.values())


def _clusters(sampler: TaskSampler, groups: list[list[int]], n: int) -> list[TaskCluster]:
    out: list[TaskCluster] = []
    for rows in sorted(groups, key=len, reverse=True):
        lead = Counter(" ".join(_WORDS.findall(sampler.heads[r])[:3]) for r in rows).most_common(1)[0][0] or "(empty)"
        label = lead if all(c.label != lead for c in out) else f"{lead} ({len(out) + 1})"
        examples = list(dict.fromkeys(sampler.full[r] for r in rows))[:2]
        out.append(TaskCluster(label, len(rows), round(len(rows) / n, 4), examples))
    return out


def _intents(sampler: TaskSampler, valid: int, method: str) -> TaskEstimate:
    floor = max(3, MIN_SHARE * valid)
    clusters = [TaskCluster(k, c, round(c / valid, 4), sampler.examples(2, k)) for k, c in sampler.intents.most_common()]
    tasks = sum(1 for c in clusters if c.size >= floor and c.label != "other")
    return TaskEstimate(max(1, tasks), method, clusters)
