"""Stage 4 of the audit: findings about the dataset as a whole (duplicates, conflicts, contradicting preferences,
size, diversity, task mixture, knowledge-heavy content). One function per code, registered with
`@dataset_check(code)`; each reads a `DatasetView` and returns its findings. Severities come from the catalogue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from advisor.audit.catalog import catalog
from advisor.audit.report import Diversity, Finding
from advisor.audit.stats import DatasetStats
from advisor.audit.tasks import TaskEstimate

FEW_HARD, FEW_SOFT = 10, 50  # usable examples: below 10 nothing can be tuned, below 50 little gain (OpenAI guide)
KNOWLEDGE_HEAVY = 0.5  # share of answers that carry facts
BEHAVIOUR_AT_MOST = 0.2  # at or below this share the content is behaviour
LOW_DIVERSITY_MIN_RECORDS = 20
LOW_DIVERSITY_COPIES = 0.3  # share of records that are (near-)copies
LOW_DIVERSITY_SIMILARITY = 0.5  # mean MinHash similarity of random pairs
LOW_DIVERSITY_UNIQUE_PROMPTS = 0.5
MAX_GROUPS_LISTED = 1000

DatasetCheck = Callable[["DatasetView"], list[Finding]]
DATASET_CHECKS: dict[str, DatasetCheck] = {}


def dataset_check(code: str) -> Callable[[DatasetCheck], DatasetCheck]:
    def register(fn: DatasetCheck) -> DatasetCheck:
        DATASET_CHECKS[code] = fn
        return fn
    return register


@dataclass
class DatasetView:
    stats: DatasetStats
    tasks: TaskEstimate
    examples: int  # valid records minus exact copies
    exact_copies: int
    near: list[tuple[list[int], float]]
    diversity: Diversity
    samples: int
    usable: int = 0  # valid records without error-level findings, minus exact copies (set once records are checked)

    @property
    def knowledge_share(self) -> float:
        return self.stats.knowledge / self.stats.valid if self.stats.valid else 0.0

    @property
    def low_diversity(self) -> bool:
        d = self.diversity
        return self.stats.valid >= LOW_DIVERSITY_MIN_RECORDS and (
            d.near_duplicate_share >= LOW_DIVERSITY_COPIES or d.mean_similarity >= LOW_DIVERSITY_SIMILARITY
            or d.unique_prompt_ratio < LOW_DIVERSITY_UNIQUE_PROMPTS)

    def finding(self, code: str, count: int, message: str, variant: str | None = None, **extra) -> Finding:
        return Finding(code=code, severity=catalog()[code].severity_of(variant), count=count, message=message, **extra)

    def groups(self, code: str, groups: list[list[int]], message: str,
               similarity: list[float] | None = None) -> list[Finding]:
        """A finding over groups of records: every member after the first is counted and listed."""
        if not groups:
            return []
        records = sorted(i for g in groups for i in g[1:])
        return [self.finding(code, len(records), f"{len(records)} record(s) in {len(groups)} group(s): {message}",
                             records=records, groups=groups[:MAX_GROUPS_LISTED],
                             similarity=similarity[:MAX_GROUPS_LISTED] if similarity is not None else None,
                             line=[self.stats.line_of(i) for i in records],
                             samples=[{"group": g[:10]} for g in groups[:self.samples]])]


@dataset_check("exact_duplicate")
def exact_duplicate(v: DatasetView) -> list[Finding]:
    return v.groups("exact_duplicate", sorted(v.stats.dup.exact.groups()),
                    "copies of another record (identical after normalising case, spaces and punctuation)")


@dataset_check("near_duplicate")
def near_duplicate(v: DatasetView) -> list[Finding]:
    if not v.near:
        return []
    groups, sims = [g for g, _ in v.near], [s for _, s in v.near]
    return v.groups("near_duplicate", groups, f"near-identical to every other member of their group (MinHash "
                    f"similarity ≥ {v.stats.dup.threshold:.0%}; lowest pair {min(sims):.2f})", sims)


@dataset_check("conflicting_answers")
def conflicting_answers(v: DatasetView) -> list[Finding]:
    return v.groups("conflicting_answers", sorted(v.stats.dup.conflicts.groups()),
                    "the same prompt with a different answer")


@dataset_check("pair_contradiction")
def pair_contradiction(v: DatasetView) -> list[Finding]:
    return v.groups("pair_contradiction", v.stats.prefs.contradictions(), "the same prompt with the opposite "
                    "preference (or the same completion labelled both desirable and undesirable)")


@dataset_check("too_few_examples")
def too_few_examples(v: DatasetView) -> list[Finding]:
    n = v.usable
    if n < FEW_HARD:
        return [v.finding("too_few_examples", n, f"{n} usable examples: below {FEW_HARD} nothing can be tuned "
                          "(OpenAI's minimum); use them as few-shot examples in a prompt", variant="below_minimum")]
    if n < FEW_SOFT:
        return [v.finding("too_few_examples", n, f"{n} usable examples: 50–100 are the least for a clear gain "
                          "(OpenAI guide); a few dozen suit a few-shot prompt better")]
    return []


@dataset_check("low_diversity")
def low_diversity(v: DatasetView) -> list[Finding]:
    if not v.low_diversity:
        return []
    d = v.diversity
    return [v.finding("low_diversity", v.stats.valid, f"clustered data: {d.near_duplicate_share:.0%} of records are "
                      f"(near-)copies, mean similarity {d.mean_similarity:.2f}, unique prompts "
                      f"{d.unique_prompt_ratio:.0%}: the model will memorise one structure")]


@dataset_check("mixed_tasks")
def mixed_tasks(v: DatasetView) -> list[Finding]:
    est = v.tasks
    if est.tasks < 2:
        return []
    top = ", ".join(f"{c.label} {c.share:.0%}" for c in est.clusters[:8])
    return [v.finding("mixed_tasks", est.tasks, f"about {est.tasks} distinct tasks ({top}): one fine-tune, one task; "
                      "split or balance them",
                      samples=[{"task": c.label, "size": c.size, "examples": c.examples} for c in est.clusters[:8]])]


@dataset_check("knowledge_heavy")
def knowledge_heavy(v: DatasetView) -> list[Finding]:
    share = v.knowledge_share
    if share < KNOWLEDGE_HEAVY:
        return []
    return [v.finding("knowledge_heavy", v.stats.knowledge, f"{share:.0%} of answers carry facts (factual questions "
                      "with names and numbers) rather than a pattern: fine-tuning will not reliably store them; use "
                      "retrieval")]
