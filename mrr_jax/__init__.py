"""MRRNet face super-resolution in JAX/Flax (docs/architecture.md; README "Layout")."""
