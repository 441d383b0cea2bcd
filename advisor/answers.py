"""The answers file: what a user knows about their task (public contract, YAML or JSON)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Goal = Literal["knowledge", "format", "task", "reasoning", "style", "identity", "domain_language"]
Freshness = Literal["static", "yearly", "monthly", "weekly", "daily"]
Prompting = Literal["untried", "works", "unstable", "plateaued"]
IdentityKind = Literal["name", "persona"]
TaskType = Literal[
    "translation", "rewriting", "extraction", "summarisation", "qa",
    "classification", "generation", "structured_output", "conversation", "other",
]

PERSONA_MIN_EXAMPLES = 500  # per task: a character's dialogues, not a handful of "who are you" pairs


def persona_when_unset(task_type: str | None, prompting: str | None, examples: int, tasks: int) -> bool:
    """What an unset `identity_kind` reads as (the field's documented rule, used by the advisor and as `ask`'s
    default): a persona for in-character dialogues (task_type conversation), or for a character whose prompting
    plateaued with hundreds of examples per task (a name either holds in the system prompt or not; it does not
    plateau)."""
    return task_type == "conversation" or (
        prompting == "plateaued" and examples / max(tasks, 1) >= PERSONA_MIN_EXAMPLES)


GOAL_HELP = {
    "knowledge": "facts the model must know (products, policies, documents)",
    "format": "a fixed output format (strict JSON, a report template)",
    "task": "an input→output mapping (classification, extraction, normalisation)",
    "reasoning": "better multi-step reasoning (maths, logic)",
    "style": "a voice or tone",
    "identity": "a name or persona",
    "domain_language": "a field's phrasing, or a new language",
}


class Answers(BaseModel):
    """Answers that drive `tunewise recommend`. Keys beyond the core ones are optional with neutral defaults."""

    model_config = ConfigDict(extra="forbid")

    goal: Goal = Field(description="what the model must gain")
    knowledge_freshness: Freshness | None = Field(
        None, description="how often the facts change (only with goal `knowledge`)")
    prompting: Prompting = Field(description="how prompting performs today")
    examples: int = Field(ge=0, description="labelled examples available")
    tasks: int = Field(1, ge=1, description="distinct tasks the data covers")
    needs_citations: bool = Field(False, description="answers must cite sources")
    private_data: bool = Field(False, description="data may not leave the user's environment")
    requests_per_day: int = Field(ge=0, description="expected traffic")
    gpu_memory_gb: float = Field(ge=0, description="memory per GPU in GB; 0 = no GPU")
    gpu_count: int = Field(ge=0, description="GPUs available")
    model_params_b: float = Field(gt=0, description="base model size in billions of parameters")
    budget_gpu_hours: float | None = Field(None, ge=0, description="training budget in GPU-hours")
    # optional extensions (defaults keep the core semantics)
    task_type: TaskType = Field("other", description="kind of task, when one dominates")
    prompt_tokens: int = Field(500, ge=0, description="tokens sent per request today (instructions + few-shot)")
    cpu_memory_gb: float = Field(16.0, gt=0, description="host memory for CPU-only training")
    dataset: str | None = Field(None, description="path of the training data, if any (relative to this file's "
                                "folder)")
    model_path: str | None = Field(None, description="local folder of the base model, if any")
    model_name: str | None = Field(None, description="a common open model by name (qwen2.5-7b, "
                                   "Qwen/Qwen2.5-7B-Instruct, llama-3.1-8b, gemma-2-9b, ...): its published shape "
                                   "(vocabulary, layers) is used offline; model_params_b defaults to its size")
    tuned_prompt_tokens: int | None = Field(
        None, ge=0, description="tokens per request after tuning (the input alone, without instructions and "
        "examples); default: the audited data's mean prompt length, else 100 tokens (at most prompt_tokens)")
    tenants: int = Field(1, ge=1, description="customers or products that each need their own tuned variant "
                         "of the same served base model")
    frozen_base: bool = Field(False, description="the served base model is shared and may not change: no merged "
                              "weights and no adapter layers, only per-task inputs")
    storage_per_task_mb: float | None = Field(
        None, gt=0, description="storage allowed per task or tenant variant, in MB (unset: no limit)")
    example_tokens: int | None = Field(
        None, gt=0, description="tokens in one training example (input + answer), a long one (about the 90th "
        "percentile); default: the audited data's 90th percentile, else tuned_prompt_tokens when answered (the "
        "input alone), else 512 assumed")
    knowledge_tokens: int | None = Field(
        None, ge=0, description="size of the knowledge the answers draw on (the documents, manual or knowledge "
        "base), in tokens (unset: unknown)")
    identity_kind: IdentityKind | None = Field(
        None, description="with goal `identity`: `name` (a name or a few facts about the model) or `persona` (a "
        "whole character: voice, manner, history); unset: a persona when task_type is `conversation`, or when "
        "prompting has plateaued with at least 500 examples per task")
    reasoning_traces: bool = Field(
        False, description="with goal `reasoning`: the examples are worked step-by-step solutions (reasoning "
        "traces, e.g. from a stronger reasoning model), not bare question→answer pairs")

    @model_validator(mode="before")
    @classmethod
    def _size_from_name(cls, data):
        """model_name: a known model's size fills model_params_b when it is not given; an unknown name is refused."""
        if isinstance(data, dict) and isinstance(data.get("model_name"), str):
            from core.estimate.shapes import shape_from_name

            shape = shape_from_name(data["model_name"])
            if shape is None:
                from core.estimate.shapes import _close_names

                close = _close_names(data["model_name"])
                raise ValueError(f"`model_name` {data['model_name']!r} is not a model tunewise knows the shape of"
                                 + (f" (did you mean {', '.join(close)}?)" if close else "")
                                 + "; give model_params_b instead, or model_path for a local folder")
            if data.get("model_params_b") is None:
                data = {**data, "model_params_b": round(shape.params / 1e9, 6)}
        return data

    @model_validator(mode="after")
    def _freshness(self) -> Answers:
        if self.goal == "knowledge" and self.knowledge_freshness is None:
            raise ValueError("`knowledge_freshness` is required when goal is `knowledge` "
                             "(static, yearly, monthly, weekly or daily)")
        if (self.gpu_memory_gb == 0) != (self.gpu_count == 0):
            raise ValueError("`gpu_memory_gb` and `gpu_count` must both be 0 (no GPU) or both be above 0")
        return self


def dataset_from_file(dataset: str | None, answers_file: str | Path) -> str | None:
    """An answers file's `dataset` as a path from the working directory: a relative one is read against the
    file's folder (where the person who wrote it was), like every other path a tunewise file holds."""
    if not dataset or Path(dataset).is_absolute() or Path(dataset).expanduser() != Path(dataset):
        return str(Path(dataset).expanduser()) if dataset else dataset
    return os.path.normpath(Path(answers_file).parent / dataset)


def dataset_for_file(dataset: str | None, answers_file: str | Path) -> str | None:
    """The inverse, for writing an answers file: a relative path from the working directory → relative to the
    file's folder (so that reading it back finds the same file)."""
    if not dataset or Path(dataset).is_absolute():
        return dataset
    return os.path.relpath(Path(dataset).resolve(), Path(answers_file).resolve().parent)
