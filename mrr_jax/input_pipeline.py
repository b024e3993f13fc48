"""Training and evaluation batches for MRRNet (ARCH.md "Training as coded").

Train: HR 128x128 uint8 crops from a TFDS builder (mrr_jax.datasets) read by
random access with grain, sharded per process, shuffled per epoch, then the
authors' augmentation: random horizontal flip, random scale in [1.0, 1.3)
(a random resized crop when zooming in, centred zero padding when zooming out),
LR = PIL bicubic 128 -> 16, network input = PIL bicubic 16 -> 128, all in [-1,1].
Every random draw comes from grain's per-element generator, so a seed fixes the
batches, and the iterator's state (a small JSON-able dict) resumes them exactly.

Batches are dicts of numpy float32 with the per-process batch
B = global_batch // process_count first:
  'input' (B,128,128,3) bicubic-upsampled LR, 'hr' (B,128,128,3), 'lr' (B,16,16,3).
mrr_jax.parallel.prefetch_to_device splits them over local devices.
Eval batches add 'mask' (1 real, 0 padding) and 'name' (numpy str, '' for
padding); drop 'name' before prefetch_to_device (strings cannot go to devices).

Data sources (config.data): train_dir (a folder of images, built once into
data_dir with the face_folder builder and crop_box) else the builder `name`'s
train split; eval from the paired folder eval_hr_dir [+ eval_lr_dir], else the
builder's test split. A builder not yet prepared is built from manual_dir on
first use; for multi-host runs build it beforehand (`tfds build`) so processes
do not race. `name` may also be a TFDS catalog dataset with an image feature
(image_key), e.g. lfw: TFDS downloads it on first use (this needs internet),
and each train image gets face_folder's crop (crop_box, centred square, PIL
bicubic to 128x128) as it is read. Catalog datasets are for training only.
Building and the paired folders skip bad files (mrr_jax.datasets.common); what
the user must fix (no data configured, a missing or empty folder, too many bad
files) raises common.DataError, a ValueError with a one-line message.
"""
import ctypes
import functools
import math
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from absl import flags
from absl import logging
import grain
import numpy as np
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds
import threadpoolctl

from mrr_jax.datasets import common
from mrr_jax.datasets import face_folder
from mrr_jax.datasets import paired_face_folder

# TFDS only reads and writes files here; the accelerators belong to JAX.
tf.config.set_visible_devices([], 'GPU')

HR_SIZE = common.HR_SIZE
LR_SIZE = common.LR_SIZE
# torchvision RandomResizedCrop's aspect-ratio range, as the authors' Scale uses.
_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
# One reader thread per process: the per-image work is PIL calls that hold the GIL
# part of the time, and more threads measured no faster per core. Scale out with
# data.num_workers processes instead.
_READ_THREADS = 1

Batch = Dict[str, np.ndarray]


# ---------------------------------------------------------------- pure image ops


def to_float(u8: np.ndarray) -> np.ndarray:
  """uint8 [0,255] -> float32 [-1,1] (torchvision ToTensor + Normalize(0.5, 0.5)).

  In place on one new array: a batch is megabytes, and each fresh temporary
  costs page faults that measured more than the arithmetic.
  """
  out = np.array(u8, np.float32)
  out /= np.float32(127.5)
  out -= np.float32(1.0)
  return out


def upsample_lr(lr_u8: np.ndarray) -> np.ndarray:
  """16x16x3 uint8 LR -> 128x128x3 uint8 network input, PIL bicubic."""
  return np.asarray(Image.fromarray(lr_u8).resize((HR_SIZE, HR_SIZE), Image.BICUBIC))


def shrink_hr(hr_u8: np.ndarray) -> np.ndarray:
  """128x128x3 uint8 HR -> 16x16x3 uint8 LR, PIL bicubic as the authors' code.

  PIL's bicubic resize (a = -0.5) widens its kernel by the scale when
  shrinking, i.e. it antialiases.
  """
  return np.asarray(Image.fromarray(hr_u8).resize((LR_SIZE, LR_SIZE), Image.BICUBIC))


def degrade(hr_u8: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """128x128x3 uint8 HR -> (16x16x3 LR, 128x128x3 network input), as the authors' code."""
  lr = shrink_hr(hr_u8)
  return lr, upsample_lr(lr)


# Pillow's 8-bit resampling (Resample.c) works in fixed point: integer weights
# scaled by 2**22, and each pass (horizontal, then vertical) rounds its sums
# back to uint8 as (sum + 2**21) >> 22 clipped to [0, 255].
_PRECISION_BITS = 22


def _bicubic_kernel(x: float) -> float:
  """Pillow's bicubic_filter (a = -0.5)."""
  x = abs(x)
  if x < 1.0:
    return (1.5 * x - 2.5) * x * x + 1.0
  if x < 2.0:
    return (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5
  return 0.0


@functools.cache
def _pil_bicubic_weights(in_size: int, out_size: int) -> np.ndarray:
  """Pillow's bicubic weights for in_size -> out_size as an (out, in) matrix, over 2**22.

  Resample.c's precompute_coeffs and normalize_coeffs_8bpc step for step: the
  kernel is widened by the scale when shrinking (antialiasing), each output's
  weights are divided by their sum, scaled by 2**22 and rounded half away from
  zero. Returned divided by 2**22 (exact, a power of two) so that a float64
  product gives Pillow's integer sum over 2**22 exactly: every term and
  partial sum is a multiple of 2**-22 with fewer than 53 significant bits.
  """
  scale = in_size / out_size
  filterscale = max(scale, 1.0)
  support = 2.0 * filterscale
  ss = 1.0 / filterscale  # C multiplies by the reciprocal; dividing can differ in the last bit
  weights = np.zeros((out_size, in_size))
  for i in range(out_size):
    center = (i + 0.5) * scale
    lo = max(int(center - support + 0.5), 0)
    hi = min(int(center + support + 0.5), in_size)
    w = [_bicubic_kernel((x - center + 0.5) * ss) for x in range(lo, hi)]
    total = 0.0
    for v in w:  # C's summation order, so the normalised weights match bit for bit
      total += v
    for x, v in zip(range(lo, hi), w):
      v = v / total if total != 0.0 else v
      weights[i, x] = math.trunc(v * (1 << _PRECISION_BITS) + (0.5 if v >= 0 else -0.5))
  return weights * 2.0 ** -_PRECISION_BITS


def _pil_round(acc: np.ndarray) -> np.ndarray:
  """floor(acc + 1/2) clipped to [0, 255] in place: Pillow's (sum + 2**21) >> 22."""
  acc += 0.5
  np.floor(acc, out=acc)
  return np.clip(acc, 0.0, 255.0, out=acc)


@functools.cache
def _horizontal_weights(in_size: int, out_size: int, channels: int) -> np.ndarray:
  """The horizontal pass on rows of interleaved channels: (in*C, out*C) weights.

  kron(weights.T, I_C) applies the (out, in) weights to each channel, so the
  pass over a whole batch is one matrix product.
  """
  return np.kron(_pil_bicubic_weights(in_size, out_size).T, np.eye(channels))


@functools.cache
def _blas() -> threadpoolctl.ThreadpoolController:
  return threadpoolctl.ThreadpoolController()


def pil_bicubic_batch(u8: np.ndarray, size: int) -> np.ndarray:
  """(B, H, W, C) uint8 -> (B, size, size, C) float64 holding PIL BICUBIC's uint8 values.

  Equal to Image.resize((size, size), Image.BICUBIC) on each image, bit for
  bit, in two matrix products for the whole batch.
  """
  b, h, w, c = u8.shape
  # One BLAS thread: the products are small, and OpenBLAS's threads waiting
  # for a busy second core made them tens of times slower (measured).
  with _blas().limit(limits=1, user_api='blas'):
    rows = _pil_round(u8.reshape(b * h, w * c).astype(np.float64)
                      @ _horizontal_weights(w, size, c))
    out = np.matmul(_pil_bicubic_weights(h, size), rows.reshape(b, h, size * c))
  return _pil_round(out).reshape(b, size, size, c)


def random_resized_crop_box(rng: np.random.Generator, width: int, height: int,
                            area: Tuple[float, float]) -> Tuple[int, int, int, int]:
  """torchvision RandomResizedCrop.get_params as (x0, y0, x1, y1).

  Ten tries at an area fraction in `area` and a log-uniform aspect ratio in
  [3/4, 4/3]; a centred crop if none fits.
  """
  log_lo, log_hi = math.log(_CROP_RATIO[0]), math.log(_CROP_RATIO[1])
  for _ in range(10):
    target = width * height * rng.uniform(area[0], area[1])
    aspect = math.exp(rng.uniform(log_lo, log_hi))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      y0 = int(rng.integers(0, height - h + 1))
      x0 = int(rng.integers(0, width - w + 1))
      return x0, y0, x0 + w, y0 + h
  in_ratio = width / height
  if in_ratio < _CROP_RATIO[0]:
    w, h = width, int(round(width / _CROP_RATIO[0]))
  elif in_ratio > _CROP_RATIO[1]:
    w, h = int(round(height * _CROP_RATIO[1])), height
  else:
    w, h = width, height
  x0, y0 = (width - w) // 2, (height - h) // 2
  return x0, y0, x0 + w, y0 + h


def augment(hr_u8: np.ndarray, rng: np.random.Generator,
            scale_range: Sequence[float] = (1.0, 1.3), flip: bool = True) -> np.ndarray:
  """The authors' train augmentation of a 128x128 uint8 HR crop.

  Flip with probability 1/2; draw s uniform in [lo, hi); if int(128 s) > 128, a
  random resized crop (area fraction in [2 - hi, 1], the crop's own scale
  independent of s) resized back with bicubic; if int(128 s) < 128, a bilinear
  shrink to int(128 s) centred on a black 128x128 canvas; else unchanged.
  """
  return np.asarray(_augment_image(Image.fromarray(hr_u8), rng, scale_range, flip))


def _augment_image(img: Image.Image, rng: np.random.Generator,
                   scale_range: Sequence[float], flip: bool) -> Image.Image:
  if flip and rng.random() < 0.5:
    img = img.transpose(Image.FLIP_LEFT_RIGHT)
  lo, hi = scale_range
  s = rng.random() * (hi - lo) + lo
  w, h = img.size
  sw, sh = int(w * s), int(h * s)
  if sw > w:
    box = random_resized_crop_box(rng, w, h, (max(2.0 - hi, 0.0), 1.0))
    img = img.crop(box).resize((HR_SIZE, HR_SIZE), Image.BICUBIC)
  elif sw < w:
    canvas = Image.new('RGB', (w, h))
    canvas.paste(img.resize((sw, sh), Image.BILINEAR), ((w - sw) // 2, (h - sh) // 2))
    img = canvas
  if img.size != (HR_SIZE, HR_SIZE):
    img = img.resize((HR_SIZE, HR_SIZE), Image.BICUBIC)
  return img


def _train_example(index: int, rng: np.random.Generator, source: Sequence[Dict[str, Any]],
                   scale_range: Tuple[float, float], flip: bool) -> Dict[str, Image.Image]:
  """Reads source[index], augments and shrinks it as PIL images; _collate makes the arrays."""
  hr = _augment_image(Image.fromarray(source[index]['hr']), rng, scale_range, flip)
  return {'hr': hr, 'lr': hr.resize((LR_SIZE, LR_SIZE), Image.BICUBIC)}


@functools.cache
def _keep_freed_memory() -> None:
  """Keeps this process's freed heap for reuse instead of returning it to the kernel.

  Every batch allocates and frees about 10 MB of arrays. With glibc's defaults
  they come from fresh mmaps, or from heap that free() has just trimmed, so each
  batch page-faults all of it again: about 1,400 faults a batch, a quarter of
  the per-image CPU time measured. A fixed mmap threshold of 32 MB (glibc's
  maximum) and a 256 MB trim threshold keep that memory mapped. Process-wide;
  skipped where the C library is not glibc.
  """
  try:
    mallopt = ctypes.CDLL('libc.so.6').mallopt
  except (OSError, AttributeError):
    return
  m_trim_threshold, m_mmap_threshold = -1, -3  # glibc malloc.h
  mallopt(m_mmap_threshold, 32 << 20)
  mallopt(m_trim_threshold, 256 << 20)


def _collate(examples: Sequence[Dict[str, Image.Image]]) -> Batch:
  """PIL 'hr' and 'lr' images -> float32 [-1,1] 'input', 'hr', 'lr' batches.

  Each is to_float of the stacked uint8 images; 'input' is the LR upsampled
  by pil_bicubic_batch, PIL's bicubic for the whole batch at once.
  """
  _keep_freed_memory()  # here, so that grain's worker processes run it too
  out = {}
  for key, first in examples[0].items():
    w, h = first.size
    u8 = np.empty((len(examples), h, w, 3), np.uint8)
    for i, ex in enumerate(examples):
      u8[i] = np.frombuffer(ex[key].tobytes(), np.uint8).reshape(h, w, 3)
    out[key] = u8
  out['input'] = pil_bicubic_batch(out['lr'], HR_SIZE)
  return {key: to_float(out[key]) for key in ('input', 'hr', 'lr')}


# ---------------------------------------------------------------- data sources


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
  value, shift = 0, 0
  while True:
    b = buf[pos]
    pos += 1
    value |= (b & 0x7F) << shift
    if b < 0x80:
      return value, pos
    shift += 7


def _len_fields(buf: bytes, start: int, end: int) -> Iterator[Tuple[int, int, int]]:
  """(field number, start, end) of each length-delimited field in buf[start:end]."""
  pos = start
  while pos < end:
    key, pos = _varint(buf, pos)
    wire = key & 7
    if wire == 2:
      n, pos = _varint(buf, pos)
      yield key >> 3, pos, pos + n
      pos += n
    elif wire == 0:
      _, pos = _varint(buf, pos)
    elif wire in (1, 5):
      pos += 8 if wire == 1 else 4
    else:
      raise ValueError(f'unsupported protobuf wire type {wire}')


def parse_bytes_features(record: bytes) -> Dict[str, memoryview]:
  """The first value of every bytes_list feature of a serialized tf.train.Example.

  Example.features(1) -> map entries(1) {key(1), value(2): Feature
  {bytes_list(1): BytesList {value(1)}}}. Reading the wire format directly
  returns views into the record: tf.train.Example.FromString copies each
  49 KB image and costs about as much as the whole augmentation.
  """
  view = memoryview(record)
  out = {}
  for f1, s1, e1 in _len_fields(record, 0, len(record)):
    if f1 != 1:
      continue
    for f2, s2, e2 in _len_fields(record, s1, e1):
      if f2 != 1:
        continue
      key, value = None, None
      for f3, s3, e3 in _len_fields(record, s2, e2):
        if f3 == 1:
          key = bytes(view[s3:e3]).decode('utf-8')
        elif f3 == 2:
          for f4, s4, e4 in _len_fields(record, s3, e3):
            if f4 == 1:
              value = next((view[s5:e5] for f5, s5, e5 in _len_fields(record, s4, e4)
                            if f5 == 1), view[s4:s4])
      if key is not None and value is not None:
        out[key] = value
  return out


class FaceSource:
  """Random access to a built split as {'hr', 'lr' (if stored), 'name'} numpy."""

  _SHAPES = {'hr': (HR_SIZE, HR_SIZE, 3), 'lr': (LR_SIZE, LR_SIZE, 3)}

  def __init__(self, builder: tfds.core.DatasetBuilder, split: str):
    self._source = builder.as_data_source(
        split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> Dict[str, Any]:
    fields = parse_bytes_features(self._source[index])
    out = {k: np.frombuffer(fields[k], np.uint8).reshape(shape)
           for k, shape in self._SHAPES.items() if k in fields}
    out['name'] = bytes(fields['name']).decode('utf-8')
    return out


class CatalogSource:
  """Random access to a TFDS catalog split's images as {'hr'} 128x128 uint8.

  TFDS decodes the image (with PIL, as face_folder does); crop box, centred
  square and PIL bicubic resize are face_folder's common.crop_resize, so the
  same photos give the same crops through either path.
  """

  def __init__(self, builder: tfds.core.DatasetBuilder, split: str, image_key: str,
               box: Optional[common.Box]):
    features = builder.info.features
    if image_key not in features:
      raise ValueError(f'TFDS dataset {builder.name!r} has no feature {image_key!r} '
                       f'(it has {sorted(features.keys())}); set data.image_key to its image.')
    shape, dtype = features[image_key].shape, features[image_key].np_dtype
    if dtype != np.uint8 or len(shape) != 3 or shape[-1] != 3:
      raise ValueError(f'TFDS dataset {builder.name!r} feature {image_key!r} is {dtype} '
                       f'{shape}, not an RGB uint8 image (H, W, 3).')
    if box is not None and None not in shape[:2] and (
        min(box) < 0 or box[2] > shape[1] or box[3] > shape[0]):
      raise ValueError(f'data.crop_box {box} lies outside the {shape[1]}x{shape[0]} images '
                       f'of TFDS dataset {builder.name!r}.')
    self._name, self._key, self._box = builder.name, image_key, box
    self._source = builder.as_data_source(split)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> Dict[str, Any]:
    try:
      return {'hr': common.crop_resize(self._source[index][self._key], self._box)}
    except common.BadImageError as e:
      raise ValueError(f'TFDS dataset {self._name!r} train image {index}: {e}') from e


def _is_catalog(builder: tfds.core.DatasetBuilder) -> bool:
  """A TFDS catalog dataset (images to crop), not one of our face-SR builders."""
  return not isinstance(builder, common.FaceSrBuilder)


def _unprepared_builder(
    data_config, name: str,
    config: Optional[tfds.core.BuilderConfig] = None) -> tfds.core.DatasetBuilder:
  """The named (or configured) builder in data.data_dir; nothing is built or downloaded."""
  kwargs = {'data_dir': data_config.data_dir or None}
  return (tfds.builder(name, config=config, **kwargs) if config is not None
          else tfds.builder(name, **kwargs))


def _prepare(builder: tfds.core.DatasetBuilder, manual_dir: str) -> tfds.core.DatasetBuilder:
  """Builds the builder if not yet built: ours from manual_dir, a catalog's by download."""
  if builder.is_prepared():
    return builder
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
  if not _is_catalog(builder):
    builder.download_and_prepare(download_config=download_config)
    return builder
  logging.info('TFDS dataset %s is not prepared in %s: downloading it (needs internet).',
               builder.name, builder.data_dir)
  try:
    builder.download_and_prepare(download_config=download_config)
  except (OSError, tfds.download.DownloadError) as e:
    # requests' connection errors and timeouts are OSErrors.
    raise ValueError(
        f'TFDS dataset {builder.name!r} is not prepared in {builder.data_dir} and '
        f'downloading it failed: {type(e).__name__}: {e}. It needs internet on first use; '
        'without it, set data.data_dir to a TFDS data dir where it is prepared '
        f'(`tfds build {builder.name} --data_dir DIR` on a machine with internet).') from e
  return builder


def _builder(data_config, name: str, manual_dir: str,
             config: Optional[tfds.core.BuilderConfig] = None) -> tfds.core.DatasetBuilder:
  """The named (or configured) builder, prepared if not yet built."""
  return _prepare(_unprepared_builder(data_config, name, config), manual_dir)


def _prepare_configured(builder: tfds.core.DatasetBuilder, data_config, purpose: str,
                        instead: str, tail: str = '') -> tfds.core.DatasetBuilder:
  """_prepare from data.manual_dir; a DataError naming the keys when no data is configured.

  With data.manual_dir unset TFDS looks in DATA_DIR/downloads/manual, which
  most users never fill: its absence means no data was configured at all.
  """
  try:
    return _prepare(builder, data_config.manual_dir)
  except common.ManualDirError as e:
    if data_config.manual_dir:
      raise
    raise common.DataError(
        f'no {purpose} data: set {instead} or --config.data.manual_dir=DIR holding '
        f'{builder.MANUAL_DIR_HOLDS} for data.name={data_config.name}{tail}') from e


def _train_builder(data_config) -> tfds.core.DatasetBuilder:
  if data_config.train_dir:
    config = face_folder.config_for(data_config.train_dir,
                                    common.parse_box(data_config.crop_box))
    return _builder(data_config, 'face_folder', data_config.train_dir, config)
  return _prepare_configured(_unprepared_builder(data_config, data_config.name), data_config,
                             'training', '--config.data.train_dir=DIR (a folder of face photos)')


def _train_source(data_config) -> Sequence[Dict[str, Any]]:
  """The train split: our builders' stored crops, or a catalog's images cropped as read."""
  builder = _train_builder(data_config)
  if _is_catalog(builder):
    return CatalogSource(builder, 'train', data_config.image_key,
                         common.parse_box(data_config.crop_box))
  return FaceSource(builder, 'train')


def _per_process_batch(global_batch_size: int, process_count: int) -> int:
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(f'global batch {global_batch_size} does not split over '
                     f'{process_count} processes')
  return global_batch_size // process_count


def num_train_examples(data_config) -> int:
  """Images in the train split (building it on first use)."""
  return len(_train_source(data_config))


def steps_per_epoch(data_config, global_batch_size: int) -> int:
  """Global steps per pass over the train split (at least 1)."""
  return max(1, num_train_examples(data_config) // global_batch_size)


# ---------------------------------------------------------------- training


class TrainIterator:
  """Infinite iterator of train batches whose position can be saved and restored.

  get_state() returns a JSON-serialisable dict; set_state(state) on a fresh
  iterator built with the same config, batch, seed and process gives exactly
  the batches the saved iterator would have given next.
  """

  def __init__(self, dataset: grain.IterDataset):
    self._it = iter(dataset)

  def __iter__(self) -> 'TrainIterator':
    return self

  def __next__(self) -> Batch:
    return next(self._it)

  def get_state(self) -> Dict[str, Any]:
    return self._it.get_state()

  def set_state(self, state: Dict[str, Any]) -> None:
    self._it.set_state(state)

  def close(self) -> None:
    """Stops worker processes, if any."""
    close = getattr(self._it, 'close', None)
    if close is not None:
      close()


def train_dataset(source: Sequence[Dict[str, Any]], batch_size: int, seed: int,
                  scale_range: Sequence[float] = (1.0, 1.3), flip: bool = True,
                  process_index: int = 0, process_count: int = 1) -> grain.MapDataset:
  """Batches of augmented examples from a random-access source of {'hr': uint8}.

  One global order for every topology: the whole source is shuffled (seeded by
  seed and epoch; batches run across epoch boundaries) and augmented by
  element index, then cut into per-process batches of `batch_size`, process p
  taking batches p, p + P, p + 2P, ... So P processes together see exactly
  the global batches one process would, and their shards are disjoint.
  """
  seed = int(seed) % 2**32
  # The map reads the source itself: grain's MapDataset.source gives the same
  # elements but records statistics per element (byte-size estimate, latency
  # metrics), measured at 0.035 ms of the ~1 ms of CPU time per image.
  ds = grain.MapDataset.range(len(source)).shuffle(seed=seed).repeat()
  fn = functools.partial(_train_example, source=source, scale_range=tuple(scale_range),
                         flip=bool(flip))
  ds = ds.random_map(fn, seed=(seed + 1) % 2**32)
  ds = ds.batch(batch_size, drop_remainder=True, batch_fn=_collate)
  return ds[process_index::process_count]


def create_train_iterator(data_config, global_batch_size: int, seed: int,
                          process_index: int = 0, process_count: int = 1) -> TrainIterator:
  """The resumable train iterator for this process (per-process batch)."""
  batch = _per_process_batch(global_batch_size, process_count)
  source = _train_source(data_config)
  ds = train_dataset(source, batch, seed, data_config.scale_range, data_config.flip,
                     process_index, process_count)
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=_READ_THREADS,
                                               prefetch_buffer_size=4))
  if data_config.num_workers > 0:
    # grain's workers read absl flags; outside an absl app (tests, notebooks)
    # their defaults must count as parsed.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=data_config.num_workers))
  return TrainIterator(it_ds)


# ---------------------------------------------------------------- evaluation


class EvalBatches:
  """Fixed-order eval batches for one process, padded to full global batches.

  Global batch b holds examples [b G, (b + 1) G); process p takes its slice
  [b G + p B, b G + (p + 1) B). Padding repeats zeros with mask 0 and name ''.
  LR comes from the source when it has one (paired folders), else shrink_hr(hr).
  """

  def __init__(self, get: Callable[[int], Dict[str, Any]], num_examples: int,
               global_batch_size: int, process_index: int, process_count: int):
    self._get = get
    self.num_examples = num_examples
    self._global = global_batch_size
    self._batch = _per_process_batch(global_batch_size, process_count)
    self._offset = process_index * self._batch

  def __len__(self) -> int:
    return -(-self.num_examples // self._global)

  def __iter__(self) -> Iterator[Batch]:
    for b in range(len(self)):
      start = b * self._global + self._offset
      yield self._make(range(start, start + self._batch))

  def _make(self, indices: range) -> Batch:
    hr = np.zeros((len(indices), HR_SIZE, HR_SIZE, 3), np.uint8)
    lr = np.zeros((len(indices), LR_SIZE, LR_SIZE, 3), np.uint8)
    mask = np.zeros((len(indices),), np.float32)
    names = [''] * len(indices)
    for row, i in enumerate(indices):
      if i >= self.num_examples:
        continue
      ex = self._get(i)
      hr[row] = ex['hr']
      lr[row] = ex['lr'] if 'lr' in ex else shrink_hr(ex['hr'])
      mask[row] = 1.0
      names[row] = _text(ex['name'])
    # The network input as training makes it (padding rows stay zero).
    inp = pil_bicubic_batch(lr, HR_SIZE)
    return {'input': to_float(inp), 'hr': to_float(hr), 'lr': to_float(lr),
            'mask': mask, 'name': np.asarray(names, dtype=str)}


def _text(name: Any) -> str:
  return name.decode('utf-8') if isinstance(name, bytes) else str(name)


def _load_paired_folder(hr_dir: str, lr_dir: str) -> List[Dict[str, Any]]:
  """Every usable pair, in name order; bad pairs skipped under the 1% rule."""
  examples, bad, total = [], [], 0
  for name, make in paired_face_folder.iter_pairs(hr_dir, lr_dir or None):
    total += 1
    example, bad_one = common.try_example(name, make)
    if bad_one is None:
      examples.append(example)
    else:
      bad.append(bad_one)
  common.check_bad_fraction('eval', bad, total, common.DEFAULT_MAX_BAD_FRACTION, where=hr_dir)
  return examples


def _eval_source(data_config) -> Sequence[Dict[str, Any]]:
  if data_config.eval_hr_dir:
    return _load_paired_folder(data_config.eval_hr_dir, data_config.eval_lr_dir)
  if data_config.train_dir:
    raise ValueError('data.train_dir has no test split: set data.eval_hr_dir '
                     '(and data.eval_lr_dir) to a paired test folder for evaluation.')
  builder = _unprepared_builder(data_config, data_config.name)
  if _is_catalog(builder):
    raise ValueError(f'TFDS dataset {data_config.name!r} is used for training only: set '
                     'data.eval_hr_dir (and data.eval_lr_dir) to a paired test folder, or '
                     'eval_every_steps=0.')
  builder = _prepare_configured(
      builder, data_config, 'evaluation',
      '--config.data.eval_hr_dir=DIR (the HR/ folder of a paired test set; '
      '--config.data.eval_lr_dir=DIR its LR/)',
      ', or turn evaluation off with --config.eval_every_steps=0')
  return FaceSource(builder, 'test')


def _limit(data_config, n: int) -> int:
  cap = data_config.eval_max_images
  return min(n, cap) if cap and cap > 0 else n


def num_eval_examples(data_config) -> int:
  """Real (unpadded) eval images: the test set, capped by data.eval_max_images."""
  return _limit(data_config, len(_eval_source(data_config)))


def create_eval_batches(data_config, global_batch_size: int, process_index: int = 0,
                        process_count: int = 1) -> EvalBatches:
  """Fixed-order padded eval batches; `.num_examples` is the real image count."""
  source = _eval_source(data_config)
  n = _limit(data_config, len(source))
  if n == 0:
    raise ValueError('the eval set is empty (check data.eval_hr_dir / data.name test split)')
  return EvalBatches(source.__getitem__, n, global_batch_size, process_index, process_count)
