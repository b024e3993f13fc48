"""MRRNet face super-resolution in JAX/Flax."""
from mrr_jax import platform as _platform

# Before any jax computation starts a backend (see mrr_jax/platform.py).
_platform.configure_xla_cpu_flags()
