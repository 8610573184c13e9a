"""Thin ``flax.linen`` layers over :mod:`jaxvision.ops` (SSM blocks, covariance pooling, ...)."""

from jaxvision.nn.acc import ACC_VARIANTS, AdjacentChannelCoupler
from jaxvision.nn.attention import (
    AttentionLayer,
    FourierEmbedding,
    Neighbours,
    RelativeAttention,
    gather_neighbours,
    take_neighbours,
)
from jaxvision.nn.covariance_pooling import CovariancePooling
from jaxvision.nn.mamba import INJECTIONS, BiMamba, Mamba, MambaCache, SelectiveSSM
from jaxvision.nn.orthogonal import SOC_PADDINGS, SOCConv, SpectralNormConv
from jaxvision.nn.whitening import DecorrelatedBatchNorm
from jaxvision.nn.spectral_attention import (SSTA, DepthwiseConv2d, FeedForward, PooledNonLocal,
                                             SecondOrderChannelAttention,
                                             SpectralTransformerBlock, SpectralWiseMSA)

__all__: list[str] = [
    "ACC_VARIANTS",
    "AdjacentChannelCoupler",
    "AttentionLayer",
    "BiMamba",
    "CovariancePooling",
    "DecorrelatedBatchNorm",
    "DepthwiseConv2d",
    "FeedForward",
    "PooledNonLocal",
    "SSTA",
    "SecondOrderChannelAttention",
    "SpectralTransformerBlock",
    "SpectralWiseMSA",
    "FourierEmbedding",
    "INJECTIONS",
    "Mamba",
    "MambaCache",
    "Neighbours",
    "RelativeAttention",
    "SOC_PADDINGS",
    "SOCConv",
    "SelectiveSSM",
    "SpectralNormConv",
    "gather_neighbours",
    "take_neighbours",
]
