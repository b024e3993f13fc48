"""Shared config variants selected by the ':arg' suffix (e.g. 'tiny', 'helen', 'tiny+helen')."""


def _tiny(config):
  """Small enough for CPU tests and 15-minute smoke runs; same code paths as the real run."""
  config.model.base_channels = 8
  config.model.max_channels = 16
  config.model.num_res = 1
  config.batch_size = 4
  config.num_train_steps = 20
  config.log_every_steps = 5
  config.eval_every_steps = 0
  config.checkpoint_every_steps = 10
  config.image_every_steps = 10
  config.allow_random_vgg = True


def _helen(config):
  config.data.name = 'helen_face_sr'


# Accelerator slices: how many jax devices each has. A slice variant trains the
# same number of epochs as the authors' batch-12 run (num_epochs; a num_train_steps
# is scaled to as many images) at 16 images per device in bfloat16, with sqrt lr scaling (state.scaled_lr). A starting point, not a
# measured optimum: `python -m mrr_jax.bench --sweep` on the slice tells which
# per-device batch is fastest; README "Accelerators".
SLICE_DEVICES = {
    'gpu8': 8,     # one host with 8 GPUs (A100, H100, H200)
    'v4_8': 4,     # TPU v4-8: 4 chips, one host
    'v5e_8': 8,    # TPU v5e-8 (v5litepod-8): 8 chips, one host
    'v5p_16': 8,   # TPU v5p-16: 8 chips on 2 hosts
    'v6e_8': 8,    # TPU v6e-8: 8 chips, one host
}
PER_DEVICE_BATCH = 16


def _accelerator_slice(devices: int):
  def apply_slice(config):
    batch = PER_DEVICE_BATCH * devices
    if config.num_train_steps:  # a length in steps: as many images; epochs need nothing
      config.num_train_steps = max(1, -(-config.num_train_steps * config.batch_size // batch))
    config.batch_size = batch
    config.compute_dtype = 'bfloat16'
    config.lr_scaling = 'sqrt'
  return apply_slice


VARIANTS = {'tiny': _tiny, 'helen': _helen,
            **{name: _accelerator_slice(n) for name, n in SLICE_DEVICES.items()}}


def apply(config, arg: str):
  for name in [p for p in arg.split('+') if p]:
    if name not in VARIANTS:
      raise ValueError(f'unknown config variant {name!r}; valid: {sorted(VARIANTS)}')
    VARIANTS[name](config)
  return config
