"""The causal-LM loss without the full logits: a chunked linear cross-entropy in plain torch (every device), or the
fused kernels of liger-kernel / cut-cross-entropy when installed on CUDA.

The plain loss multiplies every position's hidden state by the output matrix (batch × sequence × vocabulary logits
in the compute dtype), upcasts them to fp32, and keeps logits, upcast and their gradients alive through the
backward pass: ~12 bytes per token per vocabulary entry, gigabytes for a 128k-256k vocabulary. The chunked loss
takes only the positions that carry a label, and for each chunk of them computes the logits, the loss and at once
the gradients with respect to the hidden states and the output matrix (softmax − one-hot, times the matrix): at
most one chunk of logits exists at a time, and nothing vocabulary-sized waits for the backward pass. Same FLOPs as
the plain loss on labelled positions, and none on the masked ones (prompt tokens under assistant-only loss).

Equal to transformers' ForCausalLMLoss in value and gradients: fp32 to ~1e-6 relative, bf16 to its rounding
(tests/test_loss.py states and pins the tolerances)."""

from __future__ import annotations

from dataclasses import dataclass

from core.estimate.memory import chunk_rows  # the chunk size the estimator counts with (one rule, one place)

IGNORE = -100


def shift_labels(labels, length: int):
    """The next-token targets of each position (what ForCausalLMLoss does), left-padded with IGNORE when the hidden
    states are longer than the labels (P-tuning's virtual tokens come first)."""
    import torch.nn.functional as F

    if labels.shape[-1] < length:
        labels = F.pad(labels, (length - labels.shape[-1], 0), value=IGNORE)
    return F.pad(labels, (0, 1), value=IGNORE)[..., 1:]


def _linear_ce_chunks(h, weight, targets, denom: float, chunk: int, softcap: float | None, want_grads: bool,
                      weight_grad: bool):
    """Loss (fp32 sum / denom) over rows `h` against `targets`; with want_grads also d loss/d h (h's dtype) and
    d loss/d weight (fp32, when weight_grad)."""
    import torch

    loss = torch.zeros((), dtype=torch.float32, device=h.device)
    grad_h = torch.empty_like(h) if want_grads else None
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_grads and weight_grad \
        else None
    for start in range(0, h.shape[0], chunk):
        hc, yc = h[start:start + chunk], targets[start:start + chunk]
        logits = (hc @ weight.t()).float()
        capped = None
        if softcap:
            capped = torch.tanh(logits / softcap)
            logits = capped * softcap
        lse = torch.logsumexp(logits, dim=-1)
        loss += (lse - logits.gather(1, yc[:, None]).squeeze(1)).sum()
        if not want_grads:
            continue
        g = torch.exp(logits.sub_(lse[:, None]))  # softmax, in place of the logits
        g[torch.arange(g.shape[0], device=g.device), yc] -= 1.0
        if capped is not None:
            g.mul_(1.0 - capped * capped)
        g.div_(denom)
        g16 = g.to(weight.dtype)
        grad_h[start:start + chunk] = (g16 @ weight).to(h.dtype)
        if grad_w is not None:
            grad_w.addmm_(g16.t().float() if weight.dtype != torch.float32 else g16.t(), hc.float())
        del g, g16, logits
    return loss / denom, grad_h, grad_w


def _function():
    import torch

    class ChunkedLinearCrossEntropy(torch.autograd.Function):
        """Forward computes the loss and both gradients chunk by chunk; backward only scales them."""

        @staticmethod
        def forward(ctx, h, weight, targets, denom, chunk, softcap):
            loss, grad_h, grad_w = _linear_ce_chunks(h, weight, targets, denom, chunk, softcap, True,
                                                     weight.requires_grad)
            ctx.save_for_backward(grad_h, *( [grad_w] if grad_w is not None else []))
            ctx.has_w = grad_w is not None
            ctx.w_dtype = weight.dtype
            return loss

        @staticmethod
        def backward(ctx, grad_out):
            saved = ctx.saved_tensors
            grad_h = saved[0] * grad_out.to(saved[0].dtype)
            grad_w = (saved[1] * grad_out).to(ctx.w_dtype) if ctx.has_w else None
            return grad_h, grad_w, None, None, None, None

    return ChunkedLinearCrossEntropy


_FN = None


def chunked_lm_loss(hidden, weight, labels, num_items_in_batch=None, softcap: float | None = None,
                    chunk: int | None = None):
    """The causal-LM loss of `hidden` (batch × positions × hidden, after the final norm) through the output matrix
    `weight` (vocabulary × hidden, no bias) against `labels` (IGNORE = masked), never building the full logits.
    Reduction as transformers': the sum over labelled tokens divided by `num_items_in_batch` when given (gradient
    accumulation), else the mean."""
    import torch

    global _FN
    targets = shift_labels(labels, hidden.shape[1]).reshape(-1)
    keep = (targets != IGNORE).nonzero().squeeze(1)
    h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, keep)
    y = targets.index_select(0, keep)
    denom = float(num_items_in_batch) if num_items_in_batch is not None else float(max(1, keep.numel()))
    if keep.numel() == 0:
        return (hidden.sum() * 0.0).float() + (weight.sum() * 0.0 if weight.requires_grad else 0.0)
    chunk = chunk or chunk_rows(h.shape[0], weight.shape[0], weight.shape[1])
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        if _FN is None:
            _FN = _function()
        return _FN.apply(h, weight, y, denom, chunk, softcap)
    loss, _gh, _gw = _linear_ce_chunks(h, weight, y, denom, chunk, softcap, False, False)
    return loss


def fused_lm_loss(kind: str, hidden, weight, labels, num_items_in_batch=None, softcap: float | None = None):
    """The same loss through an installed CUDA kernel: liger-kernel's fused linear cross-entropy or Apple's
    cut-cross-entropy (both take the hidden states and the output matrix; neither materialises the logits)."""
    targets = shift_labels(labels, hidden.shape[1])
    n_valid = int((targets != IGNORE).sum())
    denom = float(num_items_in_batch) if num_items_in_batch is not None else float(max(1, n_valid))
    h = hidden.reshape(-1, hidden.shape[-1])
    y = targets.reshape(-1)
    if kind == "liger":
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        total = liger_fused_linear_cross_entropy(h, weight, y, ignore_index=IGNORE, reduction="sum", softcap=softcap)
    else:
        from cut_cross_entropy import linear_cross_entropy

        total = linear_cross_entropy(h, weight, y, ignore_index=IGNORE, reduction="sum", softcap=softcap)
    return total.float() / denom


@dataclass(frozen=True)
class LossPlan:
    """Which loss a run uses and why (summary.json `loss`, the dry run's report)."""

    name: str  # plain | chunked | liger | cut_cross_entropy
    why: str

    @property
    def estimate_loss(self) -> str:
        """The name `tunewise estimate` knows it by."""
        return "plain" if self.name == "plain" else "chunked"

    def as_dict(self) -> dict:
        return {"name": self.name, "why": self.why}


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def head_ok_from_config(model_cfg: dict) -> str | None:
    """None when a model config describes an output layer the chunked loss reads (a plain linear map of the final
    hidden states), else why not; the loaded model is checked again (output_head)."""
    text = {**model_cfg, **(model_cfg.get("text_config") or {})}
    for attr in ("logit_scale", "logits_scaling", "output_multiplier_scale"):
        if text.get(attr) not in (None, 1, 1.0):
            return f"its logits are scaled (config.{attr})"
    if text.get("is_encoder_decoder"):
        return "it is an encoder-decoder model"
    return None


def choose_loss(setting: str, device: str, sharded: bool, head_ok: str | None) -> LossPlan:
    """The loss for a run. `setting` is training.loss; `sharded` is FSDP / ZeRO-3 on several processes (the output
    matrix is a shard outside the model's own forward); `head_ok` is None when the model's output layer is a plain
    linear map the chunked loss can read, else the reason it cannot."""
    if setting == "plain":
        return LossPlan("plain", "training.loss: plain")
    why_not = ("weights are sharded across processes (FSDP / ZeRO-3): the output matrix is only whole inside the "
               "model's forward" if sharded else head_ok)
    if why_not:
        if setting != "auto":
            from core.errors import UserError

            raise UserError(f"training.loss: {setting} cannot be used here: {why_not}; set training.loss: auto or "
                            "plain")
        return LossPlan("plain", f"plain cross-entropy: {why_not}")
    kernels = {"liger": "liger_kernel", "cut_cross_entropy": "cut_cross_entropy"}
    if setting in kernels:
        if device != "cuda" or not installed(kernels[setting]):
            from core.errors import UserError

            need = "a CUDA GPU" if device != "cuda" else f"pip install {kernels[setting].replace('_', '-')}"
            raise UserError(f"training.loss: {setting} needs {need}; training.loss: chunked runs everywhere")
        return LossPlan(setting, f"training.loss: {setting} (fused CUDA kernel)")
    if setting == "auto" and device == "cuda":
        for name, module in kernels.items():
            if installed(module):
                return LossPlan(name, f"{module.replace('_', '-')} is installed: its fused linear cross-entropy "
                                "kernel (no logits materialised)")
    if setting == "chunked":
        return LossPlan("chunked", "training.loss: chunked")
    return LossPlan("chunked", "chunked cross-entropy: the full logits are never built (training.loss: plain turns "
                    "it off)")


def output_head(model):
    """(causal LM, its backbone, the output matrix, final-logit soft-capping, None) when the loss can be computed
    from the backbone's hidden states, else (..., the reason it cannot)."""
    import torch

    while isinstance(model, torch.nn.parallel.DistributedDataParallel | torch.nn.DataParallel):
        model = model.module  # the forward still goes through the wrapper (gradient sync); only the parts are read
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = causal.get_output_embeddings() if hasattr(causal, "get_output_embeddings") else None
    backbone = getattr(causal, getattr(causal, "base_model_prefix", "model"), None)
    softcap = getattr(causal.config, "final_logit_softcapping", None) or None
    if head is None or backbone is None or backbone is causal:
        return causal, None, None, None, "the model has no separate output layer"
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return causal, None, None, None, f"its output layer is a {type(head).__name__} with a bias or a wrapper"
    for attr in ("logit_scale", "logits_scaling", "output_multiplier_scale"):
        if getattr(causal.config, attr, None) not in (None, 1, 1.0):
            return causal, None, None, None, f"its logits are scaled (config.{attr})"
    return causal, backbone, head, softcap, None


def compute_lm_loss(plan: LossPlan, model, inputs: dict, num_items_in_batch=None):
    """Run the model for its last hidden states only (logits_to_keep=1: one position of logits) and compute the
    loss from them with the plan's chunked or fused loss."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    _causal, backbone, head, softcap, _why = output_head(model)
    captured = {}

    def grab(_module, _args, output):
        captured["h"] = output[0] if isinstance(output, tuple) else output.last_hidden_state

    handle = backbone.register_forward_hook(grab)
    try:
        model(**{**inputs, "logits_to_keep": 1, "use_cache": False})  # the collator may set use_cache itself
    finally:
        handle.remove()
    hidden = captured["h"]
    if plan.name == "chunked":
        return chunked_lm_loss(hidden, head.weight, labels, num_items_in_batch, softcap)
    return fused_lm_loss(plan.name, hidden, head.weight, labels, num_items_in_batch, softcap)


def with_loss(trainer_class, plan: LossPlan):
    """`trainer_class` whose compute_loss runs the plan's chunked or fused loss (the plain plan keeps the model's
    own). Training and evaluation both use it: evaluation keeps only the loss (tunewise computes no metrics from
    logits), so no full logits are built there either."""
    if plan.name == "plain":
        return trainer_class

    class ChunkedLossTrainer(trainer_class):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            items = num_items_in_batch if self.model_accepts_loss_kwargs else None
            loss = compute_lm_loss(plan, model, inputs, items)
            if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs and items is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            return (loss, {"loss": loss}) if return_outputs else loss

    return ChunkedLossTrainer
