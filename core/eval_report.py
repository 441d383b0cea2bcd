"""The eval report (public contract: `eval.json`, `tunewise eval --json`). Torch-free."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scores(_Model):
    """One model's numbers on the same records and text."""
    answer_loss: float | None = Field(description="mean cross-entropy per answer token on the held-out records")
    metrics: dict[str, float] = Field(description="the task metric's numbers, each 0-1 (exact_match always)")
    general_loss: float | None = Field(description="mean loss per token on general text (the forgetting check)")


class Example(_Model):
    record: int = Field(description="record index in the test data")
    prompt: str = Field(description="the last user message")
    expected: str
    base: str = Field(description="the base model's greedy answer")
    tuned: str = Field(description="the tuned model's greedy answer")
    base_score: float
    tuned_score: float


class EvalReport(_Model):
    run_dir: str
    method: str
    base_model: str
    data: str = Field(description="the test records: a file, or the run's held-out split")
    records: int = Field(description="records evaluated")
    metric: str = Field(description="exact_match, json, classification or chrf")
    metric_why: str
    general_text: str = Field(description="the general text of the forgetting check")
    base: Scores
    tuned: Scores
    diff: dict[str, float] = Field(description="tuned minus base, for answer_loss, general_loss and each metric")
    forgetting: bool = Field(description="general-text loss rose by more than 5% relative")
    regressions: list[Example] = Field(description="records where the tuned answer scores lowest against the base's")
    wins: list[Example] = Field(description="records where the tuned answer gains most")
    prompting: Scores | None = Field(None, description="the base model prompted with the best prompting baseline "
                                     "(k worked examples from the training side; the probe's best instruction when "
                                     "--probe is given): the question 'was fine-tuning worth it?' (losses: none)")
    prompting_prompt: str | None = Field(None, description="the prompt of the prompting baseline")
    diff_prompting: dict[str, float] = Field(default_factory=dict,
                                             description="tuned minus the prompting baseline, per metric")
    plot: str | None = None
    report: str | None = Field(None, description="where this report was written: eval.json for the run's held-out "
                               "split, eval-NAME.json beside it for --data NAME.jsonl (never over another's)")
    wall_time_s: float
