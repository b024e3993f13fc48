"""Shared base config for mrr_jax (the authors' defaults, docs/architecture.md#training-as-coded).

Phase configs (mrrnet.py, mrrgan.py) import this and override a few fields.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.phase = 'l1'                    # 'l1' (MRRNet) or 'gan' (MRRGAN).
  config.seed = 0

  # Generator architecture (mrr_jax.models.MRRNet fields).
  config.model = ml_collections.ConfigDict()
  config.model.base_channels = 32
  config.model.max_channels = 128
  config.model.num_down = 3
  config.model.num_res = 10
  config.model.attention = 'mrr'          # 'mrr' | 'cbam' | 'none' (w/o SA).
  config.model.att_kernels = (1, 3, 5, 7)

  # Data (see mrr_jax/data/ and README "Data").
  config.data = ml_collections.ConfigDict()
  config.data.name = 'celeba_face_sr'     # our builder[/config] or a TFDS catalog image set (lfw).
  config.data.image_key = 'image'         # a catalog dataset's image feature.
  config.data.data_dir = ''               # TFDS data dir ('' = TFDS default).
  config.data.manual_dir = ''             # where the official downloads were put by hand.
  config.data.train_dir = ''              # a folder of face images; overrides name when set.
  config.data.crop_box = ''               # 'x0,y0,x1,y1' for train_dir/catalog images ('' = none).
  config.data.eval_hr_dir = ''            # paired test folder HR/ ...
  config.data.eval_lr_dir = ''            # ... and LR/ ('' = LR made from HR).
  config.data.scale_range = (1.0, 1.3)    # random zoom in [lo, hi) (the authors' augmentation).
  config.data.flip = True                 # random horizontal flip.
  config.data.resize = 'pil'              # HR -> LR: 'pil' (the authors' PIL bicubic) or
                                          # 'matlab' (MATLAB's antialiased bicubic imresize).
  config.data.num_workers = -1            # input worker processes: 0 = in the main process,
                                          # -1 = from the host (mrr_jax/data/pipeline.py).
  config.data.eval_max_images = 0         # 0 = the whole eval set.

  # Optimisation (the authors' defaults).
  config.batch_size = 12                  # global batch, split over all devices.
  config.num_epochs = 20                 # the authors' --total_epochs, turned into steps at run
                                          # time from the train split's size and batch_size ...
  config.num_train_steps = 0              # ... unless this is > 0 (then it is the length).
  config.g_lr = 1e-4
  config.d_lr = 4e-4
  config.adam_b1 = 0.9
  config.adam_b2 = 0.99
  config.adam_eps = 1e-8
  config.lr_scaling = 'none'             # 'linear' | 'sqrt': g_lr, d_lr x (batch_size / 12)
                                          # or its square root, for large batches.
  config.lr_decay_factor = 0.7            # G lr x0.7 ...
  config.lr_decay_every_epochs = 4        # ... every 4 epochs (the code's StepLR) ...
  config.lr_decay_every_steps = 0         # ... or every N steps when > 0.

  # Loss weights (the code: lambda_pix=1, lambda_g=0.01, lambda_pcp=0.01).
  config.lambda_pix = 1.0
  config.lambda_gan = 0.01
  config.lambda_pcp = 0.01
  config.rahinge_halved = True            # the code's 0.5 factor; False = paper eq. 8/9.
  config.vgg_weights = ''                 # torchvision vgg19-dcbb9e9d.pth or Keras notop .h5.
  config.allow_random_vgg = False         # tests/benchmarks only: a random VGG19.

  # Bookkeeping.
  config.init_from = ''                   # phase-1 workdir or checkpoint dir for phase 2.
  config.log_every_steps = 100            # >= 1.
  config.eval_every_steps = 5000          # 0 = no periodic evaluation.
  config.checkpoint_every_steps = 1000    # 0 = only at the end and on preemption.
  config.image_every_steps = 1000         # 0 = no image summaries.
  config.max_to_keep = 3
  config.profile_steps = 0                # > 0: trace this many steps (TensorBoard profile),
                                          # 10 steps in and hourly after; 0 = no profiling.
  config.ema_decay = 0.0                  # > 0 keeps an EMA of G params (evaluated, exported).
  config.compute_dtype = 'float32'        # 'bfloat16' = bf16 compute with f32 params.
  config.kernels = 'auto'                 # CPU-tuned gradients: 'auto' (on the CPU backend only),
                                          # 'cpu' (always), 'plain' (never); mrr_jax/models/kernels.py.
  return config
