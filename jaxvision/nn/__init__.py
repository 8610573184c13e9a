"""Thin ``flax.linen`` layers over :mod:`jaxvision.ops` (SSM blocks, covariance pooling, ...)."""

__all__: list[str] = []
