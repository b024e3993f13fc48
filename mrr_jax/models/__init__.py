"""Flax modules: the MRRNet generator, the patch discriminator, VGG19 features."""
from mrr_jax.models.discriminator import Discriminator
from mrr_jax.models.generator import MRRNet
from mrr_jax.models.vgg import VGG19Features
