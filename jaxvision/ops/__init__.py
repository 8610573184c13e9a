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
from jaxvision.ops.scan import (
    DISCRETIZATIONS,
    SCAN_METHODS,
    linear_recurrence,
    selective_scan,
    selective_state_update,
)
from jaxvision.ops.geometry import (
    angle_between_2d_vectors,
    from_local_frame,
    relative_pose_features,
    rotation_matrix,
    safe_norm,
    se2_apply,
    to_local_frame,
    wrap_angle,
)
from jaxvision.ops.sorting import (
    apply_permutation,
    inverse_permutation,
    radius_degree,
    sort_permutation,
)
from jaxvision.ops.kernels import (
    kernel_to_matrix,
    matrix_to_kernel,
    transpose_filter,
    triu_vector,
)
from jaxvision.ops import color
from jaxvision.ops.color import (
    D65_WHITE,
    GAMUT_CRITERIA,
    PRIOR_METHODS,
    ab_gamut_bins,
    ab_histogram,
    ab_prior,
    decode_ab_annealed_mean,
    encode_ab_soft,
    lab_to_lch,
    lab_to_rgb,
    lch_to_lab,
    prior_from_histogram,
    rebalancing_weights,
    rgb_to_lab,
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
    "DISCRETIZATIONS",
    "SCAN_METHODS",
    "linear_recurrence",
    "selective_scan",
    "selective_state_update",
    "angle_between_2d_vectors",
    "from_local_frame",
    "relative_pose_features",
    "rotation_matrix",
    "safe_norm",
    "se2_apply",
    "to_local_frame",
    "wrap_angle",
    "apply_permutation",
    "inverse_permutation",
    "radius_degree",
    "sort_permutation",
]
__all__ += color.__all__
from jaxvision.ops import acc, recurrence
from jaxvision.ops.recurrence import (
    DIFFERENTIATION_MODES,
    RECURRENCE_METHODS,
    SolverInfo,
    fixed_point,
    solve_recurrence,
)
from jaxvision.ops.acc import (
    ACC_BOUNDARIES,
    ACC_DIRECTIONS,
    ACC_SOLVERS,
    ACCParams,
    CIRCULAR_METHODS,
    GATED_METHODS,
    IMPLICIT_SWEEPS,
    acc_flops,
    adjacent_channel_coupler,
    circular_linear_coupler,
    gated_linear_coupler,
    init_acc_params,
)

__all__ += recurrence.__all__ + acc.__all__
from jaxvision.ops import conv
from jaxvision.ops.conv import DEPTHWISE_METHODS, depthwise_conv2d

__all__ += conv.__all__
