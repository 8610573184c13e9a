"""Thin ``flax.linen`` layers over :mod:`jaxvision.ops` (SSM blocks, covariance pooling, ...)."""

from jaxvision.nn.covariance_pooling import CovariancePooling
from jaxvision.nn.orthogonal import SOC_PADDINGS, SOCConv, SpectralNormConv
from jaxvision.nn.whitening import DecorrelatedBatchNorm

__all__: list[str] = [
    "CovariancePooling",
    "DecorrelatedBatchNorm",
    "SOC_PADDINGS",
    "SOCConv",
    "SpectralNormConv",
]
