"""Accelerator-slice config variants, lr scaling and the input worker count, by hand."""
import math

import pytest

from configs import mrrgan, mrrnet
from mrr_jax.data import pipeline
from mrr_jax.train import config_checks, state


@pytest.mark.parametrize('variant, devices', [('gpu8', 8), ('v4_8', 4), ('v5e_8', 8),
                                              ('v5p_16', 8), ('v6e_8', 8)])
def test_slice_variants_keep_the_authors_epochs(variant, devices):
  config = mrrnet.get_config(variant)
  assert config.batch_size == 16 * devices
  assert config.compute_dtype == 'bfloat16' and config.lr_scaling == 'sqrt'
  # The length stays 20 epochs (steps from the split's size at run time) ...
  assert (config.num_epochs, config.num_train_steps) == (20, 0)
  # ... and a length in steps becomes as many images, rounded up to whole steps.
  steps = mrrnet.get_config(f'tiny+{variant}')
  assert steps.num_train_steps == math.ceil(20 * 4 / (16 * devices))  # tiny: 20 steps at 4
  config_checks.validate(config)


def test_epochs_become_steps_from_the_split_and_batch():
  config = mrrnet.get_config()
  per_epoch = state.epoch_steps(162_770, 12)
  assert per_epoch == 13_565  # ceil: the authors' DataLoader keeps the short last batch
  assert state.train_steps(config, per_epoch) == 271_300
  assert state.lr_decay_steps(config, per_epoch) == 54_260
  config.batch_size = 128
  per_epoch = state.epoch_steps(162_770, 128)
  assert (per_epoch, state.train_steps(config, per_epoch)) == (1_272, 25_440)
  config.num_train_steps, config.lr_decay_every_steps = 500, 100
  assert (state.train_steps(config, per_epoch), state.lr_decay_steps(config, per_epoch)) == (500, 100)


def test_slice_variant_combines_with_others():
  config = mrrgan.get_config('helen+gpu8')
  assert (config.phase, config.data.name, config.batch_size) == ('gan', 'helen_face_sr', 128)


def test_lr_scaling_rules():
  config = mrrnet.get_config()
  config.batch_size = 48  # 4x the authors' 12
  assert state.scaled_lr(config, 1e-4) == 1e-4
  config.lr_scaling = 'linear'
  assert state.scaled_lr(config, 1e-4) == pytest.approx(4e-4)
  config.lr_scaling = 'sqrt'
  assert state.scaled_lr(config, 1e-4) == pytest.approx(2e-4)
  g_tx, d_tx, g_schedule = state.make_optimizers(config, steps_per_epoch=10)
  del g_tx, d_tx
  assert float(g_schedule(0)) == pytest.approx(2e-4)
  assert float(g_schedule(40)) == pytest.approx(2e-4 * 0.7)  # decay every 4 epochs, scaled too
  config.lr_scaling = 'cube'
  with pytest.raises(config_checks.ConfigError, match='lr_scaling must be one of none, linear'):
    config_checks.validate(config)


@pytest.mark.parametrize('platform, cores, devices, want', [
    ('cpu', 96, 4, 0),     # the cores run the steps: no workers
    ('gpu', 128, 8, 32),   # 4 per GPU, capped at 32
    ('gpu', 16, 1, 4),     # 4 for one GPU
    ('tpu', 8, 4, 6),      # all but two cores
    ('gpu', 2, 1, 0),      # nothing to spare
])
def test_auto_num_workers(platform, cores, devices, want):
  assert pipeline.auto_num_workers(platform, cores, devices) == want


def test_num_workers_set_or_auto():
  config = mrrnet.get_config()
  assert config.data.num_workers == -1
  assert pipeline.num_workers(config.data) == 0  # the tests' CPU backend
  config.data.num_workers = 3
  assert pipeline.num_workers(config.data) == 3
  config.data.num_workers = -2
  with pytest.raises(config_checks.ConfigError, match='num_workers must be >= 0, or -1'):
    config_checks.validate(config)
