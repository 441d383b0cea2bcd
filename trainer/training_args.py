"""The transformers TrainingArguments of a run, from its config (FSDP / DeepSpeed settings included)."""

from __future__ import annotations

from pathlib import Path

from core.methods import method
from core.train_config import HF_OPTIMIZERS, TrainConfig
from trainer.deepspeed import write_deepspeed_config


def build_args(cfg: TrainConfig, out: Path, device: str, plan, n_train: int, n_eval: int = 1):
    from transformers import TrainingArguments

    t = cfg.training
    per_eval = t.eval_batch_size or t.batch_size
    save_steps = t.save_steps or t.eval_steps
    save_strategy = "steps" if save_steps else "epoch"  # save_steps alone means checkpoints every N steps
    has_eval = n_eval > 0
    strategy = ("steps" if t.eval_steps else "epoch") if has_eval else "no"
    kw = {}
    multi = cfg.distributed.world_size > 1
    if cfg.distributed.strategy == "fsdp" and multi:
        kw["fsdp"] = "full_shard auto_wrap"
        # cpu_ram_efficient_loading: only the first process reads the checkpoint, the others start empty and receive
        # their shards by broadcast (no GPU holds the whole model at load; the arguments are built before loading)
        kw["fsdp_config"] = {"auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "use_orig_params": True,
                             "cpu_ram_efficient_loading": True, "sync_module_states": True}
    elif cfg.distributed.strategy.startswith("deepspeed") and multi:
        kw["deepspeed"] = str(write_deepspeed_config(cfg, out))
    return TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=per_eval,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type=t.scheduler,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=HF_OPTIMIZERS[t.optimizer],
        # PEFT methods enable checkpointing on the base model before wrapping it (trainer/model.py)
        gradient_checkpointing=t.gradient_checkpointing and method(cfg.method.name).trains_all_weights,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy=strategy if n_train else "no",
        eval_steps=t.eval_steps,
        eval_on_start=has_eval,
        save_strategy=save_strategy,
        save_steps=save_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=bool(t.early_stopping_patience) and has_eval,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        report_to="none",
        use_cpu=device == "cpu",
        bf16=plan.bf16,
        fp16=plan.fp16,
        disable_tqdm=True,
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        ddp_backend=("nccl" if device == "cuda" else "gloo") if multi else None,
        ddp_find_unused_parameters=False if multi else None,
        **kw,
    )
