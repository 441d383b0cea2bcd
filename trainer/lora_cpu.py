"""LoRA linear layers fused for CPU training.

peft computes an adapted linear layer as `base(x) + lora_B(lora_A(dropout(x))) * scaling`: on a CPU every one of
those steps is a pass over a tokens x features tensor (the dropout's 32-bit random draw per element and its mask
multiply, the scaling multiply, the add), and autograd adds as many again backwards. In LoRA training of a small
model these elementwise passes cost more than the matrix products (bench/train_throughput.py, profiled on the
4-layer Llama: 1.4 s of 5.2 s in matmuls). `fuse_lora_layers` gives each plain peft `lora.Linear` a forward that
computes the same function in fewer passes:

- the scaling (and the dropout's 1/keep-rate) multiplies the rank-r hidden state, not the output;
- the adapter's product is accumulated into the base output by the matrix multiply itself (`addmm_`), forwards
  and backwards (the input's gradient of base and adapter in one buffer);
- the dropout mask is drawn as 16-bit lanes (trainer/dropout.py: a quarter of the generator calls) and applied
  with one `masked_fill`: an element is dropped with probability round(p * 65536) / 65536 (0.05 -> 0.0500031).

The weights, their names and the adapter files are unchanged. A layer falls back to peft's own forward whenever
the fused one would not compute the same thing: merged or disabled adapters, several active adapters, DoRA and
other variants, a LoRA bias, mixed dtypes, autocast, a quantised or non-`nn.Linear` base, extra arguments.
Only CPU runs fuse (trainer/cpu_kernels.py): on CUDA the matmuls dominate and the dropout is already cheap.
"""

from __future__ import annotations

import types

import torch  # imported only by the training path, never by the advisor

from trainer.dropout import LANES, draw_drops, drop_count, keep_scale


class _LoraLinear(torch.autograd.Function):
    """y = x W^T + b + ((x with the dropped elements zeroed) A^T) (s B)^T, on 2-D views of x and y."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, s: float, drop):
        x2 = x.reshape(-1, x.shape[-1])
        xd = x2 if drop is None else x2.masked_fill(drop.view_as(x2), 0)
        h = torch.mm(xd, lora_a.t()).mul_(s)  # [tokens, r]: the scaling costs r per token, not out_features
        y = torch.addmm(bias, x2, weight.t()) if bias is not None else torch.mm(x2, weight.t())
        y.addmm_(h, lora_b.t())
        ctx.save_for_backward(xd, weight, lora_a, lora_b, h, drop)
        ctx.s, ctx.x_shape = s, x.shape
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        xd, weight, lora_a, lora_b, h, drop = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        need = ctx.needs_input_grad
        grad_b = torch.mm(g.t(), h) if need[4] else None
        gh = torch.mm(g, lora_b).mul_(ctx.s)  # [tokens, r]
        grad_a = torch.mm(gh.t(), xd) if need[3] else None
        grad_x = None
        if need[0]:
            grad_x = torch.mm(gh, lora_a)
            if drop is not None:
                grad_x.masked_fill_(drop.view_as(grad_x), 0)
            grad_x = grad_x.addmm_(g, weight).view(ctx.x_shape)
        return grad_x, None, None, grad_a, grad_b, None, None  # the base weight and bias are frozen (fusable())


def fusable_layer(layer) -> bool:
    """Whether a peft LoRA linear has the shape the fused forward computes: an unquantised nn.Linear base, plain
    bias-free lora_A / lora_B of the base's dtype for its adapters, no DoRA or other variant, nn.Dropout or none."""
    if type(layer.base_layer) is not torch.nn.Linear or layer.lora_variant:
        return False
    dtype = layer.base_layer.weight.dtype  # peft keeps fp32 adapters on a bf16 base (its autocast_adapter_dtype)
    return all(type(layer.lora_A[n]) is torch.nn.Linear and type(layer.lora_B[n]) is torch.nn.Linear
               and layer.lora_A[n].bias is None and layer.lora_B[n].bias is None
               and layer.lora_A[n].weight.dtype == layer.lora_B[n].weight.dtype == dtype
               and isinstance(layer.lora_dropout[n], (torch.nn.Dropout, torch.nn.Identity)) for n in layer.lora_A)


def fusable(layer, x: torch.Tensor, args: tuple, kwargs: dict) -> bool:
    """Whether the fused forward computes exactly what peft's `lora.Linear.forward` would for this call."""
    if args or kwargs or layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return False
    name = layer.active_adapters[0]
    if name not in layer.lora_A or not fusable_layer(layer) or torch.is_autocast_enabled(x.device.type):
        return False
    base, a, b = layer.base_layer, layer.lora_A[name], layer.lora_B[name]
    frozen = not base.weight.requires_grad and (base.bias is None or not base.bias.requires_grad)
    return frozen and x.dtype == base.weight.dtype == a.weight.dtype == b.weight.dtype


def fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """The forward `fuse_lora_layers` installs: fused where `fusable`, else peft's own."""
    name = self.active_adapters[0] if len(self.active_adapters) == 1 else ""
    dropout = getattr(self.lora_dropout, name, None)  # a ModuleDict holds its modules as attributes
    p = dropout.p if isinstance(dropout, torch.nn.Dropout) and dropout.training else 0.0
    k = drop_count(p)
    if (p > 0 and not 0 < k < LANES) or not fusable(self, x, args, kwargs):  # a rate 16-bit lanes cannot draw
        return type(self).forward(self, x, *args, **kwargs)
    drop = draw_drops(x.shape, p, x.device) if k else None
    s = self.scaling[name] * keep_scale(p)  # the LoRA scaling times dropout's 1 / keep rate
    return _LoraLinear.apply(x, self.base_layer.weight, self.base_layer.bias, self.lora_A[name].weight,
                             self.lora_B[name].weight, s, drop)


def fuse_lora_layers(model) -> int:
    """Give every peft `lora.Linear` of the model the fused forward; how many layers got it. The layers keep their
    weights and names (checkpoints and adapter files are unchanged) and fall back per call (see `fusable`)."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    layers = [m for m in model.modules() if type(m) is LoraLinear and fusable_layer(m)]
    for layer in layers:
        layer.forward = types.MethodType(fused_forward, layer)
    return len(layers)
