"""The rule file format (one pydantic model per concern) and the facts a condition may name."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.conditions import (  # noqa: F401 - the condition language rules are written in (named here as before)
    COMBINATORS,
    FORMATTER,
    OPERATORS,
    check_condition,
    matches,
    placeholders,
    render_text,
)
from core.methods import REGISTRY, decision_methods

# every name comes from the method registry (core/methods.py): prompting, RAG and the registered fine-tunes
METHODS: tuple[str, ...] = decision_methods()  # tie-break: cheapest first (prompting, rag, lora, qlora, p_tuning, full)
FINE_TUNES: tuple[str, ...] = tuple(REGISTRY)  # full, lora, qlora, p_tuning (registry order)
MethodName = Literal[METHODS]

BEHAVIOUR_GOALS: tuple[str, ...] = ("format", "task", "style", "domain_language", "identity")
Stage = Literal["constraint", "decisive", "preference", "note", "after_choice"]
STAGE_HELP = {
    "constraint": "hard limits (veto): memory, budget, time, data minimum, policy; a vetoed method is ruled out",
    "decisive": "in order of `precedence` (lowest first), the first that fires with a possible method decides the "
                "candidates; later ones may only narrow them further",
    "preference": "scores that only break ties among the candidates the decisive rules left",
    "note": "warnings and next steps that do not change the ranking",
    "after_choice": "warnings and next steps that depend on the chosen method",
}


def _catalogue_codes() -> list[str]:
    from advisor.audit.catalog import catalog

    return sorted(catalog())


# Facts a `when` condition (or a {placeholder} in a text) may name: every answers key (as used for the decision,
# after the audit's measured values replaced the answered ones), plus derived facts computed by the engine.
DERIVED_FACTS: dict[str, str] = {
    "has_dataset": "a dataset was audited and its signals are in use",
    "cpu_only": "no GPU (gpu_count is 0)",
    "answered_goal": "the goal as answered (`goal` is the one decided on, after the audit)",
    "answered_examples": "the number of examples as answered",
    "usable_examples": "examples a fine-tune can learn from: measured after errors and exact copies, or as answered",
    "examples_per_task": "usable examples / tasks",
    "daily_prompt_tokens": "requests_per_day × prompt_tokens",
    "effective_tuned_prompt_tokens": "tokens per request after tuning (answered, else the data's mean prompt, "
                                     "else 100 tokens (at most prompt_tokens))",
    "daily_prompt_tokens_saved": "requests_per_day × (prompt_tokens − tuned prompt tokens): what tuning saves",
    "audit_records": "records in the audited file",
    "audit_error_records": "records with at least one error-level finding",
    "audit_exact_copies": "records that are exact copies of an earlier one",
    "audit_content": "knowledge | behaviour | mixed (from the dataset audit), none without one",
    "audit_knowledge_share": "share of records whose answers carry facts rather than a pattern",
    "audit_low_diversity": "the audit found clustered, near-identical data",
    "audit_error_share": "share of records with error-level findings",
    "audit_near_duplicate_share": "share of records that are exact or near copies of another",
    "audit_mean_similarity": "mean similarity between records (the audit's diversity signal)",
    "audit_unique_prompt_ratio": "share of distinct prompts among the records",
    "freshness_said": "how often the facts change, in words",
    "lora_adapter_mb": "size of one LoRA adapter of the configuration that fits, in MB (= variant_mb_lora)",
    "lora_adapter_over_storage": "storage_per_task_mb is set and one LoRA adapter is larger (= over_storage_lora)",
    "p_tuning_prompt_mb": "size of one stored P-tuning soft prompt (virtual tokens × hidden × 2 bytes), in MB",
    "prompt_tokens_saved": "prompt_tokens − tuned prompt tokens: what tuning saves on one request",
    "prompt_saving_share": "prompt_tokens_saved / prompt_tokens: the share of each request's prompt tuning saves",
    "seq_len": "tokens per training example the estimates use (answered example_tokens, else the audit's 90th "
               "percentile, else answered tuned_prompt_tokens, else 512), rounded up to 128",
    "seq_len_source": "where seq_len comes from, in words",
    "epochs": "passes over the data the estimates assume (3 below 10,000 examples, else 1)",
    "merged_model_gb": "size of the base model in 16 bits, GB (what a merged model takes)",
    "merge_ram_gb": "host RAM `tunewise merge` needs (the 16-bit model merged, then reloaded to check it), GB",
    "subset_min_examples": "the fewest examples a budget must train for a curated subset to be worth it (50 per task)",
    "prompting_state": "how prompting performs, in words (prompting already works, has plateaued ...)",
    "prompting_state_cap": "the same, capitalised",
    "persona": "goal identity with a whole character (identity_kind persona; unset: task_type conversation, or "
               "prompting plateaued with ≥ 500 examples per task)",
    "behaviour_goal": "goal format, task, style or domain_language, or a persona",
    "behaviour_name": "the behaviour the goal names, in words",
    "tune_target": "where a tune can put the behaviour, in words, naming only the fine-tunes the constraints left "
                   "(decisive and later rules only)",
    "variant_unit": "what one tuned variant is, in words (adapter, soft prompt, tuned copy)",
    "reasoning_distillation": "goal reasoning with worked traces: ≥ 800 on a base of ≥ 30B, or ≥ 100,000 on any",
    "reasoning_trace_note": "what the reasoning data is, in words (empty when it is a distillation case)",
    "context_tokens": "the base model's context window from its config (model_path), else unknown",
    "prompt_knowledge_limit": "tokens of knowledge a prompt holds whole: 200,000 (Anthropic), or the context window",
    "knowledge_fits_prompt": "knowledge_tokens is set and within prompt_knowledge_limit",
    "knowledge_over_prompt": "knowledge_tokens is set and above prompt_knowledge_limit",
    **{f"{m}_ruled_out_by": f"the constraint rules that ruled {u.title} out, in words (decisive and later rules "
       "only)" for m, u in REGISTRY.items() if u.adapters},
    "chosen_headroom_gb": "GB left free by the chosen fine-tune (after_choice rules only)",
    "chosen_memory_limit_gb": "memory the chosen fine-tune was checked against, GB (after_choice rules only)",
    "chosen_gpu_hours": "estimated GPU-hours of the chosen fine-tune on the whole set (after_choice rules only)",
    "chosen_over_budget": "the chosen fine-tune's whole set is over the budget (after_choice rules only)",
    "chosen_budget_examples": "examples the budget trains with the chosen method (after_choice rules only)",
    "chosen_variant_mb": "MB one variant of the chosen method stores (after_choice rules only)",
    "chosen_sharded": "the chosen fine-tune fits only sharded over the GPUs (after_choice rules only)",
    "clean_fit_methods": "fine-tunes whose configuration fits the memory cleanly (not tight), within budget and "
                         "storage, in words; unknown when none does",
    "chosen_tight": "the chosen fine-tune is a tight last resort (after_choice rules only)",
    "chosen_allocated_gb": "allocated peak of the chosen fine-tune, GB (after_choice rules only)",
    "chosen_offload": "the chosen fine-tune fits only with its weight shards offloaded to host RAM (after_choice rules only)",
    "offload_ram_gb": "GB of 4-bit weights a sharded QLoRA run offloads to host RAM",
    "chosen_gpus": "GPUs the chosen fine-tune's estimate uses (after_choice rules only)",
    "memory_device": "where the chosen fine-tune's memory is counted, in words (the panel's memory line)",
    "chosen_lora_r": "LoRA rank of the chosen adapter configuration (after_choice rules only)",
    "chosen_lora_targets": "the chosen adapter's target layers, in words (after_choice rules only)",
    "prompting_measured": "works, unstable or plateaued, as `tunewise probe` measured it (unknown without a probe)",
    "probe_best_score": "the probe's best prompt's headline score, 0-1 (unknown without a probe)",
    "probe_spread": "the probe's spread of scores across instruction wordings, 0-1 (unknown without a probe)",
    "probe_best": "the name of the probe's best prompt (zero-shot, few-shot or a rewording)",
    "method": "the chosen method (only in rules with `after_choice: true`)",
    "chosen_headroom_share": "free share of memory for the chosen method (after_choice rules only)",
    "chosen_train_hours": "estimated wall-clock hours of the chosen fine-tune (after_choice rules only)",
    "chosen_train_time": "the same, said as minutes, hours or days (after_choice rules only)",
    "chosen_memory_gb": "estimated memory of the chosen fine-tune in GB (after_choice rules only)",
    "chosen_on_cpu": "the chosen fine-tune trains on the CPU (after_choice rules only)",
    **{f"fits_{m}": f"a standard {m} configuration fits the memory (GPU, or host RAM without a GPU)"
       for m in FINE_TUNES},
    **{f"gpu_hours_{m}": f"estimated GPU-hours of the {m} run (CPU hours when it trains on the CPU)" for m in FINE_TUNES},
    **{f"train_hours_{m}": f"estimated wall-clock hours of the {m} run (CPU hours on the CPU)" for m in FINE_TUNES},
    **{f"train_time_{m}": f"the {m} run's wall-clock time, said as minutes, hours or days" for m in FINE_TUNES},
    **{f"on_cpu_{m}": f"the {m} run would train on the CPU" for m in FINE_TUNES},
    **{f"memory_gb_{m}": f"estimated memory of the {m} run in GB" for m in FINE_TUNES},
    **{f"memory_limit_gb_{m}": f"memory of the device the {m} estimate was checked against, in GB"
       for m in FINE_TUNES},
    **{f"over_budget_{m}": f"the {m} run needs more hours (GPU-hours, or CPU hours) than budget_gpu_hours" for m in FINE_TUNES},
    **{f"tight_{m}": f"no {m} configuration fits the expected reading; one runs only if the allocator gives "
       "back its reserve (one GPU): a last resort" for m in FINE_TUNES},
    **{f"budget_examples_{m}": f"examples the budget trains with {m} (all when within budget; unknown without one)"
       for m in FINE_TUNES},
    **{f"budget_too_small_{m}": f"over budget, and the budget trains fewer than subset_min_examples with {m}"
       for m in FINE_TUNES},
    **{f"variant_mb_{m}": f"MB one {m} variant stores and serves (the method registry: full copy, adapter or "
       "virtual tokens × hidden)" for m in FINE_TUNES},
    **{f"over_storage_{m}": f"storage_per_task_mb is set and one {m} variant is larger" for m in FINE_TUNES},
    **{f"sharded_{m}": f"the {m} configuration that fits is sharded over several GPUs" for m in FINE_TUNES},
    **{f"feasible_{m}": f"{m} survived the constraints (decisive, preference and after-choice rules only)"
       for m in METHODS},
}


def finding_facts() -> dict[str, str]:
    """`finding_CODE` (records) and `finding_CODE_share` for every audit finding in the catalogue."""
    out: dict[str, str] = {}
    for code in _catalogue_codes():
        out[f"finding_{code}"] = f"records with the audit finding `{code}` (0 without a dataset)"
        out[f"finding_{code}_share"] = f"share of records with the audit finding `{code}`"
    return out


class WarningSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    message: str


class Effect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decide: list[MethodName] = Field(default_factory=list, description="decisive rules: the methods to choose from")
    veto: list[MethodName] = []
    score: dict[MethodName, float] = {}
    warn: WarningSpec | None = None
    next_step: str | None = None
    advises: list[MethodName] = Field(default_factory=list, description="methods the warning or next step tells "
                                      "the user to use (checked: each must be possible for the case)")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    when: dict[str, Any] = Field(default_factory=dict, description="condition over facts; empty = always")
    effect: Effect
    rationale: str = Field(min_length=10)
    source: str = Field(min_length=3)
    after_choice: bool = False
    precedence: int | None = Field(None, ge=0, description="decisive rules: lower is considered first")
    example: dict[str, Any] = Field(default_factory=dict, description="answers overrides that make the rule fire")
    counter_example: dict[str, Any] | None = Field(None, description="answers overrides that must not fire it")

    @field_validator("effect")
    @classmethod
    def _not_empty(cls, v: Effect) -> Effect:
        if not (v.decide or v.veto or v.score or v.warn or v.next_step):
            raise ValueError("effect does nothing: give decide, veto, score, warn or next_step")
        if v.decide and (v.veto or v.score):
            raise ValueError("a decisive rule (`decide`) cannot also veto or score: split it into two rules")
        return v

    @model_validator(mode="after")
    def _stage_fields(self) -> Rule:
        if self.effect.decide and self.precedence is None:
            raise ValueError("a rule with `decide` needs a `precedence` (lower is considered first, e.g. 10–100)")
        if self.precedence is not None and not self.effect.decide:
            raise ValueError("`precedence` orders decisive rules only: add `effect.decide` or remove `precedence`")
        if self.after_choice and (self.effect.decide or self.effect.veto or self.effect.score):
            raise ValueError("an `after_choice` rule runs once the method is chosen: it may only warn or add a "
                             "next step")
        return self

    @property
    def stage(self) -> str:
        if self.after_choice:
            return "after_choice"
        if self.effect.decide:
            return "decisive"
        if self.effect.veto and not self.effect.score:
            return "constraint"
        return "preference" if self.effect.score else "note"

    def texts(self) -> list[str]:
        """Every text that may name facts as {placeholders}."""
        return [t for t in (self.rationale, self.effect.warn.message if self.effect.warn else None,
                            self.effect.next_step) if t]


def fact_names() -> set[str]:
    from advisor.answers import Answers

    return set(Answers.model_fields) | set(DERIVED_FACTS) | set(finding_facts())


def check_texts(rule: Rule, known: set[str]) -> list[str]:
    import difflib

    problems = []
    for text in rule.texts():
        try:
            names = placeholders(text)
        except ValueError as e:
            problems.append(f"text `{text[:40]}…`: {e} (write a literal brace as {{{{ or }}}})")
            continue
        for name in names:
            if name not in known:
                hint = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                problems.append(f"text placeholder {{{name}}} is not a fact" + (f", did you mean `{hint[0]}`?" if hint else ""))
    return problems


SLUG = re.compile(r"[^a-z0-9]+")
