"""What a run hands over (public contracts): the run summary (`summary.json`, `tunewise train --json`), the run
facts the checks before training gather, and the dry run's report (`tunewise train --dry-run --json`). Torch-free;
`tunewise train --print-schema summary` prints the summary's JSON Schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.estimate.memory import MemoryEstimate
from core.eval_report import EvalReport, Scores


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Choice(_Model):
    """A kernel the run chose (loss or attention), and why."""
    name: str = Field(description="loss: plain, chunked, liger or cut_cross_entropy; attention: flash_attention_2, "
                      "sdpa or eager")
    why: str


class CpuKernels(_Model):
    """CPU runs: the layers given the fused LoRA forward and the lane-drawn dropout."""
    fused_lora_layers: int
    cheap_dropouts: int


class DataCacheUse(_Model):
    """Where the encoded records came from (trainer/data_cache.py)."""
    key: str
    hit: bool
    path: str | None = Field(description="None: caching is off (built in a temporary folder, removed at exit)")
    seconds: float = Field(description="seconds to read or encode the records")
    processes: int = Field(description="encoding processes (0 on a hit)")


class EvalEntry(_Model):
    """Base vs tuned on the held-out split after training (the full report: eval.json)."""
    metric: str
    records: int
    base: Scores
    tuned: Scores
    diff: dict[str, float]
    forgetting: bool
    report: str = Field(description="where the full report was written (eval.json)")
    prompting: Scores | None

    @classmethod
    def of(cls, r: EvalReport, report_path: str) -> EvalEntry:
        return cls(metric=r.metric, records=r.records, base=r.base, tuned=r.tuned, diff=r.diff,
                   forgetting=r.forgetting, report=report_path, prompting=r.prompting)


class EvalSkipped(_Model):
    """The evaluation after training could not run (the answers do not fit eval.metric, ...)."""
    skipped: str


# written to the output only where they were set: `eval` when an evaluation ran, `loss_plot` by the run that
# trained (not in summary.json), `already_finished` when --resume found the run ended
SET_ONLY = ("eval", "loss_plot", "already_finished")


class RunSummary(_Model):
    """summary.json: what a run did, written when it ends (finished or interrupted)."""
    method: str
    train_loss_first: float | None
    train_loss_last: float | None
    eval_loss_first: float | None
    eval_loss_last: float | None
    eval_loss_best: float | None
    steps: int = Field(description="optimizer steps done")
    max_steps: int
    epochs: float
    tokens_seen: int = Field(description="input tokens trained on (padding not counted)")
    tokens_per_second: float
    peak_memory_gb: float = Field(description="GPU: peak allocated; CPU: peak resident memory of the process")
    trainable_params: int
    total_params: int
    trainable_share: float | None
    wall_time_s: float = Field(description="training time, summed over the resumed parts of a run")
    device: str = Field(description="cuda or cpu")
    world_size: int = Field(description="training processes")
    stopped_early: bool = Field(description="early stopping ended the run before max_steps")
    interrupted: bool = Field(description="stopped by Ctrl-C / SIGTERM after saving a checkpoint (--resume continues)")
    output_dir: str
    records_train: int
    records_val: int
    skipped: dict[str, int] = Field(description="records skipped, by reason")
    truncated: int = Field(description="records cut at data.max_seq_len")
    estimate_gb: float = Field(description="the memory estimate of the run before it started")
    startup_s: float | None = Field(None, description="process start to the end of the first optimizer step")
    cpu_threads: int | None = None
    cpu_threads_why: str | None = None
    padding_free: bool = False
    cpu_kernels: CpuKernels | None = Field(None, description="CPU runs: layers given the fused LoRA / lane-drawn "
                                           "dropout")
    loss: Choice | None = Field(None, description="which loss ran (chunked, a fused kernel or plain) and why")
    attention: Choice | None = Field(None, description="which attention kernel the model was loaded with and why")
    data_cache: DataCacheUse | None = Field(None, description="key, hit, path, seconds to prepare the records, "
                                            "processes")
    loss_plot: str | None = Field(None, description="`train --json` only: the loss plot the run drew (not in "
                                  "summary.json)")
    eval: EvalEntry | EvalSkipped | None = Field(None, description="base vs tuned after training (eval.enabled), "
                                                 "present when it ran or was skipped")
    already_finished: bool = Field(False, description="`train --resume --json` only: the run had already ended, "
                                   "nothing was trained")

    def _dump(self, leave_out: tuple[str, ...]) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        return {k: v for k, v in d.items() if k not in leave_out
                and (k not in SET_ONLY or k in self.model_fields_set)}

    def file_json(self) -> dict[str, Any]:
        """The content of summary.json (no loss plot, no `already_finished`)."""
        return self._dump(("loss_plot", "already_finished"))

    def output_json(self) -> dict[str, Any]:
        """What `tunewise train --json` prints."""
        return self._dump(())


class CutReplies(_Model):
    records: int
    action: str = Field(description="data.truncated_replies: keep or skip")
    says: str


class TemplateUse(_Model):
    assistant_turns: str = Field(description="how assistant turns were found in the rendered text (trainer/spans.py)")
    system_merged_into_user: int = Field(description="records whose system text opens the first user turn")


class ReasoningReport(_Model):
    mode: str = Field(description="train: the reasoning is trained with its answer; drop: only the answer is")
    records: int
    template_drops_it: int
    says: str


class RunInfo(_Model):
    """What the checks before training found (the dry run's report, and part of the summary)."""
    records_total: int
    records_train: int
    records_val: int
    format: str
    read_as: str
    columns: dict[str, str] | None
    skipped: dict[str, int]
    skipped_says: str | None
    truncated: int
    truncated_replies: CutReplies | None
    estimate_gb: float
    copies: int
    empty_answers: int
    available_gb: float | None = Field(description="memory of the device (None: it cannot be read)")
    device: str
    output_dir: str
    loss: Choice
    attention: Choice
    template: TemplateUse
    reasoning: ReasoningReport | None
    data_cache: DataCacheUse | None


class Sample(_Model):
    """One formatted training record, the trained pieces marked."""
    record: int
    tokens: int
    trained_tokens: int
    marked: str = Field(description="the text with each trained piece between « and »")
    pieces: list[tuple[bool, str]] = Field(default_factory=list, description="(trained, text) runs; not in "
                                            "`--dry-run --json`")


class TrainedSample(_Model):
    record: int
    trained: list[str] = Field(description="the decoded text of every run of loss-bearing tokens")


class DryRunReport(RunInfo):
    """`tunewise train --dry-run`: every check of the real run, the first records as the model sees them, and the
    memory estimate; nothing is trained."""
    dry_run: bool = True
    samples: list[TrainedSample]
    estimate: MemoryEstimate
    sample: Sample

    def output_json(self) -> dict[str, Any]:
        """What `--dry-run --json` prints: `dry_run` first, the sample without its pieces."""
        d = self.model_dump(mode="json", exclude={"sample": {"pieces"}})
        return {"dry_run": d.pop("dry_run"), **d}
