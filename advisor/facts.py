"""The facts a rule may test: the answers the decision uses, plus what the engine derives from them, the audit and
the memory/time estimate. Every name here is documented in `advisor.rules.schema.DERIVED_FACTS`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advisor.answers import Answers
from advisor.audit.report import Signals
from advisor.probe import ProbeReport
from advisor.rules.hardware import Fit, fit_methods
from advisor.rules.schema import FINE_TUNES, METHODS, finding_facts

DEFAULT_SEQ_LEN = 512
DEFAULT_AVG_TOKENS = 512
DEFAULT_INPUT_TOKENS = 100  # without data or an answer: the input a tuned model is still sent (a ticket, a question)
ADAPTER_BYTES_PER_PARAM = 2  # adapters and soft prompts are stored in 16 bits


@dataclass
class FactSheet:
    facts: dict[str, Any]
    fits: dict[str, Fit]
    assumptions: dict[str, Any]


def human_duration(hours: float | None) -> str | None:
    """3 minutes, 19 hours, 8.4 days: an estimate said the way a person would plan with it."""
    if hours is None:
        return None
    if hours < 1:
        minutes = max(1, round(hours * 60))
        return f"{minutes} minute" + ("s" if minutes > 1 else "")
    if hours < 48:
        return f"{hours:,.1f} hours"
    return f"{hours / 24:,.1f} days"


def training_shape(answers: Answers, signals: Signals | None) -> tuple[int, float, float, str]:
    """(sequence length, mean tokens per example, epochs, where the token counts come from)."""
    tokens = signals.tokens if signals is not None and signals.tokens.p90_total else None
    seq_len = tokens.p90_total if tokens else DEFAULT_SEQ_LEN
    seq_len = max(128, min(8192, -(-seq_len // 128) * 128))  # round up to a multiple of 128
    avg_tokens = float(tokens.mean_total) if tokens else float(DEFAULT_AVG_TOKENS)
    epochs = 3.0 if answers.examples < 10_000 else 1.0
    source = "dataset audit" if tokens else f"assumed {DEFAULT_SEQ_LEN} tokens per example"
    return seq_len, avg_tokens, epochs, source


def tuned_prompt_tokens(answers: Answers, signals: Signals | None) -> tuple[int, str]:
    if answers.tuned_prompt_tokens is not None:
        return answers.tuned_prompt_tokens, "answered"
    if signals is not None and signals.tokens.mean_prompt:
        return round(signals.tokens.mean_prompt), "the audited data's mean prompt length"
    return (min(answers.prompt_tokens, DEFAULT_INPUT_TOKENS),
            f"assumed: the input alone, {DEFAULT_INPUT_TOKENS} tokens (set tuned_prompt_tokens)")


def _fit_facts(fits: dict[str, Fit], budget: float | None, storage_mb: float | None) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for m, f in fits.items():
        est = f.estimate
        facts[f"fits_{m}"] = f.fits
        facts[f"gpu_hours_{m}"] = est.gpu_hours
        facts[f"train_hours_{m}"] = est.wall_hours
        facts[f"train_time_{m}"] = human_duration(est.wall_hours)
        facts[f"on_cpu_{m}"] = f.request.device == "cpu"
        facts[f"memory_gb_{m}"] = est.total_gb
        facts[f"memory_limit_gb_{m}"] = f.request.gpu_memory_gb
        # a CPU run is held to the budget too (its hours are longer), so more GPU memory never breaks the budget
        facts[f"over_budget_{m}"] = bool(budget is not None and est.gpu_hours is not None and est.gpu_hours > budget)
    lora, prompt = fits["lora"].estimate, fits["p_tuning"].estimate
    facts["lora_adapter_mb"] = round(lora.trainable_params * ADAPTER_BYTES_PER_PARAM / 1e6, 3)
    facts["p_tuning_prompt_mb"] = round(prompt.trainable_params * ADAPTER_BYTES_PER_PARAM / 1e6, 3)
    facts["lora_adapter_over_storage"] = storage_mb is not None and facts["lora_adapter_mb"] > storage_mb
    return facts


def _audit_facts(signals: Signals | None) -> dict[str, Any]:
    facts: dict[str, Any] = {name: (0.0 if name.endswith("_share") else 0) for name in finding_facts()}
    if signals is None:
        return {**facts, "has_dataset": False, "audit_content": "none", "audit_knowledge_share": None,
                "audit_low_diversity": False, "audit_error_share": None, "audit_records": 0,
                "audit_error_records": 0, "audit_exact_copies": 0, "audit_near_duplicate_share": None}
    for code, f in signals.findings.items():
        if f"finding_{code}" in facts:
            facts[f"finding_{code}"], facts[f"finding_{code}_share"] = f.count, f.share
    return {**facts, "has_dataset": True, "audit_content": signals.content,
            "audit_knowledge_share": signals.knowledge_share, "audit_low_diversity": signals.low_diversity,
            "audit_error_share": signals.error_share, "audit_records": signals.records,
            "audit_error_records": signals.error_records, "audit_exact_copies": signals.exact_copies,
            "audit_near_duplicate_share": signals.diversity.near_duplicate_share}


def _probe_facts(probe: ProbeReport | None) -> dict[str, Any]:
    if probe is None:
        return {"prompting_measured": None, "probe_best_score": None, "probe_spread": None, "probe_best": None}
    return {"prompting_measured": probe.prompting, "probe_best_score": probe.variant(probe.best).score,
            "probe_spread": probe.spread, "probe_best": probe.best}


def compute_facts(answers: Answers, answered: Answers, signals: Signals | None,
                  probe: ProbeReport | None = None) -> FactSheet:
    """`answers` are the ones decided on (after the audit and the probe), `answered` the user's own."""
    seq_len, avg_tokens, epochs, token_source = training_shape(answers, signals)
    fits = fit_methods(answers, seq_len, max(answers.examples, 1), avg_tokens, epochs)
    tuned, tuned_source = tuned_prompt_tokens(answers, signals)
    facts: dict[str, Any] = answers.model_dump()
    facts.update(
        answered_goal=answered.goal, answered_examples=answered.examples, cpu_only=answers.gpu_count == 0,
        usable_examples=answers.examples, examples_per_task=answers.examples / max(answers.tasks, 1),
        daily_prompt_tokens=answers.requests_per_day * answers.prompt_tokens,
        effective_tuned_prompt_tokens=tuned,
        daily_prompt_tokens_saved=answers.requests_per_day * max(0, answers.prompt_tokens - tuned),
        method=None, chosen_headroom_share=None, chosen_train_hours=None, chosen_train_time=None, chosen_memory_gb=None,
        chosen_on_cpu=False,
        **{f"feasible_{m}": None for m in METHODS},
        **_fit_facts(fits, answers.budget_gpu_hours, answers.storage_per_task_mb), **_audit_facts(signals),
        **_probe_facts(probe))
    assumptions = {"seq_len": seq_len, "avg_tokens_per_example": avg_tokens, "epochs": epochs,
                   "token_source": token_source, "tuned_prompt_tokens": tuned,
                   "tuned_prompt_source": tuned_source}
    return FactSheet(facts, fits, assumptions)


def chosen_facts(sheet: FactSheet, method: str) -> None:
    """Facts about the chosen method, for after-choice rules."""
    sheet.facts["method"] = method
    if method in FINE_TUNES:
        est = sheet.fits[method].estimate
        sheet.facts["chosen_headroom_share"] = est.headroom_gb / est.gpu_memory_gb if est.gpu_memory_gb else 0.0
        sheet.facts["chosen_train_hours"] = est.wall_hours
        sheet.facts["chosen_train_time"] = human_duration(est.wall_hours)
        sheet.facts["chosen_memory_gb"] = est.total_gb
        sheet.facts["chosen_on_cpu"] = sheet.fits[method].request.device == "cpu"
