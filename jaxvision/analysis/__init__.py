"""Jacobian, Lipschitz and conditioning tools used by notebooks and tests."""

from jaxvision.analysis.conditioning import (
    DEGENERATE_KINDS,
    degenerate_covariances,
    eigh_autodiff,
    failure_table,
    gradient_failures,
)
from jaxvision.analysis.lipschitz import (
    gain_sensitivity,
    jacobian_spectral_norm,
    lipschitz_vs_dynamic_range,
)

__all__: list[str] = [
    "DEGENERATE_KINDS",
    "degenerate_covariances",
    "eigh_autodiff",
    "failure_table",
    "gradient_failures",
    "gain_sensitivity",
    "jacobian_spectral_norm",
    "lipschitz_vs_dynamic_range",
]
