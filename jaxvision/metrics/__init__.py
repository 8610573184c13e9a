"""Metrics: pure functions of arrays."""

from jaxvision.metrics.classification import accuracy, topk_correct
from jaxvision.metrics.iqa import (apply_linear_mapping, average_ranks, fit_linear_mapping,
                                   fit_logistic_mapping, iqa_performance, krocc,
                                   logistic_mapping, plcc, rmse, srocc)
from jaxvision.metrics.trajectory import forecasting_metrics

__all__ = ["accuracy", "topk_correct"]
__all__ += ["forecasting_metrics"]
__all__ += ["apply_linear_mapping", "average_ranks", "fit_linear_mapping",
            "fit_logistic_mapping", "iqa_performance", "krocc", "logistic_mapping", "plcc",
            "rmse", "srocc"]
