"""Metrics: pure functions of arrays."""

from jaxvision.metrics.classification import accuracy, topk_correct
from jaxvision.metrics.trajectory import forecasting_metrics

__all__ = ["accuracy", "topk_correct"]
__all__ += ["forecasting_metrics"]
