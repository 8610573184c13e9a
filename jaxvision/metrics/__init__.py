"""Metrics: pure functions of arrays."""

from jaxvision.metrics.classification import accuracy, topk_correct

__all__ = ["accuracy", "topk_correct"]
