"""Pure ``jnp`` kernels: jit/vmap/grad-safe, ``custom_vjp`` where the maths needs it.

Kernels here never import Flax. The spectral eigen-solvers, the selective scan,
colour spaces and the other method kernels land here with their issues.
"""

__all__: list[str] = []
