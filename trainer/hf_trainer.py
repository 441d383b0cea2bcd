"""The transformers Trainer a run drives: length-grouped batches in an order seeded per epoch, a non-finite loss or
gradient norm stopped before the step is applied, the loss plan's loss, and tunewise's callbacks."""

from __future__ import annotations


def length_aware(trainer_class):
    """HF's Trainer, handed the token count of every record for length-grouped batches (it would otherwise build
    every row of the memory-mapped table to measure it), in an order seeded per epoch (EpochSeeded); a non-finite
    loss or gradient norm stops it before the step is applied (trainer/callbacks.py's Diverged)."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from trainer.callbacks import check_finite

    class EpochSeeded(LengthGroupedSampler):
        """Length-grouped order drawn from (seed + epoch), like accelerate's seedable random sampler. HF's own
        draws from the global generator when the epoch starts, and a resumed run starts its epoch before it
        restores the checkpoint's generator: it trained the rest of that epoch on another order than the
        uninterrupted run (measured: final eval loss 0.5162 vs 0.5169 after a kill at step 40 of 300)."""

        def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
            super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            self.generator.manual_seed(self.seed + self.epoch)
            return super().__iter__()

    class LengthAwareTrainer(trainer_class):
        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            if self.args.world_size == 1:  # several processes: the gradient norm (all-reduced) is checked instead,
                check_finite(loss, self.state.global_step + 1, "the training loss")  # so that all ranks stop
            return loss

        def _get_grad_norm(self, model, grad_norm=None):
            norm = super()._get_grad_norm(model, grad_norm)
            if norm is not None:  # before optimizer.step(): a non-finite gradient never reaches the weights
                check_finite(norm, self.state.global_step + 1, "the gradient norm")
            return norm

        def _get_train_sampler(self, train_dataset=None):
            ds = train_dataset if train_dataset is not None else self.train_dataset
            if self.args.train_sampling_strategy == "group_by_length" and getattr(ds, "lengths", None) is not None:
                seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
                return EpochSeeded(self.args.train_batch_size * self.args.gradient_accumulation_steps, ds.lengths,
                                   seed)
            return super()._get_train_sampler(train_dataset)

    return LengthAwareTrainer


def build_trainer(cfg, out, ckpt, device: str, model, tok, args, prepared, loss, console=None, progress: bool = True,
                  main: bool = True):
    """(the Trainer, its Ctrl-C handler, the first-step clock): the collator, tunewise's callbacks instead of the
    raw prints, early stopping when configured, the datasets of the prepared records."""
    from transformers import EarlyStoppingCallback, Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from trainer.callbacks import (
        DivergenceGuard,
        FirstStep,
        GracefulStop,
        MetricsLogger,
        RankRecord,
        RichProgress,
    )
    from trainer.data import Collator, TokenDataset
    from trainer.loss import with_loss

    first = FirstStep()
    # rows padded to a multiple of 8 feed GPU tensor cores; a CPU gains nothing from it and computes the padding
    collator = Collator(tok.pad_token_id, multiple_of=8 if device == "cuda" else 1,
                        padding_free=cfg.training.padding_free)
    stop = GracefulStop()
    callbacks = [MetricsLogger(out / "metrics.jsonl", fresh=ckpt is None), RichProgress(console, enabled=progress and main),
                 stop, RankRecord(out / "ranks", collator), first, DivergenceGuard()]
    if cfg.training.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.training.early_stopping_patience))
    trainer = with_loss(length_aware(Trainer), loss)(model=model, args=args, train_dataset=TokenDataset(prepared.train),
                      eval_dataset=TokenDataset(prepared.val, track=False) if prepared.val else None,
                      data_collator=collator, processing_class=tok, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics.jsonl replace the raw dict prints
    trainer.remove_callback(ProgressCallback)
    return trainer, stop, first
