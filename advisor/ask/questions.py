"""The questions: one per answers key, in an order that branches. Each has a one-line 'why' with its source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advisor.answers import GOAL_HELP, persona_when_unset

S3 = "“Fine-tuning in practice: make the model a style master, not a knowledge base”, unsigned blog post"
OPTIONAL_NUMBERS = ("optional_float", "optional_int")  # an empty answer means "not set"


@dataclass
class Question:
    key: str
    text: str
    kind: str  # choice | int | float | bool | path | text | optional_float | optional_int
    why: str
    default: Any = None
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    when: Callable[[dict], bool] = lambda a: True
    minimum: float | None = None
    exclusive_min: bool = False

    def default_for(self, answers: dict) -> Any:
        """The default offered: a value, or one worked out from the answers so far (a callable `default`)."""
        return self.default(answers) if callable(self.default) else self.default


QUESTIONS: list[Question] = [
    Question("goal", "What must the model gain?", "choice",
             f"Fine-tuning teaches behaviour (format, style, mappings), not facts or reasoning ({S3}, core split).",
             default="task", choices=[(k, f"{k} — {v}") for k, v in GOAL_HELP.items()]),
    Question("knowledge_freshness", "How often do those facts change?", "choice",
             f"Changing facts need an index you can update, not a re-train ({S3}, when not to fine-tune #1).",
             default="monthly", choices=[(k, k) for k in ("static", "yearly", "monthly", "weekly", "daily")],
             when=lambda a: a.get("goal") == "knowledge"),
    Question("knowledge_tokens", "About how many tokens is all of that knowledge (the documents or manual; empty = "
             "unknown)?", "optional_int",
             "A knowledge base under ~200k tokens can sit whole in the prompt with caching instead of an index "
             "(Anthropic, Introducing Contextual Retrieval, 2024).", default=None, minimum=0,
             when=lambda a: a.get("goal") == "knowledge"),
    Question("prompting", "How does prompting perform today?", "choice",
             "Fine-tuning is a last resort once instructions and examples are tried "
             "(“Generative AI’s breakthroughs and future, explained”, forum post on Hung-yi Lee’s course, 2025).", default="untried",
             choices=[("untried", "untried — no serious prompt yet"), ("works", "works — output is good"),
                      ("unstable", "unstable — good sometimes, not reliably"),
                      ("plateaued", "plateaued — more prompt work stopped helping")]),
    Question("examples", "How many labelled examples do you have?", "int",
             "Below ~50 examples a few-shot prompt beats a tune; OpenAI's guide needs 10 at least and sees "
             "gains from 50–100.", default=0, minimum=0),
    Question("reasoning_traces", "Are the examples worked step-by-step solutions (reasoning traces), not just "
             "question→answer pairs?", "bool",
             "Distilling ~1,000 reasoning traces moved a 32B model's reasoning (s1, arXiv:2501.19393; LIMO, "
             "arXiv:2502.03387); bare answers rarely do.", default=False,
             when=lambda a: a.get("goal") == "reasoning" and a.get("examples", 0) > 0),
    Question("example_tokens", "About how many tokens is one long training example, input + answer (empty = "
             "assume 512, or audit your data)?", "optional_int",
             "Memory and training time grow with the example length; the estimate is made at this length.",
             default=None, minimum=1,
             when=lambda a: not a.get("dataset") and a.get("examples", 0) >= 50
             and a.get("prompting") in ("unstable", "plateaued") and a.get("goal") != "knowledge"),
    Question("tasks", "How many distinct tasks does the data cover?", "int",
             f"One fine-tune, one task: mixed tasks interfere ({S3}, best practice #6).", default=1, minimum=1),
    Question("task_type", "Which kind of task is it mostly?", "choice",
             f"Translation, rewriting, extraction, Q&A and summaries are things prompting already does well "
             f"({S3}, when not to fine-tune #4).", default="other",
             choices=[(k, k) for k in ("classification", "structured_output", "extraction", "generation",
                                       "conversation", "translation", "rewriting", "summarisation", "qa", "other")],
             when=lambda a: a.get("goal") not in ("knowledge", "reasoning")),
    Question("identity_kind", "Is it a name (or a few facts about the model) or a whole character?", "choice",
             "A name is set by instructions (“Generative AI’s breakthroughs and future, explained”, forum post on Hung-yi Lee’s course, 2025); a whole character whose prompting "
             "plateaued is learned from in-character dialogues (Character-LLM, RoleLLM 2023). The default is what the "
             "advisor reads an unset kind as (asked after the questions that decide it).",
             default=lambda a: "persona" if persona_when_unset(a.get("task_type"), a.get("prompting"),
                                                               a.get("examples", 0), a.get("tasks", 1)) else "name",
             choices=[("name", "name — a name or a few facts about the model"),
                      ("persona", "persona — a whole character: voice, manner, history")],
             when=lambda a: a.get("goal") == "identity"),
    Question("needs_citations", "Must answers cite their sources?", "bool",
             f"Only retrieval can point at the document a fact came from ({S3}: fine-tuning teaches behaviour, "
             "retrieval keeps knowledge citable).", default=False),
    Question("private_data", "May the data never leave your environment?", "bool",
             "Private data favours training and retrieval on your own hardware "
             "(“AI: another look at model fine-tuning”, unsigned blog post, privacy).", default=False),
    Question("requests_per_day", "How many requests per day do you expect?", "int",
             "At high volume a long prompt is paid on every call; a tune can shorten it "
             "(“AI: another look at model fine-tuning”, unsigned blog post, cost).", default=1000, minimum=0),
    Question("prompt_tokens", "About how many tokens is your prompt today (instructions + examples)?", "int",
             "Traffic × prompt length is the cost a fine-tune can save.", default=500, minimum=0,
             when=lambda a: a.get("requests_per_day", 0) >= 10_000),
    Question("tuned_prompt_tokens", "After tuning, about how many tokens would a request still need (the input "
             "alone; empty = estimate)?", "optional_int",
             "The saving of a tune is requests × (today's prompt − the tuned prompt) (“AI: another look at model fine-tuning”, unsigned blog post, "
             "cost).", default=None, minimum=0,
             when=lambda a: a.get("prompting") == "works" and a.get("requests_per_day", 0) >= 10_000),
    Question("gpu_count", "How many GPUs can you train on? (0 = none)", "int",
             "What fits decides between full, LoRA and QLoRA (tunewise estimate).", default=0, minimum=0),
    Question("gpu_memory_gb", "Memory per GPU in GB?", "float",
             "QLoRA fits models about 4× larger than LoRA in the same memory (Dettmers et al. 2023).",
             default=24.0, minimum=0, exclusive_min=True, when=lambda a: a.get("gpu_count", 0) > 0),
    Question("cpu_memory_gb", "Host memory (RAM) in GB for training on the CPU?", "float",
             "Without a GPU the run must fit in RAM, and the estimate says how many hours it takes.",
             default=16.0, minimum=0, exclusive_min=True, when=lambda a: a.get("gpu_count", 0) == 0),
    Question("model_path", "Local folder of the base model, or its name (qwen2.5-7b, llama-3.1-8b, gemma-2-9b; empty "
             "if you have none yet)", "path",
             "With a local model tunewise counts its parameters exactly and writes it into train.yaml; a known "
             "model's name gives its published shape (vocabulary, layers), offline.",
             default=""),
    Question("model_params_b", "Base model size in billions of parameters?", "float",
             "Memory grows with model size: 2 bytes per parameter for a 16-bit base, 16 for full training.",
             default=7.0, minimum=0, exclusive_min=True, when=lambda a: not a.get("model_path")),
    Question("budget_gpu_hours", "Training budget in GPU-hours (empty = not fixed)", "optional_float",
             "A full fine-tune is only worth it with a big budget (“AI: another look at model fine-tuning”, unsigned blog post).",
             default=None, minimum=0),
    Question("tenants", "How many customers or products each need their own tuned variant of this model?", "int",
             "Many variants of one large frozen model is where soft prompts (P-tuning) shine "
             "(Lester et al. 2021, arXiv:2104.08691).", default=1, minimum=1,
             when=lambda a: a.get("tasks", 1) >= 2 or (a.get("model_params_b") or 0) >= 10),
    Question("frozen_base", "Must the served base model stay unchanged (no merged weights, no adapter layers)?",
             "bool", "Then only a soft prompt can change its behaviour (“AI: another look at model fine-tuning”, unsigned blog post, P-tuning).",
             default=False, when=lambda a: a.get("tasks", 1) >= 2 or a.get("tenants", 1) >= 2),
    Question("storage_per_task_mb", "Storage allowed per variant in MB (empty = no limit)", "optional_float",
             "A LoRA adapter is tens to hundreds of MB; a soft prompt well under 1 MB (Lester et al. 2021).",
             default=None, minimum=0, exclusive_min=True,
             when=lambda a: a.get("tasks", 1) >= 2 or a.get("tenants", 1) >= 2),
]


def parse(q: Question, text: str) -> Any:
    """Turn typed text into a value, or raise ValueError with the reason (shown before re-asking)."""
    t = text.strip()
    if q.kind == "choice":
        values = [v for v, _ in q.choices]
        if t.isdigit() and 1 <= int(t) <= len(values):
            return values[int(t) - 1]
        if t in values:
            return t
        raise ValueError(f"choose one of: {', '.join(values)} (or its number)")
    if q.kind == "bool":
        if t.lower() in ("y", "yes", "true", "1"):
            return True
        if t.lower() in ("n", "no", "false", "0"):
            return False
        raise ValueError("answer y or n")
    if q.kind == "text":
        return t
    if q.kind == "path":
        from pathlib import Path

        if t and not (Path(t).expanduser() / "config.json").is_file():
            from core.estimate.shapes import shape_from_name

            if shape_from_name(t) is not None:
                return t  # a known model's name (moved to model_name once the questions are answered)
            raise ValueError(f"no config.json in `{t}`, and not a model name tunewise knows; give a local model "
                             "folder, a name such as qwen2.5-7b, or leave it empty")
        return str(Path(t).expanduser()) if t else ""
    if q.kind in OPTIONAL_NUMBERS and not t:
        return None
    try:
        whole = q.kind in ("int", "optional_int")
        v = int(t.replace(",", "").replace("_", "")) if whole else float(t)
    except ValueError:
        raise ValueError(f"expected {'a whole number' if whole else 'a number'}, got {t!r}") from None
    if q.minimum is not None and (v < q.minimum or (q.exclusive_min and v == q.minimum)):
        raise ValueError(f"must be {'>' if q.exclusive_min else '>='} {q.minimum:g}")
    return v


def show_default(q: Question) -> str:
    if q.default is None or q.default == "":
        return ""
    if q.kind == "bool":
        return "y" if q.default else "n"
    return str(q.default)
