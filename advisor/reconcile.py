"""Answers vs the audited data: where they disagree, the measured value is decided on, and the output says so.

The audit measures what the user could only estimate: usable examples (after error records and exact copies),
the number of tasks, whether the answers carry facts or a pattern, and personal data. Each disagreement becomes a
`Conflict` naming both values and which one the decision used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from advisor.answers import Answers
from advisor.audit.report import Signals
from advisor.rules.schema import BEHAVIOUR_GOALS

if TYPE_CHECKING:
    from core.probe_report import ProbeReport

# goals whose data should be a behaviour mapping; a knowledge-heavy dataset contradicts them (identity data is
# about the model itself and often reads as facts, so it is reported but not overridden)
CONTENT_CHECKED_GOALS = tuple(g for g in BEHAVIOUR_GOALS if g != "identity")
BEHAVIOUR_STAND_IN = "task"  # the goal decided on when a `knowledge` answer meets a behaviour dataset


class Conflict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(description="the answers key the data contradicts")
    answered: Any
    measured: Any
    used: Literal["measured", "answered"] = Field(description="which value the decision used")
    message: str


class DataFacts(BaseModel):
    """How many of the audited records a fine-tune can learn from."""

    model_config = ConfigDict(extra="forbid")
    records: int
    valid_records: int
    error_records: int = Field(description="records with at least one error-level finding")
    exact_copies: int = Field(description="records that repeat an earlier one exactly")
    usable_examples: int = Field(description="valid records, minus those with errors and the exact copies")
    tasks: int = Field(description="tasks found in the data")
    examples_per_task: float


def usable_examples(signals: Signals) -> int:
    if signals.usable_examples is not None:
        return signals.usable_examples
    return max(0, signals.examples - signals.error_records)  # signals from before usable_examples was measured


def data_facts(signals: Signals) -> DataFacts:
    usable, tasks = usable_examples(signals), max(1, signals.estimated_tasks)
    return DataFacts(records=signals.records, valid_records=signals.valid_records,
                     error_records=signals.error_records, exact_copies=signals.exact_copies,
                     usable_examples=usable, tasks=tasks, examples_per_task=round(usable / tasks, 1))


def _examples(answers: Answers, data: DataFacts) -> Conflict | None:
    if data.usable_examples == answers.examples:
        return None
    removed = data.records - data.usable_examples
    how = (f"{data.records:,} records, {removed:,} of them unreadable, with errors or exact copies"
           if removed else f"{data.records:,} records, all usable")
    return Conflict(key="examples", answered=answers.examples, measured=data.usable_examples, used="measured",
                    message=f"You estimated {answers.examples:,} examples; the audit counted {data.usable_examples:,} "
                            f"usable ({how}). Decided on the measured {data.usable_examples:,}.")


def _tasks(answers: Answers, data: DataFacts) -> Conflict | None:
    if data.tasks == answers.tasks:
        return None
    return Conflict(key="tasks", answered=answers.tasks, measured=data.tasks, used="measured",
                    message=f"You declared {answers.tasks} task(s); the audit found {data.tasks} distinct kinds of "
                            f"request in the data. Decided on the measured {data.tasks} "
                            f"({data.examples_per_task:,.0f} usable examples per task).")


def _goal(answers: Answers, signals: Signals) -> Conflict | None:
    share = f"{signals.knowledge_share:.0%} of answers carry facts"
    if answers.goal in CONTENT_CHECKED_GOALS and signals.content == "knowledge":
        return Conflict(key="goal", answered=answers.goal, measured="knowledge", used="measured",
                        message=f"You want `{answers.goal}`, but the data is mostly facts ({share}): it teaches what "
                                "to know, not how to answer. Decided as a knowledge goal.")
    if answers.goal == "knowledge" and signals.content == "behaviour":
        return Conflict(key="goal", answered="knowledge", measured="behaviour", used="measured",
                        message=f"You want `knowledge`, but the data is a behaviour mapping (only {share}). "
                                f"Decided as a behaviour goal (`{BEHAVIOUR_STAND_IN}`).")
    if answers.goal in BEHAVIOUR_GOALS and signals.content in ("knowledge", "mixed"):
        return Conflict(key="goal", answered=answers.goal, measured=signals.content, used="answered",
                        message=f"Part of the data is facts ({share}); kept your goal `{answers.goal}`. Move the "
                                "facts into a retrieval index and tune on the pattern.")
    return None


def _private(answers: Answers, signals: Signals) -> Conflict | None:
    pii = signals.findings.get("pii")
    if answers.private_data or pii is None or pii.count == 0:
        return None
    return Conflict(key="private_data", answered=False, measured=True, used="measured",
                    message=f"You said the data is not private, but the audit found personal data in {pii.count:,} "
                            "records. Decided as private data: keep training and serving in your environment, "
                            "or remove the personal data first.")


def _prompting(answers: Answers, probe: ProbeReport | None) -> Conflict | None:
    """The probe measured what the `prompting` answer guesses: an untried answer takes the measurement; any other
    answer is the user's own knowledge of their prompt and wins, with the disagreement shown."""
    if probe is None or answers.prompting == probe.prompting:
        return None
    measured = f"the probe measured `{probe.prompting}`: {probe.summary} ({probe.rule})"
    if answers.prompting == "untried":
        return Conflict(key="prompting", answered="untried", measured=probe.prompting, used="measured",
                        message=f"You had not tried prompting; {measured}. Decided on the measured "
                                f"`{probe.prompting}`.")
    return Conflict(key="prompting", answered=answers.prompting, measured=probe.prompting, used="answered",
                    message=f"You said prompting is `{answers.prompting}`, but {measured}. Kept your answer (you "
                            "know your own prompt); the probe tried the data's instruction, "
                            f"{probe.shots} examples and reworded instructions on {probe.records} records.")


def reconcile(answers: Answers, signals: Signals | None,
              probe: ProbeReport | None = None) -> tuple[Answers, list[Conflict], DataFacts | None]:
    """The answers the decision uses, the conflicts found on the way, and the data's usable counts."""
    measured_prompting = _prompting(answers, probe)
    if measured_prompting is not None and measured_prompting.used == "measured":
        answers_used = answers.model_copy(update={"prompting": measured_prompting.measured})
    else:
        answers_used = answers
    if signals is None:
        return answers_used, [c for c in (measured_prompting,) if c is not None], None
    decided, conflicts, data = _reconcile_audit(answers_used, signals)
    if measured_prompting is not None:
        conflicts.append(measured_prompting)
    return decided, conflicts, data


def _reconcile_audit(answers: Answers, signals: Signals) -> tuple[Answers, list[Conflict], DataFacts]:
    data = data_facts(signals)
    conflicts = [c for c in (_examples(answers, data), _tasks(answers, data), _goal(answers, signals),
                             _private(answers, signals)) if c is not None]
    update: dict[str, Any] = {"examples": data.usable_examples, "tasks": data.tasks}
    for c in conflicts:
        if c.used != "measured" or c.key in update:
            continue
        if c.key == "goal":
            update["goal"] = "knowledge" if c.measured == "knowledge" else BEHAVIOUR_STAND_IN
        elif c.key == "private_data":
            update["private_data"] = True
    return answers.model_copy(update=update), conflicts, data
