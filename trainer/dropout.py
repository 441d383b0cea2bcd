"""Dropout masks that cost a fraction as much on a CPU.

torch's CPU dropout draws one 32-bit Mersenne-Twister number per element (`bernoulli_`) and multiplies by a float
mask: in LoRA training of a small model that was 15-20% of every step (bench/train_throughput.py, profiled: 28
LoRA dropouts per step on a 4-layer Llama). Here one 64-bit draw is cut into four 16-bit lanes and an element is
dropped when its lane falls under round(p * 65536): the same Bernoulli mask with a quarter of the generator calls,
applied with one `masked_fill`, the kept elements scaled by the exact keep rate so that every activation keeps its
expectation. `CheapDropout` is nn.Dropout drawn this way; trainer/lora_cpu.py draws LoRA's dropout the same way.
Only CPU runs use them (CUDA's Philox dropout is already cheap); the modules keep their names and hold no weights,
so checkpoints and adapters are unchanged.
"""

from __future__ import annotations

import math

import torch  # imported only by the training path, never by the advisor

LANES = 65536  # a 16-bit lane: the drop rate is kept to 1/65,536 (0.05 -> 0.0500031)


def drop_count(p: float) -> int:
    """How many of the 65,536 lane values drop an element (0: p too small to draw this way)."""
    return round(p * LANES)


def keep_scale(p: float) -> float:
    """1 / the exact keep rate of a lane-drawn mask."""
    return LANES / (LANES - drop_count(p))


def draw_drops(shape: torch.Size, p: float, device) -> torch.Tensor:
    """A bool mask of `shape`, True where an element is dropped: each True independently with probability
    drop_count(p) / 65536, from one 64-bit draw per four elements."""
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, None)  # all 64 bits uniform
    lanes = bits.view(torch.int16)[:n].view(shape)  # each lane uniform on [-32768, 32767]
    return lanes < drop_count(p) - LANES // 2


class _Drop(torch.autograd.Function):
    """x with the dropped elements zeroed and the rest scaled; the gradient likewise. Saves the 1-byte mask."""

    @staticmethod
    def forward(ctx, x, drop, scale: float):
        ctx.save_for_backward(drop)
        ctx.scale = scale
        return x.masked_fill(drop, 0).mul_(scale)

    @staticmethod
    def backward(ctx, grad):
        (drop,) = ctx.saved_tensors
        return grad.masked_fill(drop, 0).mul_(ctx.scale), None, None


class CheapDropout(torch.nn.Dropout):
    """nn.Dropout with the mask drawn as 16-bit lanes (see the module docstring)."""

    def forward(self, x):
        if not self.training:
            return x
        return _Drop.apply(x, draw_drops(x.shape, self.p, x.device), keep_scale(self.p))


def use_cheap_dropout(model) -> int:
    """Swap every plain nn.Dropout with 0 < p < 1 whose rate 16-bit lanes can draw for a CheapDropout; the number
    swapped. Call on CPU runs only."""
    swaps = [(parent, name, child.p) for parent in model.modules() for name, child in parent.named_children()
             if type(child) is torch.nn.Dropout and 0 < drop_count(child.p) < LANES]
    for parent, name, p in swaps:
        setattr(parent, name, CheapDropout(p))
    return len(swaps)
