"""Where faces come from: TFDS builders (ours and the catalog's) and paired test folders.

Train: data.train_dir (a folder of images, built once into data.data_dir with
the face_folder builder and data.crop_box), else the builder data.name's train
split; a builder not yet prepared is built from data.manual_dir on first use
(for multi-host runs build it beforehand with `tfds build` so processes do not
race). data.name may also be a TFDS catalog dataset with an image feature
(data.image_key), e.g. lfw, downloaded on first use and cropped as read.
Eval: the paired folder data.eval_hr_dir [+ data.eval_lr_dir]
(mrr_jax.data.pairs), else the builder's test split. What the user must fix
(no data configured, a missing or empty folder, too many bad files) is a
bad_files.DataError, a ValueError with a one-line message.
"""
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mrr_jax.data import bad_files, crops, degradations, images, pairs
from mrr_jax.data.builders import common
from mrr_jax.data.builders import face_folder

# TFDS only reads and writes files here; the accelerators belong to JAX.
tf.config.set_visible_devices([], 'GPU')


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

  _SHAPES = {'hr': (images.HR_SIZE, images.HR_SIZE, 3), 'lr': (images.LR_SIZE, images.LR_SIZE, 3)}

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
  square and PIL bicubic resize are face_folder's crops.crop_resize, so the
  same photos give the same crops through either path.
  """

  def __init__(self, builder: tfds.core.DatasetBuilder, split: str, image_key: str,
               box: Optional[crops.Box]):
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
      return {'hr': crops.crop_resize(self._source[index][self._key], self._box)}
    except bad_files.BadImageError as e:
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
  except bad_files.ManualDirError as e:
    if data_config.manual_dir:
      raise
    raise bad_files.DataError(
        f'no {purpose} data: set {instead} or --config.data.manual_dir=DIR holding '
        f'{builder.MANUAL_DIR_HOLDS} for data.name={data_config.name}{tail}') from e


def _train_builder(data_config) -> tfds.core.DatasetBuilder:
  if data_config.train_dir:
    config = face_folder.config_for(data_config.train_dir,
                                    crops.parse_box(data_config.crop_box))
    return _builder(data_config, 'face_folder', data_config.train_dir, config)
  return _prepare_configured(_unprepared_builder(data_config, data_config.name), data_config,
                             'training', '--config.data.train_dir=DIR (a folder of face photos)')


def prepare_train_data(data_config) -> None:
  """Builds the configured train data set in data.data_dir if it is not built yet."""
  _train_builder(data_config)


def train_source(data_config) -> Sequence[Dict[str, Any]]:
  """The train split: our builders' stored crops, or a catalog's images cropped as read."""
  builder = _train_builder(data_config)
  if _is_catalog(builder):
    return CatalogSource(builder, 'train', data_config.image_key,
                         crops.parse_box(data_config.crop_box))
  return FaceSource(builder, 'train')


def num_train_examples(data_config) -> int:
  """Images in the train split (building it on first use)."""
  return len(train_source(data_config))


def steps_per_epoch(data_config, global_batch_size: int) -> int:
  """Global steps per pass over the train split (mrr_jax.train.state.epoch_steps)."""
  from mrr_jax.train import state  # pylint: disable=g-import-not-at-top
  return state.epoch_steps(num_train_examples(data_config), global_batch_size)


def _eval_source(data_config) -> Sequence[Dict[str, Any]]:
  """The builder's test split (eval_examples reads a paired folder itself)."""
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


def _text(name: Any) -> str:
  return name.decode('utf-8') if isinstance(name, bytes) else str(name)


def eval_examples(data_config) -> List[pairs.Example]:
  """The eval set as Examples, in a fixed order, capped by data.eval_max_images.

  A paired folder pairs by mrr_jax.data.pairs' rule (its bad entries logged and
  skipped); a builder's test split gives its stored LR or, without one, the LR
  made from HR as training makes it.
  """
  if data_config.eval_hr_dir:
    examples, _ = pairs.load_pairs(data_config.eval_hr_dir, data_config.eval_lr_dir or None,
                                   lr_resize=data_config.resize)
  else:
    source = _eval_source(data_config)
    examples = []
    for i in range(_limit(data_config, len(source))):
      ex = source[i]
      lr = ex['lr'] if 'lr' in ex else degradations.make_lr(ex['hr'], data_config.resize)
      examples.append(pairs.Example(_text(ex['name']), ex['hr'], lr))
  examples = examples[:_limit(data_config, len(examples))]
  if not examples:
    raise bad_files.DataError('the eval set is empty (check data.eval_hr_dir / data.name\'s '
                              'test split)')
  return examples
