"""Faces in real photos: find them (detect), crop as the training data were (align), paste back.

Importing this package imports neither TensorFlow nor JAX, so the restore
command can find and crop faces before it loads anything heavy.
"""
from mrr_jax.faces.align import crop_face, crop_matrix
from mrr_jax.faces.detect import Face, detect_faces
from mrr_jax.faces.paste import paste_face
