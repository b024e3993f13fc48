"""Face-SR TFDS builders; importing this package registers them with TFDS.

celeba_face_sr, helen_face_sr, face_folder (configs default, lfw), paired_face_folder.
"""
from mrr_jax.data.builders.celeba_face_sr import CelebaFaceSr
from mrr_jax.data.builders.face_folder import FaceFolder
from mrr_jax.data.builders.helen_face_sr import HelenFaceSr
from mrr_jax.data.builders.paired_face_folder import PairedFaceFolder
