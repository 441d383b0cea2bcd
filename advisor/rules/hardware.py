"""Does each fine-tune method fit the user's hardware? A small ladder of standard configurations per
method is tried against the memory estimate; the first that fits is the one the advisor writes."""

from __future__ import annotations

from dataclasses import dataclass

from advisor.answers import Answers
from core.estimate import EstimateRequest, MemoryEstimate, estimate, shape_from_config, shape_from_params_b
from core.estimate.shapes import ModelShape
from core.methods import REGISTRY

CPU_TFLOPS = 1.0  # a few cores with AVX2/AVX-512; how long is too long is a rule (rules/decide_50_methods.yaml)


@dataclass
class Fit:
    method: str
    request: EstimateRequest
    estimate: MemoryEstimate
    fits: bool
    rung: int  # 0 = the standard configuration; higher = leaner settings were needed
    tight: bool = False  # above the expected reading; runs only if the allocator gives back its reserve (one GPU)


def advisor_fits(est: MemoryEstimate) -> bool:
    """The advisor's fit: the expected device reading at the peak within the memory. The estimator's `tight`
    allowance (a run that fits only if the allocator gives back its reserve) is not a fit to recommend."""
    return est.total_gb <= est.gpu_memory_gb


def assumed_gpu_tflops(gpu_memory_gb: float) -> float:
    """Peak dense bf16 TFLOP/s of a typical GPU of that memory size (the estimate states it)."""
    if gpu_memory_gb <= 16:
        return 65.0  # T4 / V100 class
    if gpu_memory_gb <= 24:
        return 165.0  # RTX 4090 / A10 class
    if gpu_memory_gb <= 48:
        return 180.0  # L40S / A6000 class
    return 312.0  # A100 class


def model_shape(answers: Answers) -> ModelShape:
    if answers.model_path:
        return shape_from_config(answers.model_path)
    if answers.model_name:
        from core.estimate.shapes import shape_from_name

        named = shape_from_name(answers.model_name)
        if named is not None:  # the answers validator refused unknown names
            return named
    return shape_from_params_b(answers.model_params_b)


def fit_methods(answers: Answers, seq_len: int, examples: int, avg_tokens: float, epochs: float) -> dict[str, Fit]:
    shape = model_shape(answers)
    common = dict(seq_len=seq_len, batch_size=1, gradient_checkpointing=True, examples=examples,
                  avg_tokens=avg_tokens, epochs=epochs)
    out: dict[str, Fit] = {}
    for method in REGISTRY:
        tried: list[Fit] = []
        if answers.gpu_count > 0:
            base = EstimateRequest(method=method, gpus=answers.gpu_count, gpu_memory_gb=answers.gpu_memory_gb,
                                   precision="bf16", device="cuda",
                                   gpu_tflops=assumed_gpu_tflops(answers.gpu_memory_gb), **common)
            # the method's registry ladder: the standard configuration first, then leaner ones
            for rung, upd in enumerate(REGISTRY[method].ladder(answers.gpu_count)):
                req = base.model_copy(update=upd)
                est = estimate(shape, req)
                tried.append(Fit(method, req, est, advisor_fits(est), rung))
                if tried[-1].fits:
                    break
        if not (tried and tried[-1].fits):
            # CPU path: the model trains on the host in fp32 (bf16 kernels are slow or missing on CPUs); whether
            # it fits is the estimate against cpu_memory_gb, whether it is worth it the estimated hours
            req = EstimateRequest(method=method, gpus=1, gpu_memory_gb=answers.cpu_memory_gb, precision="fp32",
                                  device="cpu", gpu_tflops=CPU_TFLOPS, utilization=0.3,
                                  optimizer="adamw", **common)
            est = estimate(shape, req)
            tried.append(Fit(method, req, est, advisor_fits(est), 0))
        clean = next((f for f in tried if f.fits), None)
        # no configuration fits the expected reading: the first that runs only with the allocator's reserve given
        # back is kept as a last resort (marked tight; a rule rules it out when another method fits cleanly)
        tight = next((Fit(f.method, f.request, f.estimate, True, f.rung, tight=True)
                      for f in tried if f.estimate.tight), None)
        out[method] = clean or tight or tried[0]
    return out
