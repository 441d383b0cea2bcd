"""The device, precision, kernels and memory of a run, checked before any weight is loaded: a run that would not
fit (unless --force) or could not write its output folder stops here. What the checks found is the RunInfo the dry
run reports and the summary repeats."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from core.estimate.memory import MemoryEstimate
from core.train_config import TrainConfig
from trainer.run_report import Choice, CutReplies, DataCacheUse, ReasoningReport, RunInfo, TemplateUse


@dataclass
class Resources:
    device: str  # cuda or cpu
    plan: object  # trainer.model.PrecisionPlan
    estimate: MemoryEstimate
    loss: object  # trainer.loss.LossPlan (the loaded model may still turn it to plain)
    attention: object  # trainer.model.AttentionPlan
    info: RunInfo


def sharded_weights(cfg: TrainConfig) -> bool:
    """FSDP / ZeRO-3 on several processes: the weights live in shards outside the model's forward pass."""
    return cfg.distributed.world_size > 1 and cfg.distributed.strategy in ("fsdp", "deepspeed_zero3")


def check_resources(cfg: TrainConfig, prepared, force: bool) -> Resources:
    """Refuses a run that would not fit (unless --force) or could not write its output folder."""
    from trainer.loss import choose_loss, head_ok_from_config
    from trainer.model import choose_attention, device_kind, read_model_config, resolve_precision
    from trainer.preflight import available_memory_gb, check_memory, check_output_dir, memory_estimate

    device = device_kind()
    plan = resolve_precision(cfg, device)
    model_cfg = read_model_config(cfg.model.path)  # checked by check_model_folder before
    attention = choose_attention(cfg.training.attention, device, plan, model_cfg)
    loss = choose_loss(cfg.training.loss, device, sharded_weights(cfg), head_ok_from_config(model_cfg))
    avail, dev = available_memory_gb()
    est, req, shape = memory_estimate(cfg, prepared, device, plan.name, avail, loss=loss.estimate_loss,
                                      attention=attention.estimate_attention)
    check_memory(est, req, shape, avail, dev, force)
    check_output_dir(Path(cfg.output.dir))
    check_eval_files(cfg)
    info = run_info(cfg, prepared, est, avail, dev, Choice(**loss.as_dict()), Choice(**attention.as_dict()))
    return Resources(device, plan, est, loss, attention, info)


def check_eval_files(cfg: TrainConfig) -> None:
    """The files the evaluation after training reads, checked before training."""
    if not cfg.eval.enabled:
        return
    from trainer.evaluate import general_texts
    from trainer.replies import load_schema

    load_schema(cfg.eval.json_schema)
    if cfg.eval.general_text:
        general_texts(cfg.eval.general_text)


def run_info(cfg: TrainConfig, prepared, est: MemoryEstimate, avail: float, dev: str, loss: Choice,
             attention: Choice) -> RunInfo:
    from trainer.preflight import skipped_counts

    r = prepared.reasoning
    return RunInfo(
        records_total=prepared.total, records_train=len(prepared.train), records_val=len(prepared.val),
        format=prepared.fmt, read_as=prepared.read_as, columns=prepared.columns,
        skipped={k: len(v) for k, v in prepared.skipped.items()},
        skipped_says=skipped_counts(prepared) if prepared.skipped else None,
        truncated=prepared.truncated, truncated_replies=cut_replies(prepared, cfg.data),
        estimate_gb=est.total_gb, copies=prepared.copies, empty_answers=len(prepared.empty_answers),
        available_gb=round(avail, 2) if math.isfinite(avail) else None, device=dev,
        output_dir=cfg.output.dir, loss=loss, attention=attention,
        template=TemplateUse(assistant_turns=prepared.template_mode, system_merged_into_user=prepared.system_merged),
        reasoning=None if r is None else ReasoningReport(**dataclasses.asdict(r), says=r.describe()),
        data_cache=DataCacheUse(**dataclasses.asdict(prepared.cache)) if prepared.cache else None)


def cut_replies(prepared, d) -> CutReplies | None:
    """Records cut at max_seq_len inside a trained reply: the reply trains without its end token, so the model
    learns not to stop; what data.truncated_replies did with them."""
    n = prepared.cut_replies
    if not n:
        return None
    done = ("skipped" if d.truncated_replies == "skip" else
            "kept: their replies train without an end token (data.truncated_replies: skip drops them)")
    return CutReplies(records=n, action=d.truncated_replies,
                      says=f"{n} record(s) are cut at data.max_seq_len {d.max_seq_len} inside a reply; {done}; or "
                           "raise data.max_seq_len")
