"""Turn a fine-tune recommendation into a training config the trainer runs as it is."""

from __future__ import annotations

from pathlib import Path

from advisor.answers import Answers
from advisor.recommend import Recommendation
from advisor.rules.hardware import model_shape
from core.estimate import estimate
from core.methods import is_fine_tune, method
from core.train_config import (
    DataSection,
    DistributedSection,
    ModelSection,
    OutputSection,
    TrainConfig,
    TrainingSection,
)

EFFECTIVE_BATCH = 16
MODEL_PLACEHOLDER = "SET-ME/local-model-folder"


def build_config(rec: Recommendation, answers: Answers, data_path: str | None, model_path: str | None,
                 output_dir: str = "runs/tunewise") -> TrainConfig:
    m = rec.method
    if not is_fine_tune(m):
        raise ValueError(f"`{m}` is not a fine-tune; there is no training config to write")
    base = rec.estimate[m].request  # the configuration that was estimated
    spec = method(m)
    section = spec.config_section(base)  # validated as the config's method section below
    # largest per-device batch (≤ 16) that the estimate says fits; accumulate the rest
    shape = model_shape(answers)
    batch, checkpointing = 1, True
    for b, gc in ((b, gc) for b in (16, 8, 4, 2, 1) for gc in (False, True)):
        est = estimate(shape, base.model_copy(update={"batch_size": b, "gradient_checkpointing": gc}), suggest=False)
        if est.total_gb <= est.gpu_memory_gb:  # the advisor's fit: no reliance on the allocator's reserve
            batch, checkpointing = b, gc
            break
    gpus = max(answers.gpu_count, 1)
    # sharded: a full fine-tune on several GPUs, or the configuration that fitted only sharded (FSDP + QLoRA)
    strategy = "fsdp" if gpus > 1 and (spec.trains_all_weights or base.sharding != "none") else "ddp"
    return TrainConfig(
        model=ModelSection(path=model_path or answers.model_path or MODEL_PLACEHOLDER),
        data=DataSection(path=data_path or answers.dataset or "data.jsonl", max_seq_len=base.seq_len, val_size=0.1),
        method=section,
        training=TrainingSection(
            learning_rate=spec.learning_rate, epochs=float(rec.assumptions["epochs"]), batch_size=batch,
            grad_accum=max(1, EFFECTIVE_BATCH // (batch * gpus)), optimizer=base.optimizer,
            gradient_checkpointing=checkpointing,
            early_stopping_patience=3,
        ),
        output=OutputSection(dir=output_dir),
        distributed=DistributedSection(processes=answers.gpu_count if answers.gpu_count > 1 else 1, strategy=strategy),
    )



def config_comments(rec: Recommendation, cfg: TrainConfig) -> dict[str, str]:
    """Why each setting of the written train.yaml has its value (written as YAML comments)."""
    m = rec.method
    est = rec.estimate[m]
    req = est.request
    where = (f"{req.gpu_memory_gb:g} GB of host RAM" if req.device == "cpu"
             else f"{req.gpu_memory_gb:g} GB per GPU × {req.gpus}")
    t = cfg.training
    out = {
        "method": f"{m}: {rec.decided_by.rule if rec.decided_by else 'the recommendation'} decided it "
                  f"(tunewise recommend --explain {m}); the estimate for this configuration: {est.total_gb:.1f} GB "
                  f"on {where}, peak at the {est.peak_phase.replace('_', ' ')}",
        "training.batch_size": f"the largest per-device batch (16 at most) the memory estimate fits in {where}",
        "training.grad_accum": f"an effective batch of {t.batch_size * t.grad_accum * cfg.distributed.world_size} "
                               "records per update = batch_size × grad_accum × processes",
        "training.gradient_checkpointing": ("on: the batch fits only when activations are recomputed (~30% slower)"
                                            if t.gradient_checkpointing else
                                            "off: the batch fits without it, and steps are ~30% faster"),
        "training.learning_rate": f"the usual starting rate for {m} ({method(m).learning_rate:g}); lower it if the loss "
                                  "jumps, raise it if it barely moves",
        "training.epochs": f"{t.epochs:g}: 3 passes below 10,000 examples, 1 above (more overfits)",
        "training.optimizer": (f"{t.optimizer}: " + ("8-bit states, needed to fit the memory" if "8bit" in t.optimizer
                                                     else "full-precision AdamW states; the memory allows them")),
        "data.max_seq_len": f"{cfg.data.max_seq_len} tokens: {rec.assumptions.get('token_source', 'assumed')}, "
                            "rounded up to 128" + ("" if rec.assumptions.get("token_source", "").startswith(
                                ("answered", "the audited")) else "; run `tunewise audit` to size it"),
    }
    if method(m).adapters:
        rung = est.config_rung
        out["method.lora_r"] = ("r=16: the standard rank" if rung == 0 else
                                f"r={req.lora_r}: a leaner setting the memory needed (rung {rung} of the ladder)")
    return out


def paths_for_file(cfg: TrainConfig, config_path: str | Path) -> TrainConfig:
    """The config as written to `config_path`: paths given relative to the working directory rewritten relative to
    the file's folder, where `tunewise train` reads them from (absolute paths and the placeholder stay)."""
    import os

    base = os.path.abspath(Path(config_path).parent)

    def rel(value: str) -> str:
        if value == MODEL_PLACEHOLDER or os.path.isabs(os.path.expanduser(value)):
            return value
        return os.path.relpath(os.path.abspath(value), base)

    return cfg.map_paths(rel)
