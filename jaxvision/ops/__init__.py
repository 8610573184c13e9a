"""Pure ``jnp`` kernels: jit/vmap/grad-safe, ``custom_vjp`` where the maths needs it.

Kernels here never import Flax. The spectral eigen-solvers, the selective scan,
colour spaces and the other method kernels land here with their issues.
"""

from jaxvision.ops.spectral import (
    POLAR_METHODS,
    SQRTM_METHODS,
    condition_number,
    covariance,
    expm_skew,
    inv_sqrtm,
    logm_spd,
    polar,
    powm,
    spectral_function,
    spectral_norm,
    sqrtm,
)
from jaxvision.ops.kernels import (
    kernel_to_matrix,
    matrix_to_kernel,
    transpose_filter,
    triu_vector,
)

__all__: list[str] = [
    "POLAR_METHODS",
    "SQRTM_METHODS",
    "condition_number",
    "covariance",
    "expm_skew",
    "inv_sqrtm",
    "logm_spd",
    "polar",
    "powm",
    "spectral_function",
    "spectral_norm",
    "sqrtm",
    "kernel_to_matrix",
    "matrix_to_kernel",
    "transpose_filter",
    "triu_vector",
]
