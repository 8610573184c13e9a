"""Metrics: pure functions of arrays."""

from jaxvision.metrics.classification import accuracy, topk_correct
from jaxvision.metrics.colorization import (ab_accuracy_counts, ab_accuracy_curve, ab_distance,
                                            auc_ab, auc_from_curve, auc_rebalancing_weights,
                                            auc_thresholds, colorfulness_hasler,
                                            kolinguo_distance_scale, mean_chroma, psnr_rgb,
                                            rebalanced_auc_ab, rebalanced_auc_ab_kolinguo,
                                            rmse_ab)
from jaxvision.metrics.iqa import (apply_linear_mapping, average_ranks, fit_linear_mapping,
                                   fit_logistic_mapping, iqa_performance, krocc,
                                   logistic_mapping, plcc, rmse, srocc)
from jaxvision.metrics.spectral import crop_border, mrae, psnr, sam, spectral_metrics
from jaxvision.metrics.trajectory import forecasting_metrics

__all__ = ["accuracy", "topk_correct"]
__all__ += ["forecasting_metrics"]
__all__ += ["apply_linear_mapping", "average_ranks", "fit_linear_mapping",
            "fit_logistic_mapping", "iqa_performance", "krocc", "logistic_mapping", "plcc",
            "rmse", "srocc"]
__all__ += ["ab_accuracy_counts", "ab_accuracy_curve", "ab_distance", "auc_ab", "auc_from_curve",
            "auc_rebalancing_weights", "auc_thresholds", "colorfulness_hasler",
            "kolinguo_distance_scale", "mean_chroma", "psnr_rgb", "rebalanced_auc_ab",
            "rebalanced_auc_ab_kolinguo", "rmse_ab"]
__all__ += ["crop_border", "mrae", "psnr", "sam", "spectral_metrics"]
