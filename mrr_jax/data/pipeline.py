"""The training input pipeline: grain over a random-access source, resumable exactly.

HR 128x128 uint8 crops (mrr_jax.data.sources) are read by random access with
grain, shuffled per epoch, augmented (mrr_jax.data.transforms) and degraded
(mrr_jax.data.degradations): 'input' (B,128,128,3) bicubic-upsampled LR,
'hr' (B,128,128,3), 'lr' (B,16,16,3), float32 in [-1, 1], with the
per-process batch B = global_batch // process_count first.
mrr_jax.train.parallel.prefetch_to_device splits them over local devices.
Every random draw comes from grain's per-element generator, so a seed fixes
the batches, and the iterator's state (a small JSON-able dict) resumes them
exactly.
"""
import ctypes
import functools
import os
from typing import Any, Dict, Iterator, Sequence, Tuple

from absl import flags
import grain
import numpy as np
from PIL import Image

from mrr_jax.data import degradations, images, sources, transforms

# One reader thread per process: the per-image work is PIL calls that hold the GIL
# part of the time, and more threads measured no faster per core. Scale out with
# data.num_workers processes instead.
_READ_THREADS = 1

Batch = Dict[str, np.ndarray]


def _train_example(index: int, rng: np.random.Generator, source: Sequence[Dict[str, Any]],
                   scale_range: Tuple[float, float], flip: bool,
                   lr_resize: str = 'pil') -> Dict[str, Image.Image]:
  """Reads source[index], augments and shrinks it as PIL images; _collate makes the arrays."""
  hr = transforms.augment_image(Image.fromarray(source[index]['hr']), rng, scale_range, flip)
  if lr_resize == 'pil':
    lr = hr.resize((images.LR_SIZE, images.LR_SIZE), Image.BICUBIC)
  else:
    lr = Image.fromarray(degradations.make_lr(np.asarray(hr), lr_resize))
  return {'hr': hr, 'lr': lr}


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
  out['input'] = degradations.upsample_lr_batch(out['lr'])
  return {key: degradations.to_float(out[key]) for key in ('input', 'hr', 'lr')}


def _per_process_batch(global_batch_size: int, process_count: int) -> int:
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(f'global batch {global_batch_size} does not split over '
                     f'{process_count} processes')
  return global_batch_size // process_count


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

  def with_positions(self) -> Iterator[Tuple[Batch, Dict[str, Any]]]:
    """(batch, state right after it): what a checkpoint stores for the batch a step
    consumed, since prefetching runs this iterator ahead of the steps."""
    for batch in self:
      yield batch, self.get_state()

  def close(self) -> None:
    """Stops worker processes, if any."""
    close = getattr(self._it, 'close', None)
    if close is not None:
      close()


def train_dataset(source: Sequence[Dict[str, Any]], batch_size: int, seed: int,
                  scale_range: Sequence[float] = (1.0, 1.3), flip: bool = True,
                  process_index: int = 0, process_count: int = 1,
                  lr_resize: str = 'pil') -> grain.MapDataset:
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
                         flip=bool(flip), lr_resize=lr_resize)
  ds = ds.random_map(fn, seed=(seed + 1) % 2**32)
  ds = ds.batch(batch_size, drop_remainder=True, batch_fn=_collate)
  return ds[process_index::process_count]


def auto_num_workers(platform: str, cpu_count: int, local_devices: int) -> int:
  """Input worker processes for data.num_workers = -1.

  None on a CPU backend: the same cores compute the train steps, and workers
  only take time from them. With accelerators, a host core augments about
  1,000 images/s (BENCHMARKS.md), while one accelerator trains a few thousand
  per second in bfloat16: four workers per local device, keeping two cores for
  the main process (dispatch, checkpoints) and at most 32 workers.
  """
  if platform == 'cpu':
    return 0
  return max(0, min(4 * local_devices, cpu_count - 2, 32))


def num_workers(data_config) -> int:
  """data.num_workers, or auto_num_workers for this host when it is -1."""
  if data_config.num_workers >= 0:
    return data_config.num_workers
  import jax  # pylint: disable=g-import-not-at-top
  return auto_num_workers(jax.default_backend(), os.cpu_count() or 1, jax.local_device_count())


def create_train_iterator(data_config, global_batch_size: int, seed: int,
                          process_index: int = 0, process_count: int = 1) -> TrainIterator:
  """The resumable train iterator for this process (per-process batch)."""
  batch = _per_process_batch(global_batch_size, process_count)
  source = sources.train_source(data_config)
  ds = train_dataset(source, batch, seed, data_config.scale_range, data_config.flip,
                     process_index, process_count, data_config.resize)
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=_READ_THREADS,
                                               prefetch_buffer_size=4))
  workers = num_workers(data_config)
  if workers > 0:
    # grain's workers read absl flags; outside an absl app (tests, notebooks)
    # their defaults must count as parsed.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return TrainIterator(it_ds)
