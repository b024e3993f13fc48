"""The TFDS builders' former home, kept so `tfds build --imports mrr_jax.datasets ...` still works.

They live in mrr_jax.data.builders; importing this registers them the same way.
"""
from mrr_jax.data.builders import CelebaFaceSr, FaceFolder, HelenFaceSr, PairedFaceFolder  # pylint: disable=unused-import
