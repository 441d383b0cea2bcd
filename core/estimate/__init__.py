"""Memory, time and cost estimates for fine-tuning jobs (no torch: pure arithmetic on shapes)."""

from core.estimate.memory import EstimateRequest, MemoryEstimate, estimate
from core.estimate.shapes import ModelShape, shape_from_config, shape_from_params_b

__all__ = ["EstimateRequest", "MemoryEstimate", "ModelShape", "estimate", "shape_from_config", "shape_from_params_b"]
