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


VARIANTS = {'tiny': _tiny, 'helen': _helen}


def apply(config, arg: str):
  for name in [p for p in arg.split('+') if p]:
    if name not in VARIANTS:
      raise ValueError(f'unknown config variant {name!r}; valid: {sorted(VARIANTS)}')
    VARIANTS[name](config)
  return config
