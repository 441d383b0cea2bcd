"""Per-GPU memory breakdown, fit, time and cost of a fine-tuning job.

Every term is physical arithmetic on the model shape; the assumptions used are returned with the
numbers so a user can see (and argue with) each one. GB = 1e9 bytes throughout."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.estimate.shapes import ModelShape
from core.methods import (  # noqa: F401 - LoRA's shape arithmetic and QLoRA's constants, named here as before
    LORA_SAVED_PER_MODULE,
    MLP_NAMES,
    NF4_BYTES_PER_PARAM,
    REGISTRY,
    TARGET_ALIASES,
    adapted_per_layer,
    canonical_targets,
    method,
)

Method = Literal[tuple(REGISTRY)]  # every registered fine-tune (core/methods.py)
Optimizer = Literal["adamw", "adamw_8bit", "paged_adamw", "paged_adamw_8bit", "adafactor", "sgd"]
# bf16 / fp16: pure 16-bit (weights, gradients and optimizer states in 16 bits, what HF Trainer does with a model
# loaded in bf16); *-mixed: fp32 weights with 16-bit autocast (classic AMP); fp32: no autocast
Precision = Literal["bf16", "fp16", "fp32", "bf16-mixed", "fp16-mixed"]
Sharding = Literal["none", "zero2", "zero3", "fsdp"]
Device = Literal["cuda", "cpu"]
AdapterDtype = Literal["fp32", "bf16", "fp16"]
# plain: the model's logits (batch × sequence × vocabulary) and their fp32 upcast; chunked_logits: 16-bit logits
# built, the fp32 cross-entropy run chunk by chunk (torchtune CEWithChunkedOutputLoss, Axolotl
# chunked_cross_entropy); chunked: the logits never built whole (tunewise's chunked loss, liger-kernel's fused linear
# cross-entropy, Apple's Cut Cross-Entropy)
Loss = Literal["plain", "chunked_logits", "chunked"]
# eager: the attention scores (batch × heads × sequence²) are materialised; sdpa / flash: they are not. auto: what
# the model's config asks for (attn_implementation), eager for soft-capped attention (Gemma 2), else sdpa
Attention = Literal["auto", "sdpa", "flash", "eager"]

GB = 1e9
COMPUTE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "bf16-mixed": 2, "fp16-mixed": 2}  # matmul outputs, activations
WEIGHT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "bf16-mixed": 4, "fp16-mixed": 4}  # stored (and trained) weights
ADAPTER_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# optimizer state elements per trainable parameter, and bytes per element (None: the parameter's own dtype)
OPTIMIZER_STATES: dict[str, tuple[int, float | None]] = {
    "adamw": (2, None), "paged_adamw": (2, None),  # exp_avg, exp_avg_sq (torch.optim.AdamW; bnb paged 32-bit)
    "adamw_8bit": (2, 1.0), "paged_adamw_8bit": (2, 1.0),  # bitsandbytes blockwise 8-bit states
    "adafactor": (0, None), "sgd": (0, None),  # adafactor: factored rows + columns only (see _adafactor_bytes)
}
CPU_PROCESS_GB = 0.6  # Python, torch and transformers in a CPU process (measured: bench/estimate_vs_measured.py)
# CUDA context + cuBLAS/cuDNN workspaces, which the allocator does not see. Calibrated on
# fms-acceleration refs/a100_80gb.csv (nvidia_mem_reserved − peak_torch_mem_alloc ≈ 0.8 GB + 6% at 15–73 GB).
CUDA_CONTEXT_GB = 0.8
ALLOCATOR_RESERVE_SHARE = 0.06  # the caching allocator's reserve and fragmentation above the allocated peak
# Under memory pressure the caching allocator releases its reserve and retries before it fails: on one GPU a run
# whose allocated peak + CUDA context + this much fragmentation fits still trains (fms-acceleration: Mistral-7B full
# fine-tune at 72.97 GB allocated ran on 80 GB), tightly. Several GPUs get no such allowance (NCCL buffers move).
MIN_FRAGMENTATION_SHARE = 0.02
# With several processes: NCCL communicator buffers and the sharded runs' larger reserve (all-gather / reduce-
# scatter buffers come and go). Calibrated on the same file's 2-GPU FSDP rows (Mistral-7B full and LoRA:
# device reading 3.6-7.9 GB above the allocated peak at 15-37 GB).
NCCL_BUFFERS_GB = 1.0
ALLOCATOR_RESERVE_SHARE_MULTI = 0.12
# Bytes per (token × vocabulary entry) at the loss: logits in the compute dtype, their fp32 upcast for the
# cross-entropy, its gradient, and the gradient cast back. Calibrated: fms-acceleration LoRA Mistral-7B fp16
# (batch 4 and 8 × 4096 tokens: +11.0 GB per 16,384 tokens, 12.8 bytes per logit once the checkpoints are
# taken out); fp32: measured on this CPU (bench/estimate_vs_measured.py, 110M Llama).
LOGITS_BYTES = {2: 12.0, 4: 16.0}
# AdamW (torch, foreach on CUDA) allocates one temporary per state tensor group at the step: fms-acceleration
# full fine-tune Mistral-7B fp16, 72.97 GB peak at batch 4 and 8 = weights + grads + 2 states + 1.04 × params × 2 B
OPTIMIZER_STEP_TEMPORARIES = 1.0
# chunked_logits: the 16-bit logits (2 B) and the fp32 log-probabilities cross-entropy keeps for backward (4 B)
CHUNKED_LOGITS_BYTES = 6.0
# chunked (never whole): per token and hidden unit, the labelled rows' copy and their gradient (kept from the forward
# pass to the backward pass, 2 × compute bytes), and one chunk's fp32 logits, softmax and 16-bit gradient, a chunk
# being sized so its logits match the hidden states (liger-kernel's rule, trainer/loss.py): ~10 bytes
CHUNKED_LOSS_TRANSIENT = 10.0
# eager attention, per score element (batch × heads × sequence²): kept for backward, the fp32 softmax output and its
# cast to the compute dtype (fp32 compute: one 4-byte tensor); while a layer's backward runs, the gradient of the
# probabilities, its fp32 upcast and the softmax's input gradient (transformers' eager_attention_forward)
EAGER_KEPT_BYTES = {2: 6.0, 4: 4.0}
EAGER_BACKWARD_BYTES = {2: 10.0, 4: 12.0}
# loading: a 16-bit checkpoint quantised to 4 bits on the GPU is read shard by shard; the shard being converted
# and the allocator's cache of it stay reserved until the first step (transformers' default shard size 5 GB)
CHECKPOINT_SHARD_BYTES = 5e9
GATHERED_LAYERS = 2  # FSDP / ZeRO-3 hold the layer being computed and the prefetched next one, unsharded
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
    adapter_dtype: AdapterDtype = Field("fp32", description="LoRA / prompt-encoder weights (peft keeps them fp32)")
    upcast_embeddings: bool = Field(True, description="QLoRA: peft's prepare_model_for_kbit_training upcasts the "
                                    "embeddings and lm_head to fp32 (what TRL and most trainers do); false keeps "
                                    "them in the compute dtype (method.upcast_embeddings: false in tunewise train)")
    num_virtual_tokens: int = Field(20, gt=0)
    encoder_hidden_size: int | None = None
    sharding: Sharding = "none"
    offload_params: bool = Field(False, description="with zero3/fsdp on several GPUs: the weight shards live in "
                                 "host RAM and each layer is gathered onto the GPU when it runs (FSDP "
                                 "fsdp_offload_params / ZeRO-3 offload_param; how FSDP + QLoRA trains 70B on 2×24 GB)")
    loss: Loss = Field("chunked", description="how the loss meets the vocabulary: chunked (tunewise train's "
                       "default, liger-kernel, Cut Cross-Entropy), chunked_logits (torchtune / Axolotl chunked "
                       "cross-entropy), plain (full logits: HF Trainer, TRL and most trainers)")
    attention: Attention = Field("auto", description="attention kernel: sdpa / flash keep no scores, eager keeps "
                                 "batch × heads × sequence² of them; auto = what the model's config asks for, eager "
                                 "for soft-capped attention (Gemma 2), else sdpa")
    low_memory_loading: bool = Field(True, description="FSDP / ZeRO-3 on several GPUs: each rank loads only its "
                                     "shard (cpu_ram_efficient_loading / zero.Init, what tunewise train does); false: "
                                     "every rank materialises the whole model on its GPU before it is sharded")
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
    per_gpu_gb: dict[str, float] = Field(description="every term at the peak phase (they sum to total_gb)")
    total_gb: float = Field(description="expected device reading at the peak (what nvidia-smi shows; the fit check "
                            "uses it): allocated peak + allocator reserve + CUDA context")
    allocated_gb: float = Field(0.0, description="peak of allocated tensors (torch.cuda.max_memory_allocated)")
    peak_phase: str = Field("forward_backward", description="forward_backward, optimizer_step or load "
                            "(before the first step: QLoRA quantising a 16-bit checkpoint, or FSDP / ZeRO-3 "
                            "materialising the whole model on every GPU)")
    phases: dict[str, float] = Field(default_factory=dict, description="allocated GB of each phase")
    step_gb: float | None = Field(None, description="device reading at the training step's peak (forward/backward or "
                                  "optimizer step), load left out")
    load_gb: float | None = Field(None, description="device reading while the model loads, when loading is modelled "
                                  "(QLoRA from a 16-bit checkpoint: mostly the allocator's cache of converted shards, "
                                  "released under pressure; FSDP / ZeRO-3 without low-memory loading: the whole "
                                  "model)")
    gpu_memory_gb: float
    fits: bool
    tight: bool = Field(False, description="fits only if the allocator gives back its reserve (one GPU): expect "
                        "cache flushes and slower steps")
    headroom_gb: float
    suggestions: list[Suggestion] = []
    assumptions: dict[str, str | float | int | bool]
    gpu_hours: float | None = None
    wall_hours: float | None = None
    cost: float | None = None


def trainable_params(shape: ModelShape, req: EstimateRequest) -> int:
    """The method's trainable parameters (its registry unit's term)."""
    return method(req.method).trainable_params(shape, req)


def _activation_elems_per_token_layer(shape: ModelShape) -> int:
    """Tensors autograd keeps per token in one decoder block (memory-efficient SDPA attention, no scores):
    norm in/out ×2, q/k/v, rotated q/k, attention output, MLP in/out, gate/up/act/product."""
    h, kv, q, i = shape.hidden, shape.kv_dim, shape.q_dim, shape.intermediate
    mlp = (4 * i if shape.gated_mlp else 2 * i) * shape.active_mlp_copies + 4 * shape.shared_intermediate
    return 5 * h + (q + 2 * kv) + (q + kv) + mlp


@dataclass
class Terms:
    """Bytes per GPU of every term, and when each is alive."""

    weights: float
    trainable_params: float
    optimizer_states: float
    gathered_params: float
    gradients: float
    optimizer_temporaries: float
    autocast_copies: float
    activations: float
    logits: float
    layer_recompute: float
    load: float = 0.0  # allocated at the load peak (weights as loaded + what loading holds on the way)
    load_transient: float = 0.0  # of which: the tensor being quantised, or the rest of the unsharded model
    load_cache: float = 0.0  # reserved, not allocated: converted checkpoint shards the allocator caches


def _sharding(req: EstimateRequest) -> tuple[int, bool, bool]:
    n = req.gpus if req.gpus > 1 else 1
    return n, req.sharding in ("zero2", "zero3", "fsdp") and n > 1, req.sharding in ("zero3", "fsdp") and n > 1


def _trainable_bytes(req: EstimateRequest) -> float:
    """Bytes of one trainable parameter (and of its gradient)."""
    return WEIGHT_BYTES[req.precision] if method(req.method).trains_all_weights else ADAPTER_BYTES[req.adapter_dtype]


def _optimizer_bytes(shape: ModelShape, req: EstimateRequest, T: int) -> tuple[float, float]:
    """(persistent optimizer states, temporaries at the step) in bytes, unsharded."""
    elems, per = OPTIMIZER_STATES[req.optimizer]
    per = _trainable_bytes(req) if per is None else per
    states = T * elems * per
    if req.optimizer == "adafactor":
        states = _adafactor_bytes(shape, req, T)
    if req.optimizer in ("adamw", "paged_adamw"):
        # foreach on CUDA: one temporary for the whole group; CPU runs the per-tensor loop (largest tensor)
        largest = shape.vocab * shape.hidden if method(req.method).trains_all_weights else T / max(1, shape.layers * 7)
        temp = OPTIMIZER_STEP_TEMPORARIES * (T if req.device == "cuda" else largest) * per
    elif req.optimizer == "adafactor":
        temp = T * 4.0  # the squared-gradient update is built in fp32 for the whole tensor
    else:
        temp = 0.0  # bitsandbytes 8-bit kernels update blockwise in place; SGD without momentum keeps nothing
    return states, temp


def _adafactor_bytes(shape: ModelShape, req: EstimateRequest, T: int) -> float:
    """Factored second moments (rows + columns per matrix, fp32) of what the method trains: its unit's term."""
    return method(req.method).adafactor_bytes(shape, req, T)


def attention_kind(shape: ModelShape, req: EstimateRequest) -> str:
    """The attention kernel the estimate assumes: the request's, else the model config's, else eager for soft-capped
    attention scores (Gemma 2: SDPA cannot cap them), else SDPA (transformers' default)."""
    if req.attention != "auto":
        return req.attention
    impl = (shape.attn_implementation or "").lower()
    if impl.startswith("flash"):
        return "flash"
    if impl in ("eager", "sdpa"):
        return impl
    return "eager" if shape.attn_softcapping else "sdpa"


def _eager_scores(shape: ModelShape, req: EstimateRequest, seq: int) -> tuple[float, float]:
    """(bytes kept per layer, bytes alive while one layer's backward runs) of eager attention's scores; 0 for
    SDPA / flash attention, which never materialise them."""
    if attention_kind(shape, req) != "eager":
        return 0.0, 0.0
    ab = COMPUTE_BYTES[req.precision]
    elems = req.batch_size * shape.heads * seq * seq
    return elems * EAGER_KEPT_BYTES[ab], elems * EAGER_BACKWARD_BYTES[ab]


def chunk_rows(rows: int, vocab: int, hidden: int) -> int:
    """Positions per chunk: a chunk's fp32 logits about the size of all the hidden states (the rule liger-kernel
    uses: rows / ceil(vocab / hidden), rounded up to a power of two), at least 64 and at most all the rows."""
    if rows <= 0:
        return 1
    per = math.ceil(rows / max(1, math.ceil(vocab / max(1, hidden))))
    return max(1, min(rows, max(64, 1 << max(0, per - 1).bit_length())))


def _loss_bytes(shape: ModelShape, req: EstimateRequest, tokens: int, upcast: bool) -> float:
    """What the loss holds at its peak: the logits and their fp32 copies (plain), 16-bit logits and fp32 log-probs
    (chunked_logits), or the labelled hidden states, their gradient and one chunk of logits (chunked)."""
    ab = COMPUTE_BYTES[req.precision]
    if req.loss == "plain":
        return tokens * shape.vocab * LOGITS_BYTES[4 if upcast else ab]
    if req.loss == "chunked_logits":
        return tokens * shape.vocab * (CHUNKED_LOGITS_BYTES if ab == 2 and not upcast else 8.0)
    hb = 4 if upcast else ab
    rows = chunk_rows(tokens, shape.vocab, shape.hidden)
    kept = tokens * shape.hidden * 2 * hb
    chunk = rows * shape.vocab * CHUNKED_LOSS_TRANSIENT
    grad_w = shape.vocab * shape.hidden * 4 if method(req.method).trains_all_weights else 0.0
    return kept + chunk + grad_w


def _activation_terms(shape: ModelShape, req: EstimateRequest) -> tuple[float, float, float]:
    """(stored activations, the loss's logits, one layer recomputed in backward) in bytes."""
    ab = COMPUTE_BYTES[req.precision]
    upcast = method(req.method).quantized_base and req.upcast_embeddings
    # the residual stream is fp32 under AMP (fp32 embeddings) and when QLoRA's preparation upcasts the embeddings
    resid = 4 if (upcast or WEIGHT_BYTES[req.precision] == 4) else ab
    spec = method(req.method)
    seq = req.seq_len + spec.extra_tokens(req)
    tokens = req.batch_size * seq
    per_layer = _activation_elems_per_token_layer(shape) * ab
    lora_kept = spec.kept_elems_per_token_layer(shape, req) * ab  # the method's own modules (adapters' inputs ...)
    logits = _loss_bytes(shape, req, tokens, upcast)
    scores_kept, scores_backward = _eager_scores(shape, req, seq)
    if req.gradient_checkpointing:
        return (tokens * shape.layers * shape.hidden * resid, logits,
                tokens * (per_layer + lora_kept) + scores_kept + scores_backward)
    return tokens * shape.layers * (per_layer + lora_kept) + shape.layers * scores_kept, logits, scores_backward


def _load_terms(shape: ModelShape, req: EstimateRequest) -> tuple[float, float, float]:
    """(allocated at the load peak, of which transient, cached by the allocator on top) per GPU. QLoRA: the 4-bit
    weights, the rest in 16 bits and the 16-bit matrix being quantised, with the converted checkpoint shard cached.
    FSDP / ZeRO-3 without low-memory loading: the whole model on every GPU before it is sharded. Otherwise loading
    stays below the training phases (0)."""
    if req.device != "cuda":
        return 0.0, 0.0, 0.0
    spec = method(req.method)
    n, _states, shard_weights = _sharding(req)
    c = shape.counts()
    scale = shape.params / c["total"]
    if spec.quantized_base:
        quantised = c["linear_in_blocks"] * scale
        settled = quantised * NF4_BYTES_PER_PARAM + (shape.params - quantised) * COMPUTE_BYTES[req.precision]
        largest = max(i * o for i, o in shape.linear_shapes().values()) * 2.0
        cache = min(CHECKPOINT_SHARD_BYTES, quantised * 2)
        if shard_weights and req.low_memory_loading:
            return settled / n + largest, largest, 0.0
        return settled + largest, largest, cache
    if shard_weights and not req.low_memory_loading:
        whole = shape.params * WEIGHT_BYTES[req.precision]
        return whole, whole * (1 - 1 / n), 0.0
    return 0.0, 0.0, 0.0


def terms(shape: ModelShape, req: EstimateRequest) -> tuple[Terms, int]:
    P = shape.params
    T = trainable_params(shape, req)
    spec = method(req.method)
    c = shape.counts()
    scale = P / c["total"]  # when the shape stands in for a --params-b size
    n, shard_states, shard_weights = _sharding(req)
    wb = WEIGHT_BYTES[req.precision]
    weights = spec.weight_bytes(shape, req, c["linear_in_blocks"] * scale, wb)
    adapter = 0.0 if spec.trains_all_weights else T * ADAPTER_BYTES[req.adapter_dtype]
    grads = T * _trainable_bytes(req)
    states, temp = _optimizer_bytes(shape, req, T)
    layer_params = (c["total"] - c["embeddings"] - c["lm_head"]) * scale / max(1, shape.layers)
    gathered = 0.0
    if shard_weights:
        weights, adapter = weights / n, adapter / n
        if req.offload_params:
            weights = 0.0  # the shards sit in host RAM; only the gathered layers below reach the GPU
        stored = NF4_BYTES_PER_PARAM if spec.quantized_base else COMPUTE_BYTES[req.precision]
        gathered = GATHERED_LAYERS * layer_params * stored
        if spec.trains_all_weights:
            gathered += layer_params * _trainable_bytes(req)  # one layer's gradients before the reduce-scatter
    if shard_states:
        grads, states, temp = grads / n, states / n, temp / n
    # AMP caches a 16-bit copy of every weight used under autocast until the forward ends
    copies = c["linear_in_blocks"] * scale * 2 if req.precision.endswith("-mixed") and not spec.quantized_base else 0.0
    if shard_weights:
        copies = min(copies, gathered)
    acts, logits, layer = _activation_terms(shape, req)
    load, load_transient, load_cache = _load_terms(shape, req)
    return Terms(weights, adapter, states, gathered, grads, temp, copies, acts, logits, layer, load,
                 load_transient, load_cache), T


def phases(t: Terms, req: EstimateRequest) -> dict[str, dict[str, float]]:
    """The terms alive in each phase. Forward/backward: activations with the larger of the loss (logits) and a
    recomputed layer; gradients build up while activations are freed, so they count only with gradient
    accumulation (kept across micro-batches) or when larger than the activations. Optimizer step: gradients,
    states and the optimizer's temporaries."""
    persistent = {"weights": t.weights, "trainable_params": t.trainable_params,
                  "optimizer_states": t.optimizer_states, "gathered_params": t.gathered_params}
    act_peak = t.activations + max(t.logits, t.layer_recompute)
    if req.grad_accum > 1:
        fb = {"gradients": t.gradients, "activations": t.activations, "logits": t.logits,
              "layer_recompute": t.layer_recompute if t.layer_recompute > t.logits else 0.0}
    elif act_peak >= t.gradients:
        fb = {"activations": t.activations, "logits": t.logits if t.logits >= t.layer_recompute else 0.0,
              "layer_recompute": t.layer_recompute if t.layer_recompute > t.logits else 0.0}
    else:
        fb = {"gradients": t.gradients, "layer_recompute": t.layer_recompute}
    fb["autocast_copies"] = t.autocast_copies
    step = {"gradients": t.gradients, "optimizer_temporaries": t.optimizer_temporaries}
    out = {"forward_backward": {**persistent, **fb}, "optimizer_step": {**persistent, **step}}
    if t.load:  # before training: the weights as loaded, the shard or whole model in flight; no adapters or states
        out["load"] = {"weights": t.load - t.load_transient, "load_transient": t.load_transient}
    return out


@dataclass
class Breakdown:
    parts: dict[str, float]  # bytes per GPU of every term at the peak phase, plus the device's own overhead
    trainable: int
    allocated: float  # bytes: the allocator's peak (the larger phase)
    phases: dict[str, float]  # bytes allocated in each phase
    peak_phase: str
    readings: dict[str, float] = field(default_factory=dict)  # CUDA: the device reading of each phase

    @property
    def total(self) -> float:
        return sum(self.parts.values())


def _readings(t: Terms, totals: dict[str, float], req: EstimateRequest) -> dict[str, float]:
    """The device reading of each phase on CUDA: allocated + the allocator's reserve + context (+ NCCL). At load the
    reserve is the converted checkpoint shards the allocator caches (released under pressure or by empty_cache)."""
    multi = req.gpus > 1
    share = ALLOCATOR_RESERVE_SHARE_MULTI if multi else ALLOCATOR_RESERVE_SHARE
    ctx = (CUDA_CONTEXT_GB + (NCCL_BUFFERS_GB if multi else 0.0)) * GB
    out = {name: total * (1 + share) + ctx for name, total in totals.items()}
    if "load" in totals:
        out["load"] = totals["load"] + max(t.load_cache, totals["load"] * share) + ctx
    return out


def breakdown(shape: ModelShape, req: EstimateRequest) -> Breakdown:
    """Every term at the peak phase (plus the device's own overhead), the allocated peak and each phase."""
    t, T = terms(shape, req)
    ph = phases(t, req)
    totals = {name: sum(alive.values()) for name, alive in ph.items()}
    parts = {k: 0.0 for k in ("weights", "trainable_params", "gradients", "optimizer_states", "optimizer_temporaries",
                              "gathered_params", "autocast_copies", "activations", "logits", "layer_recompute",
                              "load_transient")}
    allocated = max(totals.values())  # the allocator's peak over the run
    if req.device == "cuda":
        readings = _readings(t, totals, req)
        peak = max(readings, key=readings.get)
        parts.update(ph[peak])
        ctx = (CUDA_CONTEXT_GB + (NCCL_BUFFERS_GB if req.gpus > 1 else 0.0)) * GB
        parts["allocator_reserve"] = readings[peak] - totals[peak] - ctx
        parts["overhead"] = ctx
        return Breakdown(parts, T, allocated, totals, peak, readings)
    peak = max(totals, key=totals.get)
    parts.update(ph[peak])
    # the process's resident memory keeps what each phase freed (glibc rarely returns it to the system), so
    # the reading is every term together (measured: bench/estimate_vs_measured.py)
    parts.update({k: v for k, v in vars(t).items() if k in parts and k != "load_transient"})
    parts["allocator_reserve"] = 0.0
    parts["overhead"] = CPU_PROCESS_GB * GB
    if method(req.method).quantized_base:
        # on CPU the weights are first materialised in full precision and quantised after; the allocator
        # keeps that memory (on CUDA, layers are quantised one by one as they are moved to the GPU)
        parts["overhead"] += shape.params * WEIGHT_BYTES[req.precision]
    return Breakdown(parts, T, allocated, totals, peak, {})


def _total_gb(shape: ModelShape, req: EstimateRequest) -> float:
    return breakdown(shape, req).total / GB


def training_flops(shape: ModelShape, req: EstimateRequest, tokens: float) -> float:
    """6·P·tokens for full fine-tuning; ≈4·P·tokens when weights are frozen (no weight gradients);
    gradient checkpointing adds one more forward (2·P·tokens)."""
    per_token = method(req.method).flops_per_token
    if req.gradient_checkpointing:
        per_token += 2.0
    return per_token * shape.params * tokens




def _precision_note(req: EstimateRequest) -> str:
    if req.precision.endswith("-mixed"):
        return f"{req.precision}: fp32 weights with {req.precision[:4]} autocast (AMP; 16-bit weight copies cached)"
    if req.precision == "fp32":
        return "fp32 weights and compute"
    return f"pure {req.precision}: weights, gradients and optimizer states in {req.precision} (HF Trainer with a " \
           f"{req.precision} model)"


def _attention_note(shape: ModelShape, req: EstimateRequest) -> str:
    kind = attention_kind(shape, req)
    why = "" if req.attention != "auto" else (
        " (the model config's attn_implementation)" if shape.attn_implementation else
        " (soft-capped attention scores: SDPA cannot cap them; flash-attn can)" if shape.attn_softcapping else
        " (transformers' default)")
    if kind == "eager":
        return "eager: batch × heads × sequence² scores kept per layer " \
               f"({EAGER_KEPT_BYTES[COMPUTE_BYTES[req.precision]]:g} B each, quadratic in the sequence)" + why
    return f"{kind}: memory-efficient, no stored attention scores" + why


def _loss_note(req: EstimateRequest) -> str:
    if req.loss == "plain":
        return (f"plain cross-entropy over the full vocabulary ({LOGITS_BYTES[2]:g} B per logit in 16-bit, "
                f"{LOGITS_BYTES[4]:g} in fp32)")
    if req.loss == "chunked_logits":
        return f"chunked cross-entropy over materialised 16-bit logits ({CHUNKED_LOGITS_BYTES:g} B per logit)"
    return "chunked linear cross-entropy: the full logits are never built (one chunk at a time)"


def estimate(shape: ModelShape, req: EstimateRequest, suggest: bool = True) -> MemoryEstimate:
    bd = breakdown(shape, req)
    T = bd.trainable
    total = bd.total / GB
    per_gpu = {k: round(v / GB, 3) for k, v in bd.parts.items()}
    fits = total <= req.gpu_memory_gb
    tight = (not fits and req.device == "cuda" and req.gpus == 1
             and (bd.allocated * (1 + MIN_FRAGMENTATION_SHARE)) / GB + CUDA_CONTEXT_GB <= req.gpu_memory_gb)
    fits = fits or tight
    elems, per = OPTIMIZER_STATES[req.optimizer]
    assumptions: dict[str, str | float | int | bool] = {
        "model_shape": shape.source,
        "precision": _precision_note(req),
        "optimizer": f"{req.optimizer}: {elems} state(s) of "
                     f"{(per if per is not None else _trainable_bytes(req)):g} bytes per trainable parameter"
                     + ("; paged: evicted to CPU under memory pressure" if req.optimizer.startswith("paged") else ""),
        "attention": _attention_note(shape, req),
        "loss": _loss_note(req),
        "gradient_checkpointing": req.gradient_checkpointing,
        "seq_len": req.seq_len,
        "batch_size_per_gpu": req.batch_size,
        "gpus": req.gpus,
        "sharding": req.sharding,
        "offload_params": req.offload_params,
        "device": req.device,
        "peak_phase": bd.peak_phase,
        "device_overhead": (f"CUDA context {CUDA_CONTEXT_GB:g} GB + allocator reserve {ALLOCATOR_RESERVE_SHARE:.0%} "
                            "of the allocated peak") if req.device == "cuda" else f"process {CPU_PROCESS_GB:g} GB",
    }
    spec = method(req.method)
    assumptions.update(spec.assumptions(req))
    if bd.phases.get("load"):
        assumptions["load"] = _load_note(req)
    if req.gpus > 1 and req.sharding == "none":
        assumptions["data_parallel"] = "plain data parallel: every GPU holds a full copy of all states"
    gpu_hours = wall = cost = None
    if req.examples is not None and req.avg_tokens is not None:
        tokens = req.examples * req.avg_tokens * req.epochs
        flops = training_flops(shape, req, tokens)
        seconds = flops / (req.gpu_tflops * 1e12 * req.utilization)
        seconds *= spec.slowdown  # QLoRA dequantises its 4-bit weights on every matmul
        gpu_hours = round(seconds / 3600, 4)
        wall = round(gpu_hours / req.gpus, 4)
        cost = round(gpu_hours * req.price_per_gpu_hour, 2) if req.price_per_gpu_hour is not None else None
        assumptions["training_tokens"] = tokens
        assumptions["flops_per_token"] = f"{training_flops(shape, req, 1) / shape.params:g} × params"
        assumptions["throughput"] = f"{req.gpu_tflops:g} TFLOP/s peak × {req.utilization:g} utilisation"
        if spec.slowdown != 1.0:
            assumptions["slowdown"] = spec.slowdown
    est = MemoryEstimate(
        method=req.method,
        params_b=round(shape.params / 1e9, 4),
        trainable_params=T,
        trainable_share=round(T / shape.params, 6),
        per_gpu_gb=per_gpu,
        total_gb=round(total, 3),
        allocated_gb=round(bd.allocated / GB, 3),
        peak_phase=bd.peak_phase,
        phases={name: round(v / GB, 3) for name, v in bd.phases.items()},
        step_gb=round(max(v for k, v in bd.readings.items() if k != "load") / GB, 3) if bd.readings else None,
        load_gb=round(bd.readings["load"] / GB, 3) if "load" in bd.readings else None,
        gpu_memory_gb=req.gpu_memory_gb,
        fits=fits,
        tight=tight,
        headroom_gb=round(req.gpu_memory_gb - total, 3),
        assumptions=assumptions,
        gpu_hours=gpu_hours,
        wall_hours=wall,
        cost=cost,
    )
    if suggest and not fits:
        est.suggestions = suggestions(shape, req)
    return est


def _load_note(req: EstimateRequest) -> str:
    if method(req.method).quantized_base:
        return (f"the 16-bit checkpoint is quantised while it loads: one {CHECKPOINT_SHARD_BYTES / GB:g} GB shard in "
                "flight on top of the 4-bit weights (tunewise train empties the allocator's cache after loading)")
    return "every GPU materialises the whole model before it is sharded (no low-memory loading)"


def _candidates(req: EstimateRequest, shape: ModelShape | None = None) -> list[tuple[str, str, dict]]:
    """Changes that lower memory, in order of how little they cost in quality or speed."""
    out: list[tuple[str, str, dict]] = []
    if req.loss != "chunked":
        out.append(("a chunked loss that never builds the full logits (tunewise train's default; liger-kernel or "
                    "Cut Cross-Entropy elsewhere), same result", "--loss chunked", {"loss": "chunked"}))
    if req.attention == "eager" or (shape is not None and attention_kind(shape, req) == "eager"):
        out.append(("memory-efficient attention (SDPA or flash-attn) instead of eager", "--attention sdpa",
                    {"attention": "sdpa"}))
    if req.gpus > 1 and req.sharding in ("zero3", "fsdp") and not req.low_memory_loading:
        out.append(("load only each GPU's shard (FSDP cpu_ram_efficient_loading / ZeRO-3 zero.Init)",
                    "drop --no-low-memory-loading", {"low_memory_loading": True}))
    if not req.gradient_checkpointing:
        out.append(("turn on gradient checkpointing (~30% slower, no quality cost)", "drop --no-gradient-checkpointing",
                    {"gradient_checkpointing": True}))
    if req.gpus > 1 and req.sharding not in ("zero3", "fsdp"):
        out.append((f"shard weights, gradients and optimizer with ZeRO-3 across the {req.gpus} GPUs", "--sharding zero3",
                    {"sharding": "zero3"}))
    if req.optimizer in ("adamw", "paged_adamw"):
        out.append(("use 8-bit AdamW (bitsandbytes)", "--optimizer adamw_8bit", {"optimizer": "adamw_8bit"}))
    if req.precision.endswith("-mixed") or req.precision == "fp32":
        out.append(("train in pure bf16 (no fp32 weight copy)", "--precision bf16", {"precision": "bf16"}))
    if req.batch_size > 1:
        out.append((f"batch size 1 with gradient accumulation {req.batch_size * req.grad_accum} (same effective batch)",
                    f"--batch-size 1 --grad-accum {req.batch_size * req.grad_accum}",
                    {"batch_size": 1, "grad_accum": req.batch_size * req.grad_accum}))
    for change, leaner in method(req.method).leaner:  # the unit's leaner methods, in order
        out.append((change, f"--method {leaner}", {"method": leaner}))
    if req.seq_len > 256:
        out.append((f"shorter sequences ({req.seq_len // 2} tokens; check how many records get truncated)",
                    f"--seq-len {req.seq_len // 2}", {"seq_len": req.seq_len // 2}))
    return out


def suggestions(shape: ModelShape, req: EstimateRequest) -> list[Suggestion]:
    """Each change alone, then (if none fits alone) all of them together. Fitting ones first, in preference order."""
    singles: list[Suggestion] = []
    cands = _candidates(req, shape)
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
