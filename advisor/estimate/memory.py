"""Per-GPU memory breakdown, fit, time and cost of a fine-tuning job.

Every term is physical arithmetic on the model shape; the assumptions used are returned with the
numbers so a user can see (and argue with) each one. GB = 1e9 bytes throughout."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from advisor.estimate.shapes import ModelShape

Method = Literal["full", "lora", "qlora", "p_tuning"]
Optimizer = Literal["adamw", "adamw_8bit", "sgd"]
Precision = Literal["bf16", "fp16", "fp32"]
Sharding = Literal["none", "zero2", "zero3", "fsdp"]
Device = Literal["cuda", "cpu"]

GB = 1e9
OPTIMIZER_BYTES = {"adamw": 8.0, "adamw_8bit": 2.0, "sgd": 0.0}  # per trainable parameter
PRECISION_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit + 8-bit absmax per 64 + fp32 per 256 blocks
OVERHEAD_GB = {"cuda": 1.0, "cpu": 0.6}  # CUDA context + allocator slack; or Python + libraries on CPU
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class EstimateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method
    seq_len: int = Field(1024, gt=0)
    batch_size: int = Field(1, gt=0)
    grad_accum: int = Field(1, gt=0)
    gpus: int = Field(1, gt=0)
    gpu_memory_gb: float = Field(24.0, ge=0)
    gradient_checkpointing: bool = True
    optimizer: Optimizer = "adamw"
    precision: Precision = "bf16"
    lora_r: int = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    num_virtual_tokens: int = Field(20, gt=0)
    encoder_hidden_size: int | None = None
    sharding: Sharding = "none"
    device: Device = "cuda"
    examples: int | None = Field(None, ge=0)
    avg_tokens: float | None = Field(None, gt=0)
    epochs: float = Field(1.0, gt=0)
    gpu_tflops: float = Field(312.0, gt=0)
    utilization: float = Field(0.4, gt=0, le=1)
    price_per_gpu_hour: float | None = Field(None, ge=0)


class Suggestion(BaseModel):
    change: str
    flags: str
    total_gb: float
    fits: bool


class MemoryEstimate(BaseModel):
    method: Method
    params_b: float
    trainable_params: int
    trainable_share: float
    per_gpu_gb: dict[str, float]
    total_gb: float
    gpu_memory_gb: float
    fits: bool
    headroom_gb: float
    suggestions: list[Suggestion] = []
    assumptions: dict[str, str | float | int | bool]
    gpu_hours: float | None = None
    wall_hours: float | None = None
    cost: float | None = None


def trainable_params(shape: ModelShape, req: EstimateRequest) -> int:
    if req.method == "full":
        return shape.params
    if req.method == "p_tuning":
        h, eh = shape.hidden, req.encoder_hidden_size or shape.hidden
        # peft PromptEncoder (MLP): virtual-token embedding + Linear(h,eh) + Linear(eh,eh) + Linear(eh,h)
        return req.num_virtual_tokens * h + (h * eh + eh) + (eh * eh + eh) + (eh * h + h)
    per_layer = sum(req.lora_r * (i + o) for name, (i, o) in shape.linear_shapes().items() if name in req.lora_targets)
    return per_layer * shape.layers


def _activation_elems_per_token_layer(shape: ModelShape) -> int:
    """Tensors autograd keeps per token in one decoder block (memory-efficient SDPA attention, no scores):
    norm in/out ×2, q/k/v, rotated q/k, attention output, MLP in/out, gate/up/act/product."""
    h, kv, q, i = shape.hidden, shape.kv_dim, shape.q_dim, shape.intermediate
    mlp = 4 * i if shape.gated_mlp else 2 * i
    return 5 * h + (q + 2 * kv) + (q + kv) + mlp


def _lora_dropout_elems_per_token_layer(shape: ModelShape, req: EstimateRequest) -> int:
    """peft applies dropout to each adapted layer's input separately, and keeps that copy for backward."""
    if req.method not in ("lora", "qlora") or req.lora_dropout == 0:
        return 0
    return sum(i for name, (i, _o) in shape.linear_shapes().items() if name in req.lora_targets)


LORA_SAVED_PER_MODULE = 3  # × hidden, per adapted module, per token and layer (measured: bench/estimate_vs_measured.py)


def _lora_module_elems_per_token_layer(shape: ModelShape, req: EstimateRequest) -> int:
    """Beyond dropout copies, each adapted module keeps about 3 × hidden values per token for backward
    (measured with peft 0.21 on a 110M Llama: +0.14 GB for q_proj alone, +0.88 GB for all seven, batch 4 × 256)."""
    if req.method not in ("lora", "qlora"):
        return 0
    n = sum(1 for name in shape.linear_shapes() if name in req.lora_targets)
    return LORA_SAVED_PER_MODULE * shape.hidden * n


def breakdown(shape: ModelShape, req: EstimateRequest) -> tuple[dict[str, float], int]:
    """Bytes per GPU for each term, and the trainable parameter count."""
    P = shape.params
    T = trainable_params(shape, req)
    pb = PRECISION_BYTES[req.precision]
    mixed = req.precision != "fp32"
    c = shape.counts()
    scale = P / c["total"]  # when the shape stands in for a --params-b size
    n_shard = req.gpus if req.gpus > 1 else 1
    shard_states = req.sharding in ("zero2", "zero3", "fsdp") and n_shard > 1
    shard_weights = req.sharding in ("zero3", "fsdp") and n_shard > 1

    if req.method == "qlora":
        quantised = c["linear_in_blocks"] * scale
        weights = quantised * NF4_BYTES_PER_PARAM + (P - quantised) * pb
    else:
        weights = P * pb
    if req.method == "full":
        adapter = 0.0
        grads = T * pb
        master = T * 4.0 if mixed else 0.0
    else:  # adapters / prompt encoder are kept in fp32 (peft upcasts them), as are their gradients
        adapter = T * 4.0
        grads = T * 4.0
        master = 0.0
    optim = T * OPTIMIZER_BYTES[req.optimizer]

    if shard_weights:
        weights /= n_shard
        adapter /= n_shard
    if shard_states:
        grads /= n_shard
        master /= n_shard
        optim /= n_shard

    ab = pb  # activation bytes: autocast/bf16 compute, or fp32
    seq = req.seq_len + (req.num_virtual_tokens if req.method == "p_tuning" else 0)
    tokens = req.batch_size * seq
    per_layer = (_activation_elems_per_token_layer(shape) + _lora_dropout_elems_per_token_layer(shape, req)) * ab
    if req.gradient_checkpointing:
        acts = tokens * (shape.layers * shape.hidden * ab + per_layer)
    else:
        acts = tokens * shape.layers * (per_layer + _lora_module_elems_per_token_layer(shape, req) * ab)
    # logits in compute dtype + fp32 upcast for the loss + log-softmax kept for backward + the gradients of
    # both in backward (measured: about four fp32 copies at the peak)
    logits = tokens * shape.vocab * (ab + (4 if ab != 4 else 0) + 12)
    overhead = OVERHEAD_GB[req.device] * GB
    if req.method == "qlora" and req.device == "cpu":
        # on CPU the weights are first materialised in full precision and quantised after; the allocator
        # keeps that memory (on CUDA, layers are quantised one by one as they are moved to the GPU)
        overhead += P * pb
    return (
        {
            "weights": weights,
            "trainable_params": adapter,
            "gradients": grads,
            "optimizer_states": optim,
            "master_weights": master,
            "activations": acts,
            "logits": logits,
            "overhead": overhead,
        },
        T,
    )


def _total_gb(shape: ModelShape, req: EstimateRequest) -> float:
    parts, _ = breakdown(shape, req)
    return sum(parts.values()) / GB


def training_flops(shape: ModelShape, req: EstimateRequest, tokens: float) -> float:
    """6·P·tokens for full fine-tuning; ≈4·P·tokens when weights are frozen (no weight gradients);
    gradient checkpointing adds one more forward (2·P·tokens)."""
    per_token = 6.0 if req.method == "full" else 4.0
    if req.gradient_checkpointing:
        per_token += 2.0
    return per_token * shape.params * tokens


QLORA_SLOWDOWN = 1.3  # dequantising 4-bit weights on every matmul makes QLoRA slower than LoRA


def estimate(shape: ModelShape, req: EstimateRequest, suggest: bool = True) -> MemoryEstimate:
    parts, T = breakdown(shape, req)
    total = sum(parts.values()) / GB
    per_gpu = {k: round(v / GB, 3) for k, v in parts.items()}
    fits = total <= req.gpu_memory_gb
    assumptions: dict[str, str | float | int | bool] = {
        "model_shape": shape.source,
        "precision": req.precision,
        "mixed_precision_master_weights": req.method == "full" and req.precision != "fp32",
        "optimizer": f"{req.optimizer}: {OPTIMIZER_BYTES[req.optimizer]:g} bytes per trainable parameter",
        "attention": "memory-efficient SDPA/flash (no stored attention scores)",
        "gradient_checkpointing": req.gradient_checkpointing,
        "seq_len": req.seq_len,
        "batch_size_per_gpu": req.batch_size,
        "gpus": req.gpus,
        "sharding": req.sharding,
        "overhead_gb": OVERHEAD_GB[req.device],
        "device": req.device,
    }
    if req.method in ("lora", "qlora"):
        assumptions["lora"] = f"r={req.lora_r} on {', '.join(req.lora_targets)}; adapters kept in fp32"
    if req.method == "qlora":
        assumptions["quantisation"] = f"NF4 with double quantisation: {NF4_BYTES_PER_PARAM:.4f} bytes per linear-layer parameter"
    if req.method == "p_tuning":
        assumptions["p_tuning"] = f"{req.num_virtual_tokens} virtual tokens, MLP prompt encoder"
    if req.gpus > 1 and req.sharding == "none":
        assumptions["data_parallel"] = "plain data parallel: every GPU holds a full copy of all states"
    gpu_hours = wall = cost = None
    if req.examples is not None and req.avg_tokens is not None:
        tokens = req.examples * req.avg_tokens * req.epochs
        flops = training_flops(shape, req, tokens)
        seconds = flops / (req.gpu_tflops * 1e12 * req.utilization)
        if req.method == "qlora":
            seconds *= QLORA_SLOWDOWN
        gpu_hours = round(seconds / 3600, 4)
        wall = round(gpu_hours / req.gpus, 4)
        cost = round(gpu_hours * req.price_per_gpu_hour, 2) if req.price_per_gpu_hour is not None else None
        assumptions["training_tokens"] = tokens
        assumptions["flops_per_token"] = f"{training_flops(shape, req, 1) / shape.params:g} × params"
        assumptions["throughput"] = f"{req.gpu_tflops:g} TFLOP/s peak × {req.utilization:g} utilisation"
        if req.method == "qlora":
            assumptions["qlora_slowdown"] = QLORA_SLOWDOWN
    est = MemoryEstimate(
        method=req.method,
        params_b=round(shape.params / 1e9, 4),
        trainable_params=T,
        trainable_share=round(T / shape.params, 6),
        per_gpu_gb=per_gpu,
        total_gb=round(total, 3),
        gpu_memory_gb=req.gpu_memory_gb,
        fits=fits,
        headroom_gb=round(req.gpu_memory_gb - total, 3),
        assumptions=assumptions,
        gpu_hours=gpu_hours,
        wall_hours=wall,
        cost=cost,
    )
    if suggest and not fits:
        est.suggestions = suggestions(shape, req)
    return est


def _candidates(req: EstimateRequest) -> list[tuple[str, str, dict]]:
    """Changes that lower memory, in order of how little they cost in quality or speed."""
    out: list[tuple[str, str, dict]] = []
    if not req.gradient_checkpointing:
        out.append(("turn on gradient checkpointing (~30% slower, no quality cost)", "drop --no-gradient-checkpointing",
                    {"gradient_checkpointing": True}))
    if req.gpus > 1 and req.sharding not in ("zero3", "fsdp"):
        out.append((f"shard weights, gradients and optimizer with ZeRO-3 across the {req.gpus} GPUs", "--sharding zero3",
                    {"sharding": "zero3"}))
    if req.optimizer == "adamw":
        out.append(("use 8-bit AdamW (bitsandbytes)", "--optimizer adamw_8bit", {"optimizer": "adamw_8bit"}))
    if req.batch_size > 1:
        out.append((f"batch size 1 with gradient accumulation {req.batch_size * req.grad_accum} (same effective batch)",
                    f"--batch-size 1 --grad-accum {req.batch_size * req.grad_accum}",
                    {"batch_size": 1, "grad_accum": req.batch_size * req.grad_accum}))
    if req.method == "full":
        out.append(("LoRA instead of a full fine-tune", "--method lora", {"method": "lora"}))
    if req.method in ("full", "lora"):
        out.append(("QLoRA: LoRA on a 4-bit base", "--method qlora", {"method": "qlora"}))
    if req.seq_len > 256:
        out.append((f"shorter sequences ({req.seq_len // 2} tokens; check how many records get truncated)",
                    f"--seq-len {req.seq_len // 2}", {"seq_len": req.seq_len // 2}))
    return out


def suggestions(shape: ModelShape, req: EstimateRequest) -> list[Suggestion]:
    """Each change alone, then (if none fits alone) all of them together. Fitting ones first, in preference order."""
    singles: list[Suggestion] = []
    cands = _candidates(req)
    for change, flags, upd in cands:
        total = _total_gb(shape, req.model_copy(update=upd))
        singles.append(Suggestion(change=change, flags=flags, total_gb=round(total, 3), fits=total <= req.gpu_memory_gb))
    if cands and not any(s.fits for s in singles):
        combined: dict = {}
        for _c, _f, upd in cands:
            combined.update(upd)
        total = _total_gb(shape, req.model_copy(update=combined))
        singles.append(Suggestion(change="all of the above together", flags=" ".join(f for _c, f, _u in cands),
                                  total_gb=round(total, 3), fits=total <= req.gpu_memory_gb))
    return sorted(singles, key=lambda s: not s.fits)
