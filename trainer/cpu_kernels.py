"""CPU runs: the fast paths swapped into the loaded model."""

from __future__ import annotations

from trainer.run_report import CpuKernels


def cpu_fast_paths(model) -> CpuKernels:
    """CPU runs: peft's LoRA linears get the fused forward (trainer/lora_cpu.py), then the remaining plain
    dropouts draw their masks as 16-bit lanes (trainer/dropout.py); how many layers got each."""
    from trainer.dropout import use_cheap_dropout
    from trainer.lora_cpu import fuse_lora_layers

    return CpuKernels(fused_lora_layers=fuse_lora_layers(model), cheap_dropouts=use_cheap_dropout(model))
