"""The facts a rule may test: the answers the decision uses, plus what the engine derives from them, the audit and
the memory/time estimate. Every name here is documented in `advisor.rules.schema.DERIVED_FACTS`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advisor.answers import Answers, persona_when_unset
from advisor.audit.report import Signals
from advisor.rules.hardware import Fit, fit_methods, model_shape
from advisor.rules.schema import FINE_TUNES, METHODS, finding_facts
from core.methods import NF4_BYTES_PER_PARAM, REGISTRY, offered_only
from core.probe_report import ProbeReport

DEFAULT_SEQ_LEN = 512
DEFAULT_AVG_TOKENS = 512
DEFAULT_INPUT_TOKENS = 100  # without data or an answer: the input a tuned model is still sent (a ticket, a question)
ADAPTER_BYTES_PER_PARAM = 2  # adapters, soft prompts and full copies are stored in 16 bits
MAX_SEQ_LEN = 1_048_576  # the estimate follows the case's length; only absurd answers are capped
# Anthropic, Introducing Contextual Retrieval (2024): a knowledge base under ~200k tokens can go whole into the
# prompt (with prompt caching) instead of building retrieval
PROMPT_KNOWLEDGE_LIMIT = 200_000
# the fewest examples per task a fine-tune is worth running on (the few-examples rule's threshold, OpenAI guide:
# clear gains from 50-100); a budget that trains fewer is too small even for a curated subset
MIN_EXAMPLES_PER_TASK = 50
# s1 (arXiv:2501.19393) and LIMO (arXiv:2502.03387): ~1,000 reasoning traces on a 32B base move reasoning;
# DeepSeek-R1 (arXiv:2501.12948): ~800k distilled traces move it on bases from 1.5B
DISTILL_LARGE_BASE_B = 30.0
DISTILL_SMALL_SET = 800
DISTILL_LARGE_SET = 100_000


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


def epochs_for(examples: int) -> float:
    return 3.0 if examples < 10_000 else 1.0


def training_shape(answers: Answers, signals: Signals | None) -> tuple[int, float, float, str]:
    """(sequence length, mean tokens per example, epochs, where the token counts come from): the answered
    example length, else the audit's 90th percentile, else the answered tuned input length, else 512 assumed."""
    tokens = signals.tokens if signals is not None and signals.tokens.p90_total else None
    if answers.example_tokens is not None:
        raw, avg, source = answers.example_tokens, float(answers.example_tokens), "answered example_tokens"
    elif tokens:
        raw, avg = tokens.p90_total, float(tokens.mean_total)
        source = "the audited data's 90th percentile"
    elif answers.tuned_prompt_tokens is not None:
        raw, avg = answers.tuned_prompt_tokens, float(answers.tuned_prompt_tokens)
        source = "answered tuned_prompt_tokens (the input alone; the answer's tokens not counted)"
    else:
        raw, avg, source = DEFAULT_SEQ_LEN, float(DEFAULT_AVG_TOKENS), "assumed: no example length answered or measured"
    seq_len = max(128, min(MAX_SEQ_LEN, -(-raw // 128) * 128))  # round up to a multiple of 128
    return seq_len, avg, epochs_for(answers.examples), source


def tuned_prompt_tokens(answers: Answers, signals: Signals | None) -> tuple[int, str]:
    if answers.tuned_prompt_tokens is not None:
        return answers.tuned_prompt_tokens, "answered"
    if signals is not None and signals.tokens.mean_prompt:
        return round(signals.tokens.mean_prompt), "the audited data's mean prompt length"
    return (min(answers.prompt_tokens, DEFAULT_INPUT_TOKENS),
            f"assumed: the input alone, {DEFAULT_INPUT_TOKENS} tokens (set tuned_prompt_tokens)")


def variant_mb(fit: Fit, shape) -> float:
    """MB one tuned variant of this method stores and serves (the registry says what is stored)."""
    spec = REGISTRY[fit.method]
    return round(spec.variant_bytes(shape, fit.request, fit.estimate.trainable_params, ADAPTER_BYTES_PER_PARAM) / 1e6, 3)


def budget_examples(examples: int, gpu_hours: float | None, budget: float | None) -> int | None:
    """How many examples the budget trains (at the epochs the subset would get), None without a budget."""
    if budget is None or gpu_hours is None:
        return None
    if gpu_hours <= budget:
        return examples
    per_example_epoch = gpu_hours / (max(examples, 1) * epochs_for(examples))
    n = int(budget / per_example_epoch)  # one epoch each at 10,000 and more
    if n < 10_000:
        n = min(n, int(budget / (per_example_epoch * epochs_for(0))))  # smaller sets get 3 epochs
    return max(0, min(examples, n))


def _fit_facts(fits: dict[str, Fit], answers: Answers, shape) -> dict[str, Any]:
    budget, storage_mb = answers.budget_gpu_hours, answers.storage_per_task_mb
    facts: dict[str, Any] = {}
    least = MIN_EXAMPLES_PER_TASK * max(answers.tasks, 1)
    for m, f in fits.items():
        est = f.estimate
        facts[f"fits_{m}"] = f.fits
        facts[f"tight_{m}"] = f.tight
        facts[f"gpu_hours_{m}"] = est.gpu_hours
        facts[f"train_hours_{m}"] = est.wall_hours
        facts[f"train_time_{m}"] = human_duration(est.wall_hours)
        facts[f"on_cpu_{m}"] = f.request.device == "cpu"
        facts[f"memory_gb_{m}"] = est.total_gb
        facts[f"memory_limit_gb_{m}"] = f.request.gpu_memory_gb
        facts[f"sharded_{m}"] = f.request.sharding != "none" and f.request.gpus > 1
        # a CPU run is held to the budget too (its hours are longer), so more GPU memory never breaks the budget
        facts[f"over_budget_{m}"] = bool(budget is not None and est.gpu_hours is not None and est.gpu_hours > budget)
        n = budget_examples(answers.examples, est.gpu_hours, budget)
        facts[f"budget_examples_{m}"] = n
        facts[f"budget_too_small_{m}"] = bool(facts[f"over_budget_{m}"] and (n or 0) < least)
        facts[f"variant_mb_{m}"] = variant_mb(f, shape)
        facts[f"over_storage_{m}"] = storage_mb is not None and facts[f"variant_mb_{m}"] > storage_mb
    # the methods the advisor decides between (one offered only next to another is not named as an alternative)
    facts["clean_fit_methods"] = ", ".join(
        m for m, f in fits.items() if f.fits and not f.tight and not facts[f"budget_too_small_{m}"]
        and not facts[f"over_storage_{m}"] and not offered_only(m)) or None
    facts["lora_adapter_mb"] = facts["variant_mb_lora"]
    facts["p_tuning_prompt_mb"] = facts["variant_mb_p_tuning"]
    facts["lora_adapter_over_storage"] = facts["over_storage_lora"]
    facts["subset_min_examples"] = least
    return facts


def _context_tokens(answers: Answers) -> int | None:
    """The base model's context window, read from its config when a local model is given."""
    if not answers.model_path:
        return None
    import json
    from pathlib import Path

    try:
        cfg = json.loads((Path(answers.model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cfg = cfg.get("text_config", cfg) if isinstance(cfg, dict) else {}
    n = cfg.get("max_position_embeddings") if isinstance(cfg, dict) else None
    return int(n) if isinstance(n, int) and n > 0 else None


def _goal_facts(answers: Answers) -> dict[str, Any]:
    """What the goal is, in the terms the rules decide on: a persona or a name, a distillation case, the size of
    the knowledge against what a prompt holds."""
    persona = answers.goal == "identity" and (answers.identity_kind == "persona" or (
        answers.identity_kind is None and persona_when_unset(answers.task_type, answers.prompting, answers.examples,
                                                             answers.tasks)))
    distil = (answers.goal == "reasoning" and answers.reasoning_traces
              and ((answers.model_params_b >= DISTILL_LARGE_BASE_B and answers.examples >= DISTILL_SMALL_SET)
                   or answers.examples >= DISTILL_LARGE_SET))
    context = _context_tokens(answers)
    limit = min(PROMPT_KNOWLEDGE_LIMIT, context) if context else PROMPT_KNOWLEDGE_LIMIT
    kt = answers.knowledge_tokens
    names = {"format": "a fixed format", "task": "an input→output mapping", "style": "a voice or tone",
             "domain_language": "a field's phrasing or a language", "identity": "a whole character"}
    if answers.goal != "reasoning":
        note = ""
    elif not answers.reasoning_traces:
        note = " (bare question→answer pairs, not worked reasoning traces)"
    elif not distil:
        note = (f" (worked traces, but {answers.examples:,} of them on a {answers.model_params_b:g}B base: fewer than "
                f"the published cases used for a base of this size)")
    else:
        note = ""
    state = {"works": "prompting already works", "untried": "prompting has not been tried yet",
             "unstable": "prompting is unstable", "plateaued": "prompting has plateaued"}[answers.prompting]
    fresh = answers.knowledge_freshness
    return {"persona": persona, "reasoning_distillation": bool(distil), "reasoning_trace_note": note,
            "freshness_said": ("they do not change" if fresh == "static" else f"they change {fresh}" if fresh
                               else "how often they change is not known"),
            "prompting_state": state, "prompting_state_cap": state[0].upper() + state[1:],
            "behaviour_name": names.get(answers.goal, answers.goal),
            "tune_target": None,  # set once the constraints have run (advisor.recommend.tune_target)
            "variant_unit": "soft prompt" if answers.frozen_base else "adapter",
            **{f"{m}_ruled_out_by": None for m, u in REGISTRY.items() if u.adapters},
            "behaviour_goal": answers.goal in ("format", "task", "style", "domain_language") or persona,
            "context_tokens": context, "prompt_knowledge_limit": limit,
            "knowledge_fits_prompt": kt is not None and kt <= limit,
            "knowledge_over_prompt": kt is not None and kt > limit}


def _audit_facts(signals: Signals | None) -> dict[str, Any]:
    facts: dict[str, Any] = {name: (0.0 if name.endswith("_share") else 0) for name in finding_facts()}
    if signals is None:
        return {**facts, "has_dataset": False, "audit_content": "none", "audit_knowledge_share": None,
                "audit_low_diversity": False, "audit_error_share": None, "audit_records": 0,
                "audit_error_records": 0, "audit_exact_copies": 0, "audit_near_duplicate_share": None,
                "audit_mean_similarity": None, "audit_unique_prompt_ratio": None}
    for code, f in signals.findings.items():
        if f"finding_{code}" in facts:
            facts[f"finding_{code}"], facts[f"finding_{code}_share"] = f.count, f.share
    return {**facts, "has_dataset": True, "audit_content": signals.content,
            "audit_knowledge_share": signals.knowledge_share, "audit_low_diversity": signals.low_diversity,
            "audit_error_share": signals.error_share, "audit_records": signals.records,
            "audit_error_records": signals.error_records, "audit_exact_copies": signals.exact_copies,
            "audit_near_duplicate_share": signals.diversity.near_duplicate_share,
            "audit_mean_similarity": signals.diversity.mean_similarity,
            "audit_unique_prompt_ratio": signals.diversity.unique_prompt_ratio}


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
    saved = max(0, answers.prompt_tokens - tuned)
    facts: dict[str, Any] = answers.model_dump()
    facts.update(
        answered_goal=answered.goal, answered_examples=answered.examples, cpu_only=answers.gpu_count == 0,
        usable_examples=answers.examples, examples_per_task=answers.examples / max(answers.tasks, 1),
        daily_prompt_tokens=answers.requests_per_day * answers.prompt_tokens,
        effective_tuned_prompt_tokens=tuned, prompt_tokens_saved=saved,
        daily_prompt_tokens_saved=answers.requests_per_day * saved,
        prompt_saving_share=round(saved / answers.prompt_tokens, 4) if answers.prompt_tokens else 0.0,
        seq_len=seq_len, seq_len_source=token_source, epochs=epochs,
        merged_model_gb=round(model_shape(answers).params * ADAPTER_BYTES_PER_PARAM / 1e9, 1),
        method=None, chosen_headroom_share=None, chosen_headroom_gb=None, chosen_train_hours=None,
        chosen_train_time=None, chosen_memory_gb=None, chosen_memory_limit_gb=None, chosen_on_cpu=False,
        chosen_over_budget=False, chosen_budget_examples=None, chosen_variant_mb=None, chosen_sharded=False,
        chosen_gpus=None, chosen_offload=False, chosen_tight=False, chosen_allocated_gb=None, chosen_gpu_hours=None, chosen_lora_r=None, chosen_lora_targets=None,
        **{f"feasible_{m}": None for m in METHODS},
        **_fit_facts(fits, answers, model_shape(answers)), **_goal_facts(answers), **_audit_facts(signals),
        **_probe_facts(probe))
    facts["merge_ram_gb"] = round(2 * facts["merged_model_gb"], 1)
    facts["offload_ram_gb"] = round(model_shape(answers).params * NF4_BYTES_PER_PARAM / 1e9, 1)
    assumptions = {"seq_len": seq_len, "avg_tokens_per_example": avg_tokens, "epochs": epochs,
                   "token_source": token_source, "tuned_prompt_tokens": tuned,
                   "tuned_prompt_source": tuned_source}
    return FactSheet(facts, fits, assumptions)


def chosen_facts(sheet: FactSheet, method: str) -> None:
    """Facts about the chosen method, for after-choice rules."""
    f = sheet.facts
    f["method"] = method
    if method in FINE_TUNES:
        fit = sheet.fits[method]
        est = fit.estimate
        f["chosen_headroom_gb"] = round(est.gpu_memory_gb - est.total_gb, 2)
        f["chosen_headroom_share"] = f["chosen_headroom_gb"] / est.gpu_memory_gb if est.gpu_memory_gb else 0.0
        f["chosen_tight"] = fit.tight
        f["chosen_allocated_gb"] = est.allocated_gb
        f["chosen_train_hours"] = est.wall_hours
        f["chosen_train_time"] = human_duration(est.wall_hours)
        f["chosen_memory_gb"] = est.total_gb
        f["chosen_memory_limit_gb"] = est.gpu_memory_gb
        f["chosen_on_cpu"] = fit.request.device == "cpu"
        f["chosen_over_budget"] = f[f"over_budget_{method}"]
        f["chosen_budget_examples"] = f[f"budget_examples_{method}"]
        f["chosen_variant_mb"] = f[f"variant_mb_{method}"]
        f["chosen_sharded"] = f[f"sharded_{method}"]
        f["chosen_offload"] = fit.request.offload_params and f["chosen_sharded"]
        f["chosen_gpus"] = fit.request.gpus
        f["chosen_gpu_hours"] = est.gpu_hours
        f["chosen_lora_r"] = fit.request.lora_r
        targets = list(fit.request.lora_targets)
        f["chosen_lora_targets"] = "all linear layers" if len(targets) >= 7 else ", ".join(targets)
        f["variant_unit"] = REGISTRY[method].variant_unit
