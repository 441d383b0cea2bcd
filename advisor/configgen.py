"""Turn a fine-tune recommendation into a training config the trainer runs as it is."""

from __future__ import annotations

from advisor.answers import Answers
from advisor.estimate import EstimateRequest, estimate
from advisor.recommend import Recommendation
from advisor.rules.hardware import model_shape
from trainer.config import (
    DataSection,
    DistributedSection,
    FullMethod,
    LoraMethod,
    ModelSection,
    OutputSection,
    PTuningMethod,
    QLoraMethod,
    TrainConfig,
    TrainingSection,
)

LEARNING_RATES = {"full": 2e-5, "lora": 2e-4, "qlora": 2e-4, "p_tuning": 1e-3}
EFFECTIVE_BATCH = 16
MODEL_PLACEHOLDER = "SET-ME/local-model-folder"


def build_config(rec: Recommendation, answers: Answers, data_path: str | None, model_path: str | None,
                 output_dir: str = "runs/tunewise") -> TrainConfig:
    m = rec.method
    if m not in LEARNING_RATES:
        raise ValueError(f"`{m}` is not a fine-tune; there is no training config to write")
    base = EstimateRequest.model_validate(rec.estimate[m]["request"])  # the configuration that was estimated
    if m in ("lora", "qlora"):
        targets = list(base.lora_targets)
        lora = dict(lora_r=base.lora_r, lora_alpha=2 * base.lora_r, lora_dropout=base.lora_dropout,
                    target_modules="all-linear" if len(targets) >= 7 else targets)
        method = LoraMethod(**lora) if m == "lora" else QLoraMethod(**lora, upcast_embeddings=base.upcast_embeddings)
    elif m == "p_tuning":
        method = PTuningMethod()
    else:
        method = FullMethod()
    # largest per-device batch (≤ 16) that the estimate says fits; accumulate the rest
    shape = model_shape(answers)
    batch, checkpointing = 1, True
    for b, gc in ((b, gc) for b in (16, 8, 4, 2, 1) for gc in (False, True)):
        if estimate(shape, base.model_copy(update={"batch_size": b, "gradient_checkpointing": gc}), suggest=False).fits:
            batch, checkpointing = b, gc
            break
    gpus = max(answers.gpu_count, 1)
    strategy = "fsdp" if (m == "full" and gpus > 1) else "ddp"
    return TrainConfig(
        model=ModelSection(path=model_path or answers.model_path or MODEL_PLACEHOLDER),
        data=DataSection(path=data_path or answers.dataset or "data.jsonl", max_seq_len=base.seq_len, val_size=0.1),
        method=method,
        training=TrainingSection(
            learning_rate=LEARNING_RATES[m], epochs=float(rec.assumptions["epochs"]), batch_size=batch,
            grad_accum=max(1, EFFECTIVE_BATCH // (batch * gpus)), optimizer=base.optimizer,
            gradient_checkpointing=checkpointing,
            early_stopping_patience=3,
        ),
        output=OutputSection(dir=output_dir),
        distributed=DistributedSection(processes=answers.gpu_count if answers.gpu_count > 1 else 1, strategy=strategy),
    )

