"""Jacobian, Lipschitz and conditioning tools used by notebooks and tests."""

from jaxvision.analysis.conditioning import (
    DEGENERATE_KINDS,
    degenerate_covariances,
    eigh_autodiff,
    failure_table,
    gradient_failures,
)

__all__: list[str] = [
    "DEGENERATE_KINDS",
    "degenerate_covariances",
    "eigh_autodiff",
    "failure_table",
    "gradient_failures",
]
